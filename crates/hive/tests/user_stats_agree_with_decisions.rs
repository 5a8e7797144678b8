//! The hive's counters agree with its decisions: every vote, failure and rejection a round's
//! decision records is counted in `Hive::stats` once, and each ballot's `votes` and `cancelled`
//! agree with its voters' choices.

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, Decision, FailureKind, Hive,
    HiveStats, Phase, ProposalId, ProposalOf, Snapshot, State, Vote, VoterChoice,
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

#[derive(Clone, Copy)]
enum Act {
    Ok,
    Hang,
    Panic,
    Fail,
    Invalid,
}

struct Agentish {
    proposal: Option<(u64, u64)>,
    propose: Act,
    vote: Act,
}

async fn act(act: Act) -> Result<(), AgentError> {
    match act {
        Act::Ok | Act::Invalid => Ok(()),
        Act::Hang => {
            std::future::pending::<()>().await;
            Ok(())
        }
        Act::Panic => panic!("agent panics"),
        Act::Fail => Err(AgentError::msg("agent fails")),
    }
}

impl Agent<Sum> for Agentish {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        act(self.propose).await?;
        Ok(self
            .proposal
            .map(|(id, key)| ProposalOf::<Sum>::new(ProposalId(id), id).writes([key])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Sum>,
        contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        act(self.vote).await?;
        if let Act::Invalid = self.vote {
            return Ok(Vote::For(ProposalId(999)));
        }
        Ok(contest.preferred().map_or(Vote::Abstain, Vote::For))
    }
}

fn add(total: &mut HiveStats, decision: &Decision<Sum>) {
    total.rounds += 1;
    total.commits += u64::from(decision.version != decision.base_version);
    total.rebases += u64::from(decision.rebased);
    total.proposals += decision.proposals as u64;
    total.accepted += decision.accepted.len() as u64;
    total.rejected += decision.rejected.len() as u64;
    total.conflicts += decision.ballots.len() as u64;
    for ballot in &decision.ballots {
        total.votes += ballot.votes as u64;
        total.cancelled_votes += ballot.cancelled as u64;
        let counted = ballot
            .voters()
            .filter(|record| matches!(record.choice, VoterChoice::For(_) | VoterChoice::Abstain))
            .count();
        let not_counted = ballot
            .voters()
            .filter(|record| record.choice == VoterChoice::NotCounted)
            .count();
        assert_eq!(ballot.votes, counted, "{ballot:#}");
        assert_eq!(ballot.cancelled, not_counted, "{ballot:#}");
    }
    for failure in &decision.failures {
        match failure.kind {
            FailureKind::TimedOut | FailureKind::Cancelled => total.timeouts += 1,
            FailureKind::Panicked { .. } => total.panics += 1,
            FailureKind::Errored { .. } => total.errors += 1,
            _ => total.invalid += 1,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_counters_are_the_sum_of_the_decisions() {
    let hive = Hive::builder(Sum::default())
        .agent_timeout(Duration::from_millis(100))
        .policy(ConsensusPolicy::unanimous())
        .build()
        .unwrap();
    let agents = [
        (Some((1, 0)), Act::Ok, Act::Ok),
        (Some((2, 0)), Act::Ok, Act::Hang),
        (Some((3, 1)), Act::Ok, Act::Panic),
        (Some((4, 1)), Act::Ok, Act::Invalid),
        (Some((5, 2)), Act::Fail, Act::Fail),
        (Some((1, 3)), Act::Ok, Act::Ok),
        (None, Act::Hang, Act::Ok),
        (None, Act::Panic, Act::Ok),
        (Some((6, 1)), Act::Ok, Act::Ok),
    ];
    for (proposal, propose, vote) in agents {
        hive.spawn(Agentish {
            proposal,
            propose,
            vote,
        });
    }
    let mut total = HiveStats::default();
    for _ in 0..3 {
        let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
            .await
            .unwrap()
            .unwrap();
        assert!(
            decision
                .failures
                .iter()
                .any(|failure| failure.phase == Phase::Vote),
            "{decision:#}"
        );
        add(&mut total, &decision);
    }
    assert_eq!(hive.stats(), total);
}
