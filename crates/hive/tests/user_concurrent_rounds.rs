//! Many `decide` calls on one hive at once, as a server handling requests would make them: one
//! version per round, no lost change, and an event stream (a dashboard's view) that agrees with
//! the decisions exactly.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, HiveEvent, HiveEventSink, ProposalOf, Snapshot,
};
use support::{Add, Ledger};

/// Adds one to key 1 every round, under the proposal id the hive assigns.
struct Counter;

impl Agent<Ledger> for Counter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        tokio::task::yield_now().await;
        Ok(Some(
            ctx.proposal(Add {
                id: ctx.proposal_id(),
                key: 1,
                delta: 1,
            })
            .writes([1]),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rounds_commit_one_version_each_and_the_events_agree_with_the_decisions() {
    let (sink, mut events) = HiveEventSink::channel();
    let hive = Arc::new(
        Hive::builder(Ledger::default())
            .history(64)
            .events(sink)
            .build()
            .unwrap(),
    );
    hive.spawn(Counter);
    let rounds = 16_u64;
    let decisions = tokio::time::timeout(
        Duration::from_secs(10),
        futures::future::join_all((0..rounds).map(|_| {
            let hive = Arc::clone(&hive);
            tokio::spawn(async move { hive.decide().await.unwrap() })
        })),
    )
    .await
    .expect("every round ended");
    let decisions: Vec<_> = decisions.into_iter().map(Result::unwrap).collect();

    let versions: BTreeSet<u64> = decisions.iter().map(|decision| decision.version).collect();
    assert_eq!(versions, (1..=rounds).collect());
    let numbers: BTreeSet<u64> = decisions.iter().map(|decision| decision.round).collect();
    assert_eq!(numbers, (1..=rounds).collect());
    let state = hive.memory().load();
    assert_eq!(state.version(), rounds);
    assert_eq!(state.counters.get(&1), Some(&(rounds as i64)));
    let logged: BTreeSet<_> = state.log.iter().copied().collect();
    assert_eq!(logged.len(), rounds as usize, "every change applied once");

    // The hive's own history holds each version with the decision that made it.
    for decision in &decisions {
        if let Some(entry) = hive.memory().at(decision.version) {
            assert_eq!(entry.decision.id, decision.id);
            assert_eq!(
                entry.snapshot.counters.get(&1),
                Some(&(decision.version as i64))
            );
        }
    }

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let mut started = BTreeSet::new();
    let mut committed: BTreeMap<u64, (u64, bool)> = BTreeMap::new();
    for event in &seen {
        match event {
            HiveEvent::RoundStarted { round, .. } => assert!(started.insert(*round)),
            HiveEvent::Committed {
                round,
                version,
                rebased,
                accepted,
            } => {
                assert!(
                    started.contains(round),
                    "round {round} committed before it started"
                );
                assert_eq!(*accepted, 1);
                assert!(committed.insert(*round, (*version, *rebased)).is_none());
            }
            HiveEvent::NothingToCommit { round } => panic!("round {round} committed nothing"),
            _ => {}
        }
    }
    assert_eq!(started.len(), rounds as usize);
    for decision in &decisions {
        assert_eq!(
            committed.get(&decision.round),
            Some(&(decision.version, decision.rebased)),
            "round {}",
            decision.round
        );
    }
}
