//! Review of "a round cancelled by its token ends as a dropped round does" (round/commit.rs
//! `end_cancelled`, round/mod.rs `Unsupervised::hand_over`): only the failures the round reported
//! go to supervision, once (not again from `Unsupervised`'s drop), nobody's record is cleared, the
//! restart hook runs in a tokio context, and concurrent cancelled rounds each count once.

mod support;

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, CancellationToken, ConsensusPolicy, Contest,
    DecideOptions, Hive, HiveError, HiveEvent, HiveEventSink, ProposalOf, Snapshot, State,
    Supervised, Supervision, SupervisionAction, Threshold, TieBreak, Vote,
};
use parking_lot::Mutex;

/// Longer than any test runs: the hive's own timeout never ends a call here.
const AGENT_TIMEOUT: Duration = Duration::from_secs(3600);
/// A bound on waits that should end at once (a failure, not a hang, when exceeded).
const BOUND: Duration = Duration::from_secs(20);
const PANIC_MARKER: &str = "cancelled-round review panic";

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// What an agent does in `propose`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    /// Answers without a proposal.
    Answer,
    Error,
    Panic,
    /// Cancels the round's token (what `cancel` holds), then answers without a proposal.
    Cancel,
}

/// Proposes by what `act` says at the time of the call.
struct Scripted {
    act: Arc<Mutex<Act>>,
    cancel: Arc<Mutex<Option<CancellationToken>>>,
}

impl Agent<Sum> for Scripted {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        let act = *self.act.lock();
        match act {
            Act::Answer => Ok(None),
            Act::Error => Err(AgentError::msg("error in propose")),
            Act::Panic => panic!("{PANIC_MARKER} in propose"),
            Act::Cancel => {
                if let Some(token) = self.cancel.lock().as_ref() {
                    token.cancel();
                }
                Ok(None)
            }
        }
    }
}

type Events = Arc<Mutex<Vec<HiveEvent<u64>>>>;

/// What the restart hook saw: the record, and whether it ran with a tokio runtime current (and
/// could spawn on it).
type Hooked = Arc<Mutex<Vec<(Supervised, bool)>>>;

fn hive(supervision: Option<Supervision>) -> (Hive<Sum>, Events, Hooked) {
    support::quiet_panics(PANIC_MARKER);
    let events: Events = Arc::default();
    let hooked: Hooked = Arc::default();
    let (seen, hook) = (Arc::clone(&events), Arc::clone(&hooked));
    let mut builder = Hive::builder(Sum::default())
        .agent_timeout(AGENT_TIMEOUT)
        .events(HiveEventSink::callback(move |event| {
            seen.lock().push(event)
        }))
        .on_restart(move |_hive, record| {
            let runtime = tokio::runtime::Handle::try_current()
                .map(|handle| {
                    // The hook may start work on the round's runtime.
                    drop(handle.spawn(async {}));
                })
                .is_ok();
            hook.lock().push((record.clone(), runtime));
        });
    if let Some(supervision) = supervision {
        builder = builder.supervision(supervision);
    }
    (builder.build().unwrap(), events, hooked)
}

fn supervised(events: &Events, round: u64) -> Vec<Supervised> {
    events
        .lock()
        .iter()
        .filter_map(|event| match event {
            HiveEvent::AgentSupervised { round: r, record } if *r == round => Some(record.clone()),
            _ => None,
        })
        .collect()
}

fn failed_agents(events: &Events, round: u64) -> Vec<AgentId> {
    events
        .lock()
        .iter()
        .filter_map(|event| match event {
            HiveEvent::AgentFailed { round: r, failure } if *r == round => Some(failure.agent),
            _ => None,
        })
        .collect()
}

fn terminals(events: &Events, round: u64) -> usize {
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
        .count()
}

struct Scripts {
    failing: AgentId,
    failing_act: Arc<Mutex<Act>>,
    bystander: AgentId,
    bystander_act: Arc<Mutex<Act>>,
    canceller_act: Arc<Mutex<Act>>,
    cancel: Arc<Mutex<Option<CancellationToken>>>,
}

/// Three agents, spawned in call order (lowest id first): one that fails, a bystander, and one
/// that may cancel the round's token in its own call, the last answer of the propose phase.
fn spawn_scripts(hive: &Hive<Sum>) -> Scripts {
    let cancel: Arc<Mutex<Option<CancellationToken>>> = Arc::default();
    let failing_act = Arc::new(Mutex::new(Act::Error));
    let bystander_act = Arc::new(Mutex::new(Act::Panic));
    let canceller_act = Arc::new(Mutex::new(Act::Answer));
    let failing = hive.spawn(Scripted {
        act: Arc::clone(&failing_act),
        cancel: Arc::clone(&cancel),
    });
    let bystander = hive.spawn(Scripted {
        act: Arc::clone(&bystander_act),
        cancel: Arc::clone(&cancel),
    });
    hive.spawn(Scripted {
        act: Arc::clone(&canceller_act),
        cancel: Arc::clone(&cancel),
    });
    Scripts {
        failing,
        failing_act,
        bystander,
        bystander_act,
        canceller_act,
        cancel,
    }
}

