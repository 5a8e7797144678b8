//! Rounds stopped from outside while some agent calls have already failed and others still hang:
//! by their cancellation token, by `tokio::time::timeout` dropping the `decide` future, and by the
//! round's own deadline (`DecideOptions::deadline`), on tokio's paused clock.
//!
//! `Hive::decide` (crates/hive/src/round/decide.rs) promises: "The agent failures a stopped round
//! had reported (`HiveEvent::AgentFailed`) are counted in `Hive::stats` and handed to
//! supervision, however it stopped (token, deadline, or its future dropped). A phase reports its
//! failures when it ends: the failures of calls that ended in the phase the round was stopped in
//! (a `propose` that panicked beside one that never answers) are not reported, counted or
//! supervised." The tests below check exactly that, and show what it loses.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentFailure, AgentId, CancellationToken, ConsensusPolicy,
    Contest, DecideOptions, Decision, FailureKind, Hive, HiveError, HiveEvent, HiveEventSink,
    Interest, Phase, ProposalOf, Snapshot, State, Supervised, Supervision, Threshold, TieBreak,
    Vote,
};
use parking_lot::Mutex;

/// Longer than any test runs: a call that hangs is never timed out by the hive's own timeout.
const AGENT_TIMEOUT: Duration = Duration::from_secs(3600);
/// When the caller stops the round.
const STOP: Duration = Duration::from_secs(10);
/// This file's panics start with this; the quiet panic hook does not print them.
const PANIC_MARKER: &str = "stopped-round panic";

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// What an agent does in one call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Answer,
    Error,
    Panic,
    Hang,
}

/// An agent that does `propose` in `propose` (proposing for `key` when it answers) and `vote`
/// in its votes (abstaining when it answers), and counts the panics it raised.
#[derive(Clone)]
struct Actor {
    propose: Act,
    key: Option<u64>,
    vote: Act,
    /// Votes on all its contests in one call (`Agent::batch_votes`).
    batch: bool,
    /// `Interest::Matching`, with a predicate that panics.
    panicking_interest: bool,
    panics: Arc<AtomicUsize>,
}

impl Actor {
    fn new(propose: Act, key: Option<u64>, vote: Act) -> Self {
        Actor {
            propose,
            key,
            vote,
            batch: false,
            panicking_interest: false,
            panics: Arc::default(),
        }
    }

    async fn perform(&self, act: Act, phase: &str) -> Result<(), AgentError> {
        match act {
            Act::Answer => Ok(()),
            Act::Error => Err(AgentError::msg(format!("error in {phase}"))),
            Act::Panic => {
                self.panics.fetch_add(1, Ordering::SeqCst);
                panic!("{PANIC_MARKER} in {phase}")
            }
            Act::Hang => std::future::pending().await,
        }
    }
}

impl Agent<Sum> for Actor {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.perform(self.propose, "propose").await?;
        Ok(self.key.map(|key| ctx.proposal(1).writes([key])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        _contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        self.perform(self.vote, "vote").await?;
        Ok(Vote::Abstain)
    }

    fn batch_votes(&self) -> bool {
        self.batch
    }

    fn interest(&self) -> Interest<u64> {
        if self.panicking_interest {
            Interest::Matching
        } else {
            Interest::All
        }
    }

    fn interested(&self, _contest: &Contest<Sum>) -> bool {
        if self.panicking_interest {
            self.panics.fetch_add(1, Ordering::SeqCst);
            panic!("{PANIC_MARKER} in interested");
        }
        true
    }
}

type Events = Arc<Mutex<Vec<HiveEvent<u64>>>>;
type Hooked = Arc<Mutex<Vec<Supervised>>>;

/// A hive whose ballots stay open until every voter has answered or failed (voters that answer
/// abstain, and one vote for a candidate would still decide), with its events and restart hook
/// calls recorded.
fn hive(supervision: Supervision) -> (Hive<Sum>, Events, Hooked) {
    support::quiet_panics(PANIC_MARKER);
    let events: Events = Arc::default();
    let hooked: Hooked = Arc::default();
    let (seen, hook) = (Arc::clone(&events), Arc::clone(&hooked));
    let hive = Hive::builder(Sum::default())
        .agent_timeout(AGENT_TIMEOUT)
        .policy(
            ConsensusPolicy::new(Threshold::Plurality, f64::MIN_POSITIVE)
                .unwrap()
                .with_tie_break(TieBreak::NoDecision),
        )
        .events(HiveEventSink::callback(move |event| {
            seen.lock().push(event)
        }))
        .supervision(supervision)
        .on_restart(move |_hive, record| hook.lock().push(record.clone()))
        .build()
        .unwrap();
    (hive, events, hooked)
}

/// How the caller stops a round.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// `DecideOptions::cancel`, cancelled at `STOP`.
    Token,
    /// `tokio::time::timeout(STOP, hive.decide())`, which drops the round's future.
    Dropped,
}

