//! `Ballot`, `Electorate` and `ConsensusPolicy`: unit tests, then property tests against a
//! sequential model of the tally.

use std::collections::HashMap;

use hivekit_hive::{
    AgentId, Ballot, BallotError, ConsensusPolicy, Electorate, PolicyError, ProposalId, Tally,
    Threshold, TieBreak, Vote,
};
use proptest::prelude::*;

fn ids(range: std::ops::Range<u64>) -> Vec<ProposalId> {
    range.map(ProposalId).collect()
}

fn equal(voters: u64) -> Electorate {
    Electorate::equal((0..voters).map(AgentId)).unwrap()
}

fn policy(threshold: Threshold, quorum: f64) -> ConsensusPolicy {
    ConsensusPolicy::new(threshold, quorum).unwrap()
}

#[test]
fn smoke_majority_decides() {
    let mut ballot = Ballot::new(ConsensusPolicy::majority(), equal(3), ids(1..3)).unwrap();
    assert_eq!(
        ballot.cast(AgentId(0), Vote::For(ProposalId(1))).unwrap(),
        None
    );
    assert!(matches!(ballot.tally(), Tally::NoQuorum { .. }));
    ballot.cast(AgentId(1), Vote::For(ProposalId(1))).unwrap();
    assert_eq!(
        ballot.tally(),
        Tally::Decided {
            winner: ProposalId(1),
            support: 1.0
        }
    );
    assert!(ballot.is_settled());
}

#[test]
fn revote_replaces_the_earlier_vote() {
    let mut ballot = Ballot::new(ConsensusPolicy::majority(), equal(3), ids(1..3)).unwrap();
    ballot.cast(AgentId(0), Vote::For(ProposalId(1))).unwrap();
    let previous = ballot.cast(AgentId(0), Vote::For(ProposalId(2))).unwrap();
    assert_eq!(previous, Some(Vote::For(ProposalId(1))));
    assert_eq!(ballot.support(ProposalId(1)), Some(0.0));
    assert_eq!(ballot.support(ProposalId(2)), Some(1.0));
    assert_eq!(ballot.votes_cast(), 1);
    ballot.cast(AgentId(0), Vote::Abstain).unwrap();
    assert_eq!(ballot.support(ProposalId(2)), Some(0.0));
    assert_eq!(ballot.votes_cast(), 1);
}

#[test]
fn bad_votes_are_typed_errors_and_change_nothing() {
    let mut ballot = Ballot::new(ConsensusPolicy::default(), equal(2), ids(1..3)).unwrap();
    assert_eq!(
        ballot.cast(AgentId(0), Vote::For(ProposalId(9))),
        Err(BallotError::UnknownCandidate {
            candidate: ProposalId(9)
        })
    );
    assert_eq!(
        ballot.cast(AgentId(7), Vote::For(ProposalId(1))),
        Err(BallotError::NotAVoter { voter: AgentId(7) })
    );
    assert_eq!(ballot.votes_cast(), 0);
    let message = BallotError::NotAVoter { voter: AgentId(7) }.to_string();
    assert_eq!(message, "agent 7 is not in the electorate");
}

#[test]
fn bad_ballots_are_rejected() {
    let electorate = equal(2);
    assert_eq!(
        Ballot::new(ConsensusPolicy::default(), electorate.clone(), []).unwrap_err(),
        BallotError::NoCandidates
    );
    assert_eq!(
        Ballot::new(
            ConsensusPolicy::default(),
            electorate.clone(),
            [ProposalId(1), ProposalId(1)]
        )
        .unwrap_err(),
        BallotError::DuplicateCandidate {
            candidate: ProposalId(1)
        }
    );
    // Many candidates take the hashed path.
    let mut many = ids(0..40);
    many.push(ProposalId(39));
    assert!(matches!(
        Ballot::new(ConsensusPolicy::default(), electorate.clone(), many),
        Err(BallotError::DuplicateCandidate { .. })
    ));
    let invalid = ConsensusPolicy {
        quorum: 0.0,
        ..ConsensusPolicy::default()
    };
    assert!(matches!(
        Ballot::new(invalid, electorate, ids(1..2)),
        Err(BallotError::Policy(PolicyError::QuorumOutOfRange { .. }))
    ));
    let weightless = Electorate::new([(AgentId(0), 0.0)]).unwrap();
    assert_eq!(
        Ballot::new(ConsensusPolicy::default(), weightless, ids(1..2)).unwrap_err(),
        BallotError::ZeroTotalWeight
    );
}

