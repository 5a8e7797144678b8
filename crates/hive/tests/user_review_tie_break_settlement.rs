//! Review of "a ballot whose rivals can at most tie a leader that wins ties is settled" (a594a88):
//! `Ballot::is_settled` must never answer true while some continuation (the remaining voters
//! voting for any candidate, abstaining, or never voting) changes the outcome
//! (`Tally::same_outcome`). The review found three ways it did, all with weights far below the
//! rounding of the total (the repros at the end): a tie allowed under a majority, a leader
//! chosen by raw support instead of the tally's tie rule (settled, then not), and, from before
//! that commit, a supermajority's "undecided for good" against a `remaining` off by an ulp of
//! the total.
//!
//! - Small electorates (up to 6 voters, 2 or 3 candidates), weighted with awkward float weights:
//!   every state (any subset of voters has voted, in index order; the others have not yet) is
//!   checked against every continuation, for every threshold, several quorums, both tie-breaks
//!   and candidate lists in and out of id order.
//! - Larger electorates (up to 60 voters, through the quiet bound): random and adversarial
//!   continuations whenever the ballot says it is settled, exhaustive ones when few voters are
//!   left, and an exact closed-form oracle for unweighted plurality.
//!
//! Only the public API: absence is modelled as never voting (`mark_absent` is crate-private).

use std::sync::atomic::{AtomicUsize, Ordering};

use hivekit_hive::{
    AgentId, Ballot, ConsensusPolicy, Electorate, ProposalId, Tally, Threshold, TieBreak, Vote,
};
use proptest::prelude::*;

const A: ProposalId = ProposalId(1);
const B: ProposalId = ProposalId(2);
const C: ProposalId = ProposalId(3);

/// An outcome without the support figure (what `same_outcome` compares).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    NoQuorum,
    Decided(ProposalId),
    Tie(Vec<ProposalId>),
    Undecided,
}

fn outcome(tally: &Tally) -> Outcome {
    match tally {
        Tally::NoQuorum { .. } => Outcome::NoQuorum,
        Tally::Decided { winner, .. } => Outcome::Decided(*winner),
        Tally::Tie { candidates } => Outcome::Tie(candidates.clone()),
        Tally::Undecided => Outcome::Undecided,
    }
}

fn policy(threshold: Threshold, quorum: f64, weighted: bool, tie: TieBreak) -> ConsensusPolicy {
    ConsensusPolicy::new(threshold, quorum)
        .unwrap()
        .with_weighted(weighted)
        .with_tie_break(tie)
}

fn new_ballot(policy: ConsensusPolicy, weights: &[f64], candidates: &[ProposalId]) -> Ballot {
    let electorate = Electorate::new(
        weights
            .iter()
            .enumerate()
            .map(|(voter, &w)| (AgentId(voter as u64), w)),
    )
    .unwrap();
    Ballot::new(policy, electorate, candidates.iter().copied()).unwrap()
}

const THRESHOLDS: [Threshold; 8] = [
    Threshold::Plurality,
    Threshold::Majority,
    Threshold::Supermajority { num: 2, den: 3 },
    Threshold::Supermajority { num: 1, den: 2 },
    Threshold::Supermajority { num: 1, den: 3 },
    Threshold::Supermajority { num: 3, den: 4 },
    Threshold::Supermajority { num: 5, den: 5 },
    Threshold::Unanimous,
];

/// A voter's choice in the exhaustive search: 0 not voted (yet, or never), 1 abstain, 2 + c for
/// candidate c.
fn vote_of(choice: usize, candidates: &[ProposalId]) -> Option<Vote> {
    match choice {
        0 => None,
        1 => Some(Vote::Abstain),
        c => Some(Vote::For(candidates[c - 2])),
    }
}

#[derive(Default, Debug)]
struct Stats {
    configs: usize,
    states: usize,
    settled: usize,
    /// Settled states checked against every continuation.
    checked_continuations: usize,
    /// Fixed (no continuation changes the outcome) but not settled: allowed (conservative).
    conservative: usize,
    /// Settled, then one more vote made the ballot unsettled.
    not_monotone: usize,
    first_not_monotone: Option<String>,
    violations: Vec<String>,
}

