//! Errors of xtask and the exit code each maps to.

use std::path::PathBuf;

/// A bad command line: printed with the usage text, exit code 2.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum UsageError {
    /// The first argument is not a known command.
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    /// A flag the command does not know.
    #[error("unknown option `{0}`")]
    UnknownFlag(String),
    /// A word where an option was expected (`cargo xtask bench snapshot`).
    #[error("unexpected argument `{0}`; options start with `--` (a filter is `--filter REGEX`)")]
    UnexpectedArgument(String),
    /// A flag that needs a value got none.
    #[error("option `{0}` needs a value")]
    MissingValue(String),
    /// A switch was given `=value`.
    #[error("option `{0}` takes no value")]
    UnexpectedValue(String),
    /// The threshold is not a positive finite number.
    #[error("threshold `{0}` is not a positive number of percent")]
    BadThreshold(String),
    /// `--rounds` is not a whole number from 0 to 50.
    #[error("rounds `{0}` is not a whole number from 0 to 50")]
    BadRounds(String),
    /// A baseline name that cannot be a plain file name.
    #[error(
        "baseline name `{name}` given to `{flag}` may only hold letters, digits, `-`, `_` and `.`"
    )]
    BadBaselineName {
        /// The flag the name was given to.
        flag: String,
        /// The rejected name.
        name: String,
    },
    /// `--list` and `--plan` measure nothing, so an option about results makes no sense beside them.
    #[error("`--list` and `--plan` measure nothing, so `{0}` cannot be used with them")]
    ListWith(String),
    /// An option about wall-clock runs given with `--instructions`.
    #[error("`--instructions` counts instructions against docs/instructions.json, so `{0}` cannot be used with it")]
    InstructionsWith(String),
    /// `--bless` without `--instructions`.
    #[error("`--bless` rewrites docs/instructions.json and needs `--instructions`")]
    BlessWithoutInstructions,
    /// `--fail-on-regression` without a baseline to compare against.
    #[error("`--fail-on-regression` needs `--baseline NAME`")]
    FailWithoutBaseline,
}

/// Everything that can stop an xtask command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum XtaskError {
    /// A bad command line.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// `-p` named a crate that is not in the workspace.
    #[error("unknown crate `{name}`; crates with benches: {known}")]
    UnknownCrate {
        /// The name given.
        name: String,
        /// The crates that have bench targets, comma separated.
        known: String,
    },
    /// `-p` named a workspace crate without the benches this command runs.
    #[error("crate `{name}` has no {what}; crates with one: {known}")]
    NoBenches {
        /// The name given.
        name: String,
        /// What it lacks: criterion bench targets, or an instruction-count suite.
        what: &'static str,
        /// The crates that have them, comma separated.
        known: String,
    },
    /// Every crate selected with `-p` was left out because a tool it needs is missing.
    #[error("nothing to measure: {note}")]
    AllSkipped {
        /// Which crates were skipped, what is missing and how to install it.
        note: String,
    },
    /// `--filter` is not a valid regex.
    #[error("filter `{pattern}` is not a valid regex: {message}")]
    BadFilter {
        /// The pattern given.
        pattern: String,
        /// The regex crate's explanation.
        message: String,
    },
    /// `--baseline NAME` has no file.
    #[error("baseline `{name}` not found: no file {}; save one with `cargo xtask bench --save-baseline {name}`", path.display())]
    MissingBaseline {
        /// The baseline name.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A JSON input (baseline, targets) that does not parse.
    #[error("cannot parse {}: {message}", path.display())]
    BadInputFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `--json` or `--markdown` names a path that cannot be written (checked before measuring).
    #[error("cannot write {}: {message}", path.display())]
    BadOutputPath {
        /// The path.
        path: PathBuf,
        /// Why it cannot be written.
        message: String,
    },
    /// `cargo xtask aa-test` saw a false alarm or missed the planted slowdown.
    #[error("aa-test failed: {0}")]
    AaTest(String),
    /// plotters could not draw a chart.
    #[error("cannot draw chart {path}: {message}")]
    Chart {
        /// The SVG file.
        path: PathBuf,
        /// plotters' error.
        message: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was attempted (`read`, `write`, `create directory`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A child command could not be started or failed.
    #[error("`{command}` {outcome}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// How it failed (`exited with exit status: 101`, `could not start: ..`).
        outcome: String,
    },
    /// `cargo metadata` output that does not have the expected shape.
    #[error("unexpected `cargo metadata` output: {0}")]
    Metadata(String),
    /// Building the benches of a crate failed.
    #[error("building the benches of {crates} failed")]
    BenchBuild {
        /// The crates being built.
        crates: String,
    },
    /// One or more suites failed while running.
    #[error("bench suites failed: {0}")]
    SuitesFailed(String),
    /// `--fail-on-regression` and at least one benchmark regressed.
    #[error("{0} benchmark(s) regressed against the baseline")]
    Regressed(usize),
    /// `--fail-on-regression` on a run whose load went above the core count: no verdict.
    #[error("the machine was too busy to judge regressions ({0}); run again on a quieter machine")]
    TooBusyToJudge(String),
    /// `etcd` or `protoc` is missing and could not be installed.
    #[error("{missing} not found and not installed ({why}); install them with `apt-get install -y etcd-server protobuf-compiler`")]
    Provision {
        /// The missing tools (`etcd and protoc`).
        missing: String,
        /// Why xtask did not install them itself.
        why: String,
    },
    /// Instruction counts grew beyond the gate over the committed baseline.
    #[error("instruction counts regressed over docs/instructions.json: {0}")]
    InstructionsRegressed(String),
    /// A `cargo xtask ci` step failed.
    #[error("ci step `{step}` failed ({outcome}); stopping")]
    CiStep {
        /// The step's command line.
        step: String,
        /// How it failed.
        outcome: String,
    },
}

impl XtaskError {
    /// The process exit code: 2 for bad input from the user, 3 when the machine was too busy to
    /// judge regressions, 1 for failures.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::TooBusyToJudge(_) => 3,
            Self::Usage(_)
            | Self::UnknownCrate { .. }
            | Self::NoBenches { .. }
            | Self::AllSkipped { .. }
            | Self::BadFilter { .. }
            | Self::MissingBaseline { .. }
            | Self::BadInputFile { .. }
            | Self::BadOutputPath { .. } => 2,
            Self::Io { .. }
            | Self::Chart { .. }
            | Self::AaTest(_)
            | Self::CommandFailed { .. }
            | Self::Metadata(_)
            | Self::BenchBuild { .. }
            | Self::SuitesFailed(_)
            | Self::Regressed(_)
            | Self::Provision { .. }
            | Self::InstructionsRegressed(_)
            | Self::CiStep { .. } => 1,
        }
    }

    /// Wraps an I/O error with the file it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_mistakes_exit_2_failures_exit_1() {
        assert_eq!(
            XtaskError::from(UsageError::FailWithoutBaseline).exit_code(),
            2
        );
        let missing = XtaskError::MissingBaseline {
            name: "main".into(),
            path: PathBuf::from("target/hivekit-baselines/main.json"),
        };
        assert_eq!(missing.exit_code(), 2);
        assert!(missing.to_string().contains("baseline `main` not found"));
        assert_eq!(XtaskError::Regressed(3).exit_code(), 1);
        assert_eq!(XtaskError::TooBusyToJudge("load".into()).exit_code(), 3);
        assert_eq!(
            XtaskError::BenchBuild {
                crates: "hivekit-hive".into()
            }
            .exit_code(),
            1
        );
    }
}
