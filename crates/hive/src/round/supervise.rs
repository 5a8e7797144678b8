//! After the commit: supervision of the members that failed (see [`Supervision`](crate::Supervision)).

use std::sync::atomic::Ordering;

use crate::events::HiveEvent;
use crate::hive::Hive;
use crate::round::Round;
use crate::state::State;
use crate::supervision::{call_hook, supervise, Supervised, SupervisionAction};

impl<S: State> Round<'_, S> {
    /// Updates the members' supervision records from the round's failures and quarantines or
    /// removes those that reached the policy's limit (logged, counted, sent as events and passed to
    /// the restart hook); returns what was done. Without a policy, nothing.
    pub(super) fn supervise(&self) -> Vec<Supervised> {
        let Some(policy) = self.config().supervision else {
            return Vec::new();
        };
        let members = self
            .members
            .iter()
            .map(|member| (member.id, member.strikes));
        self.unsupervised.disarm();
        let done = supervise(self.hive, policy, self.number, members, &self.failures);
        act(self.hive, self.number, &done);
        done
    }
}

/// Logs, counts, reports (as events) and passes to the restart hook what supervision did in
/// round `number`.
pub(super) fn act<S: State>(hive: &Hive<S>, number: u64, done: &[Supervised]) {
    let counters = &hive.inner.counters;
    for record in done {
        tracing::warn!(agent = record.agent.0, "{record}");
        let counter = match record.action {
            SupervisionAction::Quarantine { .. } => &counters.quarantines,
            SupervisionAction::Remove => &counters.removals,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(events) = &hive.inner.events {
            events.emit(HiveEvent::AgentSupervised {
                round: number,
                record: record.clone(),
            });
        }
        if let Some(hook) = &hive.inner.restart {
            call_hook(hook, hive, record);
        }
    }
}
