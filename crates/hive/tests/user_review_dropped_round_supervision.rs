//! Review of 427a475: a round's agent failures are counted as they are reported, and the
//! `Unsupervised` guard hands them to supervision when the round's future is dropped (a
//! `tokio::time::timeout` around `decide`) or a panic unwinds through it.
//!
//! Attacked here: a failure beside a stall in the *same* phase (the commit's own test has the
//! stall in a later phase), an invalid answer in a dropped round (the guard promises that "nobody's
//! record is cleared by a round that did not end"), the restart hook run from the guard's `Drop`
//! (outside the runtime the round used, inside a panic unwind, panicking itself), a round dropped
//! while its commit is in flight, and quarantine counts over many dropped rounds on several
//! runtimes at once.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use futures::FutureExt;
use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, CancellationToken, CommitRequest, Committed, Contest,
    DecideOptions, FailureKind, Hive, HiveError, HiveEvent, HiveEventSink, LocalMemory, Memory,
    MemoryError, Proposal, ProposalId, ProposalOf, Snapshot, State, Supervision, Vote,
};
use parking_lot::Mutex;

/// How long the caller waits for a round (the agents' own timeout is the default 30 s).
const CALL_SITE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Panics in `propose`; votes as the default does.
#[derive(Clone)]
struct PanicsInPropose;

impl Agent<Sum> for PanicsInPropose {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        panic!("the model returned garbage");
    }
}

/// Proposes on key 0 (so two of them conflict) and never answers its vote.
#[derive(Clone)]
struct StallsInVote;

impl Agent<Sum> for StallsInVote {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(Some(ctx.proposal(1).writes([0])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        _contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        std::future::pending().await
    }
}

type Events = Arc<Mutex<Vec<HiveEvent<u64>>>>;

fn recorder() -> (HiveEventSink<u64>, Events) {
    let events: Events = Arc::default();
    let sink = HiveEventSink::callback({
        let events = Arc::clone(&events);
        move |event| events.lock().push(event)
    });
    (sink, events)
}

fn panics_reported(events: &Events, agent: AgentId) -> usize {
    events
        .lock()
        .iter()
        .filter(|event| {
            matches!(event, HiveEvent::AgentFailed { failure, .. }
                if failure.agent == agent && matches!(failure.kind, FailureKind::Panicked { .. }))
        })
        .count()
}

fn supervised_events(events: &Events) -> usize {
    events
        .lock()
        .iter()
        .filter(|event| matches!(event, HiveEvent::AgentSupervised { .. }))
        .count()
}

/// How the caller stops a round that takes longer than it will wait.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// `DecideOptions::cancel`, cancelled when the caller gives up.
    Token,
    /// `tokio::time::timeout(CALL_SITE_TIMEOUT, hive.decide())`.
    CallSiteTimeout,
}

async fn stopped_round(hive: &Hive<Sum>, stop: Stop) {
    match stop {
        Stop::Token => {
            let cancel = CancellationToken::new();
            let options = DecideOptions::default().with_cancel(cancel.clone());
            let round = hive.decide_with(options);
            let canceller = async {
                tokio::time::sleep(CALL_SITE_TIMEOUT).await;
                cancel.cancel();
            };
            let (outcome, ()) = tokio::join!(round, canceller);
            assert!(
                matches!(outcome, Err(HiveError::Cancelled { .. })),
                "{outcome:?}"
            );
        }
        Stop::CallSiteTimeout => {
            let outcome = tokio::time::timeout(CALL_SITE_TIMEOUT, hive.decide()).await;
            assert!(outcome.is_err(), "the round outlived the caller's timeout");
        }
    }
}