/// Every state of a ballot of `weights.len()` voters, with the outcomes each can still reach.
fn explore(policy: ConsensusPolicy, weights: &[f64], candidates: &[ProposalId], stats: &mut Stats) {
    let n = weights.len();
    let k = candidates.len() + 2;
    let size = k.pow(n as u32);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut out = vec![0u8; size];
    let mut settled = vec![false; size];
    // Depth-first: voter v chooses at depth v; the votes are cast in index order.
    struct Ctx<'a> {
        n: usize,
        candidates: &'a [ProposalId],
        outcomes: &'a mut Vec<Outcome>,
        out: &'a mut [u8],
        settled: &'a mut [bool],
    }
    fn dfs(v: usize, idx: usize, place: usize, ballot: &Ballot, ctx: &mut Ctx<'_>) {
        if v == ctx.n {
            let o = outcome(&ballot.tally());
            let id = match ctx.outcomes.iter().position(|x| *x == o) {
                Some(id) => id,
                None => {
                    ctx.outcomes.push(o);
                    ctx.outcomes.len() - 1
                }
            };
            ctx.out[idx] = id as u8;
            ctx.settled[idx] = ballot.is_settled();
            return;
        }
        let candidates = ctx.candidates;
        let k = candidates.len() + 2;
        for choice in 0..k {
            match vote_of(choice, candidates) {
                None => dfs(v + 1, idx, place * k, ballot, ctx),
                Some(vote) => {
                    let mut next = ballot.clone();
                    next.cast(AgentId(v as u64), vote).unwrap();
                    dfs(v + 1, idx + choice * place, place * k, &next, ctx);
                }
            }
        }
    }
    let empty = new_ballot(policy, weights, candidates);
    dfs(
        0,
        0,
        1,
        &empty,
        &mut Ctx {
            n,
            candidates,
            outcomes: &mut outcomes,
            out: &mut out,
            settled: &mut settled,
        },
    );
    assert!(outcomes.len() <= 32);
    let digits = |idx: usize| -> Vec<usize> {
        let mut d = Vec::with_capacity(n);
        let mut x = idx;
        for _ in 0..n {
            d.push(x % k);
            x /= k;
        }
        d
    };
    // reach[idx]: the outcomes of `idx` and of every state it can still become.
    let mut order: Vec<usize> = (0..size).collect();
    order.sort_by_key(|&idx| digits(idx).iter().filter(|&&d| d == 0).count());
    let mut reach = vec![0u32; size];
    let powers: Vec<usize> = (0..n).map(|v| k.pow(v as u32)).collect();
    for &idx in &order {
        let d = digits(idx);
        let mut r = 1u32 << out[idx];
        for v in 0..n {
            if d[v] == 0 {
                for choice in 1..k {
                    let child = idx + choice * powers[v];
                    r |= reach[child];
                    if settled[idx] && !settled[child] {
                        stats.not_monotone += 1;
                        if stats.first_not_monotone.is_none() {
                            stats.first_not_monotone = Some(format!(
                                "{policy:?} weights {weights:?} candidates {candidates:?}: \
                                 settled at {:?} ({:?}), not after voter {v} chooses {:?}",
                                d,
                                outcomes[out[idx] as usize],
                                vote_of(choice, candidates)
                            ));
                        }
                    }
                }
            }
        }
        reach[idx] = r;
    }
    stats.configs += 1;
    for idx in 0..size {
        let d = digits(idx);
        stats.states += 1;
        let fixed = reach[idx] == 1u32 << out[idx];
        if d.iter().all(|&c| c != 0) && !settled[idx] {
            stats.violations.push(format!(
                "{policy:?} weights {weights:?} candidates {candidates:?}: everyone voted {d:?} \
                 but not settled"
            ));
        }
        if !settled[idx] {
            if fixed {
                stats.conservative += 1;
                if !policy.weighted
                    && policy.threshold == Threshold::Plurality
                    && candidates.len() >= 2
                {
                    stats.violations.push(format!(
                        "{policy:?} {} voters candidates {candidates:?}: state {d:?} is fixed \
                         ({:?}) but not settled (unweighted plurality is exact)",
                        n, outcomes[out[idx] as usize]
                    ));
                }
            }
            continue;
        }
        stats.settled += 1;
        stats.checked_continuations += 1;
        if fixed {
            continue;
        }
        // A witness, replayed in the real order: this state's votes, then the continuation's.
        let now = outcomes[out[idx] as usize].clone();
        let mut witness = None;
        'search: for other in 0..size {
            let e = digits(other);
            if (0..n).all(|v| d[v] == 0 || d[v] == e[v]) && outcomes[out[other] as usize] != now {
                let mut b = new_ballot(policy, weights, candidates);
                for (v, &choice) in d.iter().enumerate() {
                    if let Some(vote) = vote_of(choice, candidates) {
                        b.cast(AgentId(v as u64), vote).unwrap();
                    }
                }
                let before = outcome(&b.tally());
                for v in 0..n {
                    if d[v] == 0 {
                        if let Some(vote) = vote_of(e[v], candidates) {
                            b.cast(AgentId(v as u64), vote).unwrap();
                        }
                    }
                }
                let after = outcome(&b.tally());
                if after != before {
                    witness = Some((e.clone(), before, after));
                    break 'search;
                }
            }
        }
        stats.violations.push(format!(
            "{policy:?} weights {weights:?} candidates {candidates:?}: settled at {d:?} as \
             {now:?}, but a continuation changes it: {witness:?}"
        ));
    }
}

