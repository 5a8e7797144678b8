//! Paired ratios: a target that compares hivekit with a peer is judged on rounds in which both rows
//! were measured back to back, not on two medians that may come from different minutes of load.
//!
//! After the main pass, `cargo xtask bench` runs [`DEFAULT_ROUNDS`] more rounds of just the rows the
//! ratio targets name (quick settings, each round one process per suite, both rows of a pair seconds
//! apart). Each round gives one ratio; the verdict uses their median and a distribution-free
//! confidence interval of that median from order statistics ([`median_interval`]): with 5 rounds,
//! the lowest and highest ratio, which cover the true median ratio with probability 1 - 2/2^5 =
//! 93.75%. A target is `met` when the whole interval is on the right side of the factor, `NOT met`
//! when the whole interval is on the wrong side, and `unclear` when it straddles: load that changes
//! the answer from round to round makes a target unclear, never flips it.

use std::collections::HashMap;

use crate::units::{beyond, reaches};

/// Rounds of paired measurement after the main pass, unless `--rounds` says otherwise.
pub(crate) const DEFAULT_ROUNDS: usize = 5;

/// The least coverage the interval aims for; with fewer than 5 rounds it is lower, and says so.
const TARGET_COVERAGE: f64 = 0.9;

/// The medians of one round, by benchmark id.
pub(crate) type Round = HashMap<String, f64>;

/// A ratio measured over paired rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PairedRatio {
    /// The median of the per-round ratios.
    pub(crate) median: f64,
    /// Lower end of the interval.
    pub(crate) low: f64,
    /// Upper end of the interval.
    pub(crate) high: f64,
    /// Rounds in which both rows were measured.
    pub(crate) rounds: usize,
    /// Probability that the interval covers the true median ratio.
    pub(crate) coverage: f64,
}

/// `n choose k` as a float (small n only).
fn choose(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Coverage of `[x(k), x(n+1-k)]` (1-based order statistics) for the median of a continuous
/// distribution: `1 - 2 * P(Binomial(n, 1/2) <= k - 1)`.
fn coverage(n: usize, k: usize) -> f64 {
    let tail: f64 = (0..k).map(|i| choose(n, i)).sum::<f64>() / 2f64.powi(n as i32);
    1.0 - 2.0 * tail
}

/// The median of `samples` with a confidence interval from order statistics: the narrowest
/// `[x(k), x(n+1-k)]` whose coverage is at least 90% (the widest, `[min, max]`, when no narrower
/// one reaches it). `None` without samples; non-finite samples are ignored.
pub(crate) fn median_interval(samples: &[f64]) -> Option<PairedRatio> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let mut k = 1;
    while k < n.div_ceil(2) && coverage(n, k + 1) >= TARGET_COVERAGE {
        k += 1;
    }
    Some(PairedRatio {
        median,
        low: sorted[k - 1],
        high: sorted[n - k],
        rounds: n,
        coverage: coverage(n, k),
    })
}

/// The per-round ratios `numerator / denominator` over the rounds that measured both (positive).
pub(crate) fn round_ratios(rounds: &[Round], numerator: &str, denominator: &str) -> Vec<f64> {
    rounds
        .iter()
        .filter_map(|round| {
            let top = *round.get(numerator)?;
            let bottom = *round.get(denominator)?;
            (top > 0.0 && bottom > 0.0 && top.is_finite() && bottom.is_finite())
                .then(|| top / bottom)
        })
        .collect()
}

/// Three-way verdict of a ratio against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The whole interval satisfies the limit.
    Met,
    /// The whole interval violates the limit.
    NotMet,
    /// The interval straddles the limit.
    Unclear,
}

/// `at_least`: the ratio must be >= `limit` (a speed-up); otherwise <= `limit` (a slow-down).
pub(crate) fn judge(ratio: &PairedRatio, limit: f64, at_least: bool) -> Side {
    let (all_good, all_bad) = if at_least {
        (reaches(ratio.low, limit), !reaches(ratio.high, limit))
    } else {
        (!beyond(ratio.high, limit), beyond(ratio.low, limit))
    };
    match (all_good, all_bad) {
        (true, _) => Side::Met,
        (_, true) => Side::NotMet,
        _ => Side::Unclear,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_rounds_use_min_and_max_at_93_75_percent() {
        let ratio = median_interval(&[3.1, 2.9, 3.4, 3.0, 3.2]).expect("samples");
        assert_eq!(ratio.median, 3.1);
        assert_eq!((ratio.low, ratio.high), (2.9, 3.4));
        assert_eq!(ratio.rounds, 5);
        assert!((ratio.coverage - 0.9375).abs() < 1e-12);
    }

    #[test]
    fn more_rounds_narrow_the_interval_while_keeping_90_percent() {
        let samples: Vec<f64> = (1..=10).map(f64::from).collect();
        let ratio = median_interval(&samples).expect("samples");
        assert_eq!(ratio.median, 5.5);
        // k = 3 has coverage 1 - 2 * 56/1024 = 0.89, below 90%: k = 2.
        assert_eq!((ratio.low, ratio.high), (2.0, 9.0));
        assert!(ratio.coverage >= 0.9, "{}", ratio.coverage);
    }

    #[test]
    fn few_or_odd_samples() {
        assert_eq!(median_interval(&[]), None);
        assert_eq!(median_interval(&[f64::NAN]), None);
        let one = median_interval(&[2.0]).expect("one");
        assert_eq!((one.low, one.median, one.high), (2.0, 2.0, 2.0));
        assert_eq!(one.coverage, 0.0);
        let two = median_interval(&[1.0, 3.0, f64::INFINITY]).expect("two");
        assert_eq!((two.low, two.median, two.high), (1.0, 2.0, 3.0));
        assert!((two.coverage - 0.5).abs() < 1e-12);
    }

    #[test]
    fn ratios_pair_rows_of_the_same_round_only() {
        let round = |ours: Option<f64>, peer: f64| -> Round {
            let mut round = Round::new();
            if let Some(ours) = ours {
                round.insert("g/hivekit/1".into(), ours);
            }
            round.insert("g/peer/1".into(), peer);
            round
        };
        let rounds = [
            round(Some(2.0), 6.0),
            round(None, 100.0),
            round(Some(4.0), 10.0),
            round(Some(0.0), 1.0),
        ];
        assert_eq!(round_ratios(&rounds, "g/peer/1", "g/hivekit/1"), [3.0, 2.5]);
    }

    #[test]
    fn verdicts_are_three_way() {
        let interval = |low: f64, high: f64| PairedRatio {
            median: (low + high) / 2.0,
            low,
            high,
            rounds: 5,
            coverage: 0.9375,
        };
        // At least 2x faster.
        assert_eq!(judge(&interval(2.0, 2.5), 2.0, true), Side::Met);
        assert_eq!(judge(&interval(1.5, 1.9), 2.0, true), Side::NotMet);
        assert_eq!(judge(&interval(1.9, 2.1), 2.0, true), Side::Unclear);
        // At most 1.1x the time.
        assert_eq!(judge(&interval(0.9, 1.1), 1.1, false), Side::Met);
        assert_eq!(judge(&interval(1.2, 1.5), 1.1, false), Side::NotMet);
        assert_eq!(judge(&interval(1.0, 1.2), 1.1, false), Side::Unclear);
    }
}
