//! Steering rounds with `decide_with`'s cancel token: when it fires, what the round returns, commits, counts and reports.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, CancellationToken, CommitRequest, Committed, DecideOptions,
    FailureKind, Hive, HiveError, HiveEvent, HiveEventSink, LocalMemory, Memory, MemoryError,
    ResolutionStrategy, Snapshot, Supervision,
};
use parking_lot::Mutex;
use support::{Behaviour, Ledger, LedgerProposal, Writer};
use tokio::sync::Notify;

const BOUND: Duration = Duration::from_secs(10);

/// Every event a hive sent, in order.
type Recorded = Arc<Mutex<Vec<HiveEvent<u64>>>>;

fn recorder() -> (HiveEventSink<u64>, Recorded) {
    let events: Recorded = Arc::default();
    let sink = {
        let events = Arc::clone(&events);
        HiveEventSink::callback(move |event| events.lock().push(event))
    };
    (sink, events)
}

fn terminal(event: &HiveEvent<u64>) -> bool {
    matches!(
        event,
        HiveEvent::Committed { .. }
            | HiveEvent::NothingToCommit { .. }
            | HiveEvent::RoundFailed { .. }
    )
}

/// A user watching events stops the round as soon as a conflict shows up (the round settles it
/// by priority, so nothing after that needs to wait). `decide_with`: "`HiveError::Cancelled` when
/// the token is cancelled before the round commits (then nothing is committed".
#[tokio::test]
async fn a_token_cancelled_by_an_event_callback_before_the_commit_cancels_the_round() {
    let cancel = CancellationToken::new();
    let sink = {
        let cancel = cancel.clone();
        HiveEventSink::callback(move |event: HiveEvent<u64>| {
            if matches!(event, HiveEvent::ConflictFound { .. }) {
                cancel.cancel();
            }
        })
    };
    let hive = Hive::builder(Ledger::default())
        .resolution(ResolutionStrategy::HighestPriority)
        .events(sink)
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7));
    hive.spawn(Writer::new(2, 7));
    let outcome = tokio::time::timeout(
        BOUND,
        hive.decide_with(DecideOptions::default().with_cancel(cancel.clone())),
    )
    .await
    .expect("round hung");
    assert!(cancel.is_cancelled());
    assert_eq!(
        outcome.as_ref().err(),
        Some(&HiveError::Cancelled { round: 1 }),
        "the token was cancelled (at ConflictFound) before the commit, yet the round returned {:?} \
         and the memory is at version {}",
        outcome.as_ref().map(|d| d.version),
        hive.memory().version()
    );
    assert_eq!(hive.memory().version(), 0, "a cancelled round committed");
}

/// An agent that cancels the round's token (its caller's) while proposing, then answers at once.
struct Canceller {
    token: CancellationToken,
}

impl Agent<Ledger> for Canceller {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.token.cancel();
        Ok(Some(support::add(5, 5, 1)))
    }
}

#[tokio::test]
async fn a_token_cancelled_during_the_propose_phase_cancels_the_round() {
    let cancel = CancellationToken::new();
    let hive = Hive::builder(Ledger::default()).build().unwrap();
    hive.spawn(Canceller {
        token: cancel.clone(),
    });
    let outcome = tokio::time::timeout(
        BOUND,
        hive.decide_with(DecideOptions::default().with_cancel(cancel.clone())),
    )
    .await
    .expect("round hung");
    assert_eq!(
        outcome.as_ref().err(),
        Some(&HiveError::Cancelled { round: 1 }),
        "the token was cancelled during the propose phase; the round returned {:?}",
        outcome.as_ref().map(|d| d.version),
    );
    assert_eq!(hive.memory().version(), 0, "a cancelled round committed");
    assert!(hive.memory().load().counters.is_empty());
}

/// Builds a hive where agent `failing` errs while proposing, and two others contend for key 1
/// and hang while voting: the round waits in the vote phase until it is cancelled.
fn hive_stuck_in_voting(
    sink: HiveEventSink<u64>,
    supervision: Option<Supervision>,
) -> (Hive<Ledger>, hivekit_hive::AgentId) {
    let mut builder = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(3600))
        .events(sink);
    if let Some(policy) = supervision {
        builder = builder.supervision(policy);
    }
    let hive = builder.build().unwrap();
    hive.spawn(Writer::new(1, 1).voting(Behaviour::Never));
    hive.spawn(Writer::new(2, 1).voting(Behaviour::Never));
    let failing = hive.spawn(Writer::new(3, 3).proposing(Behaviour::Fail));
    (hive, failing)
}

