//! Ractor's `concurrent_shutdown_transitions_elect_cleanup_once`, ported: an agent that keeps
//! failing is stopped by whoever gets there first, the user's threads (`Hive::remove`) or
//! supervision in one of several concurrent rounds (`Supervision::remove`), and its cleanup
//! happens once: exactly one removal succeeds in all, supervision reports only its own removals
//! (in the decisions, the stats, the events and the hook alike), and the agent is dropped exactly
//! once, before the hive is. Run many times, so the interleavings vary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, HiveEvent, HiveEventSink, ProposalOf, Snapshot, State,
    Supervision, SupervisionAction,
};

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Fails every call after yielding once (so rounds interleave with the removers), or adds 1.
struct Worker {
    failing: bool,
    dropped: Arc<AtomicUsize>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Agent<Sum> for Worker {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        tokio::task::yield_now().await;
        if self.failing {
            return Err(AgentError::msg("keeps failing"));
        }
        Ok(Some(ctx.proposal(1).writes([ctx.agent().0])))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_agent_removed_by_racing_threads_and_rounds_is_removed_and_dropped_once() {
    const RUNS: usize = 40;
    const ROUNDS: usize = 4;
    const REMOVERS: usize = 3;
    let mut by_user = 0;
    let mut by_supervision = 0;
    for run in 0..RUNS {
        let hooks = Arc::new(AtomicUsize::new(0));
        let supervised_events = Arc::new(AtomicUsize::new(0));
        let hive = Hive::builder(Sum::default())
            .supervision(Supervision::remove(1))
            .events(HiveEventSink::callback({
                let supervised_events = Arc::clone(&supervised_events);
                move |event| {
                    if matches!(event, HiveEvent::AgentSupervised { .. }) {
                        supervised_events.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }))
            .on_restart({
                let hooks = Arc::clone(&hooks);
                move |_, _| {
                    hooks.fetch_add(1, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let failing = hive.spawn(Worker {
            failing: true,
            dropped: Arc::clone(&dropped),
        });
        let steady_dropped = Arc::new(AtomicUsize::new(0));
        hive.spawn_many(2, |_| Worker {
            failing: false,
            dropped: Arc::clone(&steady_dropped),
        });

        let barrier = Arc::new(Barrier::new(REMOVERS));
        let removers: Vec<_> = (0..REMOVERS)
            .map(|_| {
                let hive = hive.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    hive.remove(failing)
                })
            })
            .collect();
        let rounds: Vec<_> = (0..ROUNDS)
            .map(|_| {
                let hive = hive.clone();
                tokio::spawn(async move { hive.decide().await })
            })
            .collect();
        let mut removed_by_user = 0;
        for remover in removers {
            removed_by_user += usize::from(remover.join().expect("a remover panicked"));
        }
        let mut records = 0;
        for round in rounds {
            let decision = tokio::time::timeout(Duration::from_secs(10), round)
                .await
                .expect("the round ends")
                .expect("the round does not panic")
                .expect("the round decides");
            for record in &decision.supervised {
                assert_eq!(record.agent, failing, "run {run}");
                assert_eq!(record.action, SupervisionAction::Remove, "run {run}");
                records += 1;
            }
        }
        assert_eq!(
            removed_by_user + records,
            1,
            "run {run}: exactly one removal succeeds ({removed_by_user} by threads, {records} by supervision)"
        );
        assert!(!hive.contains(failing), "run {run}");
        assert_eq!(hive.stats().removals as usize, records, "run {run}");
        assert_eq!(hooks.load(Ordering::SeqCst), records, "run {run}");
        assert_eq!(
            supervised_events.load(Ordering::SeqCst),
            records,
            "run {run}"
        );
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "run {run}: the removed agent is dropped once, while the hive lives"
        );
        assert_eq!(hive.len(), 2, "run {run}");
        by_user += removed_by_user;
        by_supervision += records;
        drop(hive);
        assert_eq!(dropped.load(Ordering::SeqCst), 1, "run {run}");
        assert_eq!(steady_dropped.load(Ordering::SeqCst), 2, "run {run}");
    }
    assert_eq!(by_user + by_supervision, RUNS);
}
