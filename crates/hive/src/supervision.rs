//! Supervision: what the hive does with an agent that keeps failing (quarantine it for some rounds
//! or remove it, and tell a restart hook).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use hivekit_runtime::take_panic_message;
use rustc_hash::FxHashMap;

use crate::agent::AgentId;
use crate::decision::{AgentFailure, FailureKind};
use crate::hive::Hive;
use crate::state::State;

/// What the hive does with an agent once it has failed [`Supervision::max_failures`] rounds in a
/// row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SupervisionAction {
    /// The agent is not asked (to propose or to vote) for this many rounds, then rejoins with a
    /// clean record.
    Quarantine {
        /// Rounds the agent sits out.
        rounds: u32,
    },
    /// The agent leaves the hive (as [`Hive::remove`]).
    Remove,
}

impl fmt::Display for SupervisionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisionAction::Quarantine { rounds: 1 } => f.write_str("quarantined for 1 round"),
            SupervisionAction::Quarantine { rounds } => {
                write!(f, "quarantined for {rounds} rounds")
            }
            SupervisionAction::Remove => f.write_str("removed"),
        }
    }
}

/// The hive's policy for agents that keep failing ([`HiveBuilder::supervision`](crate::HiveBuilder::supervision)).
///
/// A round counts as a failure of an agent when any of its calls in that round timed out,
/// panicked or returned an error (invalid answers and calls cancelled by a runtime shutdown do not
/// count); a round in which the agent was asked and none of its calls failed that way clears its
/// record (an invalid answer does too).
/// After `max_failures` failed rounds in a row the hive takes the `action`, records it in the
/// round's [`Decision::supervised`](crate::Decision::supervised) and in
/// [`HiveStats`](crate::HiveStats), sends [`HiveEvent::AgentSupervised`](crate::HiveEvent), and
/// calls the restart hook if there is one.
///
/// # Examples
///
/// ```
/// use hivekit_hive::{Supervision, SupervisionAction};
///
/// let policy = Supervision::quarantine(3, 2);
/// assert_eq!(policy.max_failures, 3);
/// assert_eq!(policy.action, SupervisionAction::Quarantine { rounds: 2 });
/// assert_eq!(Supervision::remove(5).action, SupervisionAction::Remove);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Supervision {
    /// Failed rounds in a row that trigger the action (0 is taken as 1).
    pub max_failures: u32,
    /// What then happens to the agent.
    pub action: SupervisionAction,
}

impl Supervision {
    /// Quarantine an agent for `rounds` rounds after `max_failures` failed rounds in a row.
    pub fn quarantine(max_failures: u32, rounds: u32) -> Self {
        Self {
            max_failures,
            action: SupervisionAction::Quarantine { rounds },
        }
    }

    /// Remove an agent after `max_failures` failed rounds in a row.
    pub fn remove(max_failures: u32) -> Self {
        Self {
            max_failures,
            action: SupervisionAction::Remove,
        }
    }
}

/// What supervision did to one agent in a round.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Supervised {
    /// The agent.
    pub agent: AgentId,
    /// Its failed rounds in a row, this one included.
    pub failures: u32,
    /// What the hive did.
    pub action: SupervisionAction,
    /// For a quarantine: the last round the agent sits out (it is asked again from the next one).
    pub until_round: Option<u64>,
    /// Its last failure (in this round).
    pub last: FailureKind,
}

impl fmt::Display for Supervised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} after {} failed rounds in a row (last: {})",
            self.agent, self.action, self.failures, self.last
        )?;
        if let Some(until) = self.until_round {
            write!(f, "; back after round {until}")?;
        }
        Ok(())
    }
}

/// Called after the hive quarantined or removed an agent, with the hive (to spawn a fresh agent in
/// place of a removed one, for example) and what was done. A panic in the hook is caught and
/// logged.
pub type RestartHook<S> = Arc<dyn Fn(&Hive<S>, &Supervised) + Send + Sync>;

/// A member's supervision record, shared by every round.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Failed rounds in a row.
    pub(crate) failures: AtomicU32,
    /// The member sits out every round up to this one (0: none).
    pub(crate) quarantined_until: AtomicU64,
}

/// True for the failures supervision counts: the agent's own fault, not an invalid answer or a
/// runtime shutdown.
pub(crate) fn counts(kind: &FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::TimedOut | FailureKind::Panicked { .. } | FailureKind::Errored { .. }
    )
}

