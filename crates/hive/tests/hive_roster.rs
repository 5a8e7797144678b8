//! The member list rounds read (sorted once per change of the membership, not once per round):
//! every round sees exactly the changes made before it started.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, ConsensusPolicy, Hive, ProposalId, Snapshot,
};
use support::{Ledger, LedgerProposal, Writer};

/// The proposers of a decision's proposals, lowest id first.
fn proposers(decision: &hivekit_hive::Decision<Ledger>) -> Vec<AgentId> {
    let mut ids: Vec<AgentId> = decision.proposers.iter().map(|(_, agent)| *agent).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn each_round_asks_exactly_the_agents_spawned_and_not_removed_before_it() {
    let hive = Hive::new(Ledger::default());
    let first: Vec<AgentId> = (0..3).map(|n| hive.spawn(Writer::new(n, n))).collect();
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.agents, 3);
    assert_eq!(proposers(&decision), first);

    let late = hive.spawn(Writer::new(10, 10));
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.agents, 4);
    assert!(proposers(&decision).contains(&late));

    assert!(hive.remove(first[1]));
    let decision = hive.decide().await.unwrap();
    assert_eq!(proposers(&decision), vec![first[0], first[2], late]);

    // A round without a change in between asks the same members again.
    let again = hive.decide().await.unwrap();
    assert_eq!(proposers(&again), proposers(&decision));
}

#[tokio::test]
async fn the_members_of_a_round_are_asked_lowest_id_first_whatever_the_spawn_order() {
    let hive = Hive::new(Ledger::default());
    for n in 0..40 {
        hive.spawn(Writer::new(n, n));
    }
    for id in [3, 17, 31] {
        assert!(hive.remove(AgentId(id)));
    }
    hive.spawn(Writer::new(100, 100));
    let decision = hive.decide().await.unwrap();
    // Proposals are listed in arrival order; on a current-thread runtime instant agents answer in
    // the order they were asked.
    let asked: Vec<AgentId> = decision.proposers.iter().map(|(_, agent)| *agent).collect();
    assert_eq!(asked, hive.agents());
}

/// Sets a flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Proposes nothing; holds a [`DropFlag`].
struct Dropping(#[allow(dead_code)] DropFlag);

impl Agent<Ledger> for Dropping {
    async fn propose(
        &self,
        _: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_removed_agent_is_dropped_at_once_though_earlier_rounds_listed_it() {
    let hive = Hive::new(Ledger::default());
    let dropped = Arc::new(AtomicBool::new(false));
    let id = hive.spawn(Dropping(DropFlag(Arc::clone(&dropped))));
    hive.spawn(Writer::new(1, 1));
    hive.decide().await.unwrap();
    hive.decide().await.unwrap();
    assert!(!dropped.load(Ordering::SeqCst));
    assert!(hive.remove(id));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the removed agent is still alive"
    );
}

#[tokio::test]
async fn a_weight_changed_between_rounds_counts_in_the_next_ballot() {
    let hive = Hive::builder(Ledger::default())
        .policy(ConsensusPolicy::majority().with_weighted(true))
        .build()
        .unwrap();
    let a = hive.spawn(Writer::new(1, 7));
    hive.spawn(Writer::new(2, 7));
    let weights = |decision: &hivekit_hive::Decision<Ledger>| -> Vec<(AgentId, f64)> {
        decision.ballots[0]
            .voters()
            .map(|record| (record.voter, record.weight))
            .collect()
    };
    let decision = hive.decide().await.unwrap();
    assert!(weights(&decision).contains(&(a, 1.0)));
    hive.set_weight(a, 3.0).unwrap();
    let decision = hive.decide().await.unwrap();
    assert!(weights(&decision).contains(&(a, 3.0)));
    assert_eq!(decision.accepted, vec![ProposalId(1)]);
}

#[tokio::test]
async fn an_agent_spawned_or_removed_between_rounds_is_in_or_out_of_the_next_ballots_electorate() {
    let hive = Hive::new(Ledger::default());
    let a = hive.spawn(Writer::new(1, 7));
    let b = hive.spawn(Writer::new(2, 7));
    // Every voter of the ballot, in the electorate's order (those not waited for included).
    let electorate = |decision: &hivekit_hive::Decision<Ledger>| -> Vec<AgentId> {
        decision.ballots[0]
            .voters()
            .map(|record| record.voter)
            .collect()
    };
    assert_eq!(electorate(&hive.decide().await.unwrap()), vec![a, b]);
    assert_eq!(electorate(&hive.decide().await.unwrap()), vec![a, b]);
    // A round over the same members reuses the last round's electorate; a change makes a new one.
    let c = hive.spawn(Writer::new(3, 7));
    assert_eq!(electorate(&hive.decide().await.unwrap()), vec![a, b, c]);
    assert!(hive.remove(a));
    assert_eq!(electorate(&hive.decide().await.unwrap()), vec![b, c]);
}
