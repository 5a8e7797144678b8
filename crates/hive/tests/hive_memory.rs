//! The memory seam: a hive commits its decisions through its `Memory`, in-process or not.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hivekit_hive::{
    AgentId, CommitRequest, Committed, Hive, HiveError, LocalMemory, Memory, MemoryError,
    ProposalId, Snapshot,
};
use std::sync::Mutex;
use support::{Ledger, Writer};

/// What a [`Recording`] memory saw of one commit.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    decision_id: u128,
    round: u64,
    base: u64,
    accepted: Vec<(ProposalId, Option<AgentId>)>,
}

/// A memory that is not a `LocalMemory` (so the hive reaches it through the object-safe path): it
/// records every commit, and fails commits while `failing` is set.
struct Recording {
    inner: LocalMemory<Ledger>,
    seen: Mutex<Vec<Seen>>,
    failing: AtomicBool,
}

impl Recording {
    fn new() -> Self {
        Recording {
            inner: LocalMemory::new(Ledger::default()),
            seen: Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
        }
    }
}

impl Memory<Ledger> for Recording {
    fn snapshot(&self) -> Snapshot<Ledger> {
        self.inner.snapshot()
    }

    async fn commit<'a>(
        &'a self,
        request: CommitRequest<'a, Ledger>,
    ) -> Result<Committed, MemoryError> {
        // A remote backend waits for its answer: so does this one.
        tokio::task::yield_now().await;
        if self.failing.load(Ordering::Relaxed) {
            return Err(MemoryError::unavailable(std::io::Error::other(
                "connection refused",
            )));
        }
        self.seen.lock().unwrap().push(Seen {
            decision_id: request.decision_id,
            round: request.round,
            base: request.base,
            accepted: request
                .accepted
                .iter()
                .map(|change| (change.proposal.id, change.proposer))
                .collect(),
        });
        self.inner.commit(request).await
    }

    async fn changed(&self, after: u64) -> Result<Snapshot<Ledger>, MemoryError> {
        self.inner.changed(after).await
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_hive_on_another_memory_commits_each_decision_through_it_with_its_proposers() {
    let hive = Hive::builder_with_memory(Recording::new())
        .agent_timeout(TIMEOUT)
        .build()
        .unwrap();
    let first = hive.spawn(Writer::new(1, 7));
    let second = hive.spawn(Writer::new(2, 8));
    assert!(hive.memory().local().is_none());

    let decision = hive.decide().await.unwrap();
    assert_eq!((decision.base_version, decision.version), (0, 1));
    let memory = hive.memory().downcast_ref::<Recording>().unwrap();
    let seen = memory.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [Seen {
            decision_id: decision.id,
            round: 1,
            base: 0,
            accepted: vec![(ProposalId(1), Some(first)), (ProposalId(2), Some(second))],
        }]
    );
    assert_eq!(hive.memory().version(), 1);
    assert_eq!(hive.memory().load().counters.len(), 2);

    // Every decision carries a fresh id.
    let next = hive.decide().await.unwrap();
    assert_ne!(next.id, decision.id);
    assert_eq!(memory.seen.lock().unwrap()[1].decision_id, next.id);
}

#[tokio::test]
async fn a_commit_that_fails_is_an_error_of_decide_and_applies_nothing() {
    let hive = Hive::builder_with_memory(Recording::new())
        .agent_timeout(TIMEOUT)
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7));
    let memory = hive.memory().downcast_ref::<Recording>().unwrap();
    memory.failing.store(true, Ordering::Relaxed);

    let error = hive.decide().await.unwrap_err();
    assert!(matches!(
        error,
        HiveError::Memory(MemoryError::Unavailable { .. })
    ));
    assert_eq!(
        error.to_string(),
        "cannot commit the decision: memory backend unavailable: connection refused"
    );
    assert_eq!(hive.memory().version(), 0);
    assert!(hive.memory().load().counters.is_empty());
    let stats = hive.stats();
    assert_eq!((stats.commits, stats.accepted), (0, 0));

    memory.failing.store(false, Ordering::Relaxed);
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.version, 1);
    assert_eq!(hive.stats().commits, 1);
}

#[tokio::test]
async fn a_local_memory_given_to_the_builder_takes_the_direct_path() {
    let hive = Hive::builder_with_memory(LocalMemory::new(Ledger::default()))
        .build()
        .unwrap();
    assert!(hive.memory().local().is_some());
    hive.spawn(Writer::new(1, 7));
    hive.decide().await.unwrap();
    let local = hive.memory().local().unwrap();
    assert_eq!(local.cell().version(), 1);
}

#[tokio::test]
async fn the_memory_wakes_a_follower_when_a_round_commits() {
    let hive = Hive::builder(Ledger::default()).build().unwrap();
    hive.spawn(Writer::new(1, 7));
    let follower = tokio::spawn({
        let hive = hive.clone();
        async move { hive.memory().changed(0).await.map(|s| s.version()) }
    });
    tokio::task::yield_now().await;
    hive.decide().await.unwrap();
    assert_eq!(follower.await.unwrap(), Ok(1));
}
