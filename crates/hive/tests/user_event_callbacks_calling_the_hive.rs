//! An event callback is the user's code, and a dashboard's callback reaches back into the hive: it
//! reads the memory, the history and the stats when a round commits, removes an agent the moment
//! it fails, and spawns one when a round starts. None of that may deadlock, and what it reads must
//! agree with the event (the committed version is there to be read). Every wait is bounded.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, HiveEvent, HiveEventSink, ProposalOf, Snapshot,
};
use parking_lot::Mutex;
use support::Count;

const BOUND: Duration = Duration::from_secs(10);

/// Adds 1 on key `key`.
struct Bump {
    key: u64,
}

impl Agent<Count> for Bump {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }
}

/// Always fails.
struct Broken;

impl Agent<Count> for Broken {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Err(AgentError::msg("broken"))
    }
}

/// What the callback saw: per commit `(event version, version loaded, value loaded)`.
#[derive(Debug, Default)]
struct Seen {
    committed: Vec<(u64, u64, u64)>,
    removed: Vec<bool>,
    spawned: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_that_reads_removes_and_spawns_during_its_events_does_not_deadlock() {
    let slot: Arc<Mutex<Option<Hive<Count>>>> = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = HiveEventSink::callback({
        let (slot, seen) = (Arc::clone(&slot), Arc::clone(&seen));
        move |event: HiveEvent<u64>| {
            let Some(hive) = slot.lock().clone() else {
                return;
            };
            match event {
                HiveEvent::RoundStarted { round: 1, .. } => {
                    hive.spawn(Bump { key: 50 });
                    seen.lock().spawned += 1;
                }
                HiveEvent::AgentFailed { failure, .. } => {
                    let removed = hive.remove(failure.agent);
                    seen.lock().removed.push(removed);
                }
                HiveEvent::Committed { version, .. } => {
                    let loaded = hive.memory().load();
                    let _ = (hive.memory().history(), hive.stats(), hive.agents());
                    seen.lock()
                        .committed
                        .push((version, loaded.version(), loaded.0));
                }
                _ => {}
            }
        }
    });
    let hive = Hive::builder(Count::default())
        .events(sink)
        .history(4)
        .build()
        .unwrap();
    *slot.lock() = Some(hive.clone());
    hive.spawn(Bump { key: 1 });
    let broken = hive.spawn(Broken);

    for round in 1..=2_u64 {
        let decision = tokio::time::timeout(BOUND, hive.decide())
            .await
            .expect("a callback calling its hive must not deadlock the round")
            .unwrap();
        assert_eq!(decision.round, round);
    }
    assert!(!hive.contains(broken));
    let seen = std::mem::take(&mut *seen.lock());
    assert_eq!(seen.spawned, 1);
    assert_eq!(
        seen.removed,
        [true],
        "the broken agent fails once, then is gone"
    );
    // Round 1: key 1 only (the agent spawned at its start joins from round 2); round 2: keys 1
    // and 50. The callback reads the version it is told about.
    assert_eq!(seen.committed.len(), 2, "{:?}", seen.committed);
    assert_eq!(seen.committed, [(1, 1, 1), (2, 2, 3)]);
    assert_eq!(hive.memory().load().0, 3);
    // Break the cycle hive -> sink -> hive.
    slot.lock().take();
}
