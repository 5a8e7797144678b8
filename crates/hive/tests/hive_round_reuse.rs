//! What a round hands to the next one over the same members (its member array, rewritten with the
//! new round's contexts) and the propose phase's check for duplicate ids (no hashing while the ids
//! arrive in increasing order): every round still sees its own contexts, and every duplicate is
//! still found, whatever the order of the ids.

mod support;

use std::sync::{Arc, Mutex};

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, FailureKind, Hive, ProposalId, Snapshot,
};
use support::{Add, Ledger, LedgerProposal, Writer};

/// Proposes with the hive-assigned id, and records the context of every call.
struct Recorder {
    seen: Seen,
}

impl Agent<Ledger> for Recorder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let recorded = (ctx.round(), ctx.agent(), ctx.proposal_id());
        self.seen.lock().unwrap().push(recorded);
        let key = ctx.agent().0;
        Ok(Some(ctx.proposal(Add {
            id: ctx.proposal_id(),
            key,
            delta: 1,
        })))
    }
}

/// What every [`Recorder`] of a hive saw: (round, agent, proposal id) per call.
type Seen = Arc<Mutex<Vec<(u64, AgentId, ProposalId)>>>;

/// A hive of `count` recorders sharing one record of what they saw.
fn hive_of_recorders(count: usize) -> (Hive<Ledger>, Seen, Vec<AgentId>) {
    let hive = Hive::new(Ledger::default());
    let seen = Seen::default();
    let agents = (0..count)
        .map(|_| {
            hive.spawn(Recorder {
                seen: Arc::clone(&seen),
            })
        })
        .collect();
    (hive, seen, agents)
}

#[tokio::test]
async fn every_round_over_the_same_members_gives_each_agent_that_rounds_context() {
    let (hive, seen, agents) = hive_of_recorders(5);
    let mut all_ids = Vec::new();
    for round in 1..=4u64 {
        let decision = hive.decide().await.unwrap();
        assert_eq!(decision.round, round);
        let calls = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(calls.len(), agents.len(), "round {round}");
        for (called_round, agent, id) in &calls {
            assert_eq!(*called_round, round, "a context of an earlier round");
            assert!(agents.contains(agent));
            // The proposal the decision lists for this agent carries the id its context gave.
            assert!(decision.proposers.contains(&(*id, *agent)));
        }
        all_ids.extend(calls.iter().map(|(_, _, id)| *id));
        assert_eq!(decision.accepted.len(), agents.len());
    }
    let count = all_ids.len();
    all_ids.sort_unstable();
    all_ids.dedup();
    assert_eq!(all_ids.len(), count, "a proposal id was handed out twice");

    // A member spawned between rounds is asked with a context of its own in the next one.
    let late = hive.spawn(Recorder {
        seen: Arc::clone(&seen),
    });
    let decision = hive.decide().await.unwrap();
    let calls = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(calls.len(), agents.len() + 1);
    assert!(calls
        .iter()
        .any(|&(round, agent, _)| agent == late && round == decision.round));
}

/// Rounds running at once each take a member array of their own from what earlier rounds left
/// (one per round at once), so every round's agents still see that round's contexts, and no id
/// is handed out twice, however the rounds interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_at_once_over_the_same_members_each_give_every_agent_their_own_context() {
    let (hive, seen, agents) = hive_of_recorders(5);
    let mut decisions = Vec::new();
    for _ in 0..6 {
        let rounds: Vec<_> = (0..4)
            .map(|_| {
                let hive = hive.clone();
                tokio::spawn(async move { hive.decide().await.unwrap() })
            })
            .collect();
        for round in rounds {
            decisions.push(round.await.unwrap());
        }
    }
    let calls = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(calls.len(), decisions.len() * agents.len());
    for decision in &decisions {
        let own: Vec<_> = calls
            .iter()
            .filter(|(round, _, _)| *round == decision.round)
            .map(|&(_, agent, id)| (id, agent))
            .collect();
        assert_eq!(own.len(), agents.len(), "round {}", decision.round);
        for pair in &own {
            assert!(
                decision.proposers.contains(pair),
                "round {} saw a context of another round",
                decision.round
            );
        }
    }
    let mut ids: Vec<ProposalId> = calls.iter().map(|&(_, _, id)| id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), calls.len(), "a proposal id was handed out twice");
}

#[tokio::test]
async fn a_duplicate_of_an_earlier_id_after_ids_in_increasing_order_is_reported_naming_its_holder()
{
    let hive = Hive::new(Ledger::default());
    // On a current-thread runtime instant agents answer in the order they were asked, lowest
    // agent id first: ids 1, 2, 3, then 2 again.
    let _first = hive.spawn(Writer::new(1, 10));
    let holder = hive.spawn(Writer::new(2, 20));
    let _third = hive.spawn(Writer::new(3, 30));
    let duplicate = hive.spawn(Writer::new(2, 40));
    let decision = hive.decide().await.unwrap();
    assert_eq!(
        decision.accepted,
        [ProposalId(1), ProposalId(2), ProposalId(3)]
    );
    assert_eq!(decision.failures.len(), 1);
    assert_eq!(decision.failures[0].agent, duplicate);
    assert_eq!(
        decision.failures[0].kind,
        FailureKind::DuplicateProposal {
            id: ProposalId(2),
            holder
        }
    );
}

#[tokio::test]
async fn distinct_ids_in_any_order_are_all_accepted_and_later_duplicates_still_found() {
    let hive = Hive::new(Ledger::default());
    // Ids 5, 3, 4 (out of order, distinct), then 3 again and 5 again.
    let holders: Vec<AgentId> = [(5, 1), (3, 2), (4, 3)]
        .into_iter()
        .map(|(id, key)| hive.spawn(Writer::new(id, key)))
        .collect();
    let third = hive.spawn(Writer::new(3, 4));
    let fifth = hive.spawn(Writer::new(5, 5));
    let decision = hive.decide().await.unwrap();
    let mut accepted = decision.accepted.clone();
    accepted.sort_unstable();
    assert_eq!(accepted, [ProposalId(3), ProposalId(4), ProposalId(5)]);
    let failed: Vec<(AgentId, FailureKind)> = decision
        .failures
        .iter()
        .map(|failure| (failure.agent, failure.kind.clone()))
        .collect();
    assert_eq!(
        failed,
        [
            (
                third,
                FailureKind::DuplicateProposal {
                    id: ProposalId(3),
                    holder: holders[1]
                }
            ),
            (
                fifth,
                FailureKind::DuplicateProposal {
                    id: ProposalId(5),
                    holder: holders[0]
                }
            ),
        ]
    );
}