/// Round 2's token is cancelled by the last agent to answer, in the very poll that gathers the
/// answers: the propose phase ended and reported the failing agent's error, so it is struck
/// (quarantined, reaching 2 failures) once, with one `AgentSupervised` and one hook call that sees
/// the runtime; the bystander, which failed round 1 and answered in round 2, keeps its strike (the
/// round clears nobody's record), so its failure in round 3 quarantines it.
async fn cancelled_by_the_last_answer(check_runtime: bool) {
    let (hive, events, hooked) = hive(Some(Supervision::quarantine(2, 5)));
    let scripts = spawn_scripts(&hive);

    let first = hive.decide().await.unwrap();
    assert_eq!(first.failures.len(), 2, "{first:?}");

    *scripts.bystander_act.lock() = Act::Answer;
    *scripts.canceller_act.lock() = Act::Cancel;
    let token = CancellationToken::new();
    *scripts.cancel.lock() = Some(token.clone());
    let outcome = hive
        .decide_with(DecideOptions::default().with_cancel(token))
        .await;
    assert_eq!(outcome.unwrap_err(), HiveError::Cancelled { round: 2 });
    assert_eq!(
        failed_agents(&events, 2),
        [scripts.failing],
        "the propose phase ended in the cancelling poll and reported its failure"
    );
    let records = supervised(&events, 2);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].agent, scripts.failing);
    assert_eq!(records[0].failures, 2);
    assert_eq!(terminals(&events, 2), 1);
    assert_eq!(hive.quarantined_until(scripts.failing), Some(7));
    {
        let hooked = hooked.lock();
        assert_eq!(hooked.len(), 1, "the hook ran once: {hooked:?}");
        if check_runtime {
            assert!(hooked[0].1, "the restart hook ran without a tokio runtime");
        }
    }
    let stats = hive.stats();
    assert_eq!(stats.quarantines, 1);
    assert_eq!(stats.errors, 2);
    assert_eq!(stats.panics, 1);

    // Round 3: the bystander's second failed round in a row (round 2 cleared nothing).
    *scripts.canceller_act.lock() = Act::Answer;
    *scripts.bystander_act.lock() = Act::Panic;
    *scripts.failing_act.lock() = Act::Answer;
    let third = hive.decide().await.unwrap();
    assert_eq!(third.agents, 2, "the failing agent sits round 3 out");
    assert_eq!(
        hive.quarantined_until(scripts.bystander),
        Some(8),
        "round 2 cleared the bystander's strike: {third:?}"
    );
    assert_eq!(hooked.lock().len(), 2);
    assert_eq!(hive.stats().quarantines, 2);
}

#[tokio::test]
async fn a_token_cancelled_by_the_last_answer_strikes_the_reported_failures_once_and_clears_no_record(
) {
    cancelled_by_the_last_answer(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_on_a_multi_thread_runtime() {
    cancelled_by_the_last_answer(true).await;
}

/// A minimal executor for a thread with no tokio runtime (the round then runs on hivekit's
/// global runtime, entered for each poll).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    let deadline = Instant::now() + BOUND;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the round did not end within {BOUND:?}");
        std::thread::park_timeout(left);
    }
}

/// The same round polled by a plain executor outside any runtime: the restart hook run by the
/// cancelled round still sees (and can spawn on) the runtime the round ran on.
#[test]
fn a_restart_hook_run_by_a_cancelled_round_outside_a_runtime_sees_the_global_runtime() {
    let (hive, events, hooked) = hive(Some(Supervision::remove(1)));
    let scripts = spawn_scripts(&hive);
    *scripts.bystander_act.lock() = Act::Answer;
    *scripts.canceller_act.lock() = Act::Cancel;
    let token = CancellationToken::new();
    *scripts.cancel.lock() = Some(token.clone());
    let outcome = block_on(hive.decide_with(DecideOptions::default().with_cancel(token)));
    assert_eq!(outcome.unwrap_err(), HiveError::Cancelled { round: 1 });
    let records = supervised(&events, 1);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].action, SupervisionAction::Remove);
    let hooked = hooked.lock().clone();
    assert_eq!(hooked.len(), 1, "{hooked:?}");
    assert!(hooked[0].1, "the restart hook ran without a tokio runtime");
    assert!(!hive.contains(scripts.failing));
    assert_eq!(hive.stats().removals, 1);
    assert_eq!(terminals(&events, 1), 1);
}

