//! An agent that panics in the phases beyond `propose` and `vote`: a batch voter panicking in
//! `vote_all`, and an agent whose `interested` predicate panics. The round goes on, and the panic
//! is recorded against the agent, as DESIGN.md promises for an agent that panics.

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, FailureKind, Hive, Interest,
    ProposalId, ProposalOf, Snapshot, State, Vote,
};

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = &'static str;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

struct Writer(u64);

impl Agent<Sum> for Writer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(Some(
            hivekit_hive::Proposal::new(ProposalId(self.0), self.0).writes(["k"]),
        ))
    }
}

/// Votes in batches and panics doing it.
struct BatchPanics;

impl Agent<Sum> for BatchPanics {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(None)
    }

    fn batch_votes(&self) -> bool {
        true
    }

    async fn vote_all(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        _contests: &[&Contest<Sum>],
    ) -> Result<Vec<Vote>, AgentError> {
        panic!("batch exploded")
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_voter_that_panics_is_recorded_and_the_ballot_still_settles() {
    let hive = Hive::builder(Sum::default())
        .policy(ConsensusPolicy::majority())
        .agent_timeout(Duration::from_secs(5))
        .build()
        .expect("valid");
    hive.spawn(Writer(1));
    hive.spawn(Writer(2));
    hive.spawn(Writer(3));
    let panicking = hive.spawn(BatchPanics);
    let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("no hang")
        .expect("decides");
    assert_eq!(decision.accepted.len(), 1, "{decision:?}");
    assert!(
        decision.failures.iter().any(|failure| failure.agent == panicking
            && matches!(&failure.kind, FailureKind::Panicked { message } if message.contains("batch exploded"))),
        "{:?}",
        decision.failures
    );
}

/// Votes only where its predicate says so, and the predicate panics.
struct PickyPanics;

impl Agent<Sum> for PickyPanics {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(None)
    }

    fn interest(&self) -> Interest<&'static str> {
        Interest::Matching
    }

    fn interested(&self, _contest: &Contest<Sum>) -> bool {
        panic!("predicate exploded")
    }
}

#[tokio::test(start_paused = true)]
async fn an_agent_whose_interest_predicate_panics_is_left_out_recorded_and_the_round_decides() {
    let hive = Hive::builder(Sum::default())
        .policy(ConsensusPolicy::majority())
        .agent_timeout(Duration::from_secs(5))
        .build()
        .expect("valid");
    hive.spawn(Writer(1));
    hive.spawn(Writer(2));
    let picky = hive.spawn(PickyPanics);
    let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("no hang")
        .expect("decides");
    assert_eq!(decision.accepted.len(), 1, "{decision:?}");
    assert_eq!(decision.ballots.len(), 1);
    assert_eq!(
        decision.ballots[0].choice_of(picky),
        None,
        "an agent whose predicate panicked is not in the electorate"
    );
    assert!(
        decision.failures.iter().any(|failure| failure.agent == picky
            && matches!(&failure.kind, FailureKind::Panicked { message } if message.contains("predicate exploded"))),
        "the panic is the agent's failure: {:?}",
        decision.failures
    );
    assert!(hive.contains(picky));
}
