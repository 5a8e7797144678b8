//! Performance targets (`docs/targets.json`) and their evaluation against a run.
//!
//! The file is a JSON list; each entry names a crate, a human sentence, one check and an optional
//! note explaining a miss. Ids are full benchmark ids (`group/function/parameter`); a `peer` without
//! a `/` is a function id in the same group and parameter as `id`. The format is documented in
//! docs/BENCHMARKS.md.

use std::fs;
use std::path::Path;

use serde::Deserialize;

use crate::error::XtaskError;
use crate::paired::{judge, median_interval, round_ratios, PairedRatio, Round, Side};
use crate::results::BenchResult;
use crate::units::{beyond, format_count, format_ns, reaches};

/// One performance target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Target {
    /// The crate the target belongs to.
    #[serde(rename = "crate")]
    pub(crate) krate: String,
    /// What is promised, as a sentence.
    pub(crate) target: String,
    /// How it is checked.
    pub(crate) check: Check,
    /// Why it is missed, if it is.
    #[serde(default)]
    pub(crate) note: Option<String>,
}

/// The ways a target is checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Check {
    /// `median(peer) / median(id) >= factor`.
    FasterThan {
        /// Our benchmark.
        id: String,
        /// The peer's benchmark (full id, or function id in the same group and parameter).
        peer: String,
        /// The minimum speed-up.
        factor: f64,
    },
    /// `median(id) / median(peer) <= factor`.
    Within {
        /// Our benchmark.
        id: String,
        /// The peer's benchmark (full id, or function id in the same group and parameter).
        peer: String,
        /// The maximum slow-down.
        factor: f64,
    },
    /// `median(id) <= ns`.
    Under {
        /// The benchmark.
        id: String,
        /// The limit in nanoseconds.
        ns: f64,
    },
    /// `extras[name] <= value` for the benchmark.
    ExtraUnder {
        /// The benchmark.
        id: String,
        /// The extra figure (`allocs_per_op`, `bytes_per_op`).
        name: String,
        /// The limit.
        value: f64,
    },
}

/// Whether a target held in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// The check passed.
    Met,
    /// The check failed.
    NotMet,
    /// The paired rounds' interval straddles the limit: this run cannot tell.
    Unclear,
    /// A benchmark (or extra) it needs did not run.
    NotMeasured,
}

impl Status {
    /// `met`, `NOT met`, `unclear`, `not measured`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::NotMet => "NOT met",
            Self::Unclear => "unclear",
            Self::NotMeasured => "not measured",
        }
    }
}

/// One evaluated target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// The target.
    pub(crate) target: Target,
    /// Met, not met or not measured.
    pub(crate) status: Status,
    /// What was measured against what was needed, or what is missing.
    pub(crate) measured: String,
    /// For a ratio target judged on paired rounds: the ratio (as the check states it: speed-up for
    /// `faster_than`, slow-down for `within`) with its interval.
    pub(crate) paired: Option<PairedRatio>,
}

/// Parses a targets file and checks its numbers are usable.
pub(crate) fn parse_targets(json: &str, path: &Path) -> Result<Vec<Target>, XtaskError> {
    let bad = |message: String| XtaskError::BadInputFile {
        path: path.to_owned(),
        message,
    };
    let targets: Vec<Target> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    for target in &targets {
        let (what, limit) = match &target.check {
            Check::FasterThan { factor, .. } | Check::Within { factor, .. } => ("factor", *factor),
            Check::Under { ns, .. } => ("ns", *ns),
            Check::ExtraUnder { value, .. } => ("value", *value),
        };
        let valid = limit.is_finite() && (limit > 0.0 || (what == "value" && limit == 0.0));
        if !valid {
            return Err(bad(format!(
                "target `{}` has {what} {limit}; it must be a positive number",
                target.target
            )));
        }
    }
    Ok(targets)
}

/// Loads the targets file: `explicit` must exist; the default path may be missing (no targets).
pub(crate) fn load_targets(
    explicit: Option<&Path>,
    default: &Path,
) -> Result<Vec<Target>, XtaskError> {
    let path = explicit.unwrap_or(default);
    match fs::read_to_string(path) {
        Ok(json) => parse_targets(&json, path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            Ok(Vec::new())
        }
        Err(error) => Err(XtaskError::BadInputFile {
            path: path.to_owned(),
            message: error.to_string(),
        }),
    }
}