/// Two stopped rounds in which `failing` panics and two `stalling` agents stall the vote, under `quarantine(2, 5)`: the
/// panics count in the stats, are reported, and quarantine the agent, however the round stopped.
async fn panics_beside_a_stall_count(
    failing: impl Agent<Sum> + Clone,
    stalling: impl Agent<Sum> + Clone,
    phase: &str,
) {
    for stop in [Stop::Token, Stop::CallSiteTimeout] {
        let (sink, events) = recorder();
        let hive = Hive::builder(Sum::default())
            .events(sink)
            .supervision(Supervision::quarantine(2, 5))
            .build()
            .unwrap();
        let failing = hive.spawn(failing.clone());
        // Two of them, so that their proposals conflict and the round waits in the vote.
        hive.spawn(stalling.clone());
        hive.spawn(stalling.clone());
        for _ in 0..2 {
            stopped_round(&hive, stop).await;
        }
        let stats = hive.stats();
        assert_eq!(
            (stats.panics, panics_reported(&events, failing)),
            (2, 2),
            "{phase}, {stop:?}: the agent panicked in both rounds (its call returned at once, \
             before the round stalled in a later phase), yet HiveStats::panics and the \
             AgentFailed events say {stats:?} / {} reports",
            panics_reported(&events, failing),
        );
        assert!(
            hive.quarantined_until(failing).is_some(),
            "{phase}, {stop:?}: the agent panicked in 2 rounds in a row under \
             Supervision::quarantine(2, 5) and is not quarantined"
        );
    }
}

/// A panic in `propose`, then a vote that never ends: the round is stopped (token, or a timeout
/// around `decide`) in the vote phase, after the panic was reported. (A failure beside a call
/// that stalls in the same phase is not reported before the phase ends: see `Hive::decide`.)
#[tokio::test(start_paused = true)]
async fn a_panic_in_propose_before_a_vote_that_stalls_is_counted_and_quarantined() {
    panics_beside_a_stall_count(PanicsInPropose, StallsInVote, "propose").await;
}

/// What the agents of `an_invalid_answer_in_a_dropped_round_does_not_clear_a_record` do.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `x` panics in `propose`; the others propose nothing: the round ends at once.
    Panic,
    /// `x` proposes with an id `holder` already used (or, `Valid`, nothing), `holder` and the
    /// staller conflict on key 0, and the ballot waits for votes that never come: the caller's
    /// timeout drops the round.
    Duplicate,
    Valid,
}

#[derive(Clone)]
struct Scripted {
    role: u8,
    mode: Arc<Mutex<Mode>>,
}

const X: u8 = 0;
const HOLDER: u8 = 1;
const STALLER: u8 = 2;

impl Agent<Sum> for Scripted {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        let mode = *self.mode.lock();
        match (mode, self.role) {
            (Mode::Panic, X) => panic!("the model returned garbage"),
            (Mode::Panic, _) | (Mode::Valid, X) => Ok(None),
            (Mode::Duplicate, X) => Ok(Some(Proposal::new(ProposalId(7), 1))),
            (_, HOLDER) => Ok(Some(Proposal::new(ProposalId(7), 1).writes([0]))),
            _ => Ok(Some(ctx.proposal(1).writes([0]))),
        }
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        if self.role == X {
            return Ok(contest.preferred().map_or(Vote::Abstain, Vote::For));
        }
        std::future::pending().await
    }
}

/// `Unsupervised`'s own promise: "Only the agents that failed are struck; nobody's record is
/// cleared by a round that did not end." An agent whose only failure in a dropped round is an
/// invalid answer (a duplicate proposal id, which supervision does not count) is passed to
/// supervision all the same, which takes it for an agent asked without a counted failure and
/// clears its record: the invalid answer forgives the panic before it, while a valid answer in
/// the same dropped round keeps it.
#[tokio::test(start_paused = true)]
async fn an_invalid_answer_in_a_dropped_round_does_not_clear_a_record() {
    for middle in [Mode::Valid, Mode::Duplicate] {
        let mode = Arc::new(Mutex::new(Mode::Panic));
        let hive = Hive::builder(Sum::default())
            .supervision(Supervision::quarantine(2, 5))
            .build()
            .unwrap();
        let scripted = |role| Scripted {
            role,
            mode: Arc::clone(&mode),
        };
        // The holder first: its proposal arrives first and keeps id 7.
        hive.spawn(scripted(HOLDER));
        let x = hive.spawn(scripted(X));
        hive.spawn(scripted(STALLER));

        // Round 1 ends: x's first failed round.
        let first = hive.decide().await.unwrap();
        assert_eq!(first.failures.len(), 1, "{first:?}");
        assert!(hive.quarantined_until(x).is_none());

        // Round 2 is dropped by the caller's timeout after its propose phase.
        *mode.lock() = middle;
        let dropped = tokio::time::timeout(CALL_SITE_TIMEOUT, hive.decide()).await;
        assert!(
            dropped.is_err(),
            "the ballot waits for votes that never come"
        );
        if middle == Mode::Duplicate {
            assert_eq!(hive.stats().invalid, 1, "x's duplicate id was reported");
        }

        // Round 3 ends: x's second failed round (the dropped round neither struck it nor
        // cleared its record).
        *mode.lock() = Mode::Panic;
        let third = hive.decide().await.unwrap();
        assert_eq!(
            third.supervised.len(),
            1,
            "x failed rounds 1 and 3 under quarantine(2, 5); round 2 (dropped) {} in between \
             and did not end, yet x is not quarantined: {third:?}",
            if middle == Mode::Valid {
                "gave a valid answer"
            } else {
                "gave an invalid answer"
            }
        );
        assert!(hive.quarantined_until(x).is_some());
    }
}

