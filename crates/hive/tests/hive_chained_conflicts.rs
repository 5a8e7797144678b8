//! Conflicts that chain across keys (A and B share key 1, B and C share key 2): each conflict group
//! is settled on its own and a proposal is accepted only if it wins every group it is in, so B
//! (which loses key 1 to A) still wins key 2 over C, and neither is applied (qa5's case). What a
//! user reads must be true: the reason names the winner of the conflict on the shared key, and
//! does not call it accepted.

use std::collections::BTreeMap;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Decision, Hive, Priority, ProposalId, ProposalOf,
    RejectReason, ResolutionStrategy, Snapshot, State,
};

/// Counters by key.
#[derive(Clone, Default, Debug)]
struct Tally(BTreeMap<u64, i64>);

impl State for Tally {
    type Key = u64;
    type Change = Vec<u64>;
    fn apply(&mut self, keys: &Vec<u64>) {
        for key in keys {
            *self.0.entry(*key).or_default() += 1;
        }
    }
}

/// Writes `keys` at `priority`.
struct Writer {
    keys: Vec<u64>,
    priority: Priority,
}

impl Agent<Tally> for Writer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        Ok(Some(
            ctx.proposal(self.keys.clone())
                .writes(self.keys.clone())
                .priority(self.priority),
        ))
    }
}

async fn chain(resolution: ResolutionStrategy) -> (Decision<Tally>, [ProposalId; 3]) {
    let hive = Hive::builder(Tally::default())
        .resolution(resolution)
        .build()
        .unwrap();
    let a = hive.spawn(Writer {
        keys: vec![1],
        priority: Priority::Critical,
    });
    let b = hive.spawn(Writer {
        keys: vec![1, 2],
        priority: Priority::High,
    });
    let c = hive.spawn(Writer {
        keys: vec![2],
        priority: Priority::Normal,
    });
    let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .expect("the round ends")
        .unwrap();
    let id_of = |agent| {
        decision
            .accepted
            .iter()
            .chain(decision.rejected.iter().map(|(id, _)| id))
            .copied()
            .find(|id| decision.proposer(*id) == Some(agent))
            .expect("every agent proposed")
    };
    let ids = [id_of(a), id_of(b), id_of(c)];
    (decision, ids)
}

/// A chain settled group by group: A wins key 1, B wins key 2 but lost key 1, so only A is applied;
/// C's reason names B, the winner of key 2, without calling it accepted.
fn settled_group_by_group(decision: &Decision<Tally>, [a, b, c]: [ProposalId; 3]) {
    assert_eq!(decision.accepted, [a], "{decision:?}");
    assert_eq!(
        decision.rejection(b),
        Some(&RejectReason::ConflictWith { winner: a })
    );
    let reason = decision.rejection(c).expect("C lost key 2");
    assert_eq!(reason, &RejectReason::ConflictWith { winner: b });
    let text = reason.to_string();
    assert!(text.starts_with("lost a conflict to proposal "), "{text}");
    assert!(!text.contains("accepted"), "{text}");
}

#[tokio::test]
async fn by_priority_a_chain_is_settled_group_by_group_and_says_so() {
    let (decision, ids) = chain(ResolutionStrategy::HighestPriority).await;
    settled_group_by_group(&decision, ids);
}

#[tokio::test]
async fn by_arrival_a_chain_is_settled_group_by_group_and_says_so() {
    let (decision, ids) = chain(ResolutionStrategy::FirstProposed).await;
    settled_group_by_group(&decision, ids);
}
