//! Comparing a run against a baseline, without crying wolf on a noisy machine.
//!
//! A row regresses only when both hold: its median is slower than the baseline's by more than the
//! threshold, and the two confidence intervals of the median do not overlap. Either alone is noise on
//! a shared 2-core machine: a big change with overlapping intervals is an unlucky sample, and a
//! separated but tiny change is not worth a red build. Improvements are judged the same way.
//!
//! Both intervals describe one run each, not the spread between runs, so two runs of the same commit
//! a minute apart can still pass both tests. A row flagged as regressed is therefore measured again,
//! round after round ([`confirm`]), and stays regressed only when the whole interval of the
//! re-measured median (order statistics over the rounds, see [`crate::paired`]) is beyond the
//! threshold: a spike does not repeat, a real slowdown does.

use std::fmt;

use crate::baseline::{Baseline, BaselineEntry};
use crate::paired::{median_interval, PairedRatio};
use crate::results::BenchResult;
use crate::units::beyond;

/// The outcome for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Faster beyond the threshold, with separated intervals.
    Improved,
    /// Slower beyond the threshold, with separated intervals.
    Regressed,
    /// Anything else.
    WithinNoise,
    /// The baseline has no row with this id.
    New,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Improved => "improved",
            Self::Regressed => "regressed",
            Self::WithinNoise => "within noise",
            Self::New => "new",
        })
    }
}

/// A row compared with its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Comparison {
    /// Change of the median in percent of the baseline (`+12.5` is slower), if there was a baseline row.
    pub(crate) change_pct: Option<f64>,
    /// The verdict.
    pub(crate) verdict: Verdict,
    /// For a row flagged as regressed and measured again: its time over the baseline's, per round.
    pub(crate) remeasured: Option<PairedRatio>,
}

impl Comparison {
    /// Slower than the threshold, whatever the intervals: worth measuring again. With re-measuring
    /// (the default), this and not the interval test is what sends a row to be re-measured, and
    /// the rounds decide.
    pub(crate) fn is_candidate(&self, threshold_pct: f64) -> bool {
        self.change_pct
            .is_some_and(|change| beyond(change, threshold_pct))
    }
}

/// Whether re-measured medians confirm a regression: the lower end of the interval of
/// `median / reference` over the rounds is beyond the threshold; the reference is the baseline's
/// median. Also returns that interval
/// (`None` when no round measured the row: the flag is then not confirmed either).
pub(crate) fn confirm(
    reference_ns: f64,
    remeasured_ns: &[f64],
    threshold_pct: f64,
) -> (bool, Option<PairedRatio>) {
    if !(reference_ns.is_finite() && reference_ns > 0.0) {
        return (false, None);
    }
    let ratios: Vec<f64> = remeasured_ns.iter().map(|ns| ns / reference_ns).collect();
    let interval = median_interval(&ratios);
    let confirmed = interval.is_some_and(|i| beyond((i.low - 1.0) * 100.0, threshold_pct));
    (confirmed, interval)
}

/// `re-measured 5 rounds: +24.1% (+20.3%..+27.9%)`.
pub(crate) fn format_remeasured(ratio: &PairedRatio) -> String {
    let pct = |r: f64| format_change(Some((r - 1.0) * 100.0));
    format!(
        "re-measured {} rounds: {} ({}..{})",
        ratio.rounds,
        pct(ratio.median),
        pct(ratio.low),
        pct(ratio.high)
    )
}