fn weight_sets() -> Vec<Vec<f64>> {
    vec![
        vec![0.1, 0.2, 0.3, 0.7],
        vec![0.3, 0.1, 0.2, 0.7, 0.1],
        vec![0.1; 6],
        vec![0.7, 0.7, 0.7, 0.7, 0.7],
        vec![1.0 / 3.0; 5],
        vec![1e-9, 1.0, 1.0, 1e-9, 2.0],
        vec![1e-13, 1.0, 1.0, 1e-13, 1e-13],
        vec![1.0, 1e-13, 1.0, 2e-13, 3e-13],
        vec![1e12, 0.1, 0.3, 0.7, 0.2],
        vec![0.2, 0.3, 1e12, 0.5, 0.5, 0.1],
        vec![1e12, 1e12, 0.5, 0.5, 1.0],
        vec![1e12, 1e-13, 1.0, 3.0],
        vec![3.0, 1.0, 1.0, 1.0, 3.0],
        vec![0.0, 1.0, 1.0, 1.0, 1.0],
        vec![1.0; 6],
    ]
}

fn candidate_lists(voters: usize) -> Vec<Vec<ProposalId>> {
    let mut lists = vec![vec![A, B], vec![B, A]];
    if voters <= 5 {
        lists.push(vec![A, B, C]);
        lists.push(vec![C, A, B]);
    }
    lists
}