#[test]
fn electorate_rejects_bad_weights_and_duplicates() {
    for weight in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
        let error = Electorate::new([(AgentId(3), weight)]).unwrap_err();
        assert!(matches!(
            error,
            BallotError::InvalidWeight {
                voter: AgentId(3),
                ..
            }
        ));
    }
    assert_eq!(
        Electorate::new([(AgentId(1), 1.0), (AgentId(1), 2.0)]).unwrap_err(),
        BallotError::DuplicateVoter { voter: AgentId(1) }
    );
    assert_eq!(
        Electorate::new([]).unwrap_err(),
        BallotError::EmptyElectorate
    );
}

#[test]
fn invalid_policies_are_rejected() {
    let super_of = |num, den| ConsensusPolicy::new(Threshold::Supermajority { num, den }, 0.5);
    assert_eq!(
        super_of(1, 0),
        Err(PolicyError::ZeroDenominator { num: 1, den: 0 })
    );
    assert_eq!(
        super_of(3, 2),
        Err(PolicyError::FractionOutOfRange { num: 3, den: 2 })
    );
    assert_eq!(
        super_of(0, 2),
        Err(PolicyError::FractionOutOfRange { num: 0, den: 2 })
    );
    assert!(super_of(2, 3).is_ok());
    for quorum in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            ConsensusPolicy::new(Threshold::Majority, quorum),
            Err(PolicyError::QuorumOutOfRange { .. })
        ));
    }
    assert!(ConsensusPolicy::new(Threshold::Unanimous, 1.0).is_ok());
}

#[test]
fn weights_count_only_when_weighted() {
    let electorate =
        Electorate::new([(AgentId(0), 5.0), (AgentId(1), 1.0), (AgentId(2), 1.0)]).unwrap();
    let votes = [(0, 1), (1, 2), (2, 2)];
    let run = |weighted: bool| {
        let policy = ConsensusPolicy::majority().with_weighted(weighted);
        let mut ballot = Ballot::new(policy, electorate.clone(), ids(1..3)).unwrap();
        for (voter, candidate) in votes {
            ballot
                .cast(AgentId(voter), Vote::For(ProposalId(candidate)))
                .unwrap();
        }
        ballot.tally().winner()
    };
    assert_eq!(run(true), Some(ProposalId(1)));
    assert_eq!(run(false), Some(ProposalId(2)));
}

#[test]
fn ties_follow_the_tie_break() {
    for (tie_break, expected) in [
        (
            TieBreak::LowestId,
            Tally::Decided {
                winner: ProposalId(1),
                support: 0.5,
            },
        ),
        (
            TieBreak::NoDecision,
            Tally::Tie {
                candidates: vec![ProposalId(1), ProposalId(2)],
            },
        ),
    ] {
        let policy = ConsensusPolicy::default().with_tie_break(tie_break);
        let mut ballot = Ballot::new(policy, equal(2), [ProposalId(2), ProposalId(1)]).unwrap();
        ballot.cast(AgentId(0), Vote::For(ProposalId(2))).unwrap();
        ballot.cast(AgentId(1), Vote::For(ProposalId(1))).unwrap();
        assert_eq!(ballot.tally(), expected);
        assert!(ballot.is_settled());
    }
}

#[test]
fn split_majority_is_undecided_and_abstentions_count_for_quorum_only() {
    let mut ballot = Ballot::new(policy(Threshold::Majority, 1.0), equal(4), ids(1..4)).unwrap();
    ballot.cast(AgentId(0), Vote::For(ProposalId(1))).unwrap();
    ballot.cast(AgentId(1), Vote::For(ProposalId(2))).unwrap();
    ballot.cast(AgentId(2), Vote::For(ProposalId(3))).unwrap();
    assert!(matches!(ballot.tally(), Tally::NoQuorum { .. }));
    assert!(!ballot.is_settled());
    ballot.cast(AgentId(3), Vote::Abstain).unwrap();
    assert_eq!(ballot.tally(), Tally::Undecided);
    assert!(ballot.is_settled());
}

