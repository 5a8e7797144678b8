//! `Hive::decide` futures on etcd dropped at every point of their round, commit included (a caller's
//! own timeout): each dropped round committed its whole decision or none of it, versions stay
//! gapless, the hive follows what landed, and the next round decides on top of it.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::{Agent, AgentContext, AgentError, Hive, ProposalOf, Snapshot, State};
use support::{add, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// Adds one to its key every round, under a proposal id never used before.
struct Incrementer {
    key: u64,
    ids: &'static AtomicU64,
}

impl Agent<Ledger> for Incrementer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        Ok(Some(add(id, self.key, 1)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_futures_dropped_mid_commit_leave_whole_decisions_and_a_hive_that_goes_on() {
    static IDS: AtomicU64 = AtomicU64::new(1);
    let server = etcd();
    let config = config(vec![server.endpoint()], "cancelled-decide");
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let observer = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    let hive = Hive::builder_with_memory(memory).build().unwrap();
    for key in 0..3 {
        hive.spawn(Incrementer { key, ids: &IDS });
    }
    let mut completed = Vec::new();
    let mut dropped = 0;
    for attempt in 0..60_u64 {
        // From "before anything ran" to "well after the commit was sent".
        let limit = Duration::from_micros(attempt * 40);
        match tokio::time::timeout(limit, hive.decide()).await {
            Ok(decision) => completed.push(decision.unwrap()),
            Err(_) => dropped += 1,
        }
    }
    let last = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("a round after the dropped ones decides")
        .unwrap();
    completed.push(last);
    eprintln!("{} completed, {dropped} dropped", completed.len());
    assert!(
        dropped > 0 && completed.len() > 1,
        "both kinds of round ran"
    );

    let history = observer.history(1, u64::MAX - 1).await.unwrap();
    let top = history.len() as u64;
    assert_eq!(
        history
            .iter()
            .map(|entry| entry.version)
            .collect::<Vec<_>>(),
        (1..=top).collect::<Vec<_>>(),
        "gapless"
    );
    let mut replayed = Ledger::default();
    let mut proposals = BTreeSet::new();
    for entry in &history {
        assert_eq!(entry.changes.len(), 3, "version {} is whole", entry.version);
        for change in &entry.changes {
            assert!(
                proposals.insert(change.proposal),
                "{} twice",
                change.proposal
            );
            replayed.apply(&change.change);
        }
    }
    for decision in &completed {
        let entry = &history[decision.version as usize - 1];
        assert_eq!(entry.decision_id, format!("{:032x}", decision.id));
    }
    assert_eq!(
        completed.last().unwrap().version,
        top,
        "the last round is the newest"
    );
    for handle in [
        hive.memory().downcast_ref::<LedgerMemory>().unwrap(),
        &observer,
    ] {
        let snapshot = support::caught_up(handle, top, Duration::from_secs(5)).await;
        assert_eq!(*snapshot, replayed);
    }
}
