//! Ballots whose weights sit at the edges of `f64` (subnormal, near `f64::MAX`, mixed) checked
//! against a hand-written model over the same weights as small integers: "only ratios matter".

use hivekit_hive::{
    AgentId, Ballot, ConsensusPolicy, Electorate, ProposalId, Tally, Threshold, TieBreak, Vote,
};
use proptest::prelude::*;

const CANDIDATES: [ProposalId; 3] = [ProposalId(10), ProposalId(20), ProposalId(30)];

/// The outcome a tally names, without its figures.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Decided(ProposalId),
    NoQuorum,
    Tie(Vec<ProposalId>),
    Undecided,
}

fn outcome(tally: &Tally) -> Outcome {
    match tally {
        Tally::Decided { winner, .. } => Outcome::Decided(*winner),
        Tally::NoQuorum { .. } => Outcome::NoQuorum,
        Tally::Tie { candidates } => Outcome::Tie(candidates.clone()),
        Tally::Undecided => Outcome::Undecided,
    }
}

/// The model: integer weights, exact arithmetic (quorum as a fraction `qn / qd`).
/// `votes[i]`: `None` did not vote, `Some(None)` abstained, `Some(Some(c))` voted for candidate c.
fn model(
    weights: &[u64],
    weighted: bool,
    threshold: Threshold,
    (qn, qd): (u64, u64),
    tie_break: TieBreak,
    votes: &[Option<Option<usize>>],
) -> Outcome {
    let w = |i: usize| if weighted { weights[i] } else { 1 };
    let total: u64 = (0..weights.len()).map(w).sum();
    let turnout: u64 = (0..weights.len())
        .filter(|&i| votes[i].is_some())
        .map(w)
        .sum();
    if turnout * qd < qn * total {
        return Outcome::NoQuorum;
    }
    let mut support = [0u64; 3];
    for (i, vote) in votes.iter().enumerate() {
        if let Some(Some(c)) = vote {
            support[*c] += w(i);
        }
    }
    let cast: u64 = support.iter().sum();
    let top = *support.iter().max().unwrap();
    if top == 0 {
        return Outcome::Undecided;
    }
    let meets = match threshold {
        Threshold::Plurality => true,
        Threshold::Majority => 2 * top > cast,
        Threshold::Supermajority { num, den } => top * u64::from(den) >= cast * u64::from(num),
        Threshold::Unanimous => top == cast,
    };
    if !meets {
        return Outcome::Undecided;
    }
    let tied: Vec<ProposalId> = (0..3)
        .filter(|&c| support[c] == top)
        .map(|c| CANDIDATES[c])
        .collect();
    if tied.len() == 1 {
        return Outcome::Decided(tied[0]);
    }
    match tie_break {
        TieBreak::LowestId => Outcome::Decided(tied[0]),
        TieBreak::NoDecision => Outcome::Tie(tied),
    }
}

fn threshold() -> impl Strategy<Value = Threshold> {
    prop_oneof![
        Just(Threshold::Plurality),
        Just(Threshold::Majority),
        Just(Threshold::Supermajority { num: 2, den: 3 }),
        Just(Threshold::Supermajority { num: 1, den: 3 }),
        Just(Threshold::Unanimous),
    ]
}

/// Quorums that are exact in binary, so the model's fraction is the policy's quorum.
fn quorum() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![Just((1, 4)), Just((1, 2)), Just((3, 4)), Just((1, 1))]
}

/// The scales of the weights: each small integer weight `k` becomes `k * scale`.
fn scale() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1.0),
        Just(f64::from_bits(1)),       // 2^-1074: every weight subnormal
        Just(f64::from_bits(1 << 14)), // 2^-1060: subnormal, a few bits of precision
        Just(2.0_f64.powi(1015)),      // eight voters sum past f64::MAX
        Just(2.0_f64.powi(1000)),      // huge, the total stays finite
    ]
}

