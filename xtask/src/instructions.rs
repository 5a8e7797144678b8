//! `cargo xtask bench --instructions`: runs every `benches/instructions.rs` (gungraun on Valgrind's
//! callgrind), prints instructions and estimated cycles per row with the ratio to its peers, and
//! compares them with `docs/instructions.json` (see [`crate::instruction_counts`]).
//!
//! gungraun's library hands the measuring over to the `gungraun-runner` binary, which must be the
//! same version as the library; xtask installs it with `cargo install --locked` into
//! `<target>/gungraun-runner` when no matching runner is found, and points the suites at it with
//! `GUNGRAUN_RUNNER` and `PATH`. The suites are built once and their binaries run directly, like the
//! criterion suites (see [`crate::binaries`]), not through `cargo bench -p X`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use cargo_metadata::MetadataCommand;
use regex::Regex;
use serde_json::Value;

use crate::args::BenchArgs;
use crate::bench::validate_filter;
use crate::binaries::{
    describe, executables, instruction_build_args, suite_command, BenchBinary, Harness,
};
use crate::error::XtaskError;
use crate::instruction_counts::{
    changes, regressions, render, InstructionBaseline, InstructionRow, GATE_PCT,
};
use crate::instruction_filter::{parse_list, select, Listed, Selection};
use crate::machine::RunInfo;
use crate::process::{cargo_command, display_command, run_captured, tail, Stream};
use crate::provision::{Tools, INSTALL_COMMAND};
use crate::workspace::{cargo, Suite, Workspace, INSTRUCTIONS_BENCH};

/// The gungraun library crate whose version the runner must match.
const LIBRARY: &str = "gungraun";
/// The runner's crate and binary name.
const RUNNER: &str = "gungraun-runner";

/// The version of the gungraun library in the workspace's lock file.
fn library_version(workspace: &Workspace) -> Result<String, XtaskError> {
    let metadata = MetadataCommand::new()
        .cargo_path(cargo())
        .manifest_path(workspace.root.join("Cargo.toml"))
        .exec()
        .map_err(|error| XtaskError::Metadata(error.to_string()))?;
    metadata
        .packages
        .iter()
        .find(|package| package.name.as_str() == LIBRARY)
        .map(|package| package.version.to_string())
        .ok_or_else(|| {
            XtaskError::Metadata(format!(
                "no package depends on `{LIBRARY}`, so there is nothing to count"
            ))
        })
}

/// `gungraun-runner --version` of `program`, if it runs: `0.20.0`.
fn runner_version(program: &Path) -> Option<String> {
    let output = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    output
        .status
        .success()
        .then(|| text.split_whitespace().last().map(str::to_owned))
        .flatten()
}

/// A runner of `version`: the one xtask installed before, one on `PATH`, or a fresh install.
fn ensure_runner(workspace: &Workspace, version: &str) -> Result<PathBuf, XtaskError> {
    let root = workspace.target_dir.join(RUNNER);
    let installed = root.join("bin").join(RUNNER);
    let on_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(RUNNER))
        .find(|candidate| candidate.is_file());
    for candidate in [Some(installed.clone()), on_path].into_iter().flatten() {
        if runner_version(&candidate).as_deref() == Some(version) {
            return Ok(candidate);
        }
    }
    let args: Vec<OsString> = vec![
        "install".into(),
        "--locked".into(),
        RUNNER.into(),
        "--version".into(),
        version.into(),
        "--root".into(),
        root.clone().into(),
        // A build directory of its own, kept: an interrupted install resumes instead of restarting.
        "--target-dir".into(),
        root.join("build").into(),
    ];
    let description = display_command(&OsString::from("cargo"), &args);
    println!("installing the runner that matches gungraun {version}: {description}");
    let status = cargo_command(&workspace.root, &args)
        .status()
        .map_err(|error| XtaskError::CommandFailed {
            command: description.clone(),
            outcome: format!("could not start: {error}"),
        })?;
    if status.success() && runner_version(&installed).as_deref() == Some(version) {
        Ok(installed)
    } else {
        Err(XtaskError::CommandFailed {
            command: description,
            outcome: format!("{status}, or the installed runner is not version {version}"),
        })
    }
}

