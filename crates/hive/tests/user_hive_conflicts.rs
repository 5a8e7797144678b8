//! Conflicts as users write them: a proposal that reads and writes the same key, readers sharing a
//! key, two proposals clashing on a hundred keys at once (one decision, not a hundred), and the
//! memory's history at depths 0 and 2.

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Hive, ProposalId, ProposalOf, Snapshot, State,
};

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u32;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Proposes `change` with id `id`, reading `reads` and writing `writes`.
struct Proposer {
    id: u64,
    change: u64,
    reads: Vec<u32>,
    writes: Vec<u32>,
}

impl Agent<Sum> for Proposer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(Some(
            hivekit_hive::Proposal::new(ProposalId(self.id), self.change)
                .reads(self.reads.clone())
                .writes(self.writes.clone()),
        ))
    }
}

fn hive() -> Hive<Sum> {
    Hive::builder(Sum::default())
        .policy(ConsensusPolicy::majority())
        .agent_timeout(Duration::from_secs(5))
        .build()
        .expect("valid hive")
}

async fn decide(hive: &Hive<Sum>) -> hivekit_hive::Decision<Sum> {
    tokio::time::timeout(Duration::from_secs(10), hive.decide())
        .await
        .expect("no hang")
        .expect("decides")
}

#[tokio::test(start_paused = true)]
async fn a_proposal_reading_and_writing_one_key_does_not_conflict_with_itself() {
    let hive = hive();
    hive.spawn(Proposer {
        id: 1,
        change: 5,
        reads: vec![7],
        writes: vec![7],
    });
    let decision = decide(&hive).await;
    assert_eq!(decision.accepted, [ProposalId(1)]);
    assert!(
        decision.rejected.is_empty() && decision.ballots.is_empty(),
        "{decision:?}"
    );
    assert_eq!(hive.memory().load().0, 5);
}

#[tokio::test(start_paused = true)]
async fn readers_of_one_key_do_not_conflict() {
    let hive = hive();
    for id in 1..=3 {
        hive.spawn(Proposer {
            id,
            change: id,
            reads: vec![1, 2],
            writes: vec![100 + id as u32],
        });
    }
    let decision = decide(&hive).await;
    let mut accepted = decision.accepted.clone();
    accepted.sort();
    assert_eq!(accepted, [ProposalId(1), ProposalId(2), ProposalId(3)]);
    assert!(decision.ballots.is_empty());
    assert_eq!(hive.memory().load().0, 6);
}

#[tokio::test(start_paused = true)]
async fn two_proposals_clashing_on_a_hundred_keys_get_one_consistent_outcome() {
    let hive = hive();
    let keys: Vec<u32> = (0..100).collect();
    hive.spawn(Proposer {
        id: 1,
        change: 1,
        reads: vec![],
        writes: keys.clone(),
    });
    hive.spawn(Proposer {
        id: 2,
        change: 2,
        reads: vec![],
        writes: keys.clone(),
    });
    hive.spawn(Proposer {
        id: 3,
        change: 4,
        reads: vec![],
        writes: vec![1_000],
    });
    let decision = decide(&hive).await;
    let mut accepted = decision.accepted.clone();
    accepted.sort();
    assert_eq!(accepted.len(), 2, "{:?}", decision.accepted);
    assert!(accepted.contains(&ProposalId(3)));
    let winner = accepted[0];
    let loser = if winner == ProposalId(1) {
        ProposalId(2)
    } else {
        ProposalId(1)
    };
    assert_eq!(
        decision
            .rejected
            .iter()
            .filter(|(id, _)| *id == loser)
            .count(),
        1,
        "the loser is rejected once: {:?}",
        decision.rejected
    );
    assert_eq!(decision.rejected.len(), 1);
    assert!(!decision.is_accepted(loser));
    let expected = if winner == ProposalId(1) {
        1 + 4
    } else {
        2 + 4
    };
    assert_eq!(
        hive.memory().load().0,
        expected,
        "the winner is applied once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_history_of_two_keeps_the_last_two_versions_only() {
    let hive = Hive::builder(Sum::default())
        .history(2)
        .agent_timeout(Duration::from_secs(5))
        .build()
        .expect("valid hive");
    hive.spawn(Proposer {
        id: 1,
        change: 1,
        reads: vec![],
        writes: vec![1],
    });
    for round in 1..=4 {
        let decision = decide(&hive).await;
        assert_eq!(decision.version, round);
    }
    assert_eq!(hive.memory().version(), 4);
    assert_eq!(hive.memory().depth(), 2);
    assert!(hive.memory().at(4).is_some());
    assert!(hive.memory().at(3).is_some());
    assert!(hive.memory().at(2).is_none());
    assert!(hive.memory().at(5).is_none());
    assert_eq!(hive.memory().history().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_history_of_zero_keeps_nothing_and_still_commits() {
    let hive = Hive::builder(Sum::default())
        .history(0)
        .agent_timeout(Duration::from_secs(5))
        .build()
        .expect("valid hive");
    hive.spawn(Proposer {
        id: 1,
        change: 3,
        reads: vec![],
        writes: vec![1],
    });
    decide(&hive).await;
    decide(&hive).await;
    assert_eq!(hive.memory().version(), 2);
    assert_eq!(hive.memory().load().0, 6);
    assert!(hive.memory().history().is_empty());
    assert!(hive.memory().at(2).is_none());
}
