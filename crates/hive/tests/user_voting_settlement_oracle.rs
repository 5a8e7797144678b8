//! Ballots of more than 32 voters (where the ballot keeps its settlement bound) against an exact
//! sequential model in integer arithmetic, as tallystick and votelib users check their counters:
//!
//! - after every vote and re-vote the tally is the model's (winner, tie set, no quorum, undecided,
//!   and the winner's share of the votes cast);
//! - once `is_settled` says so, *every* way the remaining voters could still vote (enumerated
//!   exactly: all count splits for equal voters, every subset-sum split for weighted voters) gives
//!   the same outcome, so early settlement never differs from the full count;
//! - a settled ballot stays settled, and a ballot everyone voted in is settled.

use hivekit_hive::{
    AgentId, Ballot, ConsensusPolicy, Electorate, ProposalId, Tally, Threshold, TieBreak, Vote,
};
use proptest::prelude::*;

/// Quorums as exact fractions `p / q`, so the model can compare in integers.
const QUORUMS: [(u64, u64); 9] = [
    (1, 100),
    (1, 10),
    (1, 4),
    (1, 3),
    (1, 2),
    (3, 5),
    (2, 3),
    (9, 10),
    (1, 1),
];

#[derive(Debug, Clone, Copy)]
struct Spec {
    threshold: Threshold,
    quorum: (u64, u64),
    weighted: bool,
    tie: TieBreak,
    /// What one unit of the model's integer weights weighs in the electorate: 1, a decimal
    /// fraction (sums carry rounding), or so large or small that the electorate is rescaled.
    unit: f64,
}

impl Spec {
    fn policy(&self) -> ConsensusPolicy {
        let (p, q) = self.quorum;
        ConsensusPolicy::new(self.threshold, p as f64 / q as f64)
            .unwrap()
            .with_weighted(self.weighted)
            .with_tie_break(self.tie)
    }
}

/// The outcome, without the support figure.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    NoQuorum,
    Decided(ProposalId),
    Tie(Vec<ProposalId>),
    Undecided,
}

fn outcome_of(tally: &Tally) -> Outcome {
    match tally {
        Tally::NoQuorum { .. } => Outcome::NoQuorum,
        Tally::Decided { winner, .. } => Outcome::Decided(*winner),
        Tally::Tie { candidates } => Outcome::Tie(candidates.clone()),
        Tally::Undecided => Outcome::Undecided,
    }
}

fn id(candidate: usize) -> ProposalId {
    // Ids that do not follow the ballot's order, so the tie-break is by id, not position.
    ProposalId(1_000 - 7 * candidate as u64)
}

/// The exact outcome of a ballot with `turnout` of `total` taking part and `support` per candidate.
fn model(spec: &Spec, total: u64, turnout: u64, support: &[u64]) -> Outcome {
    let (p, q) = spec.quorum;
    if turnout == 0 || u128::from(turnout) * u128::from(q) < u128::from(p) * u128::from(total) {
        return Outcome::NoQuorum;
    }
    let top = support.iter().copied().max().unwrap_or(0);
    if top == 0 {
        return Outcome::Undecided;
    }
    let cast: u64 = support.iter().sum();
    let meets = match spec.threshold {
        Threshold::Plurality => true,
        Threshold::Majority => 2 * top > cast,
        Threshold::Supermajority { num, den } => {
            u128::from(top) * u128::from(den) >= u128::from(cast) * u128::from(num)
        }
        Threshold::Unanimous => top == cast,
    };
    if !meets {
        return Outcome::Undecided;
    }
    let mut tied: Vec<ProposalId> = (0..support.len())
        .filter(|&c| support[c] == top)
        .map(id)
        .collect();
    tied.sort_unstable();
    if tied.len() == 1 || spec.tie == TieBreak::LowestId {
        Outcome::Decided(tied[0])
    } else {
        Outcome::Tie(tied)
    }
}

/// The exact state of a ballot: who voted how.
struct Model {
    spec: Spec,
    weights: Vec<u64>,
    candidates: usize,
    /// Per voter: `None` not voted, `Some(None)` abstained, `Some(Some(c))` for candidate c.
    votes: Vec<Option<Option<usize>>>,
}

impl Model {
    fn weight(&self, voter: usize) -> u64 {
        if self.spec.weighted {
            self.weights[voter]
        } else {
            1
        }
    }