/// Every state of every small ballot against every continuation.
#[test]
fn small_weighted_ballots_never_settle_while_a_continuation_changes_the_outcome() {
    let mut stats = Stats::default();
    for weights in weight_sets() {
        // Unweighted only for a few sets (the weights do not matter then).
        let weighted_modes: &[bool] = if weights.len() >= 5 && weights[0] == 1e12 {
            &[true, false]
        } else if weights == [1.0; 6] {
            &[false]
        } else {
            &[true]
        };
        for &weighted in weighted_modes {
            for candidates in candidate_lists(weights.len()) {
                for threshold in THRESHOLDS {
                    for quorum in [1e-9, 0.5, 1.0] {
                        for tie in [TieBreak::LowestId, TieBreak::NoDecision] {
                            let policy = policy(threshold, quorum, weighted, tie);
                            explore(policy, &weights, &candidates, &mut stats);
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "exhaustive: {} configs, {} states, {} settled states checked against every \
         continuation, {} fixed-but-not-settled (conservative), {} settled-then-unsettled \
         transitions (first: {:?})",
        stats.configs,
        stats.states,
        stats.checked_continuations,
        stats.conservative,
        stats.not_monotone,
        stats.first_not_monotone
    );
    if std::env::var_os("REVIEW_DUMP").is_some() {
        for v in &stats.violations {
            eprintln!("VIOLATION {v}");
        }
    }
    assert!(
        stats.violations.is_empty(),
        "{} violations, first: {:#?}",
        stats.violations.len(),
        &stats.violations[..stats.violations.len().min(5)]
    );
}

/// xorshift64*.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 33) as usize) % n
    }
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

static LARGE_SETTLED_CHECKS: AtomicUsize = AtomicUsize::new(0);
static LARGE_CONTINUATIONS: AtomicUsize = AtomicUsize::new(0);
static LARGE_NOT_MONOTONE: AtomicUsize = AtomicUsize::new(0);
static LARGE_EXACT_CHECKS: AtomicUsize = AtomicUsize::new(0);

/// Casts `plan` (voter, vote or `None` for never voting) on a clone of `ballot`, checking the
/// outcome after every vote (each prefix is also a continuation: everyone else never votes).
fn play(
    ballot: &Ballot,
    now: &Outcome,
    plan: &[(usize, Option<Vote>)],
    describe: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    let mut b = ballot.clone();
    LARGE_CONTINUATIONS.fetch_add(1, Ordering::Relaxed);
    for (step, &(voter, vote)) in plan.iter().enumerate() {
        if let Some(vote) = vote {
            b.cast(AgentId(voter as u64), vote).unwrap();
            let later = outcome(&b.tally());
            prop_assert_eq!(
                &later,
                now,
                "settled as {:?} but the continuation {:?} (first {} steps) makes {:?}; {}",
                now,
                plan,
                step + 1,
                later,
                describe()
            );
        }
    }
    Ok(())
}

/// The exact settledness of an unweighted plurality ballot from its counts.
fn exact_unweighted_plurality(
    n: usize,
    quorum: f64,
    tie: TieBreak,
    turnout: usize,
    support: &[(ProposalId, usize)],
) -> bool {
    let left = n - turnout;
    if left == 0 {
        return true;
    }
    let total = n as f64;
    let met = turnout > 0 && turnout as f64 + total * 1e-12 >= quorum * total;
    if !met {
        return (turnout + left) as f64 + total * 1e-12 < quorum * total;
    }
    let top = support.iter().map(|&(_, s)| s).max().unwrap();
    if top == 0 {
        return false;
    }
    let tied: Vec<ProposalId> = support
        .iter()
        .filter(|&&(_, s)| s == top)
        .map(|&(c, _)| c)
        .collect();
    let winner = *tied.iter().min().unwrap();
    if tie == TieBreak::NoDecision && tied.len() > 1 {
        return false;
    }
    support
        .iter()
        .filter(|&&(c, _)| c != winner)
        .all(|&(c, s)| {
            s + left < top || (tie == TieBreak::LowestId && s + left == top && c > winner)
        })
}

#[derive(Debug, Clone)]
struct Case {
    weights: Vec<f64>,
    weighted: bool,
    threshold: Threshold,
    quorum: f64,
    tie: TieBreak,
    candidates: Vec<ProposalId>,
    order: Vec<usize>,
    /// How many of `order` vote (the rest never do).
    voting: usize,
    seed: u64,
    /// 0: a favourite; 1: alternating between two candidates (near ties); 2: uniform.
    style: u8,
}

const PALETTES: [&[f64]; 6] = [
    &[1.0],
    &[0.1, 0.2, 0.3, 0.7],
    &[1e-9, 1.0, 3.0],
    &[1e-13, 0.1, 1.0],
    &[0.1, 0.1, 0.2],
    &[3.0, 1.0, 0.7, 1e-13],
];

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        20usize..=60,
        0..PALETTES.len(),
        prop_oneof![
            Just(None),
            Just(Some(1e12)),
            Just(Some(1e13)),
            Just(Some(1e-9))
        ],
        any::<bool>(),
        0..THRESHOLDS.len(),
        prop_oneof![Just(1e-9), Just(0.25), Just(0.5), Just(1.0)],
        prop_oneof![3 => Just(TieBreak::LowestId), 1 => Just(TieBreak::NoDecision)],
        prop_oneof![
            Just(vec![A, B]),
            Just(vec![B, A]),
            Just(vec![A, B, C]),
            Just(vec![C, B, A]),
            Just(vec![B, C, A])
        ],
        any::<u64>(),
        0u8..3,
    )
        .prop_map(
            |(n, palette, odd, weighted, threshold, quorum, tie, candidates, seed, style)| {
                let mut rng = Rng(seed | 1);
                let palette = PALETTES[palette];
                let mut weights: Vec<f64> =
                    (0..n).map(|_| palette[rng.below(palette.len())]).collect();
                if let Some(w) = odd {
                    let at = rng.below(n);
                    weights[at] = w;
                }
                let mut order: Vec<usize> = (0..n).collect();
                rng.shuffle(&mut order);
                let voting = n - rng.below(n / 4 + 1);
                Case {
                    weights,
                    weighted,
                    threshold: THRESHOLDS[threshold],
                    quorum,
                    tie,
                    candidates,
                    order,
                    voting,
                    seed: rng.next(),
                    style,
                }
            },
        )
}

/// Random and adversarial continuations of a settled ballot.
fn check_settled(
    case: &Case,
    ballot: &Ballot,
    remaining: &[usize],
    rng: &mut Rng,
    step: usize,
) -> Result<(), TestCaseError> {
    LARGE_SETTLED_CHECKS.fetch_add(1, Ordering::Relaxed);
    let now = outcome(&ballot.tally());
    let describe = || format!("{case:?} after {step} votes: {ballot:?}");
    let cands = &case.candidates;
    let options = cands.len() + 2;
    // Few left: every continuation (in order of `remaining`).
    if remaining.len() <= 4 {
        let count = options.pow(remaining.len() as u32);
        for mut code in 0..count {
            let plan: Vec<(usize, Option<Vote>)> = remaining
                .iter()
                .map(|&voter| {
                    let choice = code % options;
                    code /= options;
                    (voter, vote_of(choice, cands))
                })
                .collect();
            play(ballot, &now, &plan, &describe)?;
        }
        return Ok(());
    }
    let weight = |voter: usize| {
        if case.weighted {
            case.weights[voter]
        } else {
            1.0
        }
    };
    // Everyone left for one candidate, heaviest first and lightest first; everyone abstains.
    for &target in cands {
        let mut sorted = remaining.to_vec();
        sorted.sort_by(|&x, &y| weight(y).total_cmp(&weight(x)));
        let plan: Vec<_> = sorted
            .iter()
            .map(|&v| (v, Some(Vote::For(target))))
            .collect();
        play(ballot, &now, &plan, &describe)?;
        let reversed: Vec<_> = plan.iter().rev().copied().collect();
        play(ballot, &now, &reversed, &describe)?;
    }
    let abstain: Vec<_> = remaining
        .iter()
        .map(|&v| (v, Some(Vote::Abstain)))
        .collect();
    play(ballot, &now, &abstain, &describe)?;
    // Tie seekers: push each candidate as close to the top as the remaining weights allow
    // (greedy subset sum, from either end), the rest abstaining or staying away.
    let total: f64 = if case.weighted {
        case.weights.iter().sum()
    } else {
        case.weights.len() as f64
    };
    for &target in cands {
        for heaviest_first in [true, false] {
            for slack_factor in [0.0, 0.49, 0.51, 1.0, 1.01, 2.0] {
                let mut sorted = remaining.to_vec();
                sorted.sort_by(|&x, &y| weight(y).total_cmp(&weight(x)));
                if !heaviest_first {
                    sorted.reverse();
                }
                let top = cands
                    .iter()
                    .map(|&c| ballot.support(c).unwrap())
                    .fold(0.0_f64, f64::max);
                let mut support = ballot.support(target).unwrap();
                let goal = top + slack_factor * total * 1e-12;
                let mut plan = Vec::new();
                for &v in &sorted {
                    if support + weight(v) <= goal {
                        support += weight(v);
                        plan.push((v, Some(Vote::For(target))));
                    }
                }
                for &v in &sorted {
                    if !plan.iter().any(|&(p, _)| p == v) {
                        plan.push((
                            v,
                            if rng.below(2) == 0 {
                                Some(Vote::Abstain)
                            } else {
                                None
                            },
                        ));
                    }
                }
                play(ballot, &now, &plan, &describe)?;
            }
        }
    }
    // Random continuations.
    for _ in 0..24 {
        let mut plan: Vec<(usize, Option<Vote>)> = remaining
            .iter()
            .map(|&v| (v, vote_of(rng.below(options), cands)))
            .collect();
        rng.shuffle(&mut plan);
        play(ballot, &now, &plan, &describe)?;
    }
    Ok(())
}

fn run_case(case: Case) -> Result<(), TestCaseError> {
    let policy = policy(case.threshold, case.quorum, case.weighted, case.tie);
    if case.weighted && case.weights.iter().all(|&w| w == 0.0) {
        return Ok(());
    }
    let n = case.weights.len();
    let mut ballot = new_ballot(policy, &case.weights, &case.candidates);
    let mut rng = Rng(case.seed | 1);
    let favourite = rng.below(case.candidates.len());
    let second = (favourite + 1) % case.candidates.len();
    let mut voted = vec![false; n];
    let mut counts = vec![0usize; case.candidates.len()];
    let mut turnout = 0;
    let mut was_settled = false;
    let mut settled_checks = 0;
    for (step, &voter) in case.order.iter().take(case.voting).enumerate() {
        let choice = match case.style {
            0 => match rng.below(10) {
                0 => None,
                1..=6 => Some(favourite),
                _ => Some(rng.below(case.candidates.len())),
            },
            1 => match rng.below(20) {
                0 => None,
                1 => Some(rng.below(case.candidates.len())),
                d if d % 2 == 0 => Some(favourite),
                _ => Some(second),
            },
            _ => {
                let pick = rng.below(case.candidates.len() + 1);
                (pick < case.candidates.len()).then_some(pick)
            }
        };
        let vote = choice.map_or(Vote::Abstain, |c| Vote::For(case.candidates[c]));
        ballot.cast(AgentId(voter as u64), vote).unwrap();
        voted[voter] = true;
        turnout += 1;
        if let Some(c) = choice {
            counts[c] += 1;
        }
        let settled = ballot.is_settled();
        if was_settled && !settled {
            LARGE_NOT_MONOTONE.fetch_add(1, Ordering::Relaxed);
        }
        was_settled |= settled;
        if !case.weighted && case.threshold == Threshold::Plurality {
            let support: Vec<(ProposalId, usize)> = case
                .candidates
                .iter()
                .copied()
                .zip(counts.iter().copied())
                .collect();
            let exact = exact_unweighted_plurality(n, case.quorum, case.tie, turnout, &support);
            LARGE_EXACT_CHECKS.fetch_add(1, Ordering::Relaxed);
            prop_assert_eq!(
                settled,
                exact,
                "unweighted plurality: is_settled {} but exactly {} after {} votes {:?}: {:?}",
                settled,
                exact,
                step + 1,
                support,
                case
            );
        }
        // Check the first few settled states in full, then every fifth.
        if settled && (settled_checks < 3 || step % 5 == 0) {
            settled_checks += 1;
            let remaining: Vec<usize> = (0..n).filter(|&v| !voted[v]).collect();
            check_settled(&case, &ballot, &remaining, &mut rng, step + 1)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 160,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_7D94_BD27),
        ..ProptestConfig::default()
    })]

    /// Larger electorates (20 to 60 voters: the quiet bound from 33), awkward weights: once
    /// `is_settled` says so, no continuation tried changes the outcome; for unweighted plurality
    /// it answers exactly as the closed-form oracle.
    #[test]
    fn larger_ballots_once_settled_keep_their_outcome(case in case_strategy()) {
        run_case(case)?;
    }
}

