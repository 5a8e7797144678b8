//! `ResolutionStrategy::FirstProposed` settles by arrival at the round, not by agent or proposal id.

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, Proposal, ProposalId, ProposalOf, RejectReason,
    ResolutionStrategy, Snapshot, State,
};

#[derive(Clone, Debug, Default)]
struct Log(Vec<u64>);

impl State for Log {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0.push(*change);
    }
}

/// Writes key 0 with proposal `id`, after yielding `yields` times.
struct Writer {
    id: u64,
    yields: usize,
}

impl Agent<Log> for Writer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Log>,
    ) -> Result<Option<ProposalOf<Log>>, AgentError> {
        for _ in 0..self.yields {
            tokio::task::yield_now().await;
        }
        Ok(Some(
            Proposal::new(ProposalId(self.id), self.id).writes([0]),
        ))
    }
}

#[tokio::test]
async fn the_proposal_that_arrives_first_wins_even_from_a_later_agent_with_a_higher_id() {
    let hive = Hive::builder(Log::default())
        .resolution(ResolutionStrategy::FirstProposed)
        .build()
        .unwrap();
    let slow = hive.spawn(Writer { id: 1, yields: 3 });
    let fast = hive.spawn(Writer { id: 2, yields: 0 });
    let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .expect("round hung")
        .unwrap();
    assert_eq!(
        decision.proposers,
        vec![(ProposalId(2), fast), (ProposalId(1), slow)],
        "proposers are in arrival order"
    );
    assert_eq!(decision.accepted, vec![ProposalId(2)], "{decision}");
    assert_eq!(
        decision.rejected,
        vec![(
            ProposalId(1),
            RejectReason::ConflictWith {
                winner: ProposalId(2)
            }
        )]
    );
    assert_eq!(hive.memory().load().0, vec![2]);
}