    fn total(&self) -> u64 {
        (0..self.weights.len()).map(|v| self.weight(v)).sum()
    }

    fn sums(&self) -> (u64, Vec<u64>) {
        let mut turnout = 0;
        let mut support = vec![0; self.candidates];
        for (voter, vote) in self.votes.iter().enumerate() {
            if let Some(choice) = vote {
                turnout += self.weight(voter);
                if let Some(c) = choice {
                    support[*c] += self.weight(voter);
                }
            }
        }
        (turnout, support)
    }

    fn outcome(&self) -> Outcome {
        let (turnout, support) = self.sums();
        model(&self.spec, self.total(), turnout, &support)
    }

    /// Every outcome the voters who have not voted can still bring about (each votes for any
    /// candidate, abstains or stays away), computed exactly.
    fn reachable(&self) -> Vec<Outcome> {
        let (turnout, support) = self.sums();
        let total = self.total();
        let remaining: Vec<u64> = (0..self.weights.len())
            .filter(|&v| self.votes[v].is_none())
            .map(|v| self.weight(v))
            .collect();
        let left: u64 = remaining.iter().sum();
        let mut out = Vec::new();
        // Staying away keeps the turnout; abstaining raises it without support. For a given split
        // of support, the quorum is met at the most (everyone else abstains) or missed at the least
        // (everyone else stays away): a met quorum stays met, so only the split matters beyond
        // that, and `NoQuorum` is reachable exactly when it holds now.
        if model(&self.spec, total, turnout, &support) == Outcome::NoQuorum {
            out.push(Outcome::NoQuorum);
        }
        for adds in splits(&remaining, self.candidates) {
            let support: Vec<u64> = support.iter().zip(&adds).map(|(s, a)| s + a).collect();
            let outcome = model(&self.spec, total, turnout + left, &support);
            if !out.contains(&outcome) {
                out.push(outcome);
            }
        }
        out
    }
}

/// Every vector of support the voters of `remaining` weights can add to `candidates` candidates
/// (each voter backing at most one): subset sums for two candidates or fewer, count splits for
/// equal weights and up to three.
fn splits(remaining: &[u64], candidates: usize) -> Vec<Vec<u64>> {
    let equal = remaining
        .iter()
        .all(|&w| w == remaining.first().copied().unwrap_or(1));
    if equal && candidates <= 3 {
        let w = remaining.first().copied().unwrap_or(0);
        let r = remaining.len() as u64;
        let mut out = Vec::new();
        for a in 0..=r {
            for b in 0..=(if candidates > 1 { r - a } else { 0 }) {
                for c in 0..=(if candidates > 2 { r - a - b } else { 0 }) {
                    out.push([a * w, b * w, c * w][..candidates].to_vec());
                }
            }
        }
        return out;
    }
    assert!(
        candidates <= 2,
        "weighted splits are enumerated for two candidates"
    );
    let left: u64 = remaining.iter().sum();
    let side = left as usize + 1;
    // reach[a * side + b]: some disjoint choice of voters adds a to the first, b to the second.
    let mut reach = vec![false; side * side];
    reach[0] = true;
    for &w in remaining {
        let w = w as usize;
        let before = reach.clone();
        for a in 0..side {
            for b in 0..side {
                if !before[a * side + b] {
                    continue;
                }
                if a + w < side {
                    reach[(a + w) * side + b] = true;
                }
                if candidates == 2 && b + w < side {
                    reach[a * side + b + w] = true;
                }
            }
        }
    }
    let mut out = Vec::new();
    for a in 0..side {
        for b in 0..side {
            if reach[a * side + b] {
                out.push([a as u64, b as u64][..candidates].to_vec());
            }
        }
    }
    out
}

fn new_ballot(spec: &Spec, weights: &[u64], candidates: usize) -> Ballot {
    let electorate = Electorate::new(
        weights
            .iter()
            .enumerate()
            .map(|(v, &w)| (AgentId(v as u64), w as f64 * spec.unit)),
    )
    .unwrap();
    Ballot::new(spec.policy(), electorate, (0..candidates).map(id)).unwrap()
}

fn to_vote(choice: Option<usize>) -> Vote {
    choice.map_or(Vote::Abstain, |c| Vote::For(id(c)))
}

