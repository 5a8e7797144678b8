//! Command-line parsing: a small hand parser, so xtask needs no argument-parsing dependency.

use std::path::PathBuf;

use crate::error::UsageError;

/// The usage text printed by `cargo xtask`, `cargo xtask help` and after every usage error.
pub(crate) const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  bench    run the criterion suites and print one table with ratios against peers
  ci       fmt check, clippy -D warnings, tests (with doc tests), benches built, loom models
  help     print this text

cargo xtask bench [options]
  --quick                  short runs (HIVEKIT_BENCH_QUICK=1: 10 samples, ~0.5 s per bench)
  -p, --package CRATE      only this crate (repeatable; `runtime` means `hivekit-runtime`)
  --filter REGEX           only benchmarks whose id `group/function/parameter` matches
  --list                   list the suites and their benchmarks without measuring
  --save-baseline NAME     save the results as target/hivekit-baselines/NAME.json
  --baseline NAME          compare against a saved baseline (change and verdict columns)
  --threshold PCT          change that counts as a regression or improvement (default 10)
  --fail-on-regression     exit 1 if any benchmark regressed against --baseline
  --json PATH              write the results in the baseline schema to PATH
  --markdown PATH          write the tables of docs/PERFORMANCE.md to PATH
  --targets PATH           performance targets to check (default docs/targets.json)
  --manifest-path PATH     the workspace to run in (default: the current one)

cargo xtask ci [--manifest-path PATH]

see docs/BENCHMARKS.md for how to read the results";

/// The default regression threshold, in percent of the baseline median.
pub(crate) const DEFAULT_THRESHOLD_PCT: f64 = 10.0;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Print the usage text.
    Help,
    /// `cargo xtask bench`.
    Bench(BenchArgs),
    /// `cargo xtask ci`.
    Ci(CiArgs),
}

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenchArgs {
    /// Quick mode (`HIVEKIT_BENCH_QUICK=1`).
    pub(crate) quick: bool,
    /// Selected crates as given on the command line (empty: every crate with benches).
    pub(crate) packages: Vec<String>,
    /// Regex passed to criterion.
    pub(crate) filter: Option<String>,
    /// List instead of measuring.
    pub(crate) list: bool,
    /// Baseline name to save this run under.
    pub(crate) save_baseline: Option<String>,
    /// Baseline name to compare against.
    pub(crate) baseline: Option<String>,
    /// Regression threshold in percent.
    pub(crate) threshold_pct: f64,
    /// Exit 1 when a benchmark regressed.
    pub(crate) fail_on_regression: bool,
    /// Where to write the results as JSON.
    pub(crate) json: Option<PathBuf>,
    /// Where to write the markdown report.
    pub(crate) markdown: Option<PathBuf>,
    /// The targets file (default `docs/targets.json` in the workspace).
    pub(crate) targets: Option<PathBuf>,
    /// The workspace manifest (default: found by cargo from the current directory).
    pub(crate) manifest_path: Option<PathBuf>,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            quick: false,
            packages: Vec::new(),
            filter: None,
            list: false,
            save_baseline: None,
            baseline: None,
            threshold_pct: DEFAULT_THRESHOLD_PCT,
            fail_on_regression: false,
            json: None,
            markdown: None,
            targets: None,
            manifest_path: None,
        }
    }
}

/// Options of `cargo xtask ci`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CiArgs {
    /// The workspace manifest (default: found by cargo from the current directory).
    pub(crate) manifest_path: Option<PathBuf>,
}

/// Parses the arguments after the program name.
pub(crate) fn parse(args: &[String]) -> Result<Command, UsageError> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    match command.as_str() {
        "help" | "-h" | "--help" => Ok(Command::Help),
        "bench" => parse_bench(rest).map(Command::Bench),
        "ci" => parse_ci(rest).map(Command::Ci),
        other => Err(UsageError::UnknownCommand(other.to_owned())),
    }
}

/// Walks `--flag value` / `--flag=value` arguments.
struct Cursor<'a> {
    args: std::slice::Iter<'a, String>,
}

impl<'a> Cursor<'a> {
    /// The next argument split into its flag and an inline `=value`, if any.
    fn next_flag(&mut self) -> Option<(&'a str, Option<&'a str>)> {
        let arg = self.args.next()?;
        match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => Some((flag, Some(value))),
            _ => Some((arg.as_str(), None)),
        }
    }

    /// The value of `flag`: inline, or the next argument.
    fn value(&mut self, flag: &str, inline: Option<&'a str>) -> Result<&'a str, UsageError> {
        if let Some(value) = inline {
            return non_empty(flag, value);
        }
        match self.args.next() {
            // A leading `-` starts the next flag, unless a number follows (`--threshold -5` is a
            // bad threshold, not a missing one).
            Some(value) if !looks_like_flag(value) => non_empty(flag, value),
            _ => Err(UsageError::MissingValue(flag.to_owned())),
        }
    }
}

