//! Interested voters: an agent declares which contests it votes on (by key or by a predicate) and is
//! not asked otherwise; a contest's electorate is the agents interested in it.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, ConsensusPolicy, Contest, Hive, Interest,
    RejectReason, Snapshot, Tally, Vote,
};
use support::{add, Ledger, LedgerProposal};

/// Proposes `id` writing `key` (if any), votes for the preferred candidate, declares `interest`
/// (keys, or a predicate: contests on even keys), and counts the contests it is asked about.
struct Voter {
    proposal: Option<(u64, u64)>,
    interest: Interest<u64>,
    asked: Arc<AtomicUsize>,
    panics: bool,
}

impl Voter {
    fn new(proposal: Option<(u64, u64)>, interest: Interest<u64>) -> (Self, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let voter = Self {
            proposal,
            interest,
            asked: Arc::clone(&asked),
            panics: false,
        };
        (voter, asked)
    }
}

impl Agent<Ledger> for Voter {
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
        self.asked.fetch_add(1, Ordering::SeqCst);
        Ok(support::preferred(contest))
    }

    fn interest(&self) -> Interest<u64> {
        self.interest.clone()
    }

    fn interested(&self, contest: &Contest<Ledger>) -> bool {
        assert!(!self.panics, "predicate exploded");
        contest.key % 2 == 0
    }
}

/// A hive with two contested keys (1 and 2, two proposals each) and no other voters, under
/// unanimity (so that no ballot settles before every interested voter is asked).
fn contested_hive() -> Hive<Ledger> {
    let hive = Hive::builder(Ledger::default())
        .policy(ConsensusPolicy::unanimous())
        .build()
        .unwrap();
    for (id, key) in [(1, 1), (2, 1), (3, 2), (4, 2)] {
        hive.spawn(Voter::new(Some((id, key)), Interest::Keys(vec![key])).0);
    }
    hive
}

#[tokio::test]
async fn an_agent_interested_in_some_keys_is_asked_only_about_contests_on_them() {
    let hive = contested_hive();
    let (by_key, asked_by_key) = Voter::new(None, Interest::Keys(vec![2, 2, 7]));
    let (everything, asked_everything) = Voter::new(None, Interest::All);
    let by_key = hive.spawn(by_key);
    let everything = hive.spawn(everything);

    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.ballots.len(), 2);
    assert_eq!(asked_by_key.load(Ordering::SeqCst), 1);
    assert_eq!(asked_everything.load(Ordering::SeqCst), 2);
    for ballot in &decision.ballots {
        // The two proposers of the key, the agent of every contest, and the one keyed on 2.
        let voters: Vec<_> = ballot.voters().map(|record| record.voter).collect();
        assert_eq!(voters.len(), if ballot.key == 2 { 4 } else { 3 });
        assert!(voters.contains(&everything));
        assert_eq!(voters.contains(&by_key), ballot.key == 2);
    }
    assert_eq!(decision.accepted.len(), 2);
    assert_eq!(decision.rejected.len(), 2);
}

#[tokio::test]
async fn an_agent_matching_by_predicate_is_asked_only_where_it_says() {
    let hive = contested_hive();
    let (matching, asked) = Voter::new(None, Interest::Matching);
    let matching = hive.spawn(matching);
    let decision = hive.decide().await.unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    let on_two = decision.ballots.iter().find(|b| b.key == 2).unwrap();
    assert!(on_two.choice_of(matching).is_some());
    let on_one = decision.ballots.iter().find(|b| b.key == 1).unwrap();
    assert!(on_one.choice_of(matching).is_none());
}

#[tokio::test]
async fn a_panicking_predicate_is_the_agents_failure_once_and_counts_as_no_interest() {
    let hive = contested_hive();
    let (mut matching, asked) = Voter::new(None, Interest::Matching);
    matching.panics = true;
    let id = hive.spawn(matching);
    let decision = hive.decide().await.unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 0);
    assert_eq!(decision.accepted.len(), 2);
    // One failure for the round, not one per contest: its predicate is not called again.
    let failures: Vec<_> = decision
        .failures
        .iter()
        .filter(|failure| failure.agent == id)
        .collect();
    assert_eq!(failures.len(), 1, "{:?}", decision.failures);
    assert_eq!(failures[0].phase, hivekit_hive::Phase::Vote);
    assert!(matches!(
        failures[0].kind,
        hivekit_hive::FailureKind::Panicked { .. }
    ));
    assert_eq!(hive.stats().panics, 1);
}

