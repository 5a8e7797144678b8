//! Roles and weights as a user sets them: the hive reports the role each agent declared, only the
//! voting roles vote, and a weight changed between rounds is the weight the next ballot counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, ConsensusPolicy, Contest, Decision, Hive, ProposalId,
    ProposalOf, Role, Snapshot, State, Supervision, Vote, VoterChoice,
};

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Proposes `proposal` on key 0 (if any) and votes for `choice`.
struct Member {
    role: Role,
    proposal: Option<u64>,
    choice: u64,
    votes: Arc<AtomicUsize>,
}

impl Agent<Sum> for Member {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(self
            .proposal
            .map(|id| ProposalOf::<Sum>::new(ProposalId(id), id).writes([0])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Sum>,
        _contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        self.votes.fetch_add(1, Ordering::SeqCst);
        Ok(Vote::For(ProposalId(self.choice)))
    }

    fn role(&self) -> Role {
        self.role.clone()
    }
}

async fn decide(hive: &Hive<Sum>) -> Decision<Sum> {
    tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .expect("the round ends")
        .expect("the round decides")
}

fn member(role: Role, proposal: Option<u64>, choice: u64, votes: &Arc<AtomicUsize>) -> Member {
    Member {
        role,
        proposal,
        choice,
        votes: votes.clone(),
    }
}

#[tokio::test]
async fn only_the_voting_roles_vote_and_each_agent_keeps_its_role() {
    let analyst_votes = Arc::new(AtomicUsize::new(0));
    let judge_votes = Arc::new(AtomicUsize::new(0));
    let judge = Role::Custom("judge".into());
    let hive = Hive::builder(Sum::default())
        .voting_roles([Role::Validator, judge.clone()])
        .build()
        .unwrap();
    let a = hive.spawn(member(Role::Analyzer, Some(1), 1, &analyst_votes));
    let b = hive.spawn(member(Role::Analyzer, Some(2), 1, &analyst_votes));
    let v = hive.spawn(member(Role::Validator, None, 2, &judge_votes));
    let j = hive.spawn(member(judge.clone(), None, 2, &judge_votes));
    assert_eq!(hive.role(a), Some(Role::Analyzer));
    assert_eq!(hive.role(v), Some(Role::Validator));
    assert_eq!(hive.role(j), Some(judge.clone()));
    assert_eq!(hive.agents_with_role(&Role::Analyzer), [a, b]);
    assert_eq!(hive.agents_with_role(&judge), [j]);
    for round in 1..=3 {
        let decision = decide(&hive).await;
        assert_eq!(decision.round, round);
        assert_eq!(decision.accepted, [ProposalId(2)], "{decision:#}");
        let voters: Vec<AgentId> = decision.ballots[0]
            .voters()
            .map(|record| record.voter)
            .collect();
        assert_eq!(voters, [v, j]);
    }
    assert_eq!(analyst_votes.load(Ordering::SeqCst), 0);
    assert_eq!(judge_votes.load(Ordering::SeqCst), 6);
    assert!(hive.remove(v));
    assert_eq!(hive.role(v), None);
    assert_eq!(hive.role(j), Some(judge));
    assert_eq!(hive.agents_with_role(&Role::Validator), []);
}

async fn weight_change(supervised: bool) {
    let votes = Arc::new(AtomicUsize::new(0));
    let mut builder = Hive::builder(Sum::default()).policy(ConsensusPolicy {
        weighted: true,
        ..ConsensusPolicy::majority()
    });
    if supervised {
        builder = builder.supervision(Supervision::remove(3));
    }
    let hive = builder.build().unwrap();
    // Proposers of 1 and 2 who vote for themselves; a heavy voter for 2.
    let one = hive.spawn(member(Role::Analyzer, Some(1), 1, &votes));
    let two = hive.spawn(member(Role::Analyzer, Some(2), 2, &votes));
    let heavy = hive
        .spawn_weighted(member(Role::Analyzer, None, 2, &votes), 5.0)
        .unwrap();
    for _ in 0..2 {
        let decision = decide(&hive).await;
        assert_eq!(decision.accepted, [ProposalId(2)], "{decision:#}");
    }
    // Make the first proposer weigh more than the other two together.
    hive.set_weight(one, 10.0).unwrap();
    hive.set_weight(heavy, 1.0).unwrap();
    assert_eq!(hive.weight(one), Some(10.0));
    for _ in 0..2 {
        let decision = decide(&hive).await;
        let ballot = &decision.ballots[0];
        let weights: Vec<(AgentId, f64)> = ballot
            .voters()
            .map(|record| (record.voter, record.weight))
            .collect();
        assert_eq!(weights, [(one, 10.0), (two, 1.0), (heavy, 1.0)]);
        assert_eq!(ballot.choice_of(one), Some(VoterChoice::For(ProposalId(1))));
        assert_eq!(decision.accepted, [ProposalId(1)], "{decision:#}");
    }
}

#[tokio::test]
async fn a_weight_changed_between_rounds_is_the_weight_the_next_ballot_counts() {
    weight_change(false).await;
}

#[tokio::test]
async fn a_weight_changed_between_rounds_counts_under_supervision_too() {
    weight_change(true).await;
}