/// Compares one row with its baseline entry (`None`: the row is new).
pub(crate) fn compare(
    current: &BenchResult,
    baseline: Option<&BaselineEntry>,
    threshold_pct: f64,
) -> Comparison {
    let Some(base) = baseline else {
        return Comparison {
            change_pct: None,
            verdict: Verdict::New,
            remeasured: None,
        };
    };
    if base.median_ns == 0.0 && current.median_ns > 0.0 && current.ci_low_ns > base.ci_high_ns {
        // No percentage of zero, but any growth from it is beyond any threshold and the
        // intervals are apart: the documented definition of `regressed`.
        return Comparison {
            change_pct: None,
            verdict: Verdict::Regressed,
            remeasured: None,
        };
    }
    if !base.median_ns.is_finite() || base.median_ns <= 0.0 || !current.median_ns.is_finite() {
        // A zero or corrupt baseline median gives no meaningful percentage.
        return Comparison {
            change_pct: None,
            verdict: Verdict::WithinNoise,
            remeasured: None,
        };
    }
    let change_pct = (current.median_ns - base.median_ns) / base.median_ns * 100.0;
    let slower_apart = current.ci_low_ns > base.ci_high_ns;
    let faster_apart = current.ci_high_ns < base.ci_low_ns;
    let verdict = if beyond(change_pct, threshold_pct) && slower_apart {
        Verdict::Regressed
    } else if beyond(-change_pct, threshold_pct) && faster_apart {
        Verdict::Improved
    } else {
        Verdict::WithinNoise
    };
    Comparison {
        change_pct: Some(change_pct),
        verdict,
        remeasured: None,
    }
}

/// Compares every row of a run with a baseline, in row order.
pub(crate) fn compare_all(
    results: &[BenchResult],
    baseline: &Baseline,
    threshold_pct: f64,
) -> Vec<Comparison> {
    results
        .iter()
        .map(|result| compare(result, baseline.get(&result.id), threshold_pct))
        .collect()
}

