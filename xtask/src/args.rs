//! Command-line parsing on `lexopt`: it splits the arguments; this module says what they mean and
//! turns every mistake into a [`UsageError`].

use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::{Arg, Parser};

use crate::error::UsageError;

/// The usage text printed by `cargo xtask`, `cargo xtask help` and after every usage error.
pub(crate) const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  bench    run the criterion suites and print one table with ratios against peers
  test     provision etcd and protoc when missing, then cargo test --workspace --locked
  ci       everything CI runs, in order (the list is in docs/BENCHMARKS.md and README.md)
  aa-test  the regression verdict tested for real: 5 A/A comparisons must flag nothing, a planted
           25% slowdown must be caught (one quick row; CI runs it)
  help     print this text

cargo xtask bench [options]
  --quick                  short runs (HIVEKIT_BENCH_QUICK=1: 10 samples, ~0.5 s per bench)
  -p, --package CRATE      only this crate (repeatable; `runtime` means `hivekit-runtime`)
  --filter REGEX           only benchmarks whose id `group/function/parameter` matches
                           (with --instructions too: only the matching rows run, and --bless
                           rewrites only them, keeping every other row of docs/instructions.json)
  --list                   list the suites and their benchmarks without measuring
  --plan                   print the time plan of a full run (printed before every full run too)
                           without measuring
  --save-baseline NAME     save the results as target/hivekit-baselines/NAME.json
  --baseline NAME          compare against a saved baseline (change and verdict columns)
  --threshold PCT          change that counts as a regression or improvement (default 10)
  --rounds N               paired rounds for ratio targets and for re-measuring rows flagged as
                           regressed (default 5; 0: judge on the main pass alone)
  --fail-on-regression     exit 1 if any benchmark regressed against --baseline
  --json PATH              write the results in the baseline schema to PATH
  --markdown PATH          write the tables of docs/PERFORMANCE.md to PATH
  --targets PATH           performance targets to check (default docs/targets.json)
  --instructions           count instructions (callgrind, via gungraun) instead of timing; fails
                           when a hivekit row grows more than 2% over docs/instructions.json
  --bless                  with --instructions: rewrite docs/instructions.json from this run
  --manifest-path PATH     the workspace to run in (default: the current one)

cargo xtask test [--manifest-path PATH]
cargo xtask ci [--manifest-path PATH]
cargo xtask aa-test [--manifest-path PATH]

see docs/BENCHMARKS.md for how to run the benches and read the results";

/// The most paired rounds `--rounds` accepts (each round re-runs every ratio row).
pub(crate) const MAX_ROUNDS: usize = 50;

/// The default regression threshold, in percent of the baseline median.
pub(crate) const DEFAULT_THRESHOLD_PCT: f64 = 10.0;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Print the usage text.
    Help,
    /// `cargo xtask bench`.
    Bench(Box<BenchArgs>),
    /// `cargo xtask test`.
    Test(CiArgs),
    /// `cargo xtask ci`.
    Ci(CiArgs),
    /// `cargo xtask aa-test`.
    AaTest(CiArgs),
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
    /// Print the full run's time plan instead of measuring.
    pub(crate) plan: bool,
    /// Baseline name to save this run under.
    pub(crate) save_baseline: Option<String>,
    /// Baseline name to compare against.
    pub(crate) baseline: Option<String>,
    /// Regression threshold in percent.
    pub(crate) threshold_pct: f64,
    /// Exit 1 when a benchmark regressed.
    pub(crate) fail_on_regression: bool,
    /// Paired rounds after the main pass (ratio targets, re-measuring flagged rows).
    pub(crate) rounds: usize,
    /// Where to write the results as JSON.
    pub(crate) json: Option<PathBuf>,
    /// Where to write the markdown report.
    pub(crate) markdown: Option<PathBuf>,
    /// The targets file (default `docs/targets.json` in the workspace).
    pub(crate) targets: Option<PathBuf>,
    /// Count instructions instead of timing.
    pub(crate) instructions: bool,
    /// Rewrite the instruction baseline from this run.
    pub(crate) bless: bool,
    /// The workspace manifest (default: found by cargo from the current directory).
    pub(crate) manifest_path: Option<PathBuf>,
    /// Environment for the bench binaries beyond xtask's own (not a command-line option: the A/A
    /// self-test plants its slowdown with it).
    pub(crate) extra_env: Vec<(String, String)>,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            quick: false,
            packages: Vec::new(),
            filter: None,
            list: false,
            plan: false,
            save_baseline: None,
            baseline: None,
            threshold_pct: DEFAULT_THRESHOLD_PCT,
            fail_on_regression: false,
            rounds: crate::paired::DEFAULT_ROUNDS,
            json: None,
            markdown: None,
            targets: None,
            instructions: false,
            bless: false,
            manifest_path: None,
            extra_env: Vec::new(),
        }
    }
}

