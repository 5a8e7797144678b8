//! Measuring a few rows again, round after round, after the main pass: the paired rounds of the
//! ratio targets and the re-measurement of rows flagged as regressed.
//!
//! A round runs each suite that holds some of the rows once, with a filter that matches exactly those
//! rows, so the rows of one round are measured seconds apart and their ratio is a paired sample.
//! Rounds write to their own criterion home (`<target>/hivekit-rounds`), so the main pass's results
//! (and criterion's own `change:` lines) are not disturbed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use crate::binaries::{describe, suite_command, BenchBinary};
use crate::criterion::{collect_results, ProgressParser};
use crate::error::XtaskError;
use crate::paired::Round;
use crate::process::{run_captured, Stream};

/// How a round measures: quick settings (paired ratios want many short rounds) or the run's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settings {
    /// `HIVEKIT_BENCH_QUICK=1`.
    Quick,
    /// Quick timing with the full size lists (`HIVEKIT_BENCH_FULL_SIZES=1`): the paired rounds of
    /// a full run, whose targets compare rows only full mode has.
    QuickFullSizes,
    /// Full settings.
    Full,
}

/// A criterion filter that matches exactly these ids (regex-escaped, anchored).
pub(crate) fn exact_filter(ids: &[&str]) -> String {
    let escaped: Vec<String> = ids.iter().map(|id| regex::escape(id)).collect();
    format!("^(?:{})$", escaped.join("|"))
}

/// Runs `rounds` rounds over `rows` (id, index of the binary that holds it) and returns each
/// round's medians by id. A suite that fails in a round is reported and leaves its rows out of that
/// round; the other rounds still count.
pub(crate) fn measure_rounds(
    target_dir: &Path,
    binaries: &[BenchBinary],
    rows: &[(String, usize)],
    rounds: usize,
    settings: Settings,
    what: &str,
    env: &[(String, String)],
) -> Result<Vec<Round>, XtaskError> {
    let home = target_dir.join("hivekit-rounds");
    let mut by_binary: Vec<(usize, Vec<&str>)> = Vec::new();
    for (id, binary) in rows {
        match by_binary.iter_mut().find(|(index, _)| index == binary) {
            Some((_, ids)) => ids.push(id),
            None => by_binary.push((*binary, vec![id])),
        }
    }
    let mut all = Vec::new();
    for round in 0..rounds {
        let started = std::time::Instant::now();
        let mut medians = Round::new();
        // Alternate the order of the suites from round to round, so no suite always runs right
        // after the same other one.
        let order: Vec<&(usize, Vec<&str>)> = if round % 2 == 0 {
            by_binary.iter().collect()
        } else {
            by_binary.iter().rev().collect()
        };
        for (index, ids) in order {
            let Some(binary) = binaries.get(*index) else {
                continue;
            };
            medians.extend(measure_once(&home, binary, ids, settings, env)?);
        }
        println!(
            "{what} round {}/{rounds}: {} of {} rows in {:.1} s",
            round + 1,
            medians.len(),
            rows.len(),
            started.elapsed().as_secs_f64()
        );
        let _ = std::io::stdout().flush();
        all.push(medians);
    }
    Ok(all)
}

/// One run of one suite over `ids`: their medians.
fn measure_once(
    home: &Path,
    binary: &BenchBinary,
    ids: &[&str],
    settings: Settings,
    env: &[(String, String)],
) -> Result<HashMap<String, f64>, XtaskError> {
    let args: Vec<OsString> = vec!["--color".into(), "never".into(), exact_filter(ids).into()];
    let description = describe(binary, &args);
    let mut command = suite_command(binary, &args);
    command
        .env("CRITERION_HOME", home.join("criterion"))
        .env("HIVEKIT_EXTRAS_DIR", home.join("extras"));
    match settings {
        Settings::Quick => command
            .env("HIVEKIT_BENCH_QUICK", "1")
            .env_remove("HIVEKIT_BENCH_FULL_SIZES"),
        Settings::QuickFullSizes => command
            .env("HIVEKIT_BENCH_QUICK", "1")
            .env("HIVEKIT_BENCH_FULL_SIZES", "1"),
        Settings::Full => command.env_remove("HIVEKIT_BENCH_QUICK"),
    };
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let mut parser = ProgressParser::default();
    let mut titles = Vec::new();
    let mut tail = Vec::new();
    let status = run_captured(&mut command, &description, |stream, line| {
        if stream == Stream::Stdout {
            if let Some(done) = parser.feed(line) {
                titles.push(done.title);
            }
        }
        tail.push(line.to_owned());
    })?;
    if !status.success() {
        eprintln!(
            "warning: `{description}` failed ({status}); its rows are left out of this round"
        );
        for line in crate::process::tail(&tail, 10) {
            eprintln!("    {line}");
        }
        return Ok(HashMap::new());
    }
    let ran: Vec<(String, String)> = titles
        .into_iter()
        .map(|title| (title, binary.suite.krate.clone()))
        .collect();
    let (results, _) = collect_results(&home.join("criterion"), &ran)?;
    Ok(results
        .into_iter()
        .map(|result| (result.id, result.median_ns))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_matches_exactly_the_ids() {
        let filter = exact_filter(&["snapshot_reads/hivekit/1r", "a.b/c+d/(x)"]);
        let regex = regex::Regex::new(&filter).expect("valid");
        assert!(regex.is_match("snapshot_reads/hivekit/1r"));
        assert!(regex.is_match("a.b/c+d/(x)"));
        assert!(!regex.is_match("snapshot_reads/hivekit/1r0"));
        assert!(!regex.is_match("xsnapshot_reads/hivekit/1r"));
        assert!(!regex.is_match("aXb/c+d/(x)"));
        // criterion reads an argument starting with `-` as a flag; this one never does.
        assert!(filter.starts_with('^'));
    }
}
