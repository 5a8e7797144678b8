//! Weighted votes in real rounds against hand-computed outcomes, and the round's ballot record
//! (who voted for whom, with what weight) checked against the agents' scripts.

mod support;

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, ConsensusPolicy, Contest, Hive, RejectReason,
    Snapshot, Tally, Threshold, Vote, VoterChoice,
};
use support::{add, Ledger, LedgerProposal};

/// Proposes (when `proposes`) a write to key 0, and votes for the candidate of agent `backs`
/// (abstaining when it has none).
struct Scripted {
    proposes: bool,
    backs: Option<AgentId>,
}

impl Agent<Ledger> for Scripted {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        Ok(self
            .proposes
            .then(|| add(ctx.proposal_id().0, 0, 1 + ctx.agent().0 as i64)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        Ok(self
            .backs
            .and_then(|agent| contest.candidates.iter().find(|c| c.proposer == agent))
            .map_or(Vote::Abstain, |c| Vote::For(c.id)))
    }
}

/// Spawns proposers 0 and 1 and voters with `weights` (the proposers first); `backs[i]` is the
/// agent that agent i supports.
fn hive(policy: ConsensusPolicy, weights: &[f64], backs: &[Option<u64>]) -> Hive<Ledger> {
    let hive = Hive::builder(Ledger::default())
        .policy(policy)
        .agent_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for (i, (&weight, &back)) in weights.iter().zip(backs).enumerate() {
        let id = hive
            .spawn_weighted(
                Scripted {
                    proposes: i < 2,
                    backs: back.map(AgentId),
                },
                weight,
            )
            .unwrap();
        assert_eq!(id, AgentId(i as u64));
    }
    hive
}

#[tokio::test]
async fn the_heavier_side_wins_a_weighted_majority_and_the_record_says_who_voted_how() {
    let weights = [1.0, 1.0, 1.0, 3.0, 3.0];
    let backs = [Some(0), Some(1), Some(0), Some(1), Some(1)];
    let hive = hive(ConsensusPolicy::majority(), &weights, &backs);
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.ballots.len(), 1, "{decision}");
    let ballot = &decision.ballots[0];
    let winner = decision
        .proposers
        .iter()
        .find(|(_, agent)| *agent == AgentId(1))
        .unwrap()
        .0;
    let loser = decision
        .proposers
        .iter()
        .find(|(_, agent)| *agent == AgentId(0))
        .unwrap()
        .0;
    assert_eq!(decision.accepted, [winner]);
    assert_eq!(
        decision.rejection(loser),
        Some(&RejectReason::LostVote { winner })
    );
    assert_eq!(ballot.tally.winner(), Some(winner));
    // Every counted choice is the scripted one, with the agent's weight.
    let mut counted_for_winner = 0.0;
    let mut counted_cast = 0.0;
    for record in ballot.voters() {
        let i = record.voter.0 as usize;
        assert_eq!(record.weight, weights[i], "{record:?}");
        match record.choice {
            VoterChoice::For(candidate) => {
                let backed = if backs[i] == Some(1) { winner } else { loser };
                assert_eq!(candidate, backed, "{record:?}");
                counted_cast += record.weight;
                if candidate == winner {
                    counted_for_winner += record.weight;
                }
            }
            VoterChoice::NotCounted => {}
            other => panic!("{record:?}: {other:?}"),
        }
    }
    match ballot.tally {
        Tally::Decided { support, .. } => {
            assert!((support - counted_for_winner / counted_cast).abs() < 1e-12);
            assert!(counted_for_winner * 2.0 > 9.0 * 0.5, "{ballot:#}");
        }
        ref other => panic!("{other:?}"),
    }
    assert_eq!(hive.memory().load().value().counters.get(&0), Some(&2));
}

#[tokio::test]
async fn unweighted_three_against_three_is_not_a_majority() {
    // By count: agent 0's side has 0, 2 and a new voter 5; agent 1's has 1, 3, 4: 3 to 3 without 5.
    let weights = [1.0, 1.0, 1.0, 3.0, 3.0, 1.0];
    let backs = [Some(0), Some(1), Some(0), Some(1), Some(1), Some(0)];
    let policy = ConsensusPolicy::majority().with_weighted(false);
    let hive = hive(policy, &weights, &backs);
    let decision = hive.decide().await.unwrap();
    // 3 of 6 is not more than half: undecided; both rejected.
    assert_eq!(decision.ballots[0].tally, Tally::Undecided, "{decision}");
    assert!(decision.accepted.is_empty());
    assert_eq!(decision.rejected.len(), 2);
    assert!(decision
        .rejected
        .iter()
        .all(|(_, reason)| *reason == RejectReason::Undecided));
    assert_eq!(
        hive.memory().load().version(),
        0,
        "nothing accepted: nothing committed"
    );
}