/// Options of `cargo xtask ci` and `cargo xtask test`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CiArgs {
    /// The workspace manifest (default: found by cargo from the current directory).
    pub(crate) manifest_path: Option<PathBuf>,
}

/// Parses the arguments after the program name.
pub(crate) fn parse(args: &[String]) -> Result<Command, UsageError> {
    let mut parser = Parser::from_args(args.iter().cloned());
    let command = match parser.next().map_err(usage)? {
        None => return Ok(Command::Help),
        Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Command::Help),
        Some(Arg::Value(command)) => command.to_string_lossy().into_owned(),
        Some(other) => return Err(UsageError::UnknownCommand(option_text(&other))),
    };
    match command.as_str() {
        "help" => Ok(Command::Help),
        "bench" => parse_bench(&mut parser)
            .map(|args| args.map_or(Command::Help, |args| Command::Bench(Box::new(args)))),
        "test" => parse_ci(&mut parser).map(|args| args.map_or(Command::Help, Command::Test)),
        "ci" => parse_ci(&mut parser).map(|args| args.map_or(Command::Help, Command::Ci)),
        "aa-test" => parse_ci(&mut parser).map(|args| args.map_or(Command::Help, Command::AaTest)),
        _ => Err(UsageError::UnknownCommand(command)),
    }
}

/// `--flag` or `-f`, as typed.
fn option_text(arg: &Arg<'_>) -> String {
    match arg {
        Arg::Short(short) => format!("-{short}"),
        Arg::Long(long) => format!("--{long}"),
        Arg::Value(value) => value.to_string_lossy().into_owned(),
    }
}

/// lexopt's own errors in our words.
fn usage(error: lexopt::Error) -> UsageError {
    match error {
        lexopt::Error::MissingValue { option } => {
            UsageError::MissingValue(option.unwrap_or_default())
        }
        lexopt::Error::UnexpectedOption(option) => UsageError::UnknownFlag(option),
        lexopt::Error::UnexpectedArgument(value) | lexopt::Error::NonUnicodeValue(value) => {
            UsageError::UnexpectedArgument(value.to_string_lossy().into_owned())
        }
        lexopt::Error::UnexpectedValue { option, .. } => UsageError::UnexpectedValue(option),
        lexopt::Error::ParsingFailed { value, .. } => UsageError::UnexpectedArgument(value),
        other => UsageError::UnexpectedArgument(other.to_string()),
    }
}

/// The value of `flag`: attached (`--flag=value`) or the next argument. A next argument that starts
/// a flag is not taken, unless a number follows the `-` (`--threshold -5` is a bad threshold, not a
/// missing one).
fn value(parser: &mut Parser, flag: &str) -> Result<OsString, UsageError> {
    let value = match parser.optional_value() {
        Some(value) => Some(value),
        None => parser
            .try_raw_args()
            .and_then(|mut raw| raw.next_if(|next| !looks_like_flag(&next.to_string_lossy()))),
    };
    match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(UsageError::MissingValue(flag.to_owned())),
    }
}

fn string_value(parser: &mut Parser, flag: &str) -> Result<String, UsageError> {
    value(parser, flag)?
        .into_string()
        .map_err(|value| UsageError::UnexpectedArgument(value.to_string_lossy().into_owned()))
}

fn looks_like_flag(value: &str) -> bool {
    value
        .strip_prefix('-')
        .and_then(|rest| rest.chars().next())
        .is_some_and(|next| !next.is_ascii_digit() && next != '.')
}

/// An option lexopt did not expect, or a bare word where an option was expected.
fn unknown(arg: &Arg<'_>) -> UsageError {
    match arg {
        Arg::Value(value) => UsageError::UnexpectedArgument(value.to_string_lossy().into_owned()),
        option => UsageError::UnknownFlag(option_text(option)),
    }
}