/// Updates the records of a round's asked members (each as its id and its failed rounds in a row
/// when the round started) from the round's `failures`, and takes the policy's action on those
/// that reached the limit (a removed agent is removed here); returns what was done.
///
/// Only members that failed in this round or had failed before are looked up in the hive, so a
/// round where nobody fails costs a pass over its members and nothing more.
pub(crate) fn supervise<S: State>(
    hive: &Hive<S>,
    policy: Supervision,
    round: u64,
    members: impl Iterator<Item = (AgentId, u32)>,
    failures: &[AgentFailure],
) -> Vec<Supervised> {
    // Each agent's last counted failure of the round.
    let mut failed: FxHashMap<AgentId, &FailureKind> = FxHashMap::default();
    for failure in failures.iter().filter(|failure| counts(&failure.kind)) {
        failed.insert(failure.agent, &failure.kind);
    }
    let limit = policy.max_failures.max(1);
    let agents = &hive.inner.agents;
    let mut done = Vec::new();
    for (agent, strikes) in members {
        let last = failed.get(&agent).copied();
        if last.is_none() && strikes == 0 {
            continue;
        }
        // A member removed while the round ran has no record left to keep.
        let Some(member) = agents.get(&agent) else {
            continue;
        };
        let health = &member.health;
        let Some(last) = last else {
            health.failures.store(0, Ordering::Relaxed);
            continue;
        };
        // One atomic step counts the failure and, at the limit, clears the record: of concurrent
        // rounds that fail the same agent, exactly one sees the count reach the limit and acts (an
        // increment followed by a separate reset let two rounds both act on one crossing).
        let Some(failures) = strike(&health.failures, limit) else {
            continue;
        };
        let until_round = match policy.action {
            SupervisionAction::Quarantine { rounds } => {
                let until = round.saturating_add(u64::from(rounds));
                // A concurrent round with a later end must not be shortened by this one.
                health.quarantined_until.fetch_max(until, Ordering::Relaxed);
                Some(until)
            }
            SupervisionAction::Remove => None,
        };
        done.push(Supervised {
            agent,
            failures,
            action: policy.action,
            until_round,
            last: last.clone(),
        });
    }
    // A member removed by a concurrent round in between is not reported twice.
    done.retain(|record| {
        record.action != SupervisionAction::Remove || hive.inner.remove_member(record.agent)
    });
    done
}

/// Counts one failed round on `failures`; at `limit` clears it in the same atomic step and returns
/// the count that reached the limit, else `None`.
fn strike(failures: &AtomicU32, limit: u32) -> Option<u32> {
    let mut reached = None;
    let _ = failures.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
        let count = count.saturating_add(1);
        if count >= limit {
            reached = Some(count);
            Some(0)
        } else {
            reached = None;
            Some(count)
        }
    });
    reached
}

/// Calls the restart hook, catching a panic in it.
pub(crate) fn call_hook<S: State>(hook: &RestartHook<S>, hive: &Hive<S>, record: &Supervised) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(hive, record))) {
        // Taken before logging: tracing does not evaluate fields nobody records.
        let message = take_panic_message(panic);
        tracing::warn!(
            agent = record.agent.0,
            panic = %message,
            "the restart hook panicked"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strike_clears_the_record_when_it_reaches_the_limit() {
        let failures = AtomicU32::new(0);
        assert_eq!(strike(&failures, 3), None);
        assert_eq!(strike(&failures, 3), None);
        assert_eq!(strike(&failures, 3), Some(3));
        assert_eq!(failures.load(Ordering::Relaxed), 0);
        assert_eq!(strike(&failures, 1), Some(1));
    }

    /// Regression: a failure was double-counted when rounds ran concurrently (an increment, then a
    /// separate reset, let two rounds act on one crossing of the limit).
    #[test]
    fn concurrent_strikes_act_once_per_crossing_of_the_limit() {
        const THREADS: u32 = 4;
        const STRIKES: u32 = 20_000;
        const LIMIT: u32 = 3;
        let failures = AtomicU32::new(0);
        let actions: u32 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        (0..STRIKES)
                            .filter(|_| strike(&failures, LIMIT).is_some())
                            .count() as u32
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        let total = THREADS * STRIKES;
        assert_eq!(actions, total / LIMIT);
        assert_eq!(failures.load(Ordering::Relaxed), total % LIMIT);
    }
}