#[test]
fn zz_report_large_counts() {
    // Runs alongside the proptest (order not guaranteed): only a report.
    eprintln!(
        "large: {} settled states checked, {} continuations played, {} exact-oracle checks, {} \
         settled-then-unsettled steps",
        LARGE_SETTLED_CHECKS.load(Ordering::Relaxed),
        LARGE_CONTINUATIONS.load(Ordering::Relaxed),
        LARGE_EXACT_CHECKS.load(Ordering::Relaxed),
        LARGE_NOT_MONOTONE.load(Ordering::Relaxed),
    );
}

/// A settled ballot becomes unsettled after one more vote (and settled again after the next),
/// which the commit made possible: the tie clause lets a rival with a higher id pass the leader
/// by up to half the slack, and once it has, `leader()` is the rival, whose own rival (the old
/// leader, lower id) must then be beaten by more than the remaining weight.
#[test]
fn a_settled_ballot_stays_settled_as_more_voters_vote() {
    // Weights 1, 1 and two voters of 1e-13: the slack (total * 1e-12) is 2e-12, so the two
    // light voters can move B by at most 2e-13.
    let weights = [1.0, 1.0, 1e-13, 1e-13];
    let mut b = new_ballot(
        policy(Threshold::Plurality, 0.5, true, TieBreak::LowestId),
        &weights,
        &[A, B],
    );
    b.cast(AgentId(0), Vote::For(A)).unwrap();
    b.cast(AgentId(1), Vote::For(B)).unwrap();
    // A and B level: a tie, which A wins; B can at most draw level within rounding.
    assert_eq!(b.tally().winner(), Some(A));
    assert!(b.is_settled());
    b.cast(AgentId(2), Vote::For(B)).unwrap();
    // Still A (B is 1e-13 ahead: level within the slack), and nothing can change that.
    assert_eq!(b.tally().winner(), Some(A));
    assert!(b.is_settled(), "settled, then one more vote and not: {b:?}");
}

