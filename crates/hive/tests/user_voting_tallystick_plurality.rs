//! tallystick's plurality and weighted-plurality tests, votelib's plurality and tie-break tests
//! (including its real Mexican 2018 presidential count), ported to `Ballot`: the same elections,
//! the same winners and totals, and ties reported or broken as hivekit's `TieBreak` says.

use hivekit_hive::{
    AgentId, Ballot, BallotError, ConsensusPolicy, Electorate, ProposalId, Tally, Threshold,
    TieBreak, Vote,
};

fn policy(threshold: Threshold, weighted: bool, tie: TieBreak) -> ConsensusPolicy {
    // A tiny quorum: these peers count whatever was cast.
    ConsensusPolicy::new(threshold, 0.01)
        .unwrap()
        .with_weighted(weighted)
        .with_tie_break(tie)
}

/// A ballot with one voter per entry of `votes` (weighing `weights[i]`, 1 when empty), each
/// voting as given.
fn election(
    policy: ConsensusPolicy,
    candidates: &[ProposalId],
    votes: &[ProposalId],
    weights: &[f64],
) -> Ballot {
    let weight = |i: usize| weights.get(i).copied().unwrap_or(1.0);
    let electorate =
        Electorate::new((0..votes.len()).map(|i| (AgentId(i as u64), weight(i)))).unwrap();
    let mut ballot = Ballot::new(policy, electorate, candidates.iter().copied()).unwrap();
    for (i, &vote) in votes.iter().enumerate() {
        assert_eq!(
            ballot.cast(AgentId(i as u64), Vote::For(vote)).unwrap(),
            None
        );
    }
    ballot
}

const ALICE: ProposalId = ProposalId(1);
const BOB: ProposalId = ProposalId(2);
const CIR: ProposalId = ProposalId(3);
const DAVE: ProposalId = ProposalId(4);
const RANDO: ProposalId = ProposalId(99);

#[test]
fn plurality_alice_three_bob_two_cir_one() {
    let ballot = election(
        policy(Threshold::Plurality, false, TieBreak::NoDecision),
        &[ALICE, BOB, CIR],
        &[ALICE, CIR, BOB, ALICE, ALICE, BOB],
        &[],
    );
    assert_eq!(ballot.candidates().len(), 3);
    assert_eq!(
        [ALICE, BOB, CIR].map(|c| ballot.support(c)),
        [Some(3.0), Some(2.0), Some(1.0)]
    );
    assert_eq!(
        ballot.tally(),
        Tally::Decided {
            winner: ALICE,
            support: 0.5
        }
    );
    // A candidate that is not on the ballot has no total and cannot be voted for.
    assert_eq!(ballot.support(RANDO), None);
    let mut changed = ballot.clone();
    assert_eq!(
        changed.cast(AgentId(0), Vote::For(RANDO)),
        Err(BallotError::UnknownCandidate { candidate: RANDO })
    );
    assert_eq!(
        changed.support(ALICE),
        Some(3.0),
        "the refused vote changed nothing"
    );
    assert_eq!(changed.tally(), ballot.tally());
}

#[test]
fn the_most_popular_integer_wins_a_plurality_but_not_a_majority() {
    let ids = |xs: &[u64]| xs.iter().map(|&x| ProposalId(x)).collect::<Vec<_>>();
    let candidates = ids(&[99, 100, 1, 2, 0]);
    let votes = ids(&[99, 100, 99, 99, 1, 1, 2, 0]);
    let plurality = election(
        policy(Threshold::Plurality, false, TieBreak::NoDecision),
        &candidates,
        &votes,
        &[],
    );
    assert_eq!(plurality.tally().winner(), Some(ProposalId(99)));
    let majority = election(
        policy(Threshold::Majority, false, TieBreak::NoDecision),
        &candidates,
        &votes,
        &[],
    );
    assert_eq!(majority.tally(), Tally::Undecided, "3 of 8 is no majority");
    // The loneliest number: 1 has two votes, the others one each.
    let lonely = election(
        policy(Threshold::Plurality, false, TieBreak::NoDecision),
        &ids(&[5, 0, 1, 2, 3]),
        &ids(&[5, 0, 1, 1, 2, 3]),
        &[],
    );
    assert_eq!(lonely.tally().winner(), Some(ProposalId(1)));
}

#[test]
fn two_candidates_with_a_vote_each_tie_or_go_to_the_lowest_id() {
    let (first, second) = (ProposalId(456), ProposalId(123));
    let tied = election(
        policy(Threshold::Plurality, false, TieBreak::NoDecision),
        &[first, second],
        &[first, second],
        &[],
    );
    assert_eq!(
        tied.tally(),
        Tally::Tie {
            candidates: vec![second, first]
        },
        "lowest id first, whatever the ballot's order"
    );
    let broken = election(
        policy(Threshold::Plurality, false, TieBreak::LowestId),
        &[first, second],
        &[first, second],
        &[],
    );
    assert_eq!(
        broken.tally(),
        Tally::Decided {
            winner: second,
            support: 0.5
        }
    );
}

#[test]
fn a_tie_below_the_top_does_not_stop_the_leader() {
    // tallystick: Alice 3, Cir 2, Bob 2, Dave 1; votelib: A 3, B 2, C 2, D 1.
    let weights = [3.0, 2.0, 2.0, 1.0];
    let ballot = election(
        policy(Threshold::Plurality, true, TieBreak::NoDecision),
        &[ALICE, BOB, CIR, DAVE],
        &[ALICE, CIR, BOB, DAVE],
        &weights,
    );
    assert_eq!(
        ballot.tally(),
        Tally::Decided {
            winner: ALICE,
            support: 3.0 / 8.0
        }
    );
}

