//! Quorums and thresholds at their exact edges, as tallystick's quota tests and votelib's
//! threshold tests check them: a quorum of `k / n` is met by exactly `k` of `n` voters and missed
//! by `k - 1` (at every size on both sides of 32 voters, by count and by weight, with the decimal
//! quorums people write: 0.3, 0.7, ...), and every threshold decides exactly where integer
//! arithmetic says it should ("more than half", "at least num / den", "every vote").
//!
//! Contract: `src/policy.rs` (`Threshold`, `ConsensusPolicy::quorum`), `src/ballot/tally.rs`.

use hivekit_hive::{
    AgentId, Ballot, ConsensusPolicy, Electorate, ProposalId, Tally, Threshold, TieBreak, Vote,
};

const A: ProposalId = ProposalId(1);
const B: ProposalId = ProposalId(2);

fn policy(threshold: Threshold, quorum: f64, weighted: bool, tie: TieBreak) -> ConsensusPolicy {
    ConsensusPolicy::new(threshold, quorum)
        .unwrap()
        .with_weighted(weighted)
        .with_tie_break(tie)
}

fn ballot(policy: ConsensusPolicy, weights: &[f64]) -> Ballot {
    let electorate = Electorate::new(
        weights
            .iter()
            .enumerate()
            .map(|(v, &w)| (AgentId(v as u64), w)),
    )
    .unwrap();
    Ballot::new(policy, electorate, [A, B]).unwrap()
}

fn no_quorum(tally: &Tally) -> bool {
    matches!(tally, Tally::NoQuorum { .. })
}