/// Without a supervision policy a cancelled round still counts what it reported, and supervises
/// nobody.
#[tokio::test]
async fn a_cancelled_round_of_a_hive_without_supervision_counts_its_reported_failures_only() {
    let (hive, events, hooked) = hive(None);
    let scripts = spawn_scripts(&hive);
    *scripts.canceller_act.lock() = Act::Cancel;
    let token = CancellationToken::new();
    *scripts.cancel.lock() = Some(token.clone());
    let outcome = hive
        .decide_with(DecideOptions::default().with_cancel(token))
        .await;
    assert_eq!(outcome.unwrap_err(), HiveError::Cancelled { round: 1 });
    assert_eq!(failed_agents(&events, 1).len(), 2);
    assert!(supervised(&events, 1).is_empty());
    assert!(hooked.lock().is_empty());
    let stats = hive.stats();
    assert_eq!((stats.errors, stats.panics), (1, 1));
    assert_eq!((stats.quarantines, stats.removals), (0, 0));
    assert_eq!(terminals(&events, 1), 1);
}

/// Proposes on key 1 (so two of them conflict) or fails, and votes by hanging until the round
/// ends.
struct Contender {
    fails: bool,
    /// The rounds whose vote phase asked this agent.
    asked: Arc<Mutex<HashSet<u64>>>,
}

impl Agent<Sum> for Contender {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        if self.fails {
            return Err(AgentError::msg("error in propose"));
        }
        Ok(Some(ctx.proposal(1).writes([1])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        _contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        self.asked.lock().insert(ctx.round());
        std::future::pending().await
    }
}

/// Eight rounds of one hive at once on a multi-thread runtime, each stopped by its own token
/// while its vote hangs (after its propose phase reported the failing agent's error): the failing
/// agent is struck once per round, so under `quarantine(1, 1)` it is quarantined eight times,
/// with eight `AgentSupervised` events and eight hook calls (each with the runtime current), and
/// the voters whose calls were cut short are never struck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancelled_rounds_strike_each_reported_failure_once() {
    const ROUNDS: usize = 8;
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
        .supervision(Supervision::quarantine(1, 1))
        .on_restart(move |_hive, record| {
            let runtime = tokio::runtime::Handle::try_current().is_ok();
            hook.lock().push((record.clone(), runtime));
        })
        .build()
        .unwrap();
    let asked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let failing = hive.spawn(Contender {
        fails: true,
        asked: Arc::clone(&asked),
    });
    for _ in 0..2 {
        hive.spawn(Contender {
            fails: false,
            asked: Arc::clone(&asked),
        });
    }
    let tokens: Vec<CancellationToken> = (0..ROUNDS).map(|_| CancellationToken::new()).collect();
    let rounds: Vec<_> = tokens
        .iter()
        .map(|token| {
            let (hive, token) = (hive.clone(), token.clone());
            tokio::spawn(async move {
                hive.decide_with(DecideOptions::default().with_cancel(token))
                    .await
            })
        })
        .collect();
    // Every round is in its vote phase (its propose failure reported) before any is cancelled.
    tokio::time::timeout(BOUND, async {
        while asked.lock().len() < ROUNDS {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the rounds never reached their votes");
    for token in &tokens {
        token.cancel();
    }
    for round in rounds {
        let outcome = tokio::time::timeout(BOUND, round)
            .await
            .expect("a cancelled round hung")
            .expect("a round panicked");
        assert!(
            matches!(outcome, Err(HiveError::Cancelled { .. })),
            "{outcome:?}"
        );
    }
    let all: Vec<Supervised> = (1..=ROUNDS as u64)
        .flat_map(|round| supervised(&events, round))
        .collect();
    assert_eq!(all.len(), ROUNDS, "{all:?}");
    assert!(all.iter().all(|record| record.agent == failing), "{all:?}");
    let hooked = hooked.lock().clone();
    assert_eq!(hooked.len(), ROUNDS, "{hooked:?}");
    assert!(hooked.iter().all(|(_, runtime)| *runtime));
    let stats = hive.stats();
    assert_eq!(stats.quarantines, ROUNDS as u64);
    assert_eq!(stats.errors, ROUNDS as u64);
    assert_eq!(stats.timeouts, 0, "cut-short votes are not reported");
    for round in 1..=ROUNDS as u64 {
        assert_eq!(terminals(&events, round), 1, "round {round}");
    }
}