#[test]
fn fractional_weights_count_by_weight() {
    // Alice 5.25, Bob 0.25, Carol 1 (an implicit weight of one).
    let carol = CIR;
    let weighted = election(
        policy(Threshold::Plurality, true, TieBreak::NoDecision),
        &[ALICE, BOB, carol],
        &[ALICE, BOB, carol],
        &[5.25, 0.25, 1.0],
    );
    assert_eq!(weighted.support(ALICE), Some(5.25));
    assert_eq!(
        weighted.tally(),
        Tally::Decided {
            winner: ALICE,
            support: 5.25 / 6.5
        }
    );
    // Unweighted, the same votes are one each: a three-way tie.
    let unweighted = election(
        policy(Threshold::Plurality, false, TieBreak::NoDecision),
        &[ALICE, BOB, carol],
        &[ALICE, BOB, carol],
        &[5.25, 0.25, 1.0],
    );
    assert_eq!(
        unweighted.tally(),
        Tally::Tie {
            candidates: vec![ALICE, BOB, carol]
        }
    );
}

#[test]
fn weighted_ties_from_different_numbers_of_voters() {
    // Weight 2 against 1 + 1, and 1 against 0.5 + 0.25 + 0.25: tied by weight.
    for (for_a, for_b) in [
        (vec![2.0], vec![1.0, 1.0]),
        (vec![1.0], vec![0.5, 0.25, 0.25]),
        (vec![3.0, 0.0], vec![1.0, 1.0, 1.0]),
    ] {
        let votes: Vec<ProposalId> = for_a
            .iter()
            .map(|_| BOB)
            .chain(for_b.iter().map(|_| ALICE))
            .collect();
        let weights: Vec<f64> = for_a.iter().chain(&for_b).copied().collect();
        for (tie, expected) in [
            (
                TieBreak::NoDecision,
                Tally::Tie {
                    candidates: vec![ALICE, BOB],
                },
            ),
            (
                TieBreak::LowestId,
                Tally::Decided {
                    winner: ALICE,
                    support: 0.5,
                },
            ),
        ] {
            for threshold in [
                Threshold::Plurality,
                Threshold::Supermajority { num: 1, den: 2 },
            ] {
                let ballot = election(
                    policy(threshold, true, tie),
                    &[BOB, ALICE],
                    &votes,
                    &weights,
                );
                assert_eq!(
                    ballot.tally(),
                    expected,
                    "{for_a:?} vs {for_b:?}, {threshold:?}"
                );
            }
            // "More than half" is met by neither side of a tie.
            let majority = election(
                policy(Threshold::Majority, true, tie),
                &[BOB, ALICE],
                &votes,
                &weights,
            );
            assert_eq!(majority.tally(), Tally::Undecided);
        }
    }
}

#[test]
fn a_three_way_weighted_tie_meets_a_one_third_supermajority() {
    let third = Threshold::Supermajority { num: 1, den: 3 };
    let ballot = election(
        policy(third, true, TieBreak::NoDecision),
        &[CIR, ALICE, BOB],
        &[ALICE, BOB, BOB, CIR],
        &[2.0, 1.5, 0.5, 2.0],
    );
    assert_eq!(
        ballot.tally(),
        Tally::Tie {
            candidates: vec![ALICE, BOB, CIR]
        }
    );
    // One more vote for Cir (a re-vote of a Bob voter) breaks it: 2, 1.5, 2.5 of 6.
    let mut revoted = ballot.clone();
    assert_eq!(
        revoted.cast(AgentId(2), Vote::For(CIR)).unwrap(),
        Some(Vote::For(BOB))
    );
    assert_eq!(
        revoted.tally(),
        Tally::Decided {
            winner: CIR,
            support: 2.5 / 6.0
        }
    );
}

#[test]
fn votelib_mexican_presidential_election_2018() {
    // Five blocs weighing their real vote counts.
    let counts = [
        30_113_483.0,
        12_610_120.0,
        9_289_853.0,
        2_961_732.0,
        32_743.0,
    ];
    let candidates: Vec<ProposalId> = (10..15).map(ProposalId).collect();
    let total: f64 = counts.iter().sum();
    let amlo = candidates[0];
    let run = |threshold, weighted, tie| {
        election(
            policy(threshold, weighted, tie),
            &candidates,
            &candidates,
            &counts,
        )
        .tally()
    };
    for tie in [TieBreak::LowestId, TieBreak::NoDecision] {
        match run(Threshold::Plurality, true, tie) {
            Tally::Decided { winner, support } => {
                assert_eq!(winner, amlo);
                assert!((support - counts[0] / total).abs() < 1e-12, "{support}");
            }
            other => panic!("{other:?}"),
        }
        // 54.7% is a majority, not two thirds.
        assert_eq!(run(Threshold::Majority, true, tie).winner(), Some(amlo));
        assert_eq!(
            run(Threshold::Supermajority { num: 2, den: 3 }, true, tie),
            Tally::Undecided
        );
        assert_eq!(run(Threshold::Unanimous, true, tie), Tally::Undecided);
    }
    // One vote per bloc: five candidates with one vote each.
    assert_eq!(
        run(Threshold::Plurality, false, TieBreak::NoDecision),
        Tally::Tie {
            candidates: candidates.clone()
        }
    );
    assert_eq!(
        run(Threshold::Plurality, false, TieBreak::LowestId).winner(),
        Some(candidates[0])
    );
}
