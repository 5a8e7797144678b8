//! Batch voters (`Agent::vote_all`) beyond the covered cases: an answer with one vote too many
//! ("too few or too many votes is recorded as WrongVoteCount; the votes given for the first
//! contests still count"), and batch voters that declare an interest (by keys or by predicate):
//! "an agent is never asked about a contest it has no interest in".

mod support;

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, FailureKind, Hive, Interest,
    Snapshot, Vote, VoterChoice,
};
use parking_lot::Mutex;
use support::{add, Ledger, LedgerProposal};

#[derive(Clone, Copy)]
enum Answer {
    Preferred,
    OneTooMany,
}

/// Proposes `(id, key)` if any; votes in batches, recording the keys it was asked about.
struct Batcher {
    proposal: Option<(u64, u64)>,
    answer: Answer,
    interest: Interest<u64>,
    matching: Option<u64>,
    asked: Arc<Mutex<Vec<Vec<u64>>>>,
}

impl Batcher {
    fn new(answer: Answer) -> Self {
        Self {
            proposal: None,
            answer,
            interest: Interest::All,
            matching: None,
            asked: Arc::default(),
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

    fn batch_votes(&self) -> bool {
        true
    }

    async fn vote_all(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contests: &[&Contest<Ledger>],
    ) -> Result<Vec<Vote>, AgentError> {
        self.asked
            .lock()
            .push(contests.iter().map(|contest| contest.key).collect());
        let mut votes: Vec<Vote> = contests
            .iter()
            .map(|contest| contest.preferred().map_or(Vote::Abstain, Vote::For))
            .collect();
        if let Answer::OneTooMany = self.answer {
            votes.push(votes[0]);
        }
        Ok(votes)
    }

    fn interest(&self) -> Interest<u64> {
        self.interest.clone()
    }

    fn interested(&self, contest: &Contest<Ledger>) -> bool {
        self.matching.is_none_or(|key| contest.key == key)
    }
}

/// Three contested keys (1, 2, 3), proposals 1..=6 from proposers that vote in no contest, so
/// the agents a test adds are the only voters.
fn contested_hive() -> Hive<Ledger> {
    let hive = Hive::builder(Ledger::default())
        .policy(ConsensusPolicy::majority())
        .agent_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for (id, key) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)] {
        hive.spawn(Batcher {
            proposal: Some((id, key)),
            interest: Interest::Keys(Vec::new()),
            ..Batcher::new(Answer::Preferred)
        });
    }
    hive
}

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the round ends")
}

#[tokio::test]
async fn a_batch_vote_with_one_vote_too_many_is_a_failure_and_its_votes_still_count() {
    let hive = contested_hive();
    let agent = hive.spawn(Batcher::new(Answer::OneTooMany));
    let decision = bounded(hive.decide()).await.unwrap();
    assert_eq!(decision.ballots.len(), 3);
    let failures: Vec<_> = decision
        .failures
        .iter()
        .filter(|failure| failure.agent == agent)
        .collect();
    assert_eq!(failures.len(), 1, "{:?}", decision.failures);
    assert_eq!(
        failures[0].kind,
        FailureKind::WrongVoteCount {
            contests: 3,
            votes: 4
        }
    );
    for ballot in &decision.ballots {
        assert!(
            matches!(ballot.choice_of(agent), Some(VoterChoice::For(_))),
            "the votes for the first contests count: {ballot}"
        );
    }
}

#[tokio::test]
async fn a_batch_voter_interested_in_one_key_is_asked_only_about_that_contest() {
    let hive = contested_hive();
    let batcher = Batcher {
        interest: Interest::Keys(vec![2]),
        ..Batcher::new(Answer::Preferred)
    };
    let asked = Arc::clone(&batcher.asked);
    let agent = hive.spawn(batcher);
    let decision = bounded(hive.decide()).await.unwrap();
    assert!(decision.failures.is_empty(), "{:?}", decision.failures);
    assert_eq!(*asked.lock(), vec![vec![2]]);
    for ballot in &decision.ballots {
        assert_eq!(
            ballot.choice_of(agent).is_some(),
            ballot.key == 2,
            "{ballot:#}"
        );
    }
}

#[tokio::test]
async fn a_batch_voter_matching_by_predicate_is_asked_only_where_it_says() {
    let hive = contested_hive();
    let batcher = Batcher {
        interest: Interest::Matching,
        matching: Some(3),
        ..Batcher::new(Answer::Preferred)
    };
    let asked = Arc::clone(&batcher.asked);
    let agent = hive.spawn(batcher);
    let decision = bounded(hive.decide()).await.unwrap();
    assert!(decision.failures.is_empty(), "{:?}", decision.failures);
    assert_eq!(*asked.lock(), vec![vec![3]]);
    for ballot in &decision.ballots {
        assert_eq!(ballot.choice_of(agent).is_some(), ballot.key == 3);
    }
}

#[tokio::test]
async fn a_batch_voter_interested_in_no_contest_of_the_round_is_not_called() {
    let hive = contested_hive();
    let batcher = Batcher {
        interest: Interest::Keys(vec![99]),
        ..Batcher::new(Answer::Preferred)
    };
    let asked = Arc::clone(&batcher.asked);
    hive.spawn(batcher);
    let decision = bounded(hive.decide()).await.unwrap();
    assert!(decision.failures.is_empty(), "{:?}", decision.failures);
    assert!(asked.lock().is_empty(), "asked about {:?}", asked.lock());
}