/// Runs one round that `stop` stops at `STOP` (it must not end by itself before).
async fn stopped_round(hive: &Hive<Sum>, stop: Stop) {
    match stop {
        Stop::Token => {
            let cancel = CancellationToken::new();
            let round = hive.decide_with(DecideOptions::default().with_cancel(cancel.clone()));
            let canceller = async {
                tokio::time::sleep(STOP).await;
                cancel.cancel();
            };
            let (outcome, ()) = tokio::join!(round, canceller);
            assert!(
                matches!(outcome, Err(HiveError::Cancelled { .. })),
                "{outcome:?}"
            );
        }
        Stop::Dropped => {
            let outcome = tokio::time::timeout(STOP, hive.decide()).await;
            assert!(
                outcome.is_err(),
                "the round ended before the caller's timeout"
            );
        }
    }
}

/// Runs one round with a deadline of `STOP` for its agent calls (the round ends by itself).
async fn round_with_deadline(hive: &Hive<Sum>) -> Decision<Sum> {
    let options = DecideOptions::default().with_deadline(STOP);
    tokio::time::timeout(10 * STOP, hive.decide_with(options))
        .await
        .expect("a round with a deadline ends by itself")
        .expect("the round decides")
}

fn failed(events: &Events) -> Vec<AgentFailure> {
    events
        .lock()
        .iter()
        .filter_map(|event| match event {
            HiveEvent::AgentFailed { failure, .. } => Some(failure.clone()),
            _ => None,
        })
        .collect()
}

fn supervised(events: &Events) -> Vec<Supervised> {
    events
        .lock()
        .iter()
        .filter_map(|event| match event {
            HiveEvent::AgentSupervised { record, .. } => Some(record.clone()),
            _ => None,
        })
        .collect()
}

/// The terminal events of `round`.
fn terminals(events: &Events, round: u64) -> Vec<HiveEvent<u64>> {
    events
        .lock()
        .iter()
        .filter(|event| {
            event.round() == round
                && matches!(
                    event,
                    HiveEvent::Committed { .. }
                        | HiveEvent::NothingToCommit { .. }
                        | HiveEvent::RoundFailed { .. }
                )
        })
        .cloned()
        .collect()
}

fn sorted(mut failures: Vec<AgentFailure>) -> Vec<(AgentId, String)> {
    let mut out: Vec<(AgentId, String)> = failures
        .drain(..)
        .map(|failure| {
            (
                failure.agent,
                format!("{:?} {:?}", failure.phase, failure.kind),
            )
        })
        .collect();
    out.sort();
    out
}

fn failure(agent: AgentId, phase: Phase, kind: FailureKind) -> AgentFailure {
    AgentFailure { agent, phase, kind }
}

fn panicked(phase: &str) -> FailureKind {
    FailureKind::Panicked {
        message: format!("{PANIC_MARKER} in {phase}"),
    }
}

fn errored(phase: &str) -> FailureKind {
    FailureKind::Errored {
        error: AgentError::msg(format!("error in {phase}")),
    }
}