/// `Hive::decide` runs on any executor: "outside one (a plain thread, or another executor) it
/// uses hivekit's global runtime for its timers and tasks", entered for each poll. Its restart
/// hook, run inside a poll, sees that runtime (it may `tokio::spawn` a replacement). Dropped by
/// that executor (a `select`, a polled-once future) the round now runs supervision, and the hook,
/// from its `Drop`, outside any runtime: a hook that spawns there panics, which is caught and
/// logged, and the restart is lost.
#[test]
fn a_restart_hook_run_for_a_dropped_round_sees_the_runtime_the_round_ran_on() {
    let outcome = std::thread::spawn(|| {
        let seen: Arc<Mutex<Vec<bool>>> = Arc::default();
        let hive = Hive::builder(Sum::default())
            .supervision(Supervision::quarantine(1, 5))
            .on_restart({
                let seen = Arc::clone(&seen);
                move |_hive, _record| {
                    seen.lock()
                        .push(tokio::runtime::Handle::try_current().is_ok());
                }
            })
            .build()
            .unwrap();
        let panicker = hive.spawn(PanicsInPropose);
        hive.spawn(StallsInVote);
        hive.spawn(StallsInVote);
        // One poll (the panic reported, the ballot waiting), then dropped by this executor.
        assert!(hive.decide().now_or_never().is_none());
        assert!(hive.quarantined_until(panicker).is_some());
        let seen = seen.lock().clone();
        seen
    })
    .join()
    .expect("the test thread");
    assert_eq!(
        outcome,
        [true],
        "the restart hook ran once, outside the runtime the round ran on"
    );
}

/// A memory whose commit panics.
struct Exploding(LocalMemory<Sum>);

impl Memory<Sum> for Exploding {
    fn snapshot(&self) -> Snapshot<Sum> {
        self.0.snapshot()
    }

    async fn commit<'a>(
        &'a self,
        _request: CommitRequest<'a, Sum>,
    ) -> Result<Committed, MemoryError> {
        panic!("the backend exploded")
    }

    async fn changed(&self, after: u64) -> Result<Snapshot<Sum>, MemoryError> {
        self.0.changed(after).await
    }
}

/// Proposes on key 1 (no conflict): the round commits.
struct Writer;

impl Agent<Sum> for Writer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(Some(ctx.proposal(1).writes([1])))
    }
}

/// The guard runs supervision while the memory's panic unwinds through the round; the restart
/// hook, which panics too, is called there once, its panic is caught (no abort), and the round's
/// events still end with one `RoundFailed`, after the `AgentSupervised`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_restart_hook_inside_a_memory_panic_is_called_once_and_caught() {
    let (sink, events) = recorder();
    let calls = Arc::new(AtomicUsize::new(0));
    let hive = Hive::builder_with_memory(Exploding(LocalMemory::new(Sum::default())))
        .events(sink)
        .supervision(Supervision::quarantine(1, 5))
        .on_restart({
            let calls = Arc::clone(&calls);
            move |_hive, _record| {
                calls.fetch_add(1, Ordering::SeqCst);
                panic!("the restart hook failed too");
            }
        })
        .build()
        .unwrap();
    let panicker = hive.spawn(PanicsInPropose);
    hive.spawn(Writer);
    let joined = tokio::spawn({
        let hive = hive.clone();
        async move { hive.decide().await }
    })
    .await;
    assert!(joined.is_err_and(|error| error.is_panic()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(hive.quarantined_until(panicker).is_some());
    let stats = hive.stats();
    assert_eq!((stats.panics, stats.quarantines), (1, 1), "{stats:?}");
    let events = events.lock();
    let supervised = events
        .iter()
        .position(|event| matches!(event, HiveEvent::AgentSupervised { .. }));
    let failed = events
        .iter()
        .position(|event| matches!(event, HiveEvent::RoundFailed { .. }));
    assert!(
        matches!((supervised, failed), (Some(s), Some(f)) if s < f && f == events.len() - 1),
        "{events:#?}"
    );
}

/// A memory whose commit never finishes.
struct Hanging(LocalMemory<Sum>);

impl Memory<Sum> for Hanging {
    fn snapshot(&self) -> Snapshot<Sum> {
        self.0.snapshot()
    }

    async fn commit<'a>(
        &'a self,
        _request: CommitRequest<'a, Sum>,
    ) -> Result<Committed, MemoryError> {
        std::future::pending().await
    }

    async fn changed(&self, after: u64) -> Result<Snapshot<Sum>, MemoryError> {
        self.0.changed(after).await
    }
}