/// a594a88's tie clause under a majority: with weights far below the total's rounding, the
/// ballot settles a leader that a rival can still bring level, and a tie is no majority.
///
/// Voter 0 (1e-13) votes A, voter 1 (1.0) abstains; voter 2 (1e-13) has not voted. A has 1e-13 of
/// 1e-13 cast, and voter 2 can make it 1e-13 each: exactly half, undecided. `remaining` is
/// computed as 1.0000000000002 - 1.0000000000001, 9.99e-14 rather than 1e-13, so the majority
/// check against `cast + remaining` passes (2e-13 > 1.999e-13, the allowance being relative:
/// 2e-25), and the tie clause (B's best 9.99e-14 <= A's 1e-13 plus half the slack) lets it
/// through. Before a594a88 the leader needed a lead beyond `remaining + 2 * slack`, which
/// implies a majority with a margin of the slack.
#[test]
fn a_majority_ballot_is_not_settled_while_a_rival_can_draw_level() {
    let weights = [1e-13, 1.0, 1e-13];
    let mut b = new_ballot(
        policy(Threshold::Majority, 0.5, true, TieBreak::LowestId),
        &weights,
        &[A, B],
    );
    b.cast(AgentId(0), Vote::For(A)).unwrap();
    b.cast(AgentId(1), Vote::Abstain).unwrap();
    let now = b.tally();
    assert_eq!(now.winner(), Some(A));
    let settled = b.is_settled();
    b.cast(AgentId(2), Vote::For(B)).unwrap();
    assert_eq!(b.tally(), Tally::Undecided, "1e-13 each: no majority");
    assert!(
        !settled,
        "settled as {now:?}, but voter 2 makes it {:?}",
        b.tally()
    );
}