fn spec_strategy(weighted: impl Strategy<Value = bool>) -> impl Strategy<Value = Spec> {
    let threshold = prop_oneof![
        Just(Threshold::Plurality),
        Just(Threshold::Majority),
        Just(Threshold::Unanimous),
        Just(Threshold::Supermajority { num: 2, den: 3 }),
        Just(Threshold::Supermajority { num: 1, den: 2 }),
        Just(Threshold::Supermajority { num: 1, den: 3 }),
        Just(Threshold::Supermajority { num: 3, den: 4 }),
        Just(Threshold::Supermajority { num: 5, den: 5 }),
    ];
    let tie = prop_oneof![Just(TieBreak::LowestId), Just(TieBreak::NoDecision)];
    let unit = prop_oneof![
        4 => Just(1.0),
        2 => Just(0.1),
        1 => Just(1.0 / 3.0),
        1 => Just(0.001),
        1 => Just(1e300),
        1 => Just(1e-300),
    ];
    (threshold, 0..QUORUMS.len(), weighted, tie, unit).prop_map(
        |(threshold, q, weighted, tie, unit)| Spec {
            threshold,
            quorum: QUORUMS[q],
            weighted,
            tie,
            unit,
        },
    )
}

/// Checks the ballot against the model: the same outcome, and the winner's share exact.
fn check_tally(ballot: &Ballot, m: &Model) -> Result<(), TestCaseError> {
    let tally = ballot.tally();
    let expected = m.outcome();
    prop_assert_eq!(outcome_of(&tally), expected.clone(), "{:?}", tally);
    let (turnout, support) = m.sums();
    if let Tally::Decided {
        winner,
        support: share,
    } = tally
    {
        let cast: u64 = support.iter().sum();
        let c = (0..m.candidates).find(|&c| id(c) == winner).unwrap();
        let exact = support[c] as f64 / cast as f64;
        prop_assert!((share - exact).abs() <= 1e-12, "{} vs {}", share, exact);
    }
    // Figures in the electorate's unit (scaled, for an electorate out of range): compare shares.
    let total = if m.spec.weighted {
        ballot.electorate().total_weight()
    } else {
        m.weights.len() as f64
    };
    let exact_total = m.total() as f64;
    let close = |got: f64, exact: u64| (got / total - exact as f64 / exact_total).abs() <= 1e-9;
    if let Tally::NoQuorum { turnout: t, .. } = tally {
        prop_assert!(close(t, turnout), "turnout {} vs {}", t, turnout);
    }
    for (c, &s) in support.iter().enumerate() {
        let got = ballot.support(id(c)).unwrap();
        prop_assert!(close(got, s), "support {} vs {}", got, s);
        prop_assert_eq!(got == 0.0, s == 0, "no support is exactly 0");
    }
    Ok(())
}

/// Votes in `order` with `choices`; whenever the ballot calls itself settled, the exact reachable
/// outcomes must be that one outcome. Checks at the first settled step, then at a few later ones.
fn run_settlement(
    spec: Spec,
    weights: Vec<u64>,
    candidates: usize,
    order: Vec<usize>,
    choices: Vec<Option<usize>>,
) -> Result<(), TestCaseError> {
    let n = weights.len();
    let mut ballot = new_ballot(&spec, &weights, candidates);
    let mut m = Model {
        spec,
        weights,
        candidates,
        votes: vec![None; n],
    };
    let mut settled_at: Option<(usize, Outcome)> = None;
    for (step, &voter) in order.iter().enumerate() {
        let choice = choices[step % choices.len()].map(|c| c % candidates);
        prop_assert_eq!(
            ballot.cast(AgentId(voter as u64), to_vote(choice)).unwrap(),
            None
        );
        m.votes[voter] = Some(choice);
        check_tally(&ballot, &m)?;
        let settled = ballot.is_settled();
        match &settled_at {
            Some((at, outcome)) => {
                prop_assert!(settled, "settled at step {} but not at step {}", at, step);
                prop_assert_eq!(&m.outcome(), outcome);
            }
            None if settled => {
                let now = m.outcome();
                let reachable = m.reachable();
                prop_assert!(
                    reachable.iter().all(|o| *o == now),
                    "{:?}: settled after {} of {} voters as {:?}, but the rest can still make \
                     any of {:?}",
                    spec,
                    step + 1,
                    n,
                    now,
                    reachable
                );
                settled_at = Some((step, now));
            }
            None => {}
        }
    }
    prop_assert!(ballot.is_settled(), "everyone voted");
    Ok(())
}

