//! What any reader of a decision relies on, over many random rounds and every resolution
//! strategy: each proposal received is either accepted or rejected (once), no two accepted
//! proposals conflict, every rejection names a reason the round can explain, and the committed
//! state is the base state with the accepted changes applied in the listed order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, Decision, Hive, Priority,
    ProposalId, ProposalOf, RejectReason, ResolutionStrategy, Snapshot, State, Vote,
};

#[derive(Clone, Default, Debug, PartialEq)]
struct Applied(Vec<u64>);

impl State for Applied {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0.push(*change);
    }
}

fn next(seed: &AtomicU64) -> u64 {
    let mut x = seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// Every proposal made, by id: the keys it reads and the keys it writes.
type Made = Arc<Mutex<BTreeMap<ProposalId, (Vec<u64>, Vec<u64>)>>>;

struct Random {
    seed: Arc<AtomicU64>,
    made: Made,
}

impl Agent<Applied> for Random {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Applied>,
    ) -> Result<Option<ProposalOf<Applied>>, AgentError> {
        let r = next(&self.seed);
        if r % 7 == 0 {
            return Ok(None);
        }
        let mut proposal = ctx.proposal(ctx.proposal_id().0);
        for key in 0..6u64 {
            match (r >> (key * 3 + 3)) % 5 {
                0 => proposal = proposal.writes([key]),
                1 => proposal = proposal.reads([key]),
                _ => {}
            }
        }
        let priority = match (r >> 40) % 4 {
            0 => Priority::Low,
            1 => Priority::Normal,
            2 => Priority::High,
            _ => Priority::Critical,
        };
        self.made.lock().insert(
            proposal.id,
            (proposal.reads.clone(), proposal.writes.clone()),
        );
        Ok(Some(proposal.priority(priority)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _: &Snapshot<Applied>,
        contest: &Contest<Applied>,
    ) -> Result<Vote, AgentError> {
        let r = next(&self.seed) as usize;
        if r % 5 == 0 {
            return Ok(Vote::Abstain);
        }
        Ok(Vote::For(
            contest.candidates[r % contest.candidates.len()].id,
        ))
    }
}

fn check(decision: &Decision<Applied>, made: &Made, before: &Applied, after: &Applied) {
    let proposed: Vec<ProposalId> = decision.proposers.iter().map(|(id, _)| *id).collect();
    assert_eq!(proposed.len(), decision.proposals, "{decision:#}");
    let accepted: BTreeSet<ProposalId> = decision.accepted.iter().copied().collect();
    let rejected: BTreeSet<ProposalId> = decision.rejected.iter().map(|(id, _)| *id).collect();
    assert_eq!(accepted.len(), decision.accepted.len(), "accepted twice");
    assert_eq!(rejected.len(), decision.rejected.len(), "rejected twice");
    assert!(accepted.is_disjoint(&rejected), "{decision:#}");
    let all: BTreeSet<ProposalId> = proposed.iter().copied().collect();
    let decided: BTreeSet<ProposalId> = accepted.union(&rejected).copied().collect();
    assert_eq!(
        all, decided,
        "every proposal is accepted or rejected: {decision:#}"
    );
    for (id, reason) in &decision.rejected {
        match reason {
            RejectReason::LostVote { winner } | RejectReason::ConflictWith { winner } => {
                assert_ne!(winner, id, "{decision:#}");
                assert!(all.contains(winner), "{decision:#}");
            }
            _ => {}
        }
    }
    // No two accepted proposals conflict: no key one writes that the other reads or writes.
    let made = made.lock();
    for (i, a) in decision.accepted.iter().enumerate() {
        for b in &decision.accepted[i + 1..] {
            let (a_reads, a_writes) = &made[a];
            let (b_reads, b_writes) = &made[b];
            for key in a_writes {
                assert!(
                    !b_writes.contains(key) && !b_reads.contains(key),
                    "accepted {a} and {b} conflict on key {key}: {:?} / {:?}\n{decision:#}",
                    made[a],
                    made[b]
                );
            }
            for key in b_writes {
                assert!(
                    !a_reads.contains(key),
                    "accepted {a} and {b} conflict on key {key}: {:?} / {:?}\n{decision:#}",
                    made[a],
                    made[b]
                );
            }
        }
    }
    let mut replayed = before.clone();
    for id in &decision.accepted {
        replayed.apply(&id.0);
    }
    assert_eq!(&replayed, after, "{decision:#}");
    let expected_version = if decision.accepted.is_empty() {
        decision.base_version
    } else {
        decision.base_version + 1
    };
    assert_eq!(decision.version, expected_version);
}

async fn rounds(resolution: ResolutionStrategy, policy: ConsensusPolicy, seed: u64) {
    let hive = Hive::builder(Applied::default())
        .resolution(resolution)
        .policy(policy)
        .build()
        .unwrap();
    let seed = Arc::new(AtomicU64::new(seed));
    let made = Made::default();
    for _ in 0..9 {
        hive.spawn(Random {
            seed: seed.clone(),
            made: made.clone(),
        });
    }
    for _ in 0..40 {
        let before = hive.memory().load();
        let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
            .await
            .unwrap()
            .unwrap();
        let after = hive.memory().load();
        assert_eq!(after.version(), decision.version);
        check(&decision, &made, &before, &after);
    }
}

#[tokio::test]
async fn random_rounds_settled_by_vote_decide_consistently() {
    for seed in 1..4 {
        rounds(ResolutionStrategy::Vote, ConsensusPolicy::majority(), seed).await;
        rounds(ResolutionStrategy::Vote, ConsensusPolicy::default(), seed).await;
    }
}

#[tokio::test]
async fn random_rounds_settled_without_a_vote_decide_consistently() {
    for seed in 1..4 {
        for resolution in [
            ResolutionStrategy::HighestPriority,
            ResolutionStrategy::FirstProposed,
            ResolutionStrategy::RejectAll,
        ] {
            rounds(resolution, ConsensusPolicy::default(), seed).await;
        }
    }
}