#[test]
fn broken_unanimity_settles_before_everyone_votes() {
    let mut ballot = Ballot::new(policy(Threshold::Unanimous, 0.5), equal(10), ids(1..3)).unwrap();
    for voter in 0..5 {
        ballot
            .cast(AgentId(voter), Vote::For(ProposalId(1)))
            .unwrap();
    }
    assert!(!ballot.is_settled());
    ballot.cast(AgentId(5), Vote::For(ProposalId(2))).unwrap();
    assert!(ballot.is_settled());
    assert_eq!(ballot.tally(), Tally::Undecided);
}

#[test]
fn supermajority_needs_its_fraction() {
    let two_thirds = policy(Threshold::Supermajority { num: 2, den: 3 }, 1.0);
    let mut ballot = Ballot::new(two_thirds, equal(3), ids(1..3)).unwrap();
    ballot.cast(AgentId(0), Vote::For(ProposalId(1))).unwrap();
    ballot.cast(AgentId(1), Vote::For(ProposalId(1))).unwrap();
    ballot.cast(AgentId(2), Vote::For(ProposalId(2))).unwrap();
    assert_eq!(ballot.tally().winner(), Some(ProposalId(1)));
    ballot.cast(AgentId(1), Vote::For(ProposalId(2))).unwrap();
    assert_eq!(ballot.tally().winner(), Some(ProposalId(2)));
}

#[test]
fn early_majority_settles_with_voters_left() {
    let mut ballot = Ballot::new(ConsensusPolicy::majority(), equal(100), ids(1..4)).unwrap();
    let mut settled_after = None;
    for voter in 0..100 {
        ballot
            .cast(AgentId(voter), Vote::For(ProposalId(1)))
            .unwrap();
        if ballot.is_settled() {
            settled_after = Some(voter + 1);
            break;
        }
    }
    // 51 of 100 for one candidate: the other 49 cannot overtake it.
    assert_eq!(settled_after, Some(51));
}

// ---- property tests against a sequential model ----

#[derive(Debug, Clone)]
struct Setup {
    policy: ConsensusPolicy,
    weights: Vec<f64>,
    candidates: usize,
}

fn threshold_strategy() -> impl Strategy<Value = Threshold> {
    prop_oneof![
        Just(Threshold::Plurality),
        Just(Threshold::Majority),
        Just(Threshold::Unanimous),
        (1u32..=5, 0u32..=4).prop_map(|(num, extra)| Threshold::Supermajority {
            num,
            den: num + extra
        }),
    ]
}

fn setup_strategy() -> impl Strategy<Value = Setup> {
    (
        threshold_strategy(),
        prop_oneof![Just(0.25), Just(0.5), Just(2.0 / 3.0), Just(1.0)],
        any::<bool>(),
        prop_oneof![Just(TieBreak::LowestId), Just(TieBreak::NoDecision)],
        prop::collection::vec(0u8..=4, 1..12),
        1usize..5,
    )
        .prop_filter("some weight", |(_, _, weighted, _, weights, _)| {
            !*weighted || weights.iter().any(|&w| w > 0)
        })
        .prop_map(
            |(threshold, quorum, weighted, tie_break, weights, candidates)| Setup {
                policy: ConsensusPolicy {
                    threshold,
                    quorum,
                    weighted,
                    tie_break,
                },
                weights: weights.into_iter().map(f64::from).collect(),
                candidates,
            },
        )
}

/// The tally computed from scratch from the final votes (voter -> candidate index or abstain).
fn model_tally(setup: &Setup, votes: &HashMap<usize, Option<usize>>) -> Tally {
    let weight = |voter: usize| {
        if setup.policy.weighted {
            setup.weights[voter]
        } else {
            1.0
        }
    };
    let total: f64 = (0..setup.weights.len()).map(weight).sum();
    let turnout: f64 = votes.keys().map(|&voter| weight(voter)).sum();
    let required = setup.policy.quorum * total;
    if turnout + total * 1e-12 < required {
        return Tally::NoQuorum { turnout, required };
    }
    let mut support = vec![0.0; setup.candidates];
    for (&voter, choice) in votes {
        if let Some(candidate) = choice {
            support[*candidate] += weight(voter);
        }
    }
    let cast: f64 = support.iter().sum();
    let top = support.iter().copied().fold(0.0, f64::max);
    if top <= 0.0 {
        return Tally::Undecided;
    }
    let meets = match setup.policy.threshold {
        Threshold::Plurality => true,
        Threshold::Majority => top > cast / 2.0,
        Threshold::Supermajority { num, den } => top * f64::from(den) >= f64::from(num) * cast,
        Threshold::Unanimous => top == cast,
    };
    if !meets {
        return Tally::Undecided;
    }
    let tied: Vec<ProposalId> = (0..setup.candidates)
        .filter(|&c| support[c] == top)
        .map(|c| ProposalId(c as u64 + 100))
        .collect();
    if tied.len() == 1 || setup.policy.tie_break == TieBreak::LowestId {
        Tally::Decided {
            winner: tied[0],
            support: top / cast,
        }
    } else {
        Tally::Tie { candidates: tied }
    }
}