/// `group/function/parameter` from gungraun's summary: the group and function names as written in
/// the bench file (a function's `_` read as `-`, as peers are named in the criterion suites), the
/// parameter is the `#[bench::id]`.
fn row_id(summary: &Value) -> Option<String> {
    let group = summary.get("group")?.as_str()?;
    let function = summary.get("function_name")?.as_str()?.replace('_', "-");
    let parameter = summary
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(if parameter.is_empty() {
        format!("{group}/{function}")
    } else {
        format!("{group}/{function}/{parameter}")
    })
}

/// The new value of a callgrind metric (`Ir`, `EstimatedCycles`) in a summary's first profile total.
///
/// A metric is serialised as `{"Ir": {"metrics": {"Left": {"Int": 1234}}, ...}}` (new only) or with
/// `"Both": [new, old]`: the first integer under the metric's key is the new value.
fn metric(summary: &Value, name: &str) -> Option<u64> {
    fn first_int(value: &Value) -> Option<u64> {
        match value {
            Value::Number(number) => number.as_u64().or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f.round() as u64)
            }),
            Value::Array(items) => items.iter().find_map(first_int),
            Value::Object(fields) => fields.values().find_map(first_int),
            _ => None,
        }
    }
    fn find<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
        match value {
            Value::Object(fields) => fields
                .get(name)
                .or_else(|| fields.values().find_map(|v| find(v, name))),
            Value::Array(items) => items.iter().find_map(|v| find(v, name)),
            _ => None,
        }
    }
    let profiles = summary.get("profiles")?;
    let total = find(profiles, "total")?;
    find(total, name).and_then(first_int)
}

/// One stdout line of `--output-format=json` as a row, if it is a summary.
pub(crate) fn parse_summary_line(line: &str, krate: &str) -> Option<InstructionRow> {
    let summary: Value = serde_json::from_str(line.trim()).ok()?;
    Some(InstructionRow {
        id: row_id(&summary)?,
        krate: krate.to_owned(),
        instructions: metric(&summary, "Ir")?,
        estimated_cycles: metric(&summary, "EstimatedCycles"),
    })
}

/// Builds the instruction suites with one cargo command (see [`instruction_build_args`]) and
/// returns the executables of `suites`, in their order.
fn build(
    workspace: &Workspace,
    suites: &[Suite],
    exclude: &[String],
) -> Result<Vec<BenchBinary>, XtaskError> {
    let args = instruction_build_args(exclude);
    let description = display_command(&OsString::from("cargo"), &args);
    println!("building the instruction suites ...");
    let mut output = Vec::new();
    let mut messages = Vec::new();
    let status = run_captured(
        &mut cargo_command(&workspace.root, &args),
        &description,
        |stream, line| match stream {
            Stream::Stdout => messages.push(line.to_owned()),
            Stream::Stderr => output.push(line.to_owned()),
        },
    )?;
    if !status.success() {
        eprintln!("--- `{description}` failed ({status}); last lines of its output:");
        for line in tail(&output, 40) {
            eprintln!("    {line}");
        }
        return Err(XtaskError::BenchBuild {
            crates: "the instruction suites".to_owned(),
        });
    }
    let built = executables(
        workspace,
        Harness::Instructions,
        messages.iter().map(String::as_str),
    );
    suites
        .iter()
        .map(|suite| {
            built
                .iter()
                .find(|binary| binary.suite == *suite)
                .cloned()
                .ok_or_else(|| XtaskError::CommandFailed {
                    command: description.clone(),
                    outcome: format!(
                        "succeeded but named no executable for {} (bench `{}`)",
                        suite.krate, suite.bench
                    ),
                })
        })
        .collect()
}

/// The command that runs one built suite as `cargo bench` would with `args`, pointed at `runner`.
///
/// gungraun reads `GUNGRAUN_RUNNER` with `option_env!`, at compile time, so setting it only here
/// would not reach a binary built without it (and setting it for the build would make the build
/// differ from CI's `cargo bench --workspace --no-run`, rebuilding the suites each time). A binary
/// built without it starts `gungraun-runner` from `PATH`: the runner's directory goes first there.
fn suite_run_command(binary: &BenchBinary, runner: &Path, args: &[OsString]) -> Command {
    let mut command = suite_command(binary, args);
    let mut path: Vec<PathBuf> = runner.parent().map(Path::to_path_buf).into_iter().collect();
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    if let Ok(joined) = std::env::join_paths(path) {
        command.env("PATH", joined);
    }
    command.env("GUNGRAUN_RUNNER", runner);
    command
}