/// A round stopped in its propose phase, where one agent panicked and one erred beside one that
/// never answers: none of the three failures is reported, counted or supervised (the promise),
/// and the round ends with one `RoundFailed`.
#[tokio::test(start_paused = true)]
async fn a_round_stopped_in_propose_reports_counts_and_supervises_none_of_its_failures() {
    for stop in [Stop::Token, Stop::Dropped] {
        let (hive, events, hooked) = hive(Supervision::remove(1));
        let panicking = Actor::new(Act::Panic, Some(1), Act::Answer);
        let panics = Arc::clone(&panicking.panics);
        let panicker = hive.spawn(panicking);
        let erring = hive.spawn(Actor::new(Act::Error, Some(2), Act::Answer));
        hive.spawn(Actor::new(Act::Hang, Some(3), Act::Answer));

        stopped_round(&hive, stop).await;

        assert_eq!(
            panics.load(Ordering::SeqCst),
            1,
            "{stop:?}: the agent panicked"
        );
        assert_eq!(failed(&events), Vec::new(), "{stop:?}: reported");
        let stats = hive.stats();
        assert_eq!(
            (stats.rounds, stats.panics, stats.errors, stats.timeouts),
            (1, 0, 0, 0),
            "{stop:?}: {stats:?}"
        );
        assert!(hive.contains(panicker) && hive.contains(erring), "{stop:?}");
        assert_eq!(supervised(&events), Vec::new(), "{stop:?}");
        assert!(hooked.lock().is_empty(), "{stop:?}: restart hook");
        assert_eq!((stats.quarantines, stats.removals), (0, 0), "{stop:?}");
        let ends = terminals(&events, 1);
        assert!(
            matches!(ends.as_slice(), [HiveEvent::RoundFailed { .. }]),
            "{stop:?}: {ends:?}"
        );
        assert_eq!(hive.memory().version(), 0, "{stop:?}");
    }
}

/// A round stopped in its vote phase: the failure of its (ended) propose phase is reported,
/// counted and supervised, with the restart hook called once; the vote that panicked beside the
/// votes that hang is not reported, counted or supervised.
#[tokio::test(start_paused = true)]
async fn a_round_stopped_in_vote_hands_on_the_propose_failures_and_none_of_the_vote_failures() {
    for stop in [Stop::Token, Stop::Dropped] {
        let (hive, events, hooked) = hive(Supervision::quarantine(1, 5));
        let erring = hive.spawn(Actor::new(Act::Error, None, Act::Answer));
        let panicking = Actor::new(Act::Answer, Some(0), Act::Panic);
        let panics = Arc::clone(&panicking.panics);
        let panicker = hive.spawn(panicking);
        // Two more proposals on key 0: a contest, whose ballot waits for their votes.
        hive.spawn(Actor::new(Act::Answer, Some(0), Act::Hang));
        hive.spawn(Actor::new(Act::Answer, Some(0), Act::Hang));

        stopped_round(&hive, stop).await;

        assert_eq!(
            panics.load(Ordering::SeqCst),
            1,
            "{stop:?}: the vote panicked"
        );
        assert_eq!(
            sorted(failed(&events)),
            sorted(vec![failure(erring, Phase::Propose, errored("propose"))]),
            "{stop:?}: reported"
        );
        let stats = hive.stats();
        assert_eq!(
            (stats.errors, stats.panics, stats.timeouts),
            (1, 0, 0),
            "{stop:?}: {stats:?}"
        );
        assert_eq!(hive.quarantined_until(erring), Some(6), "{stop:?}");
        assert_eq!(hive.quarantined_until(panicker), None, "{stop:?}");
        let records = supervised(&events);
        assert_eq!(records.len(), 1, "{stop:?}: {records:?}");
        assert_eq!(records[0].agent, erring);
        assert_eq!(records[0].last, errored("propose"));
        assert_eq!(*hooked.lock(), records, "{stop:?}: restart hook");
        assert_eq!(stats.quarantines, 1);
        let ends = terminals(&events, 1);
        assert!(
            matches!(ends.as_slice(), [HiveEvent::RoundFailed { .. }]),
            "{stop:?}: {ends:?}"
        );
        assert_eq!(hive.memory().version(), 0, "{stop:?}");
    }
}

