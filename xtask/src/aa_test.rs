//! `cargo xtask aa-test`: the wall-clock regression verdict, tested for real on this machine.
//!
//! One quick row (`memory_pressure/hivekit/command`: an `execute` of a small command future) is saved
//! as a baseline, then compared with it five times (A/A: the same binary, so any flag is a false
//! alarm), then once more with a 25% slowdown planted in that row through benches-common's
//! `HIVEKIT_BENCH_SLOWDOWN` knob (the measured time is multiplied by 1.25). The test passes when
//! the five A/A comparisons flag nothing and the planted slowdown is flagged. Each comparison goes
//! through the whole of `cargo xtask bench --baseline`: the threshold and interval test of the main
//! pass, then the re-measuring rounds of any row it flags (see [`crate::verdict`]).

use crate::args::{BenchArgs, CiArgs};
use crate::bench::{bench_run, Judged};
use crate::error::XtaskError;

/// The row the test measures.
pub(crate) const ROW: &str = "memory_pressure/hivekit/command";

/// The planted slowdown (`HIVEKIT_BENCH_SLOWDOWN=<ROW>=<factor>`).
pub(crate) const PLANTED_FACTOR: f64 = 1.25;

/// A/A comparisons that must flag nothing.
pub(crate) const AA_RUNS: usize = 5;

/// The baseline the test saves and compares with.
const BASELINE: &str = "aa-test";

/// The arguments of one run of the test.
fn args(ci: &CiArgs, baseline: Option<&str>, planted: bool) -> BenchArgs {
    BenchArgs {
        quick: true,
        packages: vec!["hivekit-runtime".to_owned()],
        filter: Some(format!("^{}$", regex::escape(ROW))),
        save_baseline: baseline.is_none().then(|| BASELINE.to_owned()),
        baseline: baseline.map(str::to_owned),
        manifest_path: ci.manifest_path.clone(),
        extra_env: if planted {
            vec![(
                "HIVEKIT_BENCH_SLOWDOWN".to_owned(),
                format!("{ROW}={PLANTED_FACTOR}"),
            )]
        } else {
            Vec::new()
        },
        ..BenchArgs::default()
    }
}

/// The command line of one run, for the report header.
fn raw(baseline: Option<&str>) -> Vec<String> {
    let mut raw = vec![
        "bench".to_owned(),
        "--quick".to_owned(),
        "-p".to_owned(),
        "hivekit-runtime".to_owned(),
        "--filter".to_owned(),
        format!("^{ROW}$"),
    ];
    match baseline {
        Some(name) => raw.extend(["--baseline".to_owned(), name.to_owned()]),
        None => raw.extend(["--save-baseline".to_owned(), BASELINE.to_owned()]),
    }
    raw
}

/// Judges the runs: `Ok(summary)` when no A/A run flagged anything and the planted run flagged
/// [`ROW`]; otherwise the reason.
pub(crate) fn judge(aa: &[Judged], planted: &Judged) -> Result<String, String> {
    let false_alarms: Vec<String> = aa
        .iter()
        .enumerate()
        .filter(|(_, judged)| !judged.regressed.is_empty())
        .map(|(index, judged)| {
            format!(
                "A/A run {} flagged {}",
                index + 1,
                judged.regressed.join(", ")
            )
        })
        .collect();
    let caught = planted.regressed.iter().any(|id| id == ROW);
    let busy = aa.iter().chain([planted]).filter(|j| j.too_busy).count();
    let load = if busy > 0 {
        format!(
            " ({busy} of {} runs with the load above the core count)",
            aa.len() + 1
        )
    } else {
        String::new()
    };
    match (false_alarms.is_empty(), caught) {
        (true, true) => Ok(format!(
            "{} A/A comparisons flagged nothing and the planted {:.0}% slowdown of {ROW} was caught{load}",
            aa.len(),
            (PLANTED_FACTOR - 1.0) * 100.0
        )),
        (alarms_free, caught) => {
            let mut reasons = false_alarms;
            if !caught {
                reasons.push(format!(
                    "the planted {:.0}% slowdown of {ROW} was not caught",
                    (PLANTED_FACTOR - 1.0) * 100.0
                ));
            }
            debug_assert!(!alarms_free || !caught);
            Err(format!("{}{load}", reasons.join("; ")))
        }
    }
}

/// Runs `cargo xtask aa-test`.
pub(crate) fn run(ci: &CiArgs) -> Result<(), XtaskError> {
    println!("aa-test: baseline `{BASELINE}` of {ROW}");
    bench_run(&args(ci, None, false), &raw(None))?;
    let mut aa = Vec::new();
    for run in 1..=AA_RUNS {
        println!("\naa-test: A/A comparison {run}/{AA_RUNS}");
        aa.push(bench_run(
            &args(ci, Some(BASELINE), false),
            &raw(Some(BASELINE)),
        )?);
    }
    println!("\naa-test: planted slowdown, HIVEKIT_BENCH_SLOWDOWN={ROW}={PLANTED_FACTOR}");
    let planted = bench_run(&args(ci, Some(BASELINE), true), &raw(Some(BASELINE)))?;
    match judge(&aa, &planted) {
        Ok(summary) => {
            println!("\naa-test: passed: {summary}");
            Ok(())
        }
        Err(reason) => Err(XtaskError::AaTest(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(regressed: &[&str]) -> Judged {
        Judged {
            regressed: regressed.iter().map(|id| (*id).to_owned()).collect(),
            too_busy: false,
        }
    }

    #[test]
    fn passes_only_without_false_alarms_and_with_the_planted_row_caught() {
        let quiet = vec![judged(&[]); AA_RUNS];
        assert!(judge(&quiet, &judged(&[ROW])).is_ok());
        let missed = judge(&quiet, &judged(&[])).unwrap_err();
        assert!(missed.contains("was not caught"), "{missed}");
        let mut alarmed = quiet.clone();
        alarmed[2] = judged(&[ROW]);
        let alarm = judge(&alarmed, &judged(&[ROW])).unwrap_err();
        assert_eq!(alarm, format!("A/A run 3 flagged {ROW}"));
    }

    #[test]
    fn the_planted_run_carries_the_knob_and_the_others_do_not() {
        let ci = CiArgs::default();
        assert!(args(&ci, Some(BASELINE), false).extra_env.is_empty());
        assert_eq!(
            args(&ci, Some(BASELINE), true).extra_env,
            [(
                "HIVEKIT_BENCH_SLOWDOWN".to_owned(),
                "memory_pressure/hivekit/command=1.25".to_owned()
            )]
        );
        assert_eq!(
            args(&ci, None, false).save_baseline.as_deref(),
            Some(BASELINE)
        );
        assert_eq!(raw(None).join(" "), "bench --quick -p hivekit-runtime --filter ^memory_pressure/hivekit/command$ --save-baseline aa-test");
    }
}
