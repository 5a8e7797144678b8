//! Concurrent rounds over custom `Memory` backends that are slow, refuse or fail commits: typed errors, no lost or doubled change.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, CommitRequest, Committed, Decision, FailureKind, Hive,
    HiveError, HiveEvent, HiveEventSink, LocalMemory, Memory, MemoryError, ProposalOf, Snapshot,
    State, Supervision,
};

/// Every applied change (a proposal id), in order.
#[derive(Clone, Debug, Default, PartialEq)]
struct Log(Vec<u64>);

impl State for Log {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0.push(*change);
    }
}

/// Proposes its hive-assigned id as the change, on its own key (never conflicts).
struct Appender;

impl Agent<Log> for Appender {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Log>,
    ) -> Result<Option<ProposalOf<Log>>, AgentError> {
        tokio::task::yield_now().await;
        let id = ctx.proposal_id();
        Ok(Some(ctx.proposal(id.0).writes([id.0])))
    }
}

/// Always errs when asked to propose.
struct Failing;

impl Agent<Log> for Failing {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Log>,
    ) -> Result<Option<ProposalOf<Log>>, AgentError> {
        Err(AgentError::msg("always fails"))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Commits after some yields, rebasing like `LocalMemory`.
    Slow,
    /// Refuses every other commit, as a backend that lost a compare-and-swap would.
    RefuseEveryOther,
    /// Refuses every commit.
    RefuseAll,
}

/// A memory that is not a `LocalMemory` (the hive reaches it through the trait).
struct Backend {
    inner: LocalMemory<Log>,
    mode: Mode,
    calls: AtomicU64,
    commits: AtomicU64,
}

impl Backend {
    fn new(mode: Mode) -> Self {
        Backend {
            inner: LocalMemory::new(Log::default()),
            mode,
            calls: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        }
    }
}

impl Memory<Log> for Backend {
    fn snapshot(&self) -> Snapshot<Log> {
        self.inner.snapshot()
    }

    async fn commit<'a>(
        &'a self,
        request: CommitRequest<'a, Log>,
    ) -> Result<Committed, MemoryError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        for _ in 0..(call % 5) {
            tokio::task::yield_now().await;
        }
        let refuse = match self.mode {
            Mode::Slow => false,
            Mode::RefuseEveryOther => call % 2 == 1,
            Mode::RefuseAll => true,
        };
        if refuse {
            return Err(MemoryError::backend(std::io::Error::other(
                "compare-and-swap lost",
            )));
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(request).await
    }

    async fn changed(&self, after: u64) -> Result<Snapshot<Log>, MemoryError> {
        self.inner.changed(after).await
    }
}

const ROUNDS: usize = 24;