fn find<'a>(results: &'a [BenchResult], id: &str) -> Option<&'a BenchResult> {
    results.iter().find(|result| result.id == id)
}

/// The peer row: by full id, or by function id beside `ours`.
fn find_peer<'a>(
    results: &'a [BenchResult],
    ours: &BenchResult,
    peer: &str,
) -> Option<&'a BenchResult> {
    if peer.contains('/') {
        find(results, peer)
    } else {
        results.iter().find(|result| {
            result.group == ours.group
                && result.parameter == ours.parameter
                && result.function == peer
        })
    }
}

/// Ratios next to a limit get two decimals, so `1.04x` against `1.1x` is not shown as `1.0x`.
fn precise_ratio(ratio: f64) -> String {
    // 99.996 prints as `100x`, not `100.00x`.
    if ratio >= 99.995 {
        format!("{ratio:.0}x")
    } else {
        format!("{ratio:.2}x")
    }
}

fn status(ok: bool) -> Status {
    if ok {
        Status::Met
    } else {
        Status::NotMet
    }
}

fn not_measured(what: &str) -> (Status, String) {
    (Status::NotMeasured, format!("`{what}` did not run"))
}

/// The paired ratio of a check, as it states it, when the rounds measured both rows, with the
/// rounds' own ratios in round order.
fn paired_ratio(
    rounds: &[Round],
    faster: bool,
    ours: &str,
    theirs: &str,
) -> Option<(PairedRatio, Vec<f64>)> {
    let samples = if faster {
        round_ratios(rounds, theirs, ours)
    } else {
        round_ratios(rounds, ours, theirs)
    };
    Some((median_interval(&samples)?, samples))
}