#[tokio::test]
async fn a_two_thirds_supermajority_and_unanimity_by_weight() {
    // Agent 1's side has 3 + 3 + 1 = 7 of 9 (> 2/3); agent 0's 2.
    let weights = [1.0, 1.0, 1.0, 3.0, 3.0];
    let backs = [Some(0), Some(1), Some(0), Some(1), Some(1)];
    let two_thirds =
        ConsensusPolicy::new(Threshold::Supermajority { num: 2, den: 3 }, 1.0).unwrap();
    let decision = hive(two_thirds, &weights, &backs).decide().await.unwrap();
    assert!(decision.ballots[0].tally.winner().is_some(), "{decision}");
    let unanimous = ConsensusPolicy::new(Threshold::Unanimous, 0.5).unwrap();
    let decision = hive(unanimous, &weights, &backs).decide().await.unwrap();
    assert_eq!(decision.ballots[0].tally, Tally::Undecided, "{decision}");
}

#[tokio::test]
async fn weights_changed_between_rounds_change_the_next_outcome() {
    // Agent 0's side: 0, 2 (1 + 1); agent 1's side: 1, 3 (1 + 3): agent 1's proposal wins.
    let weights = [1.0, 1.0, 1.0, 3.0];
    let backs = [Some(0), Some(1), Some(0), Some(1)];
    let hive = hive(ConsensusPolicy::majority(), &weights, &backs);
    let proposer_of_accepted = |decision: &hivekit_hive::Decision<Ledger>| {
        decision.proposer(decision.accepted[0]).unwrap()
    };
    let first = hive.decide().await.unwrap();
    assert_eq!(proposer_of_accepted(&first), AgentId(1), "{first}");
    // Now agent 2 weighs 5: agent 0's side has 6 of 10.
    hive.set_weight(AgentId(2), 5.0).unwrap();
    let second = hive.decide().await.unwrap();
    assert_eq!(proposer_of_accepted(&second), AgentId(0), "{second}");
    // Agent 2 leaves: 1 against 4.
    assert!(hive.remove(AgentId(2)));
    let third = hive.decide().await.unwrap();
    assert_eq!(proposer_of_accepted(&third), AgentId(1), "{third}");
    assert_eq!(third.ballots[0].voters().count(), 3);
}

#[test]
fn hand_assembled_invalid_policies_are_refused_by_the_hive_and_the_ballot() {
    use hivekit_hive::{Ballot, BallotError, Electorate, HiveError, PolicyError, ProposalId};
    let bad = [
        ConsensusPolicy {
            quorum: f64::NAN,
            ..ConsensusPolicy::default()
        },
        ConsensusPolicy {
            quorum: 0.0,
            ..ConsensusPolicy::default()
        },
        ConsensusPolicy {
            quorum: 1.0 + f64::EPSILON,
            ..ConsensusPolicy::default()
        },
        ConsensusPolicy {
            threshold: Threshold::Supermajority { num: 0, den: 3 },
            ..ConsensusPolicy::default()
        },
        ConsensusPolicy {
            threshold: Threshold::Supermajority { num: 1, den: 0 },
            ..ConsensusPolicy::default()
        },
    ];
    for policy in bad {
        let built = Hive::builder(Ledger::default()).policy(policy).build();
        assert!(
            matches!(built, Err(HiveError::Policy(_))),
            "{policy:?}: {:?}",
            built.err()
        );
        let electorate = Electorate::equal([AgentId(0)]).unwrap();
        let ballot = Ballot::new(policy, electorate, [ProposalId(1)]);
        assert!(
            matches!(
                ballot,
                Err(BallotError::Policy(
                    PolicyError::QuorumOutOfRange { .. }
                        | PolicyError::FractionOutOfRange { .. }
                        | PolicyError::ZeroDenominator { .. }
                ))
            ),
            "{policy:?}"
        );
    }
}