/// The benchmarks one built suite holds (`--list`), to map `--filter` onto them.
fn list_suite(binary: &BenchBinary, runner: &Path) -> Result<Vec<Listed>, XtaskError> {
    let args = [OsString::from("--list")];
    let description = describe(binary, &args);
    let mut command = suite_run_command(binary, runner, &args);
    let mut output = String::new();
    let status = run_captured(&mut command, &description, |_, line| {
        output.push_str(line);
        output.push('\n');
    })?;
    if !status.success() {
        let lines: Vec<String> = output.lines().map(str::to_owned).collect();
        eprintln!("--- `{description}` failed; last lines of its output:");
        for line in tail(&lines, 40) {
            eprintln!("    {line}");
        }
        return Err(XtaskError::SuitesFailed(format!(
            "{} (bench `{}`)",
            binary.suite.krate, binary.suite.bench
        )));
    }
    Ok(parse_list(&output))
}

/// Runs what `filter` selects of one built suite and returns its rows.
fn run_selected(
    binary: &BenchBinary,
    runner: &Path,
    filter: Option<&Regex>,
) -> Result<Vec<InstructionRow>, XtaskError> {
    let selection = match filter {
        Some(_) => select(&list_suite(binary, runner)?, filter),
        None => Selection::Everything,
    };
    match selection {
        Selection::Everything => run_suite(binary, runner, None),
        Selection::Nothing => Ok(Vec::new()),
        Selection::Patterns(patterns) => {
            let mut rows = Vec::new();
            for pattern in &patterns {
                rows.extend(run_suite(binary, runner, Some(pattern))?);
            }
            Ok(rows)
        }
    }
}

/// Runs one built suite, or only its benchmarks that match gungraun `pattern`, and returns their
/// rows.
fn run_suite(
    binary: &BenchBinary,
    runner: &Path,
    pattern: Option<&str>,
) -> Result<Vec<InstructionRow>, XtaskError> {
    let suite = &binary.suite;
    let mut args = vec![OsString::from("--output-format=json")];
    args.extend(pattern.map(OsString::from));
    let description = describe(binary, &args);
    let mut command = suite_run_command(binary, runner, &args);
    let mut rows = Vec::new();
    let mut output = Vec::new();
    let status = run_captured(&mut command, &description, |stream, line| {
        let parsed = (stream == Stream::Stdout)
            .then(|| parse_summary_line(line, &suite.krate))
            .flatten();
        match parsed {
            Some(row) => {
                println!(
                    "[{}] {}  {} instructions",
                    suite.krate, row.id, row.instructions
                );
                rows.push(row);
            }
            None => output.push(line.to_owned()),
        }
    })?;
    if !status.success() {
        eprintln!(
            "--- {} (bench `{}`, `{description}`) failed; last lines of its output:",
            suite.krate, suite.bench
        );
        for line in tail(&output, 40) {
            eprintln!("    {line}");
        }
        return Err(XtaskError::SuitesFailed(format!(
            "{} (bench `{}`)",
            suite.krate, suite.bench
        )));
    }
    Ok(rows)
}