/// `Ok(None)`: `-h` or `--help` was given, print the usage.
fn parse_bench(parser: &mut Parser) -> Result<Option<BenchArgs>, UsageError> {
    let mut parsed = BenchArgs::default();
    let mut threshold_given = false;
    let mut rounds_given = false;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(None),
            Arg::Long("quick") => parsed.quick = true,
            Arg::Long("list") => parsed.list = true,
            Arg::Long("plan") => parsed.plan = true,
            Arg::Long("fail-on-regression") => parsed.fail_on_regression = true,
            Arg::Long("instructions") => parsed.instructions = true,
            Arg::Long("bless") => parsed.bless = true,
            Arg::Short('p') => parsed.packages.push(string_value(parser, "-p")?),
            Arg::Long("package") => parsed.packages.push(string_value(parser, "--package")?),
            Arg::Long("filter") => parsed.filter = Some(string_value(parser, "--filter")?),
            Arg::Long("save-baseline") => {
                let name = string_value(parser, "--save-baseline")?;
                parsed.save_baseline = Some(baseline_name("--save-baseline", &name)?);
            }
            Arg::Long("baseline") => {
                let name = string_value(parser, "--baseline")?;
                parsed.baseline = Some(baseline_name("--baseline", &name)?);
            }
            Arg::Long("threshold") => {
                parsed.threshold_pct = threshold(&string_value(parser, "--threshold")?)?;
                threshold_given = true;
            }
            Arg::Long("rounds") => {
                let text = string_value(parser, "--rounds")?;
                parsed.rounds = match text.parse::<usize>() {
                    Ok(rounds) if rounds <= MAX_ROUNDS => rounds,
                    _ => return Err(UsageError::BadRounds(text)),
                };
                rounds_given = true;
            }
            Arg::Long("json") => parsed.json = Some(value(parser, "--json")?.into()),
            Arg::Long("markdown") => parsed.markdown = Some(value(parser, "--markdown")?.into()),
            Arg::Long("targets") => parsed.targets = Some(value(parser, "--targets")?.into()),
            Arg::Long("manifest-path") => {
                parsed.manifest_path = Some(value(parser, "--manifest-path")?.into());
            }
            other => return Err(unknown(&other)),
        }
    }
    if parsed.list || parsed.plan {
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
    if parsed.instructions {
        // Instruction counts have their own baseline (docs/instructions.json) and a fixed gate.
        let wall_clock_options = [
            ("--quick", parsed.quick),
            ("--list", parsed.list),
            ("--plan", parsed.plan),
            ("--save-baseline", parsed.save_baseline.is_some()),
            ("--baseline", parsed.baseline.is_some()),
            ("--threshold", threshold_given),
            ("--rounds", rounds_given),
            ("--fail-on-regression", parsed.fail_on_regression),
            ("--markdown", parsed.markdown.is_some()),
            ("--targets", parsed.targets.is_some()),
        ];
        if let Some((flag, _)) = wall_clock_options.iter().find(|(_, given)| *given) {
            return Err(UsageError::InstructionsWith((*flag).to_owned()));
        }
    } else if parsed.bless {
        return Err(UsageError::BlessWithoutInstructions);
    }
    if parsed.fail_on_regression && parsed.baseline.is_none() {
        return Err(UsageError::FailWithoutBaseline);
    }
    Ok(Some(parsed))
}

/// `Ok(None)`: `-h` or `--help` was given, print the usage.
fn parse_ci(parser: &mut Parser) -> Result<Option<CiArgs>, UsageError> {
    let mut parsed = CiArgs::default();
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(None),
            Arg::Long("manifest-path") => {
                parsed.manifest_path = Some(value(parser, "--manifest-path")?.into());
            }
            other => return Err(unknown(&other)),
        }
    }
    Ok(Some(parsed))
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
            Ok(Command::Bench(args)) => *args,
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
    fn help_after_a_command_prints_usage_instead_of_an_unknown_option() {
        for line in [
            "bench --help",
            "bench -h",
            "bench --quick --help",
            "ci --help",
            "test -h",
        ] {
            assert_eq!(parse_str(line), Ok(Command::Help), "{line}");
        }
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
    fn rounds_are_a_small_count() {
        assert_eq!(bench("bench").rounds, 5);
        assert_eq!(bench("bench --rounds 0").rounds, 0);
        assert_eq!(bench("bench --rounds=9").rounds, 9);
        for value in ["-1", "x", "2.5", "51"] {
            let line = format!("bench --rounds={value}");
            assert_eq!(
                parse_str(&line),
                Err(UsageError::BadRounds(value.into())),
                "{line}"
            );
        }
        assert_eq!(
            parse_str("bench --instructions --rounds 3"),
            Err(UsageError::InstructionsWith("--rounds".into()))
        );
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
        assert!(bench("bench --plan -p runtime").plan);
        assert_eq!(
            parse_str("bench --plan --json out.json"),
            Err(UsageError::ListWith("--json".into()))
        );
    }

    #[test]
    fn instructions_take_their_own_options_only() {
        let args =
            bench("bench --instructions --bless -p lockfree --filter snapshot --json i.json");
        assert!(args.instructions && args.bless);
        assert_eq!(args.packages, ["lockfree"]);
        assert_eq!(
            parse_str("bench --instructions --quick"),
            Err(UsageError::InstructionsWith("--quick".into()))
        );
        assert_eq!(
            parse_str("bench --instructions --threshold 5"),
            Err(UsageError::InstructionsWith("--threshold".into()))
        );
        assert_eq!(
            parse_str("bench --bless"),
            Err(UsageError::BlessWithoutInstructions)
        );
    }

    #[test]
    fn aa_test_parses() {
        assert_eq!(parse_str("aa-test"), Ok(Command::AaTest(CiArgs::default())));
        assert_eq!(parse_str("aa-test --help"), Ok(Command::Help));
    }

    #[test]
    fn test_command_parses() {
        assert_eq!(parse_str("test"), Ok(Command::Test(CiArgs::default())));
        assert_eq!(
            parse_str("test --workspace"),
            Err(UsageError::UnknownFlag("--workspace".into()))
        );
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