fn looks_like_flag(value: &str) -> bool {
    value
        .strip_prefix('-')
        .and_then(|rest| rest.chars().next())
        .is_some_and(|next| !next.is_ascii_digit() && next != '.')
}

fn non_empty<'a>(flag: &str, value: &'a str) -> Result<&'a str, UsageError> {
    if value.is_empty() {
        Err(UsageError::MissingValue(flag.to_owned()))
    } else {
        Ok(value)
    }
}

fn no_value(flag: &str, inline: Option<&str>) -> Result<(), UsageError> {
    match inline {
        Some(_) => Err(UsageError::UnexpectedValue(flag.to_owned())),
        None => Ok(()),
    }
}

fn parse_bench(args: &[String]) -> Result<BenchArgs, UsageError> {
    let mut parsed = BenchArgs::default();
    let mut cursor = Cursor { args: args.iter() };
    while let Some((flag, inline)) = cursor.next_flag() {
        match flag {
            "--quick" => {
                no_value(flag, inline)?;
                parsed.quick = true;
            }
            "--list" => {
                no_value(flag, inline)?;
                parsed.list = true;
            }
            "--fail-on-regression" => {
                no_value(flag, inline)?;
                parsed.fail_on_regression = true;
            }
            "-p" | "--package" => {
                parsed.packages.push(cursor.value(flag, inline)?.to_owned());
            }
            "--filter" => parsed.filter = Some(cursor.value(flag, inline)?.to_owned()),
            "--save-baseline" => {
                parsed.save_baseline = Some(baseline_name(flag, cursor.value(flag, inline)?)?);
            }
            "--baseline" => {
                parsed.baseline = Some(baseline_name(flag, cursor.value(flag, inline)?)?);
            }
            "--threshold" => parsed.threshold_pct = threshold(cursor.value(flag, inline)?)?,
            "--json" => parsed.json = Some(PathBuf::from(cursor.value(flag, inline)?)),
            "--markdown" => parsed.markdown = Some(PathBuf::from(cursor.value(flag, inline)?)),
            "--targets" => parsed.targets = Some(PathBuf::from(cursor.value(flag, inline)?)),
            "--manifest-path" => {
                parsed.manifest_path = Some(PathBuf::from(cursor.value(flag, inline)?));
            }
            other => return Err(unknown(other)),
        }
    }
    if parsed.list {
        let results_options = [
            ("--save-baseline", parsed.save_baseline.is_some()),
            ("--baseline", parsed.baseline.is_some()),
            ("--json", parsed.json.is_some()),
            ("--markdown", parsed.markdown.is_some()),
        ];
        if let Some((flag, _)) = results_options.iter().find(|(_, given)| *given) {
            return Err(UsageError::ListWith((*flag).to_owned()));
        }
    }
    if parsed.fail_on_regression && parsed.baseline.is_none() {
        return Err(UsageError::FailWithoutBaseline);
    }
    Ok(parsed)
}

fn parse_ci(args: &[String]) -> Result<CiArgs, UsageError> {
    let mut parsed = CiArgs::default();
    let mut cursor = Cursor { args: args.iter() };
    while let Some((flag, inline)) = cursor.next_flag() {
        match flag {
            "--manifest-path" => {
                parsed.manifest_path = Some(PathBuf::from(cursor.value(flag, inline)?));
            }
            other => return Err(unknown(other)),
        }
    }
    Ok(parsed)
}

/// An unknown flag, or a bare word where a flag was expected.
fn unknown(arg: &str) -> UsageError {
    if arg.starts_with('-') {
        UsageError::UnknownFlag(arg.to_owned())
    } else {
        UsageError::UnexpectedArgument(arg.to_owned())
    }
}