/// Runs `cargo xtask bench --instructions`.
pub(crate) fn run(args: &BenchArgs) -> Result<(), XtaskError> {
    let filter = match &args.filter {
        Some(pattern) => {
            validate_filter(pattern)?;
            Regex::new(pattern).ok()
        }
        None => None,
    };
    let workspace = Workspace::load(args.manifest_path.as_deref())?;
    let baseline_path = workspace.instructions_baseline();
    let baseline = InstructionBaseline::load(&baseline_path)?;
    let mut suites = workspace.instruction_suites(&args.packages)?;
    // Packages that need etcd and protoc are left out when either is missing, and the report says so.
    let tools = Tools::find();
    let skipped: Vec<String> = if tools.missing().is_empty() {
        Vec::new()
    } else {
        workspace.etcd_packages()
    };
    suites.retain(|suite| !skipped.contains(&suite.krate));
    if suites.is_empty() {
        println!("no selected crate has a `benches/{INSTRUCTIONS_BENCH}.rs` suite");
        return Ok(());
    }
    let runner = ensure_runner(&workspace, &library_version(&workspace)?)?;
    let binaries = build(&workspace, &suites, &skipped)?;
    let mut rows = Vec::new();
    for binary in &binaries {
        rows.extend(run_selected(binary, &runner, filter.as_ref())?);
    }
    // The suites ran only the selected rows; this also keeps out of the report a row whose
    // summary names it otherwise than the listing did.
    if let Some(filter) = &filter {
        rows.retain(|row| filter.is_match(&row.id));
        if rows.is_empty() {
            // Nothing ran: nothing to show, compare or bless.
            println!(
                "no instruction row matches `--filter {}` (row ids are `group/function/parameter`, a function's `_` written `-`)",
                filter.as_str()
            );
            return Ok(());
        }
    }
    if let Some(baseline) = &baseline {
        warn_not_counted(baseline, &rows, &binaries, filter.as_ref(), &baseline_path);
    }
    let changes = changes(&rows, baseline.as_ref());
    println!();
    print!("{}", render(&rows, &changes));
    println!();
    let info = RunInfo::gather(&workspace.root);
    if !skipped.is_empty() {
        println!(
            "skipped {}: {} missing; install with `{INSTALL_COMMAND}` (or run `cargo xtask test`, which does)",
            skipped.join(", "),
            tools.missing().join(" and ")
        );
    }
    if let Some(path) = &args.json {
        let document =
            InstructionBaseline::blessed(None, &rows, info.rustc.clone(), info.commit.clone());
        document.save(path)?;
        println!("wrote {}", path.display());
    }
    if args.bless {
        let blessed =
            InstructionBaseline::blessed(baseline.as_ref(), &rows, info.rustc, info.commit);
        blessed.save(&baseline_path)?;
        println!(
            "blessed {} rows into {}; commit it with a message saying why the counts changed",
            rows.len(),
            baseline_path.display()
        );
        return Ok(());
    }
    let Some(baseline) = baseline else {
        println!(
            "no {} yet: run `cargo xtask bench --instructions --bless` and commit it",
            baseline_path.display()
        );
        return Ok(());
    };
    if baseline.rustc != info.rustc {
        println!(
            "note: the baseline was blessed with `{}`, this is `{}`; counts move with the compiler",
            baseline.rustc, info.rustc
        );
    }
    let regressed = regressions(&rows, &changes, Some(&baseline));
    if regressed.is_empty() {
        println!(
            "instructions: no hivekit row grew more than {GATE_PCT}% over {} (commit {})",
            baseline_path.display(),
            baseline.commit
        );
        Ok(())
    } else {
        for line in &regressed {
            println!("regressed: {line}");
        }
        println!(
            "a change meant to cost more re-blesses in the same commit (`cargo xtask bench --instructions --bless`) and says why"
        );
        Err(XtaskError::InstructionsRegressed(regressed.join(", ")))
    }
}

/// Warns about the baseline's rows this run should have counted (its crates, matching `--filter`)
/// and did not: a row renamed or removed drops out of the gate, which must not go unsaid.
fn warn_not_counted(
    baseline: &InstructionBaseline,
    rows: &[InstructionRow],
    binaries: &[BenchBinary],
    filter: Option<&Regex>,
    baseline_path: &Path,
) {
    let counted: std::collections::HashSet<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let missing: Vec<&str> = baseline
        .rows
        .iter()
        .filter(|row| {
            binaries
                .iter()
                .any(|binary| binary.suite.krate == row.krate)
        })
        .filter(|row| filter.is_none_or(|filter| filter.is_match(&row.id)))
        .map(|row| row.id.as_str())
        .filter(|id| !counted.contains(id))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "warning: {} row(s) of {} were not counted in this run and are not gated: {}",
            missing.len(),
            baseline_path.display(),
            missing.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_become_rows() {
        let line = r#"{"group": "snapshot_reads", "function_name": "arc_swap_load", "id": "one",
            "profiles": [{"tool": "Callgrind", "data": {"parts": [], "total": {"metrics": {"Callgrind":
            {"Ir": {"metrics": {"Left": {"Int": 1234}}}, "EstimatedCycles": {"metrics": {"Both": [{"Int": 2000}, {"Int": 1900}]}}}},
            "regressions": []}}}]}"#
            .replace('\n', " ");
        let row = parse_summary_line(&line, "hivekit-lockfree").expect("a row");
        assert_eq!(row.id, "snapshot_reads/arc-swap-load/one");
        assert_eq!(row.instructions, 1234);
        assert_eq!(row.estimated_cycles, Some(2000));
        assert_eq!(parse_summary_line("Compiling x", "c"), None);
        assert_eq!(parse_summary_line("{}", "c"), None);
    }
}