/// Runs one round of `hive` and cancels it once its conflict was found (the vote phase).
async fn cancel_in_voting(
    hive: &Hive<Ledger>,
    events: &Arc<Mutex<Vec<HiveEvent<u64>>>>,
    number: u64,
) {
    let cancel = CancellationToken::new();
    let round = hive.decide_with(DecideOptions::default().with_cancel(cancel.clone()));
    let canceller = async {
        // Wait (bounded by the outer timeout) until the round reported its conflict.
        loop {
            let found = events
                .lock()
                .iter()
                .any(|e| matches!(e, HiveEvent::ConflictFound { round, .. } if *round == number));
            if found {
                break;
            }
            tokio::task::yield_now().await;
        }
        cancel.cancel();
    };
    let (outcome, ()) = tokio::time::timeout(BOUND, async { tokio::join!(round, canceller) })
        .await
        .expect("the cancelled round hung");
    assert_eq!(
        outcome.as_ref().err(),
        Some(&HiveError::Cancelled { round: number }),
        "{:?}",
        outcome.as_ref().map(|d| d.version)
    );
}

/// The commit-refused path counts a round's agent failures "whatever became of its commit: their
/// events were sent"; a round cancelled in its vote phase sent `AgentFailed` for an agent that
/// erred while proposing, and `HiveStats::errors` is "Agent calls that returned an error".
#[tokio::test]
async fn failures_of_a_round_cancelled_while_voting_are_counted_like_the_events_say() {
    let (sink, events) = recorder();
    let (hive, failing) = hive_stuck_in_voting(sink, None);
    cancel_in_voting(&hive, &events, 1).await;
    let reported = events
        .lock()
        .iter()
        .filter(|e| {
            matches!(e, HiveEvent::AgentFailed { failure, .. }
                if failure.agent == failing && matches!(failure.kind, FailureKind::Errored { .. }))
        })
        .count();
    assert_eq!(reported, 1, "the round reported the propose failure");
    let stats = hive.stats();
    assert_eq!(
        stats.errors, 1,
        "an AgentFailed event was sent for an erring call, but HiveStats::errors is {}: {stats:?}",
        stats.errors
    );
    assert_eq!(hive.memory().version(), 0);
}

/// `Supervision`: "A round counts as a failure of an agent when any of its calls in that round
/// timed out, panicked or returned an error". Two rounds cancelled in their vote phase, each after
/// the agent erred: under `Supervision::remove(2)` it is removed.
#[tokio::test]
async fn supervision_counts_failures_in_rounds_cancelled_while_voting() {
    let (sink, events) = recorder();
    let (hive, failing) = hive_stuck_in_voting(sink, Some(Supervision::remove(2)));
    for number in 1..=2 {
        cancel_in_voting(&hive, &events, number).await;
    }
    let reported = events
        .lock()
        .iter()
        .filter(|e| matches!(e, HiveEvent::AgentFailed { failure, .. } if failure.agent == failing))
        .count();
    assert_eq!(reported, 2, "both rounds reported the failure");
    assert!(
        !hive.contains(failing),
        "the agent erred in 2 rounds in a row (AgentFailed sent twice) under Supervision::remove(2) \
         and is still a member"
    );
}

/// `HiveEvent`: "Something that happened in a round ... in the order it happened"; a progress
/// bar fed by the sink needs to learn that a round it saw start has ended. A cancelled round sent
/// `RoundStarted`, `ProposalsIn`, `ConflictFound` ... and then nothing.
#[tokio::test]
async fn a_round_cancelled_while_voting_ends_its_events_with_one_terminal_event() {
    let (sink, events) = recorder();
    let (hive, _failing) = hive_stuck_in_voting(sink, None);
    cancel_in_voting(&hive, &events, 1).await;
    let events = events.lock().clone();
    assert!(matches!(
        events.first(),
        Some(HiveEvent::RoundStarted { round: 1, .. })
    ));
    let terminals = events.iter().filter(|e| terminal(e)).count();
    assert_eq!(
        terminals, 1,
        "a round that started and was cancelled must end its events with exactly one terminal \
         event (Committed / NothingToCommit / RoundFailed): {events:#?}"
    );
    assert!(
        matches!(events.last(), Some(HiveEvent::RoundFailed { round: 1, error }) if error.contains("cancel")),
        "the cancelled round's last event: {:?}",
        events.last()
    );
}

/// Proposes on its own key under the hive-assigned id once released; a watcher task records the
/// round when the call's cancellation token fires.
struct Gated {
    started: Arc<AtomicUsize>,
    release: Arc<Notify>,
    cancelled: Arc<Mutex<Vec<u64>>>,
}

impl Agent<Ledger> for Gated {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let released = self.release.notified();
        let token = ctx.cancellation().clone();
        let cancelled = Arc::clone(&self.cancelled);
        let round = ctx.round();
        tokio::spawn(async move {
            token.cancelled().await;
            cancelled.lock().push(round);
        });
        self.started.fetch_add(1, Ordering::SeqCst);
        released.await;
        let id = ctx.proposal_id();
        let change = support::Add {
            id,
            key: id.0,
            delta: 1,
        };
        Ok(Some(ctx.proposal(change).writes([id.0])))
    }
}