async fn concurrent_rounds(hive: &Hive<Log>) -> Vec<Result<Decision<Log>, HiveError>> {
    let tasks: Vec<_> = (0..ROUNDS)
        .map(|_| {
            let hive = hive.clone();
            tokio::spawn(async move { hive.decide().await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("a round hung")
                .expect("a round panicked"),
        );
    }
    results
}

/// The committed decisions, checked against the final log: versions 1..=n each once, the log
/// the accepted lists concatenated in version order, each decision based on an older version.
fn check_history(decisions: &[&Decision<Log>], log: &Log, version: u64) {
    let mut by_version: Vec<&Decision<Log>> = decisions
        .iter()
        .copied()
        .filter(|d| !d.accepted.is_empty())
        .collect();
    by_version.sort_by_key(|d| d.version);
    let versions: Vec<u64> = by_version.iter().map(|d| d.version).collect();
    assert_eq!(
        versions,
        (1..=by_version.len() as u64).collect::<Vec<_>>(),
        "versions consecutive and unique"
    );
    assert_eq!(version, by_version.len() as u64, "memory version");
    let replay: Vec<u64> = by_version
        .iter()
        .flat_map(|d| d.accepted.iter().map(|id| id.0))
        .collect();
    assert_eq!(
        log.0, replay,
        "the log is the accepted changes in version order"
    );
    for d in &by_version {
        assert!(d.base_version < d.version, "{d:?}");
        assert_eq!(
            d.rebased,
            d.version != d.base_version + 1,
            "rebased exactly when another commit landed after its base: {d}"
        );
    }
    let ids: BTreeSet<u64> = log.0.iter().copied().collect();
    assert_eq!(ids.len(), log.0.len(), "no change applied twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rounds_on_a_slow_backend_commit_each_change_once_in_consecutive_versions() {
    let events: Arc<Mutex<Vec<HiveEvent<u64>>>> = Arc::default();
    let sink = {
        let events = Arc::clone(&events);
        HiveEventSink::callback(move |event| events.lock().unwrap().push(event))
    };
    let hive = Hive::builder_with_memory(Backend::new(Mode::Slow))
        .events(sink)
        .build()
        .unwrap();
    hive.spawn_many(3, |_| Appender);
    let results = concurrent_rounds(&hive).await;
    let decisions: Vec<&Decision<Log>> = results
        .iter()
        .map(|r| r.as_ref().expect("a slow backend still commits"))
        .collect();
    let now = hive.memory().load();
    check_history(&decisions, &now, now.version());
    let rounds: BTreeSet<u64> = decisions.iter().map(|d| d.round).collect();
    assert_eq!(rounds, (1..=ROUNDS as u64).collect());

    let stats = hive.stats();
    assert_eq!(stats.rounds, ROUNDS as u64);
    assert_eq!(stats.commits, ROUNDS as u64);
    assert_eq!(
        stats.rebases,
        decisions.iter().filter(|d| d.rebased).count() as u64
    );
    assert_eq!(stats.accepted, 3 * ROUNDS as u64);
    let committed: BTreeSet<(u64, u64)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            HiveEvent::Committed { round, version, .. } => Some((*round, *version)),
            _ => None,
        })
        .collect();
    let from_decisions: BTreeSet<(u64, u64)> =
        decisions.iter().map(|d| (d.round, d.version)).collect();
    assert_eq!(committed, from_decisions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commits_are_typed_errors_and_apply_nothing_while_the_others_stay_consecutive() {
    let hive = Hive::builder_with_memory(Backend::new(Mode::RefuseEveryOther))
        .build()
        .unwrap();
    hive.spawn_many(2, |_| Appender);
    let results = concurrent_rounds(&hive).await;
    let mut decisions = Vec::new();
    let mut refused = 0;
    for result in &results {
        match result {
            Ok(decision) => decisions.push(decision),
            Err(HiveError::Memory(MemoryError::Backend { source })) => {
                assert!(source.to_string().contains("compare-and-swap lost"));
                refused += 1;
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(refused, ROUNDS / 2, "every other commit is refused");
    let now = hive.memory().load();
    check_history(&decisions, &now, now.version());
    let backend = hive.memory().downcast_ref::<Backend>().unwrap();
    assert_eq!(
        backend.commits.load(Ordering::SeqCst),
        decisions.len() as u64
    );
    let stats = hive.stats();
    assert_eq!(stats.rounds, ROUNDS as u64);
    assert_eq!(stats.commits, decisions.len() as u64);
    assert_eq!(
        stats.accepted,
        now.0.len() as u64,
        "only applied changes count as accepted"
    );
}

/// A round whose commit the memory refuses still asked its agents: an agent call that returned an
/// error did so (`HiveStats::errors`: "Agent calls that returned an error"), and the round sent
/// `AgentFailed` for it.
#[tokio::test]
async fn agent_errors_of_a_round_whose_commit_was_refused_are_counted_like_the_events_say() {
    let events: Arc<Mutex<Vec<HiveEvent<u64>>>> = Arc::default();
    let sink = {
        let events = Arc::clone(&events);
        HiveEventSink::callback(move |event| events.lock().unwrap().push(event))
    };
    let hive = Hive::builder_with_memory(Backend::new(Mode::RefuseAll))
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Appender);
    let failing = hive.spawn(Failing);
    for _ in 0..2 {
        let outcome = tokio::time::timeout(Duration::from_secs(5), hive.decide())
            .await
            .expect("round hung");
        assert!(matches!(outcome, Err(HiveError::Memory(_))), "{outcome:?}");
    }
    let failed_events = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(e, HiveEvent::AgentFailed { failure, .. }
                if failure.agent == failing && matches!(failure.kind, FailureKind::Errored { .. }))
        })
        .count();
    assert_eq!(failed_events, 2, "each round reported the failure");
    let stats = hive.stats();
    assert_eq!(
        stats.errors, 2,
        "AgentFailed events were sent for two erring calls, HiveStats::errors counts {}: {stats:?}",
        stats.errors
    );
}

/// `Supervision`: "A round counts as a failure of an agent when any of its calls in that round
/// timed out, panicked or returned an error" -- whether or not the memory then took the commit.
#[tokio::test]
async fn supervision_counts_failures_in_rounds_whose_commit_was_refused() {
    let hive = Hive::builder_with_memory(Backend::new(Mode::RefuseAll))
        .supervision(Supervision::remove(2))
        .build()
        .unwrap();
    hive.spawn(Appender);
    let failing = hive.spawn(Failing);
    for _ in 0..2 {
        let outcome = tokio::time::timeout(Duration::from_secs(5), hive.decide())
            .await
            .expect("round hung");
        assert!(matches!(outcome, Err(HiveError::Memory(_))), "{outcome:?}");
    }
    assert!(
        !hive.contains(failing),
        "the agent erred in 2 rounds in a row under Supervision::remove(2) and is still a member"
    );
}
