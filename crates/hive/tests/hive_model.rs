//! Property tests of whole rounds: random proposals with random read and write sets, settled by
//! every strategy, against the definition of a conflict.

mod support;

use std::sync::Arc;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, Hive, Priority, ProposalId,
    ResolutionStrategy, Snapshot, Vote,
};
use proptest::prelude::*;
use support::{add, Ledger, LedgerProposal};

#[derive(Debug, Clone)]
struct Spec {
    reads: Vec<u64>,
    writes: Vec<u64>,
    priority: usize,
    choice: usize,
}

struct Random {
    id: u64,
    spec: Spec,
}

impl Agent<Ledger> for Random {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let mut proposal = add(self.id, 1_000 + self.id, 1)
            .reads(self.spec.reads.iter().copied())
            .priority(Priority::ALL[self.spec.priority]);
        proposal.writes = self.spec.writes.clone();
        Ok(Some(proposal))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        let candidates = &contest.candidates;
        Ok(Vote::For(
            candidates[self.spec.choice % candidates.len()].id,
        ))
    }
}

fn conflict(a: &Spec, b: &Spec) -> bool {
    a.writes
        .iter()
        .any(|key| b.writes.contains(key) || b.reads.contains(key))
        || b.writes.iter().any(|key| a.reads.contains(key))
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(0u64..8, 0..3),
        prop::collection::vec(0u64..8, 0..3),
        0usize..4,
        any::<usize>(),
    )
        .prop_map(|(reads, writes, priority, choice)| Spec {
            reads,
            writes,
            priority,
            choice,
        })
}

fn strategy_strategy() -> impl Strategy<Value = ResolutionStrategy> {
    prop_oneof![
        Just(ResolutionStrategy::Vote),
        Just(ResolutionStrategy::HighestPriority),
        Just(ResolutionStrategy::FirstProposed),
        Just(ResolutionStrategy::RejectAll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the proposals and the strategy: no two accepted proposals conflict, every proposal
    /// is accepted or rejected exactly once, only proposals that conflict with another are rejected,
    /// and the committed state holds exactly the accepted changes.
    #[test]
    fn accepted_proposals_never_conflict(
        specs in prop::collection::vec(spec_strategy(), 1..24),
        resolution in strategy_strategy(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let hive = Hive::builder(Ledger::default())
            .resolution(resolution)
            .policy(ConsensusPolicy::default())
            .build()
            .unwrap();
        let specs = Arc::new(specs);
        for (id, spec) in specs.iter().enumerate() {
            hive.spawn(Random { id: id as u64, spec: spec.clone() });
        }
        let decision = runtime.block_on(hive.decide()).unwrap();
        prop_assert_eq!(decision.accepted.len() + decision.rejected.len(), specs.len());
        let spec = |id: ProposalId| &specs[id.0 as usize];
        for (i, a) in decision.accepted.iter().enumerate() {
            for b in &decision.accepted[i + 1..] {
                prop_assert!(!conflict(spec(*a), spec(*b)), "accepted {} and {} conflict", a, b);
            }
        }
        for (id, _) in &decision.rejected {
            let conflicts_with_someone = (0..specs.len())
                .filter(|&other| other != id.0 as usize)
                .any(|other| conflict(spec(*id), &specs[other]));
            prop_assert!(conflicts_with_someone, "{} was rejected without a conflict", id);
        }
        if matches!(resolution, ResolutionStrategy::HighestPriority | ResolutionStrategy::FirstProposed) {
            // A total order: its first proposal wins every group it is in, so it is accepted.
            prop_assert!(!decision.accepted.is_empty());
        }
        let memory = hive.memory().load();
        let mut logged = memory.log.clone();
        logged.sort();
        let mut accepted = decision.accepted.clone();
        accepted.sort();
        prop_assert_eq!(logged, accepted);
    }
}