fn new_ballot(setup: &Setup) -> Ballot {
    let electorate = Electorate::new(
        setup
            .weights
            .iter()
            .enumerate()
            .map(|(voter, &weight)| (AgentId(voter as u64), weight)),
    )
    .unwrap();
    Ballot::new(
        setup.policy,
        electorate,
        (0..setup.candidates).map(|c| ProposalId(c as u64 + 100)),
    )
    .unwrap()
}

fn to_vote(choice: Option<usize>) -> Vote {
    choice.map_or(Vote::Abstain, |c| Vote::For(ProposalId(c as u64 + 100)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any sequence of votes and re-votes: the ballot's tally equals the model's after every step,
    /// a re-vote never double-counts, and support never exceeds 100%.
    #[test]
    fn tally_matches_the_model(
        setup in setup_strategy(),
        ops in prop::collection::vec((0usize..12, prop::option::of(0usize..5)), 0..60),
    ) {
        let mut ballot = new_ballot(&setup);
        let mut votes = HashMap::new();
        for (voter, choice) in ops {
            let voter = voter % setup.weights.len();
            let choice = choice.map(|c| c % setup.candidates);
            let previous = ballot.cast(AgentId(voter as u64), to_vote(choice)).unwrap();
            let model_previous = votes.insert(voter, choice);
            prop_assert_eq!(previous, model_previous.map(to_vote));
            prop_assert_eq!(ballot.votes_cast(), votes.len());
            let tally = ballot.tally();
            prop_assert_eq!(&tally, &model_tally(&setup, &votes));
            if let Tally::Decided { support, .. } = tally {
                prop_assert!(support > 0.0 && support <= 1.0);
            }
            let counted: f64 = setup.candidates_ids().map(|c| ballot.support(c).unwrap()).sum();
            let weight = |v: usize| if setup.policy.weighted { setup.weights[v] } else { 1.0 };
            let expected: f64 = votes.iter().filter(|(_, c)| c.is_some()).map(|(&v, _)| weight(v)).sum();
            prop_assert_eq!(counted, expected);
        }
    }

    /// Voters vote once each, in any order, and the ballot may close at any point: whenever
    /// `is_settled` said so, the outcome at the close is the one seen when it settled.
    #[test]
    fn early_settlement_agrees_with_the_final_tally(
        setup in setup_strategy(),
        order in prop::collection::vec(any::<prop::sample::Index>(), 12),
        choices in prop::collection::vec(prop::option::of(0usize..5), 12),
        close in any::<prop::sample::Index>(),
    ) {
        let voters = setup.weights.len();
        let mut remaining: Vec<usize> = (0..voters).collect();
        let mut sequence = Vec::new();
        for index in order.iter().take(voters) {
            sequence.push(remaining.remove(index.index(remaining.len())));
        }
        let close = close.index(voters + 1);
        let mut ballot = new_ballot(&setup);
        let mut settled: Option<Tally> = None;
        if ballot.is_settled() {
            settled = Some(ballot.tally());
        }
        for (step, &voter) in sequence.iter().take(close).enumerate() {
            let choice = choices[step].map(|c| c % setup.candidates);
            ballot.cast(AgentId(voter as u64), to_vote(choice)).unwrap();
            if settled.is_none() && ballot.is_settled() {
                settled = Some(ballot.tally());
            }
        }
        if let Some(settled) = settled {
            let final_tally = ballot.tally();
            prop_assert!(settled.same_outcome(&final_tally), "settled {:?}, closed {:?}", settled, final_tally);
        }
        if close == voters {
            prop_assert!(ballot.is_settled());
        }
    }
}

impl Setup {
    fn candidates_ids(&self) -> impl Iterator<Item = ProposalId> {
        (0..self.candidates).map(|c| ProposalId(c as u64 + 100))
    }
}
