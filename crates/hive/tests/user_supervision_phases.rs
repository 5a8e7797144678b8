//! Supervision as a kameo/ractor user checks it: a failure in the vote phase counts like one in
//! propose, one round failing in both phases is one failed round, `max_failures` 0 acts on the first
//! failure, a quarantine of 0 rounds lets the agent back at once, and the record restarts after the
//! action.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, FailureKind, Hive, Phase, Snapshot, Supervision,
    SupervisionAction, Vote,
};
use support::{add, Ledger, LedgerProposal};

/// Proposes a write to key 0 (so that two of them contest it) and fails as told in each phase.
struct Split {
    key_id: u64,
    fail_propose: bool,
    fail_vote: bool,
    proposes: Arc<AtomicUsize>,
    votes: Arc<AtomicUsize>,
}

impl Split {
    fn new(
        key_id: u64,
        fail_propose: bool,
        fail_vote: bool,
    ) -> (Self, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let proposes = Arc::new(AtomicUsize::new(0));
        let votes = Arc::new(AtomicUsize::new(0));
        (
            Self {
                key_id,
                fail_propose,
                fail_vote,
                proposes: Arc::clone(&proposes),
                votes: Arc::clone(&votes),
            },
            proposes,
            votes,
        )
    }
}

impl Agent<Ledger> for Split {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.proposes.fetch_add(1, Ordering::SeqCst);
        if self.fail_propose {
            return Err(AgentError::msg("propose failed"));
        }
        Ok(Some(add(ctx.round() * 1_000 + self.key_id, 0, 1)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.votes.fetch_add(1, Ordering::SeqCst);
        if self.fail_vote {
            return Err(AgentError::msg("vote failed"));
        }
        Ok(contest.preferred().map_or(Vote::Abstain, Vote::For))
    }
}

#[tokio::test(start_paused = true)]
async fn an_agent_failing_only_in_vote_is_quarantined_like_one_failing_in_propose() {
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::quarantine(2, 1))
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let (voter_fails, _, votes) = Split::new(1, false, true);
    let flaky = hive.spawn(voter_fails);
    let (steady, _, _) = Split::new(2, false, false);
    hive.spawn(steady);
    let (steady, _, _) = Split::new(3, false, false);
    hive.spawn(steady);

    let first = hive.decide().await.unwrap();
    assert_eq!(first.failures.len(), 1, "{:?}", first.failures);
    assert_eq!(first.failures[0].agent, flaky);
    assert_eq!(first.failures[0].phase, Phase::Vote);
    assert!(matches!(
        first.failures[0].kind,
        FailureKind::Errored { .. }
    ));
    assert!(first.supervised.is_empty());
    assert!(votes.load(Ordering::SeqCst) >= 1);

    let second = hive.decide().await.unwrap();
    assert_eq!(second.supervised.len(), 1, "{second}");
    assert_eq!(second.supervised[0].agent, flaky);
    assert_eq!(second.supervised[0].failures, 2);
    assert_eq!(second.supervised[0].until_round, Some(3));
    assert_eq!(hive.quarantined_until(flaky), Some(3));
}

#[tokio::test(start_paused = true)]
async fn failing_in_both_phases_of_one_round_is_one_failed_round() {
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::remove(2))
        .build()
        .unwrap();
    // It fails to propose; the other two contest key 0, and it fails to vote too.
    let (both, proposes, votes) = Split::new(1, true, true);
    let both = hive.spawn(both);
    for key in 2..=3 {
        let (steady, _, _) = Split::new(key, false, false);
        hive.spawn(steady);
    }
    let first = hive.decide().await.unwrap();
    assert_eq!(proposes.load(Ordering::SeqCst), 1);
    assert_eq!(
        votes.load(Ordering::SeqCst),
        1,
        "it still votes on the others' contest"
    );
    assert_eq!(
        first.failures.len(),
        2,
        "one failure per phase: {:?}",
        first.failures
    );
    assert!(
        first.supervised.is_empty(),
        "one failed round, not two: {first}"
    );
    assert!(hive.contains(both));
    let second = hive.decide().await.unwrap();
    assert_eq!(second.supervised.len(), 1);
    assert_eq!(second.supervised[0].failures, 2);
    assert!(!hive.contains(both));
}

#[tokio::test(start_paused = true)]
async fn max_failures_zero_acts_on_the_first_failure() {
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::remove(0))
        .build()
        .unwrap();
    let (broken, _, _) = Split::new(1, true, false);
    let broken = hive.spawn(broken);
    let (steady, _, _) = Split::new(2, false, false);
    hive.spawn(steady);
    let first = hive.decide().await.unwrap();
    assert_eq!(first.supervised.len(), 1);
    assert_eq!(first.supervised[0].failures, 1);
    assert_eq!(first.supervised[0].action, SupervisionAction::Remove);
    assert!(!hive.contains(broken));
}

#[tokio::test(start_paused = true)]
async fn a_quarantine_of_zero_rounds_lets_the_agent_back_at_once_with_a_clean_record() {
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::quarantine(1, 0))
        .build()
        .unwrap();
    let (broken, proposes, _) = Split::new(1, true, false);
    let broken = hive.spawn(broken);
    let (steady, _, _) = Split::new(2, false, false);
    hive.spawn(steady);
    for round in 1..=3_u64 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(decision.agents, 2, "round {round}: asked every round");
        assert_eq!(decision.supervised.len(), 1, "round {round}");
        assert_eq!(
            decision.supervised[0].failures, 1,
            "round {round}: the record restarts"
        );
        assert_eq!(decision.supervised[0].until_round, Some(round));
        assert_eq!(hive.quarantined_until(broken), None, "round {round}");
    }
    assert_eq!(proposes.load(Ordering::SeqCst), 3);
    assert_eq!(hive.stats().quarantines, 3);
}

#[tokio::test(start_paused = true)]
async fn after_a_quarantine_the_count_starts_again_from_zero() {
    let hive = Hive::builder(Ledger::default())
        .supervision(Supervision::quarantine(2, 1))
        .build()
        .unwrap();
    let (broken, proposes, _) = Split::new(1, true, false);
    let broken = hive.spawn(broken);
    let (steady, _, _) = Split::new(2, false, false);
    hive.spawn(steady);
    let mut supervised_in = Vec::new();
    for round in 1..=7_u64 {
        let decision = hive.decide().await.unwrap();
        if !decision.supervised.is_empty() {
            assert_eq!(decision.supervised[0].failures, 2);
            supervised_in.push(round);
        }
    }
    // Fails 1, 2 (quarantined through 3), fails 4, 5 (through 6), fails 7.
    assert_eq!(supervised_in, [2, 5]);
    assert_eq!(proposes.load(Ordering::SeqCst), 5);
    assert!(hive.contains(broken));
}