/// A round whose deadline passes while calls hang is not stopped: the hanging calls count as
/// timed out (in the propose phase and, its calls starting past the deadline, in the vote phase),
/// every failure is reported, counted and supervised, and the round commits what it accepted.
#[tokio::test(start_paused = true)]
async fn a_round_past_its_deadline_reports_every_failure_and_commits() {
    let (hive, events, hooked) = hive(Supervision::quarantine(1, 2));
    let panicker = hive.spawn(Actor::new(Act::Panic, None, Act::Answer));
    let hanger = hive.spawn(Actor::new(Act::Hang, None, Act::Answer));
    let independent = hive.spawn(Actor::new(Act::Answer, Some(1), Act::Answer));
    let vote_panicker = hive.spawn(Actor::new(Act::Answer, Some(0), Act::Panic));
    let vote_hanger = hive.spawn(Actor::new(Act::Answer, Some(0), Act::Hang));

    let decision = round_with_deadline(&hive).await;

    let expected = sorted(vec![
        failure(panicker, Phase::Propose, panicked("propose")),
        failure(hanger, Phase::Propose, FailureKind::TimedOut),
        failure(vote_panicker, Phase::Vote, panicked("vote")),
        failure(vote_hanger, Phase::Vote, FailureKind::TimedOut),
    ]);
    assert_eq!(sorted(decision.failures.clone()), expected, "{decision:?}");
    assert_eq!(sorted(failed(&events)), expected, "AgentFailed events");
    let stats = hive.stats();
    assert_eq!(
        (stats.panics, stats.timeouts, stats.errors),
        (2, 2, 0),
        "{stats:?}"
    );
    assert_eq!(
        decision.elapsed, STOP,
        "the round waited for its deadline, exactly"
    );
    assert_eq!(decision.accepted.len(), 1);
    assert_eq!(decision.proposer(decision.accepted[0]), Some(independent));
    assert_eq!((decision.version, hive.memory().version()), (1, 1));
    let mut quarantined: Vec<AgentId> = decision.supervised.iter().map(|r| r.agent).collect();
    quarantined.sort();
    assert_eq!(
        quarantined,
        vec![panicker, hanger, vote_panicker, vote_hanger]
    );
    for agent in &quarantined {
        assert_eq!(hive.quarantined_until(*agent), Some(3));
    }
    assert_eq!(supervised(&events).len(), 4);
    assert_eq!(hooked.lock().len(), 4, "restart hook");
    assert!(matches!(
        terminals(&events, 1).as_slice(),
        [HiveEvent::Committed { version: 1, .. }]
    ));
}

/// What the promise loses (a finding, not a broken promise): an agent that panics in `propose`
/// in every round, beside another that hangs until the caller gives up, is never reported,
/// counted or supervised, however many rounds it panics in, under `Supervision::remove(1)`.
#[tokio::test(start_paused = true)]
async fn a_failure_beside_a_stall_in_the_phase_a_round_is_stopped_in_is_lost_every_time() {
    for stop in [Stop::Token, Stop::Dropped] {
        let (hive, events, hooked) = hive(Supervision::remove(1));
        let panicking = Actor::new(Act::Panic, Some(1), Act::Answer);
        let panics = Arc::clone(&panicking.panics);
        let panicker = hive.spawn(panicking);
        hive.spawn(Actor::new(Act::Hang, Some(2), Act::Answer));
        for _ in 0..3 {
            stopped_round(&hive, stop).await;
        }
        assert_eq!(
            panics.load(Ordering::SeqCst),
            3,
            "{stop:?}: it panicked 3 times"
        );
        assert_eq!(hive.stats().panics, 0, "{stop:?}");
        assert!(failed(&events).is_empty(), "{stop:?}");
        assert!(hive.contains(panicker), "{stop:?}: never removed");
        assert!(hooked.lock().is_empty(), "{stop:?}");
    }
}