/// `+12.3%`, `-4.0%`, or `-` when there is nothing to compare.
pub(crate) fn format_change(change_pct: Option<f64>) -> String {
    match change_pct {
        Some(pct) => format!("{pct:+.1}%"),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;

    fn measured(median: f64, low: f64, high: f64) -> BenchResult {
        let mut result = row("g", "hivekit", "1", median);
        result.ci_low_ns = low;
        result.ci_high_ns = high;
        result
    }

    fn entry(median: f64, low: f64, high: f64) -> BaselineEntry {
        BaselineEntry::from(&measured(median, low, high))
    }

    #[test]
    fn clear_regression_and_improvement() {
        let base = entry(100.0, 98.0, 102.0);
        let slower = compare(&measured(130.0, 128.0, 132.0), Some(&base), 10.0);
        assert_eq!(slower.verdict, Verdict::Regressed);
        let change = slower.change_pct.expect("has change");
        assert!((change - 30.0).abs() < 1e-9);
        let faster = compare(&measured(70.0, 68.0, 72.0), Some(&base), 10.0);
        assert_eq!(faster.verdict, Verdict::Improved);
    }

    #[test]
    fn overlapping_intervals_never_regress() {
        let base = entry(100.0, 90.0, 140.0);
        // +30 % but the intervals overlap (current low 120 < base high 140).
        let noisy = compare(&measured(130.0, 120.0, 200.0), Some(&base), 10.0);
        assert_eq!(noisy.verdict, Verdict::WithinNoise);
        let noisy = compare(&measured(60.0, 20.0, 95.0), Some(&base), 10.0);
        assert_eq!(noisy.verdict, Verdict::WithinNoise);
    }

    #[test]
    fn separated_but_small_changes_are_noise() {
        let base = entry(100.0, 99.9, 100.1);
        let small = compare(&measured(105.0, 104.9, 105.1), Some(&base), 10.0);
        assert_eq!(small.verdict, Verdict::WithinNoise);
    }

    #[test]
    fn a_to_a_never_regresses() {
        for (median, low, high) in [(1.0, 0.5, 3.0), (100.0, 100.0, 100.0), (4.4, 4.3, 4.5)] {
            let comparison = compare(
                &measured(median, low, high),
                Some(&entry(median, low, high)),
                0.001,
            );
            assert_eq!(comparison.verdict, Verdict::WithinNoise);
            assert_eq!(comparison.change_pct, Some(0.0));
        }
    }

    #[test]
    fn threshold_boundary_is_exclusive() {
        let base = entry(100.0, 99.0, 101.0);
        // Exactly +10 %: not beyond the threshold.
        let at = compare(&measured(110.0, 109.0, 111.0), Some(&base), 10.0);
        assert_eq!(at.verdict, Verdict::WithinNoise);
        let beyond = compare(&measured(110.5, 109.0, 111.0), Some(&base), 10.0);
        assert_eq!(beyond.verdict, Verdict::Regressed);
        let at = compare(&measured(90.0, 89.0, 91.0), Some(&base), 10.0);
        assert_eq!(at.verdict, Verdict::WithinNoise);
        let beyond = compare(&measured(89.5, 89.0, 91.0), Some(&base), 10.0);
        assert_eq!(beyond.verdict, Verdict::Improved);
    }

    #[test]
    fn touching_intervals_count_as_overlapping() {
        let base = entry(100.0, 95.0, 105.0);
        let touching = compare(&measured(150.0, 105.0, 160.0), Some(&base), 10.0);
        assert_eq!(touching.verdict, Verdict::WithinNoise);
    }

    #[test]
    fn new_rows_and_zero_baselines() {
        let new = compare(&measured(1.0, 1.0, 1.0), None, 10.0);
        assert_eq!(new.verdict, Verdict::New);
        assert_eq!(new.change_pct, None);
        let zero = compare(&measured(1.0, 1.0, 1.0), Some(&entry(0.0, 0.0, 0.0)), 10.0);
        assert_eq!(zero.verdict, Verdict::Regressed);
        assert_eq!(zero.change_pct, None);
        let still_zero = compare(&measured(0.0, 0.0, 0.0), Some(&entry(0.0, 0.0, 0.0)), 10.0);
        assert_eq!(still_zero.verdict, Verdict::WithinNoise);
    }

    #[test]
    fn compare_all_matches_by_id() {
        let old = row("g", "hivekit", "1", 100.0);
        let baseline = Baseline::new(String::new(), String::new(), String::new(), false, &[old]);
        let rows = [
            row("g", "hivekit", "1", 200.0),
            row("g", "hivekit", "2", 1.0),
        ];
        let verdicts: Vec<Verdict> = compare_all(&rows, &baseline, 10.0)
            .iter()
            .map(|c| c.verdict)
            .collect();
        assert_eq!(verdicts, [Verdict::Regressed, Verdict::New]);
    }

    /// A deterministic stand-in for the machine: medians scattered around `true_ns` by up to
    /// `spread` (a fraction), with an occasional spike of +60% like the ones A/A runs showed.
    fn noisy_medians(true_ns: f64, spread: f64, seed: u64, count: usize) -> Vec<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                let spike = if state % 7 == 0 { 1.6 } else { 1.0 };
                true_ns * (1.0 + spread * (2.0 * unit - 1.0)) * spike
            })
            .collect()
    }

    #[test]
    fn five_a_a_comparisons_flag_nothing_and_a_planted_25_percent_slowdown_is_caught() {
        for seed in 0..5 {
            // The first measurement was a spike (that is why the row got flagged); the rounds are not.
            let rounds = noisy_medians(100.0, 0.06, seed, 5);
            let (confirmed, interval) = confirm(100.0, &rounds, 10.0);
            assert!(!confirmed, "A/A {seed}: {interval:?} from {rounds:?}");
        }
        for seed in 0..5 {
            let rounds = noisy_medians(125.0, 0.06, seed + 100, 5);
            let (confirmed, interval) = confirm(100.0, &rounds, 10.0);
            assert!(confirmed, "planted {seed}: {interval:?} from {rounds:?}");
        }
    }

    #[test]
    fn a_flag_needs_rounds_and_a_usable_baseline() {
        assert_eq!(confirm(100.0, &[], 10.0), (false, None));
        assert_eq!(confirm(0.0, &[200.0], 10.0), (false, None));
        let (confirmed, interval) = confirm(100.0, &[130.0, 131.0, 129.0], 10.0);
        assert!(confirmed);
        let text = format_remeasured(&interval.expect("interval"));
        assert_eq!(text, "re-measured 3 rounds: +30.0% (+29.0%..+31.0%)");
        // One round back at the baseline keeps the interval's low end inside the threshold.
        let (confirmed, _) = confirm(100.0, &[130.0, 101.0, 129.0, 131.0, 132.0], 10.0);
        assert!(!confirmed);
    }

    #[test]
    fn change_formatting() {
        assert_eq!(format_change(Some(12.345)), "+12.3%");
        assert_eq!(format_change(Some(-4.0)), "-4.0%");
        assert_eq!(format_change(None), "-");
        assert_eq!(Verdict::WithinNoise.to_string(), "within noise");
    }
}