#[tokio::test]
async fn a_contest_nobody_is_interested_in_ends_without_quorum() {
    let hive = Hive::new(Ledger::default());
    let (first, asked_first) = Voter::new(Some((1, 5)), Interest::Keys(vec![9]));
    let (second, asked_second) = Voter::new(Some((2, 5)), Interest::Keys(vec![]));
    hive.spawn(first);
    hive.spawn(second);
    let decision = hive.decide().await.unwrap();
    assert_eq!(asked_first.load(Ordering::SeqCst), 0);
    assert_eq!(asked_second.load(Ordering::SeqCst), 0);
    assert!(matches!(decision.ballots[0].tally, Tally::NoQuorum { .. }));
    assert_eq!(
        decision.rejection(hive_id(1)),
        Some(&RejectReason::NoQuorum)
    );
    assert!(decision.accepted.is_empty());
}

#[tokio::test]
async fn the_quorum_counts_only_the_interested_voters() {
    // Unanimity among the interested: ten bystanders with no interest do not block it.
    let hive = Hive::builder(Ledger::default())
        .policy(ConsensusPolicy::unanimous())
        .build()
        .unwrap();
    hive.spawn(Voter::new(Some((1, 3)), Interest::Keys(vec![3])).0);
    hive.spawn(Voter::new(Some((2, 3)), Interest::Keys(vec![3])).0);
    let mut bystanders = Vec::new();
    for _ in 0..10 {
        let (voter, asked) = Voter::new(None, Interest::Keys(vec![100]));
        hive.spawn(voter);
        bystanders.push(asked);
    }
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.ballots[0].voters().count(), 2);
    assert_eq!(decision.accepted, vec![hive_id(1)]);
    assert!(bystanders
        .iter()
        .all(|asked| asked.load(Ordering::SeqCst) == 0));
}

fn hive_id(id: u64) -> hivekit_hive::ProposalId {
    hivekit_hive::ProposalId(id)
}

#[tokio::test]
async fn an_interested_voters_electorate_follows_spawns_removals_and_weight_changes_between_rounds()
{
    // A round over the same members reuses the last round's electorates of interested voters;
    // a spawn, a removal or a weight change makes new ones.
    let hive = Hive::builder(Ledger::default())
        .policy(ConsensusPolicy::majority().with_weighted(true))
        .build()
        .unwrap();
    let a = hive.spawn(Voter::new(Some((1, 3)), Interest::Keys(vec![3])).0);
    let b = hive.spawn(Voter::new(Some((2, 3)), Interest::Keys(vec![3])).0);
    // Not interested: the contest is asked of its interested voters only.
    hive.spawn(Voter::new(None, Interest::Keys(vec![100])).0);
    let electorate = |decision: &hivekit_hive::Decision<Ledger>| -> Vec<(AgentId, f64)> {
        assert_eq!(decision.ballots.len(), 1);
        decision.ballots[0]
            .voters()
            .map(|record| (record.voter, record.weight))
            .collect()
    };
    for _ in 0..2 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(electorate(&decision), vec![(a, 1.0), (b, 1.0)]);
    }
    hive.set_weight(a, 3.0).unwrap();
    for _ in 0..2 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(electorate(&decision), vec![(a, 3.0), (b, 1.0)]);
    }
    let c = hive.spawn(Voter::new(None, Interest::Keys(vec![3])).0);
    for _ in 0..2 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(electorate(&decision), vec![(a, 3.0), (b, 1.0), (c, 1.0)]);
    }
    assert!(hive.remove(c));
    let decision = hive.decide().await.unwrap();
    assert_eq!(electorate(&decision), vec![(a, 3.0), (b, 1.0)]);
}

#[tokio::test]
async fn later_rounds_over_the_same_members_ask_the_same_interested_voters_as_the_first() {
    // The round keeps its list of contests and their voters from round to round (emptied after
    // each vote phase): no contest of an earlier round may be asked again, or its voters reused.
    let hive = contested_hive();
    let (by_key, asked_by_key) = Voter::new(None, Interest::Keys(vec![2]));
    let (matching, asked_matching) = Voter::new(None, Interest::Matching);
    let (everything, asked_everything) = Voter::new(None, Interest::All);
    hive.spawn(by_key);
    hive.spawn(matching);
    hive.spawn(everything);
    let voters_of = |decision: &hivekit_hive::Decision<Ledger>| {
        let mut ballots: Vec<(u64, Vec<AgentId>)> = decision
            .ballots
            .iter()
            .map(|ballot| (ballot.key, ballot.voters().map(|r| r.voter).collect()))
            .collect();
        ballots.sort();
        ballots
    };
    let first = voters_of(&hive.decide().await.unwrap());
    assert_eq!(first.len(), 2);
    for round in 2..=4 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(voters_of(&decision), first, "round {round}");
        assert_eq!(decision.accepted.len(), 2);
        assert_eq!(asked_by_key.load(Ordering::SeqCst), round);
        assert_eq!(asked_matching.load(Ordering::SeqCst), round);
        assert_eq!(asked_everything.load(Ordering::SeqCst), 2 * round);
    }
}