/// Stops rounds over `agents` in their vote phase (two agents' proposals contest key 0 and their
/// votes hang) after `failing` failed in that phase without a call that hangs: the failure must
/// not be reported, counted or supervised, as every other failure of the phase the round was
/// stopped in.
async fn vote_phase_failure_is_not_supervised(failing: Actor, what: &str) {
    // Dropped first: it keeps the promise, and the token's failure message comes after.
    for stop in [Stop::Dropped, Stop::Token] {
        let (hive, events, hooked) = hive(Supervision::remove(1));
        let panics = Arc::clone(&failing.panics);
        let failing = hive.spawn(failing.clone());
        hive.spawn(Actor::new(Act::Answer, Some(0), Act::Hang));
        hive.spawn(Actor::new(Act::Answer, Some(0), Act::Hang));

        stopped_round(&hive, stop).await;

        let stats = hive.stats();
        let records = supervised(&events);
        assert!(
            failed(&events).is_empty() && stats.errors + stats.panics == 0,
            "{what}, {stop:?}: the failure was reported: {:?}, {stats:?}",
            failed(&events)
        );
        assert!(
            hive.contains(failing) && records.is_empty() && hooked.lock().is_empty(),
            "{what}, {stop:?}: `decide` promises the failures of the phase a round is stopped in \
             are not supervised, yet the agent was {} (AgentSupervised {records:?}, restart hook \
             called {} times) for a failure never reported as AgentFailed nor counted in \
             HiveStats ({stats:?}; it panicked {} times)",
            if hive.contains(failing) {
                "kept"
            } else {
                "removed"
            },
            hooked.lock().len(),
            panics.load(Ordering::SeqCst),
        );
    }
}

/// Regression: a batch voter (`Agent::batch_votes`) whose `vote_all` errs, in a round cancelled
/// by its token while the other voters' calls hang, is removed by supervision although its
/// failure was never reported nor counted (a dropped round leaves it alone).
#[tokio::test(start_paused = true)]
async fn a_batch_voters_failure_in_a_round_cancelled_in_its_vote_phase_is_not_supervised() {
    let batch = Actor {
        batch: true,
        ..Actor::new(Act::Answer, None, Act::Error)
    };
    vote_phase_failure_is_not_supervised(batch, "batch voter").await;
}

/// Regression: an `Interest::Matching` voter whose predicate panics (a vote-phase failure, see
/// `Agent::interested`), in a round cancelled by its token while the other voters' calls hang, is
/// removed by supervision although its failure was never reported nor counted.
#[tokio::test(start_paused = true)]
async fn a_panicking_interest_predicate_in_a_round_cancelled_in_its_vote_phase_is_not_supervised() {
    let matching = Actor {
        panicking_interest: true,
        ..Actor::new(Act::Answer, None, Act::Answer)
    };
    vote_phase_failure_is_not_supervised(matching, "interest predicate").await;
}

/// Regression: a round cancelled by its token clears the supervision record of an agent whose
/// call it cut short (the call that hung is what made the caller cancel), while a round whose
/// future is dropped leaves the record alone ("nobody's record is cleared by a round that did not
/// end", round/mod.rs), although `decide` hands a stopped round's failures to supervision the
/// same way "however it stopped". Under `quarantine(2, 5)`, an agent that panics, hangs until the
/// caller gives up, then panics again is quarantined when the middle round was dropped, and not
/// when it was cancelled.
#[tokio::test(start_paused = true)]
async fn a_round_stopped_by_its_token_neither_strikes_nor_clears_the_record_of_an_agent_it_cut_short(
) {
    for stop in [Stop::Dropped, Stop::Token] {
        let (hive, _events, _hooked) = hive(Supervision::quarantine(2, 5));
        let act = Arc::new(Mutex::new(Act::Panic));
        let flaky = hive.spawn(Flaky(Arc::clone(&act)));
        let first = hive.decide().await.unwrap();
        assert_eq!(first.failures.len(), 1);
        *act.lock() = Act::Hang;
        stopped_round(&hive, stop).await;
        *act.lock() = Act::Panic;
        let third = hive.decide().await.unwrap();
        assert_eq!(third.failures.len(), 1);
        assert_eq!(
            hive.quarantined_until(flaky),
            Some(8),
            "{stop:?}: the agent failed rounds 1 and 3 under quarantine(2, 5), and round 2, \
             stopped while its call hung, should neither strike nor clear its record (as a \
             dropped round does), yet it is not quarantined: {third:?}"
        );
    }
}

/// Proposes by what `0` says at the time of the call.
struct Flaky(Arc<Mutex<Act>>);

impl Agent<Sum> for Flaky {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        let act = *self.0.lock();
        match act {
            Act::Panic => panic!("{PANIC_MARKER} in propose"),
            Act::Hang => std::future::pending().await,
            Act::Error => Err(AgentError::msg("error in propose")),
            Act::Answer => Ok(Some(ctx.proposal(1).writes([9]))),
        }
    }
}