fn run(
    weights: &[u64],
    scale: f64,
    weighted: bool,
    threshold: Threshold,
    quorum: (u64, u64),
    tie_break: TieBreak,
    votes: &[Option<Option<usize>>],
) -> (Outcome, Outcome) {
    let policy = ConsensusPolicy::new(threshold, quorum.0 as f64 / quorum.1 as f64)
        .unwrap()
        .with_weighted(weighted)
        .with_tie_break(tie_break);
    let electorate = Electorate::new(
        weights
            .iter()
            .enumerate()
            .map(|(i, &k)| (AgentId(i as u64 * 3 + 1), k as f64 * scale)),
    )
    .unwrap();
    let mut ballot = Ballot::new(policy, electorate, CANDIDATES).unwrap();
    for (i, vote) in votes.iter().enumerate() {
        if let Some(choice) = vote {
            let vote = choice.map_or(Vote::Abstain, |c| Vote::For(CANDIDATES[c]));
            ballot.cast(AgentId(i as u64 * 3 + 1), vote).unwrap();
        }
    }
    let got = outcome(&ballot.tally());
    let expected = model(weights, weighted, threshold, quorum, tie_break, votes);
    (got, expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn scaled_weights_give_the_outcome_of_the_integer_weights(
        weights in prop::collection::vec(0u64..6, 1..9),
        scale in scale(),
        weighted in any::<bool>(),
        threshold in threshold(),
        quorum in quorum(),
        tie_break in prop_oneof![Just(TieBreak::LowestId), Just(TieBreak::NoDecision)],
        raw_votes in prop::collection::vec(prop::option::of(prop::option::of(0usize..3)), 9),
    ) {
        prop_assume!(!weighted || weights.iter().any(|&w| w > 0));
        let votes = &raw_votes[..weights.len()];
        let (got, expected) = run(&weights, scale, weighted, threshold, quorum, tie_break, votes);
        prop_assert_eq!(got, expected, "weights {:?} x {:e}", weights, scale);
    }
}

/// A voter of positive weight is the only one to back a candidate; a voter weighing `f64::MAX`
/// abstains. The electorate's total is out of the counting range, so every weight is scaled by a
/// power of two, which must not turn the small positive weight into 0 ("a voter whose vote counts
/// for nothing"): its candidate has the only support and wins a plurality.
#[test]
fn a_small_positive_weight_beside_a_huge_one_still_counts() {
    for small in [f64::from_bits(1), f64::MIN_POSITIVE, 1e-300, 1.0] {
        let electorate = Electorate::new([(AgentId(0), f64::MAX), (AgentId(1), small)]).unwrap();
        let policy = ConsensusPolicy::new(Threshold::Plurality, 0.5).unwrap();
        let mut ballot = Ballot::new(policy, electorate, CANDIDATES).unwrap();
        ballot.cast(AgentId(0), Vote::Abstain).unwrap();
        ballot.cast(AgentId(1), Vote::For(CANDIDATES[1])).unwrap();
        let weight = ballot.electorate().weight(AgentId(1)).unwrap();
        assert!(
            weight > 0.0,
            "a voter of weight {small:e} was scaled to weight {weight:e}"
        );
        assert_eq!(
            ballot.tally().winner(),
            Some(CANDIDATES[1]),
            "weight {small:e}: the only candidate with support must win, got {:?}",
            ballot.tally()
        );
    }
}

/// "Every vote cast for the same candidate": under a weighted unanimous policy a dissenter of
/// weight 1 beside a voter of weight 1e12 (or 1e15) is a dissent, not rounding, and the ballot is
/// undecided; the dissenter's abstention instead leaves the heavy voter's candidate unanimous.
#[test]
fn a_light_dissenter_blocks_a_weighted_unanimous_ballot() {
    for heavy in [1e12, 1e15, f64::MAX] {
        let electorate = Electorate::new([(AgentId(0), heavy), (AgentId(1), 1.0)]).unwrap();
        let policy = ConsensusPolicy {
            weighted: true,
            ..ConsensusPolicy::unanimous()
        };
        let mut ballot = Ballot::new(policy, electorate.clone(), CANDIDATES).unwrap();
        ballot.cast(AgentId(0), Vote::For(CANDIDATES[0])).unwrap();
        ballot.cast(AgentId(1), Vote::For(CANDIDATES[1])).unwrap();
        assert_eq!(ballot.tally(), Tally::Undecided, "heavy weight {heavy:e}");
        ballot.cast(AgentId(1), Vote::Abstain).unwrap();
        assert_eq!(
            ballot.tally().winner(),
            Some(CANDIDATES[0]),
            "heavy weight {heavy:e}, the dissenter abstains"
        );
    }
}
