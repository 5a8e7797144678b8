//! `new_decision_id`: "unique within this process" (src/memory.rs), also when many threads take
//! ids at once; and `HiveEventSink::sender`: "events sent after the receiver is dropped are
//! discarded" (src/events.rs), never the round's failure, whichever thread sends them.

use std::collections::HashSet;
use std::time::Duration;

use hivekit_hive::{
    new_decision_id, Agent, AgentContext, AgentError, Hive, HiveEventSink, ProposalOf,
    ResourceCost, Snapshot, State,
};

#[test]
fn decision_ids_taken_by_many_threads_at_once_are_all_distinct() {
    const THREADS: usize = 8;
    const EACH: usize = 20_000;
    let barrier = std::sync::Barrier::new(THREADS);
    let ids: Vec<Vec<u128>> = std::thread::scope(|scope| {
        let takers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    (0..EACH).map(|_| new_decision_id()).collect::<Vec<_>>()
                })
            })
            .collect();
        takers
            .into_iter()
            .map(|taker| taker.join().expect("no panic"))
            .collect()
    });
    let process = ids[0][0] >> 64;
    let mut seen = HashSet::with_capacity(THREADS * EACH);
    for id in ids.iter().flatten() {
        assert_eq!(id >> 64, process, "one process half: {id:032x}");
        assert!(seen.insert(*id), "{id:032x} handed out twice");
    }
    assert_eq!(seen.len(), THREADS * EACH);
}

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Adds 1 on its own key; heavy agents run as tasks of their own (their events' threads differ).
struct Adder {
    key: u64,
    heavy: bool,
}

impl Agent<Sum> for Adder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        tokio::task::yield_now().await;
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rounds_whose_event_receiver_was_dropped_still_commit() {
    let (sink, events) = HiveEventSink::channel();
    let hive = Hive::builder(Sum::default())
        .events(sink)
        .build()
        .expect("valid");
    hive.spawn_many(16, |index| Adder {
        key: index as u64,
        heavy: index % 2 == 0,
    });
    drop(events);
    let rounds: Vec<_> = (0..8)
        .map(|_| {
            let hive = hive.clone();
            tokio::spawn(async move { hive.decide().await })
        })
        .collect();
    let mut ids = HashSet::new();
    for round in rounds {
        let decision = tokio::time::timeout(Duration::from_secs(10), round)
            .await
            .expect("the round ends")
            .expect("the round does not panic")
            .expect("a closed event channel is not the round's failure");
        assert_eq!(decision.accepted.len(), 16);
        assert!(ids.insert(decision.id), "two decisions share an id");
    }
    assert_eq!(hive.memory().load().0, 8 * 16);
    assert_eq!(hive.memory().version(), 8);
    assert_eq!(hive.stats().commits, 8);
}
