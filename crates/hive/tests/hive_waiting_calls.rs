//! Rounds whose agents really wait (on timers, as LLM or service calls do), with more calls in
//! flight than one task may poll tokio resources in one go.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConcurrencyLimit, Contest, FailureKind, Hive, Snapshot, Vote,
};
use support::{add, Ledger, LedgerProposal};

/// Proposes on `key` and votes for the preferred candidate, each after sleeping `wait`; counts the
/// calls that started with tokio's cooperative budget already spent.
struct Sleeper {
    id: u64,
    key: u64,
    wait: Duration,
    batch: bool,
    starved: Arc<AtomicUsize>,
}

impl Sleeper {
    /// Notes whether this call starts starved, then sleeps.
    async fn wait(&self) {
        if !tokio::task::coop::has_budget_remaining() {
            self.starved.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(self.wait).await;
    }
}

impl Agent<Ledger> for Sleeper {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.wait().await;
        Ok(Some(add(self.id, self.key, 1)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.wait().await;
        Ok(support::preferred(contest))
    }

    fn batch_votes(&self) -> bool {
        self.batch
    }

    async fn vote_all(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contests: &[&Contest<Ledger>],
    ) -> Result<Vec<Vote>, AgentError> {
        self.wait().await;
        Ok(contests
            .iter()
            .map(|contest| support::preferred(contest))
            .collect())
    }
}

/// A hive of `agents` sleepers (sleeping 1 to 5 ms, or all 1 ms when `together`; voting in batches
/// when `batch`), at most `in_flight` calls at once, the first four proposing in two contested
/// pairs.
fn sleepers(
    agents: u64,
    together: bool,
    batch: bool,
    in_flight: ConcurrencyLimit,
) -> (Hive<Ledger>, Arc<AtomicUsize>) {
    let hive = Hive::builder(Ledger::default())
        .max_in_flight(in_flight)
        .build()
        .expect("a valid configuration");
    let starved = Arc::new(AtomicUsize::new(0));
    for id in 0..agents {
        let key = if id < 4 { id / 2 } else { 1_000 + id };
        let wait = Duration::from_millis(if together { 1 } else { 1 + id % 5 });
        hive.spawn(Sleeper {
            id,
            key,
            wait,
            batch,
            starved: Arc::clone(&starved),
        });
    }
    (hive, starved)
}

// Regression: the round polls every call from one task, and tokio allows a task 128 completed
// operations on its timers and channels per poll. Past that, every timer an agent awaited answered
// `Pending` (without being set) and woke the round again, so the round advanced 128 calls per trip
// through the scheduler: 100k waiting vote calls ended a second above their floor. Here 200 calls
// in flight answer at the same instant, and the round starts a new call for each answer it takes.
#[tokio::test(start_paused = true)]
async fn calls_started_after_the_round_spent_its_cooperative_budget_still_get_their_own() {
    let (hive, starved) = sleepers(
        600,
        true,
        false,
        ConcurrencyLimit::new(200).expect("not zero"),
    );
    let decision = hive.decide().await.expect("a round");
    assert_eq!(decision.ballots.len(), 2, "both pairs are contested");
    assert_eq!(decision.failures.len(), 0);
    assert_eq!(
        starved.load(Ordering::SeqCst),
        0,
        "no propose or vote call starts without a budget of its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_waiting_vote_calls_on_two_workers_all_answer_and_settle_their_ballots() {
    let (hive, starved) = sleepers(3_000, false, false, ConcurrencyLimit::Unbounded);
    let decision = hive.decide().await.expect("a round");
    assert_eq!(decision.ballots.len(), 2);
    assert_eq!(decision.failures.len(), 0);
    assert_eq!(decision.accepted.len(), 3_000 - 2, "one of each pair wins");
    for ballot in &decision.ballots {
        // Everyone backs the lower id: once half of them have, the rest could at most tie, and
        // a tie goes to the lower id.
        assert!(ballot.votes >= 1_500, "half of the 3,000 voters answered");
    }
    assert_eq!(starved.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn batch_calls_started_after_the_round_spent_its_cooperative_budget_still_get_their_own() {
    let (hive, starved) = sleepers(
        600,
        true,
        true,
        ConcurrencyLimit::new(200).expect("not zero"),
    );
    let decision = hive.decide().await.expect("a round");
    assert_eq!(decision.ballots.len(), 2);
    assert_eq!(decision.failures.len(), 0);
    assert_eq!(starved.load(Ordering::SeqCst), 0);
}

/// Votes for the preferred candidate, after sleeping `wait` (if any), and logs the key of each
/// contest it is asked about, in the order the calls start.
struct Logger {
    id: u64,
    key: u64,
    wait: Option<Duration>,
    asked: Arc<parking_lot::Mutex<Vec<u64>>>,
}

impl Agent<Ledger> for Logger {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(Some(add(self.id, self.key, 1)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.asked.lock().push(contest.key);
        if let Some(wait) = self.wait {
            tokio::time::sleep(wait).await;
        }
        Ok(support::preferred(contest))
    }
}

/// The contest keys 100 loggers (the first four in two contested pairs) were asked about, in order,
/// and the round's decision.
async fn logged_round(wait: Option<Duration>) -> (Vec<u64>, hivekit_hive::Decision<Ledger>) {
    let hive = Hive::new(Ledger::default());
    let asked = Arc::new(parking_lot::Mutex::new(Vec::new()));
    for id in 0..100 {
        hive.spawn(Logger {
            id,
            key: if id < 4 { id / 2 } else { 1_000 + id },
            wait,
            asked: Arc::clone(&asked),
        });
    }
    let decision = hive.decide().await.expect("a round");
    let asked = asked.lock().clone();
    (asked, decision)
}

#[tokio::test(start_paused = true)]
async fn waiting_voters_are_asked_about_the_contests_in_turns_of_sixteen_calls() {
    let (asked, decision) = logged_round(Some(Duration::from_millis(10))).await;
    assert_eq!(decision.ballots.len(), 2);
    assert_eq!(decision.failures.len(), 0);
    let first = asked[0];
    let second = if first == 0 { 1 } else { 0 };
    assert!(asked[..16].iter().all(|&key| key == first), "{asked:?}");
    assert!(asked[16..32].iter().all(|&key| key == second), "{asked:?}");
    assert!(asked[32..48].iter().all(|&key| key == first), "{asked:?}");
    for ballot in &decision.ballots {
        // Half settles it: the other half could at most tie, and a tie goes to the lower id they
        // back.
        assert!(ballot.votes >= 50, "half of the 100 voters answered");
        assert_eq!(ballot.votes + ballot.cancelled, 100);
    }
}

#[tokio::test]
async fn voters_that_answer_at_once_are_asked_one_contest_after_the_other() {
    let (asked, decision) = logged_round(None).await;
    assert_eq!(decision.ballots.len(), 2);
    let changes = asked.windows(2).filter(|pair| pair[0] != pair[1]).count();
    assert_eq!(changes, 1, "{asked:?}");
    for ballot in &decision.ballots {
        // At half: the other half could at most tie, and a tie goes to the lower id they back.
        assert_eq!(ballot.votes, 50, "the ballot settles at half");
        assert_eq!(ballot.cancelled, 50);
    }
}

/// Yields once (as a call that waits a moment does), then votes for the preferred candidate;
/// counts its vote calls.
struct Yielder {
    id: u64,
    key: u64,
    votes: Arc<AtomicUsize>,
}

impl Agent<Ledger> for Yielder {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(Some(add(self.id, self.key, 1)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.votes.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Ok(support::preferred(contest))
    }
}

// The vote loop starts at most 1,024 calls before it handles the answers in: a ballot that the
// first calls settle leaves its later voters unasked, where starting every call first asked all.
#[tokio::test]
async fn a_ballot_settled_by_the_answers_of_earlier_calls_leaves_its_later_voters_unasked() {
    let hive = Hive::new(Ledger::default());
    let votes = Arc::new(AtomicUsize::new(0));
    for id in 0..3_000 {
        hive.spawn(Yielder {
            id,
            key: if id < 2 { 0 } else { 1_000 + id },
            votes: Arc::clone(&votes),
        });
    }
    let decision = hive.decide().await.expect("a round");
    assert_eq!(decision.ballots.len(), 1);
    assert_eq!(decision.failures.len(), 0);
    let ballot = &decision.ballots[0];
    // At half: the other half could at most tie, and a tie goes to the lower id they back.
    assert_eq!(ballot.votes, 1_500, "the ballot settles at half");
    assert_eq!(ballot.votes + ballot.cancelled, 3_000);
    let asked = votes.load(Ordering::SeqCst);
    assert!(
        asked < 3_000,
        "{asked} of the 3,000 voters were asked though the ballot settled"
    );
}

/// Proposes nothing; votes by panicking or failing, after sleeping 1 ms (so the call is already
/// waiting in the round when it breaks).
struct BreaksAfterWaiting {
    panics: bool,
}

impl Agent<Ledger> for BreaksAfterWaiting {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(None)
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        _contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if self.panics {
            panic!("voter broke after waiting");
        }
        Err(AgentError::msg("voter failed after waiting"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_vote_call_that_panics_or_fails_after_waiting_is_recorded_and_its_ballot_still_settles() {
    let hive = Hive::new(Ledger::default());
    let starved = Arc::new(AtomicUsize::new(0));
    for id in 0..4 {
        hive.spawn(Sleeper {
            id,
            key: id / 2,
            wait: Duration::from_millis(5),
            batch: false,
            starved: Arc::clone(&starved),
        });
    }
    let panicking = hive.spawn(BreaksAfterWaiting { panics: true });
    let failing = hive.spawn(BreaksAfterWaiting { panics: false });
    let decision = hive.decide().await.expect("a round");
    assert_eq!(decision.ballots.len(), 2, "both pairs are contested");
    for ballot in &decision.ballots {
        // The breaking voters count as absent; the sleepers' votes settle the ballot (it may
        // settle before the last of them answers).
        assert!(ballot.votes >= 3, "{ballot:?}");
    }
    assert_eq!(decision.accepted.len(), 2, "one of each pair wins");
    let mut kinds: Vec<_> = decision
        .failures
        .iter()
        .map(|failure| (failure.agent, failure.kind.clone()))
        .collect();
    kinds.sort_by_key(|(agent, _)| *agent == failing);
    let panicked = FailureKind::Panicked {
        message: "voter broke after waiting".into(),
    };
    assert_eq!(kinds.len(), 4, "one failure per breaking voter and contest");
    for (agent, kind) in &kinds[..2] {
        assert_eq!((*agent, kind), (panicking, &panicked));
    }
    for (agent, kind) in &kinds[2..] {
        assert_eq!(*agent, failing);
        assert!(
            matches!(kind, FailureKind::Errored { error } if error.to_string() == "voter failed after waiting"),
            "{kind:?}"
        );
    }
}