#[test]
fn a_quorum_of_k_in_n_is_met_by_exactly_k_equal_voters() {
    let mut wrong = Vec::new();
    for n in 1_usize..=70 {
        for k in 1..=n {
            let quorum = k as f64 / n as f64;
            let mut b = ballot(
                policy(Threshold::Plurality, quorum, false, TieBreak::LowestId),
                &vec![1.0; n],
            );
            for voter in 0..k {
                let before = b.tally();
                if !no_quorum(&before) {
                    wrong.push(format!(
                        "{voter} of {n} met a quorum of {k}/{n}: {before:?}"
                    ));
                }
                // Half abstain: the quorum counts turnout, not support.
                let vote = if voter % 2 == 0 {
                    Vote::For(A)
                } else {
                    Vote::Abstain
                };
                b.cast(AgentId(voter as u64), vote).unwrap();
            }
            match b.tally() {
                Tally::Decided { winner: A, .. } => {}
                other => wrong.push(format!("{k} of {n} at a quorum of {k}/{n}: {other:?}")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_quorum_of_a_prefix_of_the_weight_is_met_by_exactly_that_prefix() {
    // Weights 1, 2, 3, 1, 2, 3, ..; quorum = (weight of voters 0..k) / total.
    let mut wrong = Vec::new();
    for n in [3_usize, 10, 31, 32, 33, 50, 64] {
        let weights: Vec<f64> = (0..n).map(|v| (v % 3 + 1) as f64).collect();
        let total: f64 = weights.iter().sum();
        for k in 1..=n {
            let prefix: f64 = weights[..k].iter().sum();
            let quorum = prefix / total;
            let mut b = ballot(
                policy(Threshold::Majority, quorum, true, TieBreak::NoDecision),
                &weights,
            );
            for voter in 0..k {
                if !no_quorum(&b.tally()) {
                    wrong.push(format!("{n}: voters 0..{voter} met the weight of 0..{k}"));
                }
                b.cast(AgentId(voter as u64), Vote::For(A)).unwrap();
            }
            match b.tally() {
                Tally::Decided {
                    winner: A,
                    support: 1.0,
                } => {}
                other => wrong.push(format!("{n}: voters 0..{k} at their own weight: {other:?}")),
            }
            // The required figure is the quorum's share of the electorate's weight.
            let fresh = ballot(
                policy(Threshold::Majority, quorum, true, TieBreak::NoDecision),
                &weights,
            );
            match fresh.tally() {
                Tally::NoQuorum { turnout, required } => {
                    assert_eq!(turnout, 0.0);
                    assert!((required - prefix).abs() <= total * 1e-12, "{required}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn decimal_quorums_are_met_by_the_ceiling_of_their_share() {
    // 0.1 .. 1.0 as written in a config file; n voters; ceil(d * n / 10) voters meet it.
    let quorums = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
    let mut wrong = Vec::new();
    for (d, &quorum) in (1_usize..).zip(&quorums) {
        for n in [7_usize, 10, 20, 30, 33, 50, 99, 100] {
            let needed = (d * n).div_ceil(10);
            let mut b = ballot(
                policy(Threshold::Plurality, quorum, false, TieBreak::LowestId),
                &vec![1.0; n],
            );
            for voter in 0..needed {
                if !no_quorum(&b.tally()) {
                    wrong.push(format!("quorum {quorum}: {voter} of {n} met it"));
                }
                b.cast(AgentId(voter as u64), Vote::For(B)).unwrap();
            }
            if b.tally().winner() != Some(B) {
                wrong.push(format!(
                    "quorum {quorum}: {needed} of {n} did not meet it: {:?}",
                    b.tally()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn zero_weight_voters_take_part_only_in_an_unweighted_count() {
    // Two voters weigh 0, two weigh 1; quorum one half.
    let weights = [0.0, 0.0, 1.0, 1.0];
    for weighted in [true, false] {
        let mut b = ballot(
            policy(Threshold::Plurality, 0.5, weighted, TieBreak::LowestId),
            &weights,
        );
        b.cast(AgentId(0), Vote::For(A)).unwrap();
        b.cast(AgentId(1), Vote::For(A)).unwrap();
        if weighted {
            // Weight 0 of 2 took part: no quorum, and A's support is nothing.
            assert!(matches!(b.tally(), Tally::NoQuorum { turnout, required }
                if turnout == 0.0 && required == 1.0));
            assert_eq!(b.support(A), Some(0.0));
            b.cast(AgentId(2), Vote::For(B)).unwrap();
            assert_eq!(
                b.tally(),
                Tally::Decided {
                    winner: B,
                    support: 1.0
                },
                "the weightless votes for A are no votes"
            );
        } else {
            assert_eq!(b.tally().winner(), Some(A), "two of four, by count");
        }
    }
}

/// The exact outcome of `s` for A and `c - s` for B under `threshold` (ties kept as ties).
fn exact(threshold: Threshold, s: u64, c: u64) -> Tally {
    let (a, b) = (s, c - s);
    let top = a.max(b);
    let meets = |x: u64| {
        x > 0
            && match threshold {
                Threshold::Plurality => x == top,
                Threshold::Majority => 2 * x > c,
                Threshold::Supermajority { num, den } => x * u64::from(den) >= c * u64::from(num),
                Threshold::Unanimous => x == c,
            }
    };
    if a == b && meets(a) {
        return Tally::Tie {
            candidates: vec![A, B],
        };
    }
    let (winner, x) = if a > b { (A, a) } else { (B, b) };
    if meets(x) {
        Tally::Decided {
            winner,
            support: x as f64 / c as f64,
        }
    } else {
        Tally::Undecided
    }
}

#[test]
fn every_threshold_decides_exactly_where_integer_arithmetic_says() {
    let thresholds = [
        Threshold::Plurality,
        Threshold::Majority,
        Threshold::Unanimous,
        Threshold::Supermajority { num: 1, den: 2 },
        Threshold::Supermajority { num: 1, den: 3 },
        Threshold::Supermajority { num: 2, den: 3 },
        Threshold::Supermajority { num: 3, den: 4 },
        Threshold::Supermajority { num: 3, den: 5 },
        Threshold::Supermajority { num: 4, den: 5 },
        Threshold::Supermajority { num: 7, den: 10 },
        Threshold::Supermajority { num: 99, den: 100 },
        Threshold::Supermajority { num: 1, den: 1 },
        Threshold::Supermajority {
            num: u32::MAX,
            den: u32::MAX,
        },
        Threshold::Supermajority {
            num: 1,
            den: u32::MAX,
        },
        Threshold::Supermajority {
            num: u32::MAX / 2 + 1,
            den: u32::MAX,
        },
    ];
    let mut wrong = Vec::new();
    for threshold in thresholds {
        for c in 1_u64..=60 {
            for s in 0..=c {
                let mut b = ballot(
                    policy(threshold, 1.0, false, TieBreak::NoDecision),
                    &vec![1.0; c as usize],
                );
                for voter in 0..c {
                    let vote = if voter < s { A } else { B };
                    b.cast(AgentId(voter), Vote::For(vote)).unwrap();
                }
                let expected = exact(threshold, s, c);
                let got = b.tally();
                let same = match (&got, &expected) {
                    (
                        Tally::Decided { winner, support },
                        Tally::Decided {
                            winner: w,
                            support: x,
                        },
                    ) => winner == w && (support - x).abs() < 1e-12,
                    _ => got == expected,
                };
                if !same {
                    wrong.push(format!(
                        "{threshold:?}: {s} of {c} for A: {got:?}, expected {expected:?}"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn droop_hare_and_two_seat_droop_quotas_as_thresholds() {
    // tallystick's single-winner quotas over 100 votes: Droop (50% + 1) is a majority, Hare
    // (100%) is unanimity, and the two-seat Droop quota (34 of 100) a one-third supermajority.
    let outcome = |threshold: Threshold, for_a: u64, total: u64| {
        let mut b = ballot(
            policy(threshold, 1.0, false, TieBreak::NoDecision),
            &vec![1.0; total as usize],
        );
        for voter in 0..total {
            let vote = if voter < for_a { A } else { B };
            b.cast(AgentId(voter), Vote::For(vote)).unwrap();
        }
        b.tally()
    };
    assert_eq!(outcome(Threshold::Majority, 51, 100).winner(), Some(A));
    assert_eq!(outcome(Threshold::Majority, 50, 100), Tally::Undecided);
    assert_eq!(outcome(Threshold::Majority, 51, 101).winner(), Some(A));
    assert_eq!(outcome(Threshold::Majority, 51, 102), Tally::Undecided);
    assert_eq!(outcome(Threshold::Unanimous, 100, 100).winner(), Some(A));
    assert_eq!(outcome(Threshold::Unanimous, 99, 100), Tally::Undecided);
    let third = Threshold::Supermajority { num: 1, den: 3 };
    // 34 of 100 and 66 of 100 both meet a third: the larger wins.
    assert_eq!(outcome(third, 34, 100).winner(), Some(B));
    // 33 of 100 for A, 67 for B: only B meets a third.
    assert_eq!(outcome(third, 33, 100).winner(), Some(B));
    // At exactly one half, "at least 1/2" is met by both sides (a tie), "more than half" by none.
    let half = Threshold::Supermajority { num: 1, den: 2 };
    assert_eq!(
        outcome(half, 50, 100),
        Tally::Tie {
            candidates: vec![A, B]
        }
    );
    assert_eq!(outcome(Threshold::Majority, 50, 100), Tally::Undecided);
}

#[test]
fn abstentions_count_for_the_quorum_and_never_against_the_threshold() {
    // 3 for A, 2 for B, 2 abstain, 3 stay away; quorum 0.7 of 10: met exactly.
    for threshold in [
        Threshold::Majority,
        Threshold::Supermajority { num: 3, den: 5 },
    ] {
        let mut b = ballot(
            policy(threshold, 0.7, false, TieBreak::NoDecision),
            &[1.0; 10],
        );
        for (voter, vote) in [
            Vote::For(A),
            Vote::For(A),
            Vote::For(A),
            Vote::For(B),
            Vote::For(B),
            Vote::Abstain,
        ]
        .into_iter()
        .enumerate()
        {
            b.cast(AgentId(voter as u64), vote).unwrap();
        }
        assert!(no_quorum(&b.tally()), "6 of 10 is below 0.7");
        b.cast(AgentId(6), Vote::Abstain).unwrap();
        // 3 of 5 cast for candidates: a majority and exactly three fifths, though 3 of 7 taking
        // part is neither.
        assert_eq!(
            b.tally(),
            Tally::Decided {
                winner: A,
                support: 0.6
            },
            "{threshold:?}"
        );
    }
}

#[test]
fn a_quorum_met_only_by_abstentions_is_undecided_under_every_threshold() {
    for threshold in [
        Threshold::Plurality,
        Threshold::Majority,
        Threshold::Unanimous,
        Threshold::Supermajority { num: 1, den: 3 },
    ] {
        for tie in [TieBreak::LowestId, TieBreak::NoDecision] {
            let mut b = ballot(policy(threshold, 0.5, true, tie), &[1.0, 2.0, 3.0]);
            b.cast(AgentId(2), Vote::Abstain).unwrap();
            assert_eq!(b.tally(), Tally::Undecided, "{threshold:?} {tie:?}");
        }
    }
}