fn order_strategy(n: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..n).collect::<Vec<usize>>()).prop_shuffle()
}

/// Biased choices (a favourite candidate most of the time) so that ballots settle early.
fn choices_strategy() -> impl Strategy<Value = Vec<Option<usize>>> {
    (0usize..3, prop::collection::vec(0u8..10, 128)).prop_map(|(favourite, dice)| {
        dice.into_iter()
            .map(|d| match d {
                0 => None,
                1..=6 => Some(favourite),
                other => Some(other as usize),
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// Votes and re-votes in any order on ballots of 33 to 100 voters: the tally after every step
    /// is the exact model's, re-votes never count twice, and `cast` returns the vote replaced.
    #[test]
    fn large_ballots_tally_like_the_exact_model_after_every_vote_and_re_vote(
        spec in spec_strategy(any::<bool>()),
        weights in prop::collection::vec(0u64..=5, 33..100),
        candidates in 1usize..5,
        ops in prop::collection::vec((0usize..100, prop::option::of(0usize..5)), 0..160),
    ) {
        prop_assume!(!spec.weighted || weights.iter().any(|&w| w > 0));
        let n = weights.len();
        let mut ballot = new_ballot(&spec, &weights, candidates);
        let mut m = Model { spec, weights, candidates, votes: vec![None; n] };
        check_tally(&ballot, &m)?;
        for (voter, choice) in ops {
            let voter = voter % n;
            let choice = choice.map(|c| c % candidates);
            let previous = ballot.cast(AgentId(voter as u64), to_vote(choice)).unwrap();
            prop_assert_eq!(previous, m.votes[voter].map(to_vote));
            m.votes[voter] = Some(choice);
            prop_assert_eq!(ballot.votes_cast(), m.votes.iter().filter(|v| v.is_some()).count());
            check_tally(&ballot, &m)?;
        }
    }

    /// Equal voters (33 to 70 of them), up to three candidates: a settled ballot's outcome is the
    /// only one any split of the remaining voters can reach.
    #[test]
    fn a_settled_ballot_of_equal_voters_has_one_reachable_outcome(
        spec in spec_strategy(Just(false)),
        (n, order) in (33usize..70).prop_flat_map(|n| (Just(n), order_strategy(n))),
        candidates in 1usize..=3,
        choices in choices_strategy(),
    ) {
        run_settlement(spec, vec![1; n], candidates, order, choices)?;
    }

    /// Weighted voters (0 to 3 each, 33 to 60 of them), two candidates: a settled ballot's outcome
    /// is the only one any subset of the remaining voters can reach.
    #[test]
    fn a_settled_weighted_ballot_has_one_reachable_outcome(
        spec in spec_strategy(Just(true)),
        (weights, order) in prop::collection::vec(0u64..=3, 33..60)
            .prop_flat_map(|w| { let n = w.len(); (Just(w), order_strategy(n)) }),
        candidates in 1usize..=2,
        choices in choices_strategy(),
    ) {
        prop_assume!(weights.iter().any(|&w| w > 0));
        run_settlement(spec, weights, candidates, order, choices)?;
    }
}

/// Hand cases around the bound, at sizes on both sides of 32 voters: a one-sided plurality ballot
/// is settled exactly when the leader has more votes than there are voters left (with ties kept
/// as ties, a lead of exactly the voters left can still end in a tie).
#[test]
fn a_one_sided_ballot_settles_once_the_lead_exceeds_the_voters_left_at_any_size() {
    let spec = Spec {
        threshold: Threshold::Plurality,
        quorum: (1, 100),
        weighted: false,
        tie: TieBreak::NoDecision,
        unit: 1.0,
    };
    for n in 28_usize..=70 {
        let mut ballot = new_ballot(&spec, &vec![1; n], 2);
        for voter in 0..n {
            ballot
                .cast(AgentId(voter as u64), Vote::For(id(0)))
                .unwrap();
            let (lead, left) = (voter + 1, n - voter - 1);
            assert_eq!(
                ballot.is_settled(),
                lead > left,
                "{n} voters: {lead} for A, {left} left"
            );
        }
        assert_eq!(ballot.tally().winner(), Some(id(0)));
    }
}
