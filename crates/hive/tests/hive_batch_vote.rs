//! Batch votes: an agent may answer all of its contests in one call (`Agent::vote_all`); the default
//! asks `Agent::vote` about them one by one.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, FailureKind, Hive, ProposalId,
    ResourceCost, Snapshot, Vote, VoterChoice,
};
use support::{add, Ledger, LedgerProposal};

/// How a [`Batcher`] answers its batch call.
#[derive(Clone, Copy)]
enum Answer {
    /// Its own `vote_all`: the preferred candidate of each contest.
    Preferred,
    /// The trait's default `vote_all` (one `vote` per contest).
    Default,
    /// One vote fewer than asked.
    Short,
    /// An error.
    Fail,
    /// Never.
    Hang,
}

/// Proposes `id` on `key` (if any) and votes in batches.
struct Batcher {
    proposal: Option<(u64, u64)>,
    answer: Answer,
    heavy: bool,
    batches: Arc<AtomicUsize>,
    votes: Arc<AtomicUsize>,
}

impl Batcher {
    fn new(answer: Answer) -> Self {
        Self {
            proposal: None,
            answer,
            heavy: false,
            batches: Arc::default(),
            votes: Arc::default(),
        }
    }
}

impl Agent<Ledger> for Batcher {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(self.proposal.map(|(id, key)| add(id, key, 1)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.votes.fetch_add(1, Ordering::SeqCst);
        Ok(support::preferred(contest))
    }

    fn batch_votes(&self) -> bool {
        true
    }

    async fn vote_all(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Ledger>,
        contests: &[&Contest<Ledger>],
    ) -> Result<Vec<Vote>, AgentError> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let preferred = || contests.iter().map(|contest| support::preferred(contest));
        match self.answer {
            Answer::Preferred => Ok(preferred().collect()),
            Answer::Default => {
                let mut votes = Vec::new();
                for contest in contests {
                    votes.push(self.vote(ctx, view, contest).await?);
                }
                Ok(votes)
            }
            Answer::Short => Ok(preferred().take(contests.len() - 1).collect()),
            Answer::Fail => Err(AgentError::msg("prompt rejected")),
            Answer::Hang => std::future::pending().await,
        }
    }

    fn cost(&self) -> ResourceCost {
        support::cost(self.heavy)
    }
}

/// A trait-default batch voter: `batch_votes` on, `vote_all` not overridden.
struct DefaultBatcher {
    votes: Arc<AtomicUsize>,
}

impl Agent<Ledger> for DefaultBatcher {
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
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.votes.fetch_add(1, Ordering::SeqCst);
        Ok(support::preferred(contest))
    }

    fn batch_votes(&self) -> bool {
        true
    }
}

/// A unanimous hive with three contested keys (1, 2, 3; proposals 1..=6 from proposers that vote
/// in batches too), so every voter is asked about every contest.
fn contested_hive() -> Hive<Ledger> {
    let hive = Hive::builder(Ledger::default())
        .policy(ConsensusPolicy::unanimous())
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for (id, key) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)] {
        hive.spawn(Batcher {
            proposal: Some((id, key)),
            ..Batcher::new(Answer::Preferred)
        });
    }
    hive
}

#[tokio::test]
async fn a_batch_voter_answers_all_its_contests_in_one_call_per_round() {
    let hive = contested_hive();
    let batcher = Batcher::new(Answer::Preferred);
    let (batches, votes) = (Arc::clone(&batcher.batches), Arc::clone(&batcher.votes));
    let agent = hive.spawn(batcher);
    for round in 1..=2 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(decision.ballots.len(), 3);
        assert!(decision.failures.is_empty());
        assert_eq!(batches.load(Ordering::SeqCst), round);
        for ballot in &decision.ballots {
            assert_eq!(
                ballot.choice_of(agent),
                Some(VoterChoice::For(ballot.candidates[0]))
            );
        }
        let mut accepted = decision.accepted.clone();
        accepted.sort();
        assert_eq!(accepted, vec![ProposalId(1), ProposalId(3), ProposalId(5)]);
    }
    assert_eq!(votes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_default_batch_vote_asks_vote_about_each_contest_one_by_one() {
    let hive = contested_hive();
    let votes = Arc::new(AtomicUsize::new(0));
    let agent = hive.spawn(DefaultBatcher {
        votes: Arc::clone(&votes),
    });
    let decision = hive.decide().await.unwrap();
    assert_eq!(votes.load(Ordering::SeqCst), 3);
    assert!(decision
        .ballots
        .iter()
        .all(|b| b.choice_of(agent).is_some()));
    assert_eq!(decision.accepted.len(), 3);
}

#[tokio::test]
async fn a_batch_vote_with_too_few_votes_is_a_failure_and_its_votes_still_count() {
    let hive = contested_hive();
    let agent = hive.spawn(Batcher::new(Answer::Short));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.failures.len(), 1);
    assert_eq!(decision.failures[0].agent, agent);
    assert_eq!(
        decision.failures[0].kind,
        FailureKind::WrongVoteCount {
            contests: 3,
            votes: 2
        }
    );
    let voted = decision
        .ballots
        .iter()
        .filter(|ballot| matches!(ballot.choice_of(agent), Some(VoterChoice::For(_))))
        .count();
    assert_eq!(voted, 2);
    assert!(decision
        .to_string()
        .contains("answered 2 votes for 3 contests"));
}

#[tokio::test]
async fn a_failing_batch_voter_is_one_failure_and_absent_from_every_ballot() {
    let hive = contested_hive();
    let agent = hive.spawn(Batcher::new(Answer::Fail));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.failures.len(), 1);
    assert!(matches!(
        decision.failures[0].kind,
        FailureKind::Errored { .. }
    ));
    for ballot in &decision.ballots {
        assert_eq!(ballot.choice_of(agent), Some(VoterChoice::Failed));
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_batch_voter_times_out_once() {
    let hive = contested_hive();
    let agent = hive.spawn(Batcher::new(Answer::Hang));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.failures.len(), 1);
    assert_eq!(decision.failures[0].agent, agent);
    assert_eq!(decision.failures[0].kind, FailureKind::TimedOut);
    assert_eq!(decision.elapsed, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_batch_voter_is_not_waited_for_once_every_ballot_is_settled() {
    // Majority: the six proposers settle every ballot without the seventh voter.
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for (id, key) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)] {
        hive.spawn(Batcher {
            proposal: Some((id, key)),
            ..Batcher::new(Answer::Preferred)
        });
    }
    hive.spawn(Batcher::new(Answer::Hang));
    let decision = hive.decide().await.unwrap();
    assert!(decision.failures.is_empty());
    assert_eq!(decision.accepted.len(), 3);
    assert_eq!(decision.elapsed, Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_batch_voter_runs_as_its_own_task_and_counts() {
    let hive = contested_hive();
    let batcher = Batcher {
        heavy: true,
        ..Batcher::new(Answer::Default)
    };
    let votes = Arc::clone(&batcher.votes);
    let agent = hive.spawn(batcher);
    let decision = hive.decide().await.unwrap();
    assert!(decision.failures.is_empty());
    assert_eq!(votes.load(Ordering::SeqCst), 3);
    assert!(decision
        .ballots
        .iter()
        .all(|b| b.choice_of(agent).is_some()));
}