/// Three concurrent rounds of one hive, each with its own token: cancelling one cancels only that
/// round (and only its agents' contexts); the other two commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_of_three_concurrent_rounds_leaves_the_others() {
    let started = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let cancelled_seen = Arc::new(Mutex::new(Vec::new()));
    let hive = Hive::builder(Ledger::default()).build().unwrap();
    hive.spawn(Gated {
        started: Arc::clone(&started),
        release: Arc::clone(&release),
        cancelled: Arc::clone(&cancelled_seen),
    });
    let tokens: Vec<CancellationToken> = (0..3).map(|_| CancellationToken::new()).collect();
    let rounds: Vec<_> = tokens
        .iter()
        .map(|token| {
            let hive = hive.clone();
            let token = token.clone();
            tokio::spawn(async move {
                hive.decide_with(DecideOptions::default().with_cancel(token))
                    .await
            })
        })
        .collect();
    tokio::time::timeout(BOUND, async {
        while started.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the three rounds never asked their agent");
    tokens[1].cancel();
    let outcome = tokio::time::timeout(BOUND, async {
        while cancelled_seen.lock().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    outcome.expect("the cancelled round's agent token never fired");
    let early = cancelled_seen.lock().clone();
    assert_eq!(
        early.len(),
        1,
        "cancelling one round cancelled the contexts of {early:?}"
    );
    release.notify_waiters();
    let mut outcomes = Vec::new();
    for round in rounds {
        outcomes.push(
            tokio::time::timeout(BOUND, round)
                .await
                .expect("a round hung")
                .expect("a round panicked"),
        );
    }
    let committed: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|d| d.round))
        .collect();
    assert_eq!(committed.len(), 2, "{outcomes:?}");
    assert_eq!(
        outcomes[1].as_ref().err(),
        Some(&HiveError::Cancelled { round: early[0] }),
        "the round whose token was cancelled returns Cancelled with its number"
    );
    assert!(!committed.contains(&early[0]));
    assert_eq!(hive.memory().version(), 2);
    assert_eq!(hive.memory().load().log.len(), 2);
}

/// A memory whose commit waits for `release` after telling `entered`.
struct SlowCommit {
    inner: LocalMemory<Ledger>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
    commits: AtomicUsize,
}

impl Memory<Ledger> for SlowCommit {
    fn snapshot(&self) -> Snapshot<Ledger> {
        self.inner.snapshot()
    }

    async fn commit<'a>(
        &'a self,
        request: CommitRequest<'a, Ledger>,
    ) -> Result<Committed, MemoryError> {
        let released = self.release.notified();
        self.entered.notify_one();
        released.await;
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(request).await
    }

    async fn changed(&self, after: u64) -> Result<Snapshot<Ledger>, MemoryError> {
        self.inner.changed(after).await
    }
}

/// `DecideOptions::cancel`: "a commit already sent to the memory is awaited, so a decision is
/// never half-applied". Cancelled while the commit is in flight: the round commits once and says so.
#[tokio::test]
async fn a_token_cancelled_during_the_commit_lets_the_commit_finish_once() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (sink, events) = recorder();
    let hive = Hive::builder_with_memory(SlowCommit {
        inner: LocalMemory::new(Ledger::default()),
        entered: Arc::clone(&entered),
        release: Arc::clone(&release),
        commits: AtomicUsize::new(0),
    })
    .events(sink)
    .build()
    .unwrap();
    hive.spawn(Writer::new(1, 1));
    hive.spawn(Writer::new(2, 2));
    let cancel = CancellationToken::new();
    let round = hive.decide_with(DecideOptions::default().with_cancel(cancel.clone()));
    let steer = async {
        entered.notified().await;
        cancel.cancel();
        release.notify_one();
    };
    let (outcome, ()) = tokio::time::timeout(BOUND, async { tokio::join!(round, steer) })
        .await
        .expect("round hung");
    let decision = outcome.expect("a commit in flight is awaited, not cancelled");
    assert_eq!(decision.version, 1);
    assert_eq!(decision.accepted.len(), 2);
    let state = hive.memory().load();
    assert_eq!(state.version(), 1);
    assert_eq!(state.log.len(), 2, "each change applied exactly once");
    let committed = events
        .lock()
        .iter()
        .filter(|e| matches!(e, HiveEvent::Committed { version: 1, .. }))
        .count();
    assert_eq!(committed, 1);
    assert_eq!(hive.stats().commits, 1);
    // The next round goes on from there.
    let next = tokio::time::timeout(BOUND, async {
        let round = hive.decide();
        let steer = async {
            entered.notified().await;
            release.notify_one();
        };
        tokio::join!(round, steer).0
    })
    .await
    .expect("next round hung")
    .unwrap();
    assert_eq!(next.version, 2);
    assert_eq!(hive.memory().load().log.len(), 4);
}