/// A baseline name becomes a file name, so it may not contain path separators or start with a dot.
fn baseline_name(flag: &str, name: &str) -> Result<String, UsageError> {
    let valid = !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(UsageError::BadBaselineName {
            flag: flag.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// A positive, finite percentage; a trailing `%` is accepted.
fn threshold(value: &str) -> Result<f64, UsageError> {
    let number = value.strip_suffix('%').unwrap_or(value);
    match number.trim().parse::<f64>() {
        Ok(pct) if pct.is_finite() && pct > 0.0 => Ok(pct),
        _ => Err(UsageError::BadThreshold(value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command, UsageError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    fn bench(line: &str) -> BenchArgs {
        match parse_str(line) {
            Ok(Command::Bench(args)) => args,
            other => panic!("`{line}` did not parse as bench: {other:?}"),
        }
    }

    #[test]
    fn no_arguments_and_help_print_usage() {
        assert_eq!(parse_str(""), Ok(Command::Help));
        assert_eq!(parse_str("help"), Ok(Command::Help));
        assert_eq!(parse_str("--help"), Ok(Command::Help));
        assert_eq!(parse_str("-h"), Ok(Command::Help));
    }

    #[test]
    fn bench_defaults() {
        let args = bench("bench");
        assert_eq!(args, BenchArgs::default());
        assert_eq!(args.threshold_pct, 10.0);
    }

    #[test]
    fn bench_every_option() {
        let args = bench(
            "bench --quick -p runtime --package hivekit-swarm --filter snapshot_.* \
             --save-baseline main --baseline before.1 --threshold 5.5 --fail-on-regression \
             --json out.json --markdown docs/P.md --targets t.json --manifest-path /tmp/w/Cargo.toml",
        );
        assert!(args.quick && !args.list && args.fail_on_regression);
        assert_eq!(args.packages, ["runtime", "hivekit-swarm"]);
        assert_eq!(args.filter.as_deref(), Some("snapshot_.*"));
        assert_eq!(args.save_baseline.as_deref(), Some("main"));
        assert_eq!(args.baseline.as_deref(), Some("before.1"));
        assert_eq!(args.threshold_pct, 5.5);
        assert_eq!(args.json, Some(PathBuf::from("out.json")));
        assert_eq!(args.markdown, Some(PathBuf::from("docs/P.md")));
        assert_eq!(args.targets, Some(PathBuf::from("t.json")));
        assert_eq!(args.manifest_path, Some(PathBuf::from("/tmp/w/Cargo.toml")));
    }

    #[test]
    fn inline_values_and_percent_sign() {
        let args = bench("bench --threshold=7% --filter=a/b --package=lockfree");
        assert_eq!(args.threshold_pct, 7.0);
        assert_eq!(args.filter.as_deref(), Some("a/b"));
        assert_eq!(args.packages, ["lockfree"]);
    }

    #[test]
    fn ci_parses() {
        assert_eq!(parse_str("ci"), Ok(Command::Ci(CiArgs::default())));
        assert_eq!(
            parse_str("ci --manifest-path x/Cargo.toml"),
            Ok(Command::Ci(CiArgs {
                manifest_path: Some(PathBuf::from("x/Cargo.toml"))
            }))
        );
        assert_eq!(
            parse_str("ci --quick"),
            Err(UsageError::UnknownFlag("--quick".into()))
        );
    }

    #[test]
    fn unknown_command_and_flag() {
        assert_eq!(
            parse_str("benchmark"),
            Err(UsageError::UnknownCommand("benchmark".into()))
        );
        assert_eq!(
            parse_str("bench --fast"),
            Err(UsageError::UnknownFlag("--fast".into()))
        );
        assert_eq!(
            parse_str("bench snapshot"),
            Err(UsageError::UnexpectedArgument("snapshot".into()))
        );
        assert_eq!(
            parse_str("bench --quick=yes"),
            Err(UsageError::UnexpectedValue("--quick".into()))
        );
    }

    #[test]
    fn missing_values() {
        for line in [
            "bench -p",
            "bench --filter",
            "bench --baseline",
            "bench --json --quick",
            "bench --threshold=",
        ] {
            assert!(
                matches!(parse_str(line), Err(UsageError::MissingValue(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_thresholds() {
        assert_eq!(
            parse_str("bench --threshold -5"),
            Err(UsageError::BadThreshold("-5".into()))
        );
        for value in ["0", "-5", "abc", "NaN", "inf", "%"] {
            let line = format!("bench --threshold={value}");
            assert_eq!(
                parse_str(&line),
                Err(UsageError::BadThreshold(value.into())),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_baseline_names() {
        for name in ["../x", "a/b", ".hidden", "sp ace"] {
            let args = vec!["bench".to_owned(), format!("--baseline={name}")];
            assert!(
                matches!(parse(&args), Err(UsageError::BadBaselineName { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn list_rejects_options_about_results() {
        assert_eq!(
            parse_str("bench --list --json out.json"),
            Err(UsageError::ListWith("--json".into()))
        );
        assert_eq!(
            parse_str("bench --list --save-baseline main"),
            Err(UsageError::ListWith("--save-baseline".into()))
        );
        assert!(bench("bench --list -p runtime --filter reads").list);
    }

    #[test]
    fn fail_on_regression_needs_a_baseline() {
        assert_eq!(
            parse_str("bench --fail-on-regression"),
            Err(UsageError::FailWithoutBaseline)
        );
        assert!(bench("bench --fail-on-regression --baseline b").fail_on_regression);
    }
}