/// The same with readable weights: a heavy voter (1e12) makes the slack 1.0 and the rounding of
/// `remaining` about 1e-4, while the votes are tenths.
#[test]
fn a_majority_ballot_beside_a_heavy_abstainer_is_not_settled_while_a_rival_can_draw_level() {
    let weights = [1e12, 0.1, 0.3, 0.7, 0.2];
    let mut b = new_ballot(
        policy(Threshold::Majority, 0.5, true, TieBreak::LowestId),
        &weights,
        &[A, B],
    );
    b.cast(AgentId(0), Vote::Abstain).unwrap();
    b.cast(AgentId(2), Vote::For(A)).unwrap();
    b.cast(AgentId(3), Vote::Abstain).unwrap();
    let now = b.tally();
    assert_eq!(now.winner(), Some(A));
    let settled = b.is_settled();
    // Voters 1 and 4 (0.1 + 0.2) for B: 0.3 each, level, and half is no majority.
    b.cast(AgentId(1), Vote::For(B)).unwrap();
    b.cast(AgentId(4), Vote::For(B)).unwrap();
    assert_eq!(b.tally(), Tally::Undecided);
    assert!(
        !settled,
        "settled as {now:?}, but voters 1 and 4 make it {:?}",
        b.tally()
    );
}

/// Not a594a88's: the "undecided for good" check under a supermajority compares
/// `s + remaining` against `cast + remaining` with a relative allowance of 1e-12, while
/// `remaining` carries an absolute rounding of an ulp of the total.
#[test]
fn a_supermajority_ballot_is_not_settled_undecided_while_a_candidate_can_reach_it() {
    let weights = [1e12, 0.1, 0.3, 0.7, 0.2];
    let mut b = new_ballot(
        policy(
            Threshold::Supermajority { num: 2, den: 3 },
            0.5,
            true,
            TieBreak::LowestId,
        ),
        &weights,
        &[A, B],
    );
    b.cast(AgentId(0), Vote::Abstain).unwrap();
    b.cast(AgentId(2), Vote::For(B)).unwrap();
    b.cast(AgentId(3), Vote::Abstain).unwrap();
    b.cast(AgentId(4), Vote::For(A)).unwrap();
    let now = b.tally();
    assert_eq!(now, Tally::Undecided);
    let settled = b.is_settled();
    // Voter 1 for B: 0.4 of 0.6, two thirds (and A, level within the slack of 1.0, wins).
    b.cast(AgentId(1), Vote::For(B)).unwrap();
    assert_ne!(b.tally(), Tally::Undecided);
    assert!(
        !settled,
        "settled as {now:?}, but voter 1 makes it {:?}",
        b.tally()
    );
}