/// Dropped while its commit is in flight (after every phase that reports failures), a round
/// strikes the agent once: two such rounds under `quarantine(2, 5)` quarantine it once, one does
/// not.
#[tokio::test(start_paused = true)]
async fn a_round_dropped_during_its_commit_strikes_each_failed_agent_once() {
    let (sink, events) = recorder();
    let hive = Hive::builder_with_memory(Hanging(LocalMemory::new(Sum::default())))
        .events(sink)
        .supervision(Supervision::quarantine(2, 5))
        .build()
        .unwrap();
    let panicker = hive.spawn(PanicsInPropose);
    hive.spawn(Writer);
    assert!(tokio::time::timeout(CALL_SITE_TIMEOUT, hive.decide())
        .await
        .is_err());
    assert!(
        hive.quarantined_until(panicker).is_none(),
        "one strike of two"
    );
    assert_eq!(supervised_events(&events), 0);
    assert!(tokio::time::timeout(CALL_SITE_TIMEOUT, hive.decide())
        .await
        .is_err());
    assert!(hive.quarantined_until(panicker).is_some());
    let stats = hive.stats();
    assert_eq!((stats.panics, stats.quarantines), (2, 1), "{stats:?}");
    assert_eq!(supervised_events(&events), 1);
}

/// Many rounds, each dropped by its caller's timeout or cancelled by its token, on four runtimes at
/// once: every panic reported is counted once, and every second failed round of the agent
/// (`quarantine(2, 0)`: back at once, with a clean record) is one quarantine, one event and one
/// hook call.
#[test]
fn quarantines_of_dropped_rounds_on_several_runtimes_are_counted_once_each() {
    const RUNTIMES: usize = 4;
    const ROUNDS: usize = 24;
    let (sink, events) = recorder();
    let hooks = Arc::new(AtomicU32::new(0));
    let hive = Hive::builder(Sum::default())
        .events(sink)
        .supervision(Supervision::quarantine(2, 0))
        .on_restart({
            let hooks = Arc::clone(&hooks);
            move |_hive, _record| {
                hooks.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let panicker = hive.spawn(PanicsInPropose);
    hive.spawn(StallsInVote);
    hive.spawn(StallsInVote);
    let go = Arc::new(Barrier::new(RUNTIMES));
    let threads: Vec<_> = (0..RUNTIMES)
        .map(|index| {
            let hive = hive.clone();
            let go = Arc::clone(&go);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .start_paused(true)
                    .build()
                    .unwrap();
                go.wait();
                runtime.block_on(async {
                    for round in 0..ROUNDS {
                        let stop = if (round + index) % 2 == 0 {
                            Stop::CallSiteTimeout
                        } else {
                            Stop::Token
                        };
                        stopped_round(&hive, stop).await;
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a runtime's rounds");
    }
    let stats = hive.stats();
    let panics = panics_reported(&events, panicker) as u64;
    assert_eq!(stats.rounds, (RUNTIMES * ROUNDS) as u64);
    assert!(panics > 0 && panics <= stats.rounds, "{stats:?}");
    assert_eq!(stats.panics, panics, "{stats:?}");
    assert_eq!(stats.quarantines, panics / 2, "{stats:?}");
    assert_eq!(supervised_events(&events) as u64, stats.quarantines);
    assert_eq!(u64::from(hooks.load(Ordering::SeqCst)), stats.quarantines);
    assert_eq!(stats.removals, 0);
}
