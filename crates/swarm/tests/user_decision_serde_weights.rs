//! Decisions whose ballots count weights of zero (`spawn_weighted(agent, 0.0)`: "a voter who counts
//! for nothing") still serialize both ways, as every decision does with the `serde` feature: no
//! non-finite figure (which JSON writes as `null`) in a tally or a voter's record.

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Decision, Hive, ProposalOf, Snapshot, State,
    Tally,
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

struct Writer;

impl Agent<Sum> for Writer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(Some(ctx.proposal(1).writes([0])))
    }
}

fn finite(tally: &Tally) -> bool {
    match tally {
        Tally::Decided { support, .. } => support.is_finite(),
        Tally::NoQuorum { turnout, required } => turnout.is_finite() && required.is_finite(),
        _ => true,
    }
}

async fn weightless(policy: ConsensusPolicy, weights: &[f64]) {
    let hive = Hive::builder(Sum::default())
        .policy(policy)
        .build()
        .unwrap();
    for &weight in weights {
        hive.spawn_weighted(Writer, weight).unwrap();
    }
    let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .unwrap()
        .unwrap();
    let ballot = &decision.ballots[0];
    assert!(
        finite(&ballot.tally),
        "{policy:?} {weights:?}: {decision:#}"
    );
    let json = serde_json::to_string(&decision).unwrap();
    let back: Decision<Sum> = serde_json::from_str(&json)
        .unwrap_or_else(|error| panic!("{policy:?} {weights:?}: {error}: {json}"));
    assert_eq!(back.accepted, decision.accepted);
    assert_eq!(
        back.ballots[0].voters().collect::<Vec<_>>(),
        ballot.voters().collect::<Vec<_>>()
    );
    assert!(back.ballots[0].tally.same_outcome(&ballot.tally));
}

#[tokio::test]
async fn a_decision_among_weightless_voters_serializes_both_ways() {
    for policy in [
        ConsensusPolicy::default(),
        ConsensusPolicy::majority().with_weighted(true),
        ConsensusPolicy::unanimous().with_weighted(true),
    ] {
        weightless(policy, &[0.0, 0.0, 0.0]).await;
        weightless(policy, &[0.0, 0.0, 1.0]).await;
        weightless(policy, &[1e-300, 1e-300]).await;
        weightless(policy, &[f64::MAX, f64::MAX, f64::MAX]).await;
    }
}