/// The ids of the rows the ratio targets compare (ours and the peer), both of which ran in the main
/// pass: what the paired rounds re-measure.
pub(crate) fn paired_ids(targets: &[Target], results: &[BenchResult]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for target in targets {
        let (Check::FasterThan { id, peer, .. } | Check::Within { id, peer, .. }) = &target.check
        else {
            continue;
        };
        let Some(ours) = find(results, id) else {
            continue;
        };
        let Some(theirs) = find_peer(results, ours, peer) else {
            continue;
        };
        for id in [&ours.id, &theirs.id] {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }
    ids
}

/// Evaluates one check: a ratio on the paired rounds when they measured both rows (three-way
/// verdict), otherwise on the main pass's medians.
fn evaluate_check(
    check: &Check,
    results: &[BenchResult],
    rounds: &[Round],
) -> (Status, String, Option<PairedRatio>) {
    if let Some((status, measured, ratio)) = evaluate_paired_check(check, results, rounds) {
        return (status, measured, Some(ratio));
    }
    let (status, measured) = evaluate_single(check, results);
    (status, measured, None)
}

/// A ratio check judged on the paired rounds, if they measured both of its rows.
fn evaluate_paired_check(
    check: &Check,
    results: &[BenchResult],
    rounds: &[Round],
) -> Option<(Status, String, PairedRatio)> {
    let (Check::FasterThan { id, peer, factor } | Check::Within { id, peer, factor }) = check
    else {
        return None;
    };
    let ours = find(results, id)?;
    let theirs = find_peer(results, ours, peer)?;
    let peer_label = if peer.contains('/') {
        theirs.id.as_str()
    } else {
        theirs.function.as_str()
    };
    let faster = matches!(check, Check::FasterThan { .. });
    let (ratio, samples) = paired_ratio(rounds, faster, &ours.id, &theirs.id)?;
    let status = match judge(&ratio, *factor, faster) {
        Side::Met => Status::Met,
        Side::NotMet => Status::NotMet,
        Side::Unclear => Status::Unclear,
    };
    let (what, need) = if faster {
        (format!("faster than {peer_label}"), ">=")
    } else {
        (format!("the time of {peer_label}"), "<=")
    };
    let mut measured = format!(
        "{} {what} (paired, {} rounds: {}..{}, {:.0}% interval; needs {need} {})",
        precise_ratio(ratio.median),
        ratio.rounds,
        precise_ratio(ratio.low),
        precise_ratio(ratio.high),
        ratio.coverage * 100.0,
        precise_ratio(*factor)
    );
    if status != Status::Met {
        // A reader of a verdict that is not met needs what it stands on: a lone bad round, a
        // drift over the rounds, or a main pass that disagrees with every round.
        let main_pass = if faster {
            theirs.median_ns / ours.median_ns
        } else {
            ours.median_ns / theirs.median_ns
        };
        let each: Vec<String> = samples.iter().map(|&r| precise_ratio(r)).collect();
        measured.push_str(&format!(
            "; rounds in order {}; main pass {}",
            each.join(", "),
            precise_ratio(main_pass)
        ));
    }
    Some((status, measured, ratio))
}

/// A check judged on the main pass's medians alone (two-way).
fn evaluate_single(check: &Check, results: &[BenchResult]) -> (Status, String) {
    match check {
        Check::FasterThan { id, peer, factor } | Check::Within { id, peer, factor } => {
            let Some(ours) = find(results, id) else {
                return not_measured(id);
            };
            let Some(theirs) = find_peer(results, ours, peer) else {
                return not_measured(peer);
            };
            if ours.median_ns <= 0.0 || theirs.median_ns <= 0.0 {
                return (Status::NotMeasured, "a median is zero".to_owned());
            }
            // A peer named by full id may be another hivekit row (2 threads vs 1): show its id.
            let peer_label = if peer.contains('/') {
                theirs.id.as_str()
            } else {
                theirs.function.as_str()
            };
            if matches!(check, Check::FasterThan { .. }) {
                let speedup = theirs.median_ns / ours.median_ns;
                (
                    status(reaches(speedup, *factor)),
                    format!(
                        "{} faster than {peer_label} (needs >= {})",
                        precise_ratio(speedup),
                        precise_ratio(*factor)
                    ),
                )
            } else {
                let slowdown = ours.median_ns / theirs.median_ns;
                (
                    status(!beyond(slowdown, *factor)),
                    format!(
                        "{} the time of {peer_label} (needs <= {})",
                        precise_ratio(slowdown),
                        precise_ratio(*factor)
                    ),
                )
            }
        }
        Check::Under { id, ns } => match find(results, id) {
            Some(row) => (
                status(row.median_ns <= *ns),
                format!("{} (needs <= {})", format_ns(row.median_ns), format_ns(*ns)),
            ),
            None => not_measured(id),
        },
        Check::ExtraUnder { id, name, value } => {
            let Some(row) = find(results, id) else {
                return not_measured(id);
            };
            match row.extras.get(name) {
                Some(measured) => (
                    status(*measured <= *value),
                    format!(
                        "{name} {} (needs <= {})",
                        format_count(*measured),
                        format_count(*value)
                    ),
                ),
                None => (Status::NotMeasured, format!("`{id}` recorded no `{name}`")),
            }
        }
    }
}

/// Evaluates every target against a run, without paired rounds.
#[cfg(test)]
pub(crate) fn evaluate(targets: &[Target], results: &[BenchResult]) -> Vec<Outcome> {
    evaluate_paired(targets, results, &[])
}

/// Evaluates every target against a run; ratio targets whose rows were measured in `rounds` are
/// judged on those paired rounds.
pub(crate) fn evaluate_paired(
    targets: &[Target],
    results: &[BenchResult],
    rounds: &[Round],
) -> Vec<Outcome> {
    targets
        .iter()
        .map(|target| {
            let (status, measured, paired) = evaluate_check(&target.check, results, rounds);
            Outcome {
                target: target.clone(),
                status,
                measured,
                paired,
            }
        })
        .collect()
}

/// `3 of 5 met, 1 not met, 1 unclear, 0 not measured`.
pub(crate) fn count_line(outcomes: &[Outcome]) -> String {
    let count = |status: Status| outcomes.iter().filter(|o| o.status == status).count();
    format!(
        "{} of {} met, {} not met, {} unclear, {} not measured",
        count(Status::Met),
        outcomes.len(),
        count(Status::NotMet),
        count(Status::Unclear),
        count(Status::NotMeasured)
    )
}

/// The targets summary printed after the table.
pub(crate) fn format_summary(outcomes: &[Outcome]) -> String {
    if outcomes.is_empty() {
        return "targets: none defined (docs/targets.json)\n".to_owned();
    }
    let mut out = format!("targets: {}\n", count_line(outcomes));
    for outcome in outcomes {
        out.push_str(&format!(
            "  [{}] {}: {} -- {}\n",
            outcome.status.label(),
            outcome.target.krate,
            outcome.target.target,
            outcome.measured
        ));
        if let Some(note) = outcome
            .target
            .note
            .as_ref()
            .filter(|_| outcome.status != Status::Met)
        {
            out.push_str(&format!("      note: {note}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::row;

    const TARGETS: &str = r#"[
      {"crate": "hivekit-lockfree", "target": "reads 3x faster than arc-swap",
       "check": {"faster_than": {"id": "snapshot_reads/hivekit/1r", "peer": "arc-swap", "factor": 3}}},
      {"crate": "hivekit-lockfree", "target": "writes within 1.5x of arc-swap",
       "check": {"within": {"id": "snapshot_writes/hivekit/1w", "peer": "snapshot_writes/arc-swap/1w", "factor": 1.5}},
       "note": "writes copy the value"},
      {"crate": "hivekit-runtime", "target": "ready execute under 50 ns",
       "check": {"under": {"id": "execute_baseline/hivekit/ready", "ns": 50}}},
      {"crate": "hivekit-runtime", "target": "ready execute does not allocate",
       "check": {"extra_under": {"id": "execute_baseline/hivekit/ready", "name": "allocs_per_op", "value": 0}}},
      {"crate": "hivekit-swarm", "target": "never ran",
       "check": {"under": {"id": "pipeline_execution/hivekit/100", "ns": 1}}}
    ]"#;

    fn results() -> Vec<BenchResult> {
        let mut ready = row("execute_baseline", "hivekit", "ready", 60.0);
        ready.extras.insert("allocs_per_op".into(), 0.0);
        vec![
            row("snapshot_reads", "hivekit", "1r", 2.0),
            row("snapshot_reads", "arc-swap", "1r", 6.4),
            row("snapshot_writes", "hivekit", "1w", 200.0),
            row("snapshot_writes", "arc-swap", "1w", 100.0),
            ready,
        ]
    }

    #[test]
    fn every_kind_of_check() {
        let targets = parse_targets(TARGETS, Path::new("t.json")).expect("parses");
        let outcomes = evaluate(&targets, &results());
        let statuses: Vec<Status> = outcomes.iter().map(|o| o.status).collect();
        assert_eq!(
            statuses,
            [
                Status::Met,
                Status::NotMet,
                Status::NotMet,
                Status::Met,
                Status::NotMeasured
            ]
        );
        assert_eq!(
            outcomes[0].measured,
            "3.20x faster than arc-swap (needs >= 3.00x)"
        );
        assert_eq!(
            outcomes[1].measured,
            "2.00x the time of snapshot_writes/arc-swap/1w (needs <= 1.50x)"
        );
        assert_eq!(outcomes[2].measured, "60.0 ns (needs <= 50.0 ns)");
        assert_eq!(outcomes[3].measured, "allocs_per_op 0 (needs <= 0)");
        let summary = format_summary(&outcomes);
        assert!(
            summary.starts_with("targets: 2 of 5 met, 2 not met, 0 unclear, 1 not measured"),
            "{summary}"
        );
        assert!(summary.contains("note: writes copy the value"), "{summary}");
        assert!(
            summary.contains("[not measured] hivekit-swarm"),
            "{summary}"
        );
    }

    #[test]
    fn ratio_targets_judged_on_paired_rounds_are_three_way() {
        let targets = parse_targets(
            r#"[{"crate": "c", "target": "2x faster",
                 "check": {"faster_than": {"id": "g/hivekit/1", "peer": "p", "factor": 2}}},
                {"crate": "c", "target": "within 1.1x",
                 "check": {"within": {"id": "g/hivekit/1", "peer": "q", "factor": 1.1}}},
                {"crate": "c", "target": "10x faster",
                 "check": {"faster_than": {"id": "g/hivekit/1", "peer": "p", "factor": 10}}}]"#,
            Path::new("t.json"),
        )
        .expect("parses");
        let rows = [
            row("g", "hivekit", "1", 10.0),
            row("g", "p", "1", 30.0),
            row("g", "q", "1", 10.0),
        ];
        assert_eq!(
            paired_ids(&targets, &rows),
            ["g/hivekit/1", "g/p/1", "g/q/1"]
        );
        // The main pass alone says 3x and 1.0x; the rounds say 2.5x..3.5x and 0.9x..1.3x.
        let rounds: Vec<Round> = [(10.0, 25.0, 9.0), (10.0, 35.0, 13.0), (10.0, 30.0, 10.0)]
            .iter()
            .map(|&(ours, p, q)| {
                Round::from([
                    ("g/hivekit/1".to_owned(), ours),
                    ("g/p/1".to_owned(), p),
                    ("g/q/1".to_owned(), q),
                ])
            })
            .collect();
        let outcomes = evaluate_paired(&targets, &rows, &rounds);
        let statuses: Vec<Status> = outcomes.iter().map(|o| o.status).collect();
        assert_eq!(statuses, [Status::Met, Status::Unclear, Status::NotMet]);
        assert_eq!(
            outcomes[0].measured,
            "3.00x faster than p (paired, 3 rounds: 2.50x..3.50x, 75% interval; needs >= 2.00x)"
        );
        assert!(outcomes[1]
            .paired
            .is_some_and(|r| r.high > 1.1 && r.low < 1.1));
        // A verdict that is not met shows each round's ratio, in round order, and the main pass's.
        assert!(
            outcomes[1]
                .measured
                .ends_with("; rounds in order 1.11x, 0.77x, 1.00x; main pass 1.00x"),
            "{}",
            outcomes[1].measured
        );
        assert!(outcomes[2].measured.contains("; rounds in order "));
        assert!(format_summary(&outcomes).contains("[unclear] c: within 1.1x"));
        // Without rounds the same targets are judged two-way on the main pass.
        let single = evaluate(&targets, &rows);
        assert!(single.iter().all(|o| o.paired.is_none()));
        assert_eq!(single[1].status, Status::Met);
    }

    #[test]
    fn factor_boundaries_are_inclusive() {
        let targets = parse_targets(
            r#"[{"crate": "c", "target": "t",
                 "check": {"faster_than": {"id": "g/hivekit/1", "peer": "p", "factor": 2}}},
                {"crate": "c", "target": "t",
                 "check": {"within": {"id": "g/hivekit/1", "peer": "p", "factor": 0.5}}}]"#,
            Path::new("t.json"),
        )
        .expect("parses");
        let rows = [row("g", "hivekit", "1", 5.0), row("g", "p", "1", 10.0)];
        let outcomes = evaluate(&targets, &rows);
        assert_eq!(outcomes[0].status, Status::Met);
        assert_eq!(outcomes[1].status, Status::Met);
    }

    #[test]
    fn missing_peer_or_extra_is_not_measured() {
        let targets = parse_targets(
            r#"[{"crate": "c", "target": "t",
                 "check": {"faster_than": {"id": "g/hivekit/1", "peer": "absent", "factor": 2}}},
                {"crate": "c", "target": "t",
                 "check": {"extra_under": {"id": "g/hivekit/1", "name": "bytes_per_op", "value": 8}}}]"#,
            Path::new("t.json"),
        )
        .expect("parses");
        let outcomes = evaluate(&targets, &[row("g", "hivekit", "1", 5.0)]);
        assert!(outcomes.iter().all(|o| o.status == Status::NotMeasured));
    }

    #[test]
    fn bad_files_are_rejected() {
        let path = Path::new("t.json");
        for json in [
            "{}",
            r#"[{"crate": "c", "target": "t", "check": {"slower_than": {"id": "a"}}}]"#,
            r#"[{"crate": "c", "target": "t", "check": {"under": {"id": "a", "ns": -1}}}]"#,
            r#"[{"crate": "c", "target": "t", "check": {"within": {"id": "a", "peer": "b", "factor": 0}}}]"#,
            r#"[{"crate": "c", "target": "t", "typo": 1, "check": {"under": {"id": "a", "ns": 1}}}]"#,
        ] {
            let error = parse_targets(json, path).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{json}");
        }
    }

    #[test]
    fn default_file_may_be_missing_explicit_may_not() {
        let missing = Path::new("/nonexistent/xtask/targets.json");
        assert_eq!(load_targets(None, missing).expect("no targets"), []);
        assert!(load_targets(Some(missing), missing).is_err());
    }

    #[test]
    fn shipped_targets_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/targets.json");
        let json = fs::read_to_string(&path).expect("docs/targets.json exists");
        let targets = parse_targets(&json, &path).expect("docs/targets.json parses");
        assert!(!targets.is_empty());
    }
}
