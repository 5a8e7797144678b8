//! `cargo xtask bench`: build the suites once, run them with a one-line-per-benchmark progress
//! display, then print the table, check the targets, and save or compare baselines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use regex::Regex;

use crate::args::BenchArgs;
use crate::baseline::Baseline;
use crate::binaries::{build_args, describe, executables, suite_command, BenchBinary, Harness};
use crate::charts::{write_charts, CHART_DIR};
use crate::criterion::{collect_results, parse_list, recorded_medians, started, ProgressParser};
use crate::error::XtaskError;
use crate::extras::{clear_extras, join_extras, read_extras};
use crate::machine::{RunInfo, RunTimings};
use crate::markdown::render_markdown;
use crate::plan::Plan;
use crate::process::{cargo_command, display_command, run_captured, shell_quote, tail, Stream};
use crate::provision::{Tools, INSTALL_COMMAND};
use crate::report::Report;
use crate::results::BenchResult;
use crate::rounds::{measure_rounds, Settings};
use crate::table::{legend, render_table};
use crate::targets::{evaluate_paired, format_summary, load_targets, paired_ids, Target};
use crate::units::format_ns;
use crate::verdict::format_change;
use crate::workspace::{Suite, Workspace};

/// Lines of captured output shown when a suite fails.
const FAILURE_TAIL: usize = 40;

/// The argument criterion gets for `--filter`. criterion would read a pattern starting with `-` as
/// a flag, so such a pattern is prefixed with an empty group, which matches the same ids.
pub(crate) fn criterion_filter(pattern: &str) -> String {
    if pattern.starts_with('-') {
        format!("(?:){pattern}")
    } else {
        pattern.to_owned()
    }
}

/// Checks `--filter` is a regex criterion will accept (criterion uses the same `regex` crate).
pub(crate) fn validate_filter(pattern: &str) -> Result<(), XtaskError> {
    Regex::new(pattern)
        .map(|_| ())
        .map_err(|error| XtaskError::BadFilter {
            pattern: pattern.to_owned(),
            // The regex crate's message ends with a line `error: <what>`; keep just the what.
            message: error
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .trim_start_matches("error: ")
                .to_owned(),
        })
}

/// The arguments a suite binary gets after `--bench`.
pub(crate) fn criterion_args(filter: Option<&str>, list: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--color".into(), "never".into()];
    if list {
        args.push("--list".into());
    }
    if let Some(pattern) = filter {
        args.push(criterion_filter(pattern).into());
    }
    args
}

/// Crate names out of cargo's `error: could not compile `NAME` (...)` lines.
pub(crate) fn failed_crates(output: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in output {
        let Some(rest) = line.split("could not compile `").nth(1) else {
            continue;
        };
        if let Some((name, _)) = rest.split_once('`') {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn unique_crates(suites: &[Suite]) -> Vec<String> {
    let mut crates: Vec<String> = Vec::new();
    for suite in suites {
        if !crates.contains(&suite.krate) {
            crates.push(suite.krate.clone());
        }
    }
    crates
}

/// Builds every suite with one `cargo bench --no-run --workspace` (see [`crate::binaries`]) and
/// returns the executables of the selected ones, in the order of `suites`.
fn build(
    workspace: &Workspace,
    suites: &[Suite],
    skipped: &[String],
) -> Result<Vec<BenchBinary>, XtaskError> {
    let crates = unique_crates(suites);
    let args = build_args(skipped);
    let description = display_command(&crate::workspace::cargo(), &args);
    println!("building benches of {} ...", crates.join(", "));
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
    if status.success() {
        let built = executables(
            workspace,
            Harness::Criterion,
            messages.iter().map(String::as_str),
        );
        let mut ordered = Vec::new();
        for suite in suites {
            match built.iter().find(|binary| binary.suite == *suite) {
                Some(binary) => ordered.push(binary.clone()),
                None => {
                    return Err(XtaskError::CommandFailed {
                        command: description,
                        outcome: format!(
                            "succeeded but named no executable for {} (bench `{}`)",
                            suite.krate, suite.bench
                        ),
                    })
                }
            }
        }
        return Ok(ordered);
    }
    let failed = failed_crates(&output);
    let culprits = if failed.is_empty() {
        crates.join(", ")
    } else {
        failed.join(", ")
    };
    eprintln!("--- `{description}` failed ({status}); last lines of its output:");
    for line in tail(&output, FAILURE_TAIL) {
        eprintln!("    {line}");
    }
    Err(XtaskError::BenchBuild { crates: culprits })
}

/// The benchmark ids of one suite, as `--list` prints them (full sizes unless `quick`).
fn list_ids(
    binary: &BenchBinary,
    filter: Option<&str>,
    quick: bool,
) -> Result<Vec<String>, XtaskError> {
    let suite = &binary.suite;
    let args = criterion_args(filter, true);
    let description = describe(binary, &args);
    let mut stdout = String::new();
    let mut everything = Vec::new();
    let mut command = suite_command(binary, &args);
    command.env_remove("HIVEKIT_BENCH_FULL_SIZES");
    if quick {
        command.env("HIVEKIT_BENCH_QUICK", "1");
    } else {
        command.env_remove("HIVEKIT_BENCH_QUICK");
    }
    let status = run_captured(&mut command, &description, |stream, line| {
        if stream == Stream::Stdout {
            stdout.push_str(line);
            stdout.push('\n');
        }
        everything.push(line.to_owned());
    })?;
    if !status.success() {
        print_failure(suite, &everything);
        return Err(XtaskError::SuitesFailed(format!(
            "{} {}",
            suite.krate, suite.bench
        )));
    }
    Ok(parse_list(&stdout))
}

/// `--list`: every benchmark of every selected suite, without measuring.
fn list(binaries: &[BenchBinary], filter: Option<&str>, quick: bool) -> Result<(), XtaskError> {
    for binary in binaries {
        let suite = &binary.suite;
        let ids = list_ids(binary, filter, quick)?;
        let plural = if ids.len() == 1 { "" } else { "s" };
        println!(
            "{} (bench `{}`): {} benchmark{plural}",
            suite.krate,
            suite.bench,
            ids.len()
        );
        let mut current_group = "";
        for id in &ids {
            let group = id.split('/').next().unwrap_or_default();
            if group != current_group {
                println!("  {group}");
                current_group = group;
            }
            println!("    {id}");
        }
    }
    Ok(())
}

/// The time plan of a full run over `binaries` (see [`crate::plan`]): every row `--list` names,
/// timed from the last results in the criterion home, plus the paired rounds of `targets`.
fn full_plan(
    workspace: &Workspace,
    binaries: &[BenchBinary],
    args: &BenchArgs,
    targets: &[Target],
) -> Result<Plan, XtaskError> {
    let mut ids = Vec::new();
    let mut listed = Vec::new();
    for binary in binaries {
        for id in list_ids(binary, args.filter.as_deref(), false)? {
            listed.push(planned_result(&binary.suite.krate, &id));
            ids.push(id);
        }
    }
    let iterations = recorded_medians(&workspace.criterion_home());
    let paired = paired_ids(targets, &listed);
    Ok(Plan::new(&ids, &iterations, &paired, args.rounds))
}

/// A listed row as a result with no measurement, for [`paired_ids`], which needs only the ids.
fn planned_result(krate: &str, id: &str) -> BenchResult {
    let mut parts = id.splitn(3, '/');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    let (group, function, parameter) = (next(), next(), next());
    BenchResult {
        krate: krate.to_owned(),
        id: id.to_owned(),
        group,
        function,
        parameter,
        median_ns: 0.0,
        ci_low_ns: 0.0,
        ci_high_ns: 0.0,
        throughput: None,
        extras: BTreeMap::new(),
    }
}

fn print_failure(suite: &Suite, output: &[String]) {
    eprintln!(
        "--- {} (bench `{}`) failed; last lines of its output:",
        suite.krate, suite.bench
    );
    for line in tail(output, FAILURE_TAIL) {
        eprintln!("    {line}");
    }
}

/// How one suite's run ended.
enum SuiteRun {
    /// It exited successfully, having completed these benchmarks (titles, in order).
    Completed(Vec<String>),
    /// It failed; its output tail has been printed.
    Failed,
}

/// Runs one suite with the progress display.
fn run_suite(
    workspace: &Workspace,
    binary: &BenchBinary,
    position: (usize, usize),
    args: &BenchArgs,
) -> Result<SuiteRun, XtaskError> {
    let suite = &binary.suite;
    let suite_args = criterion_args(args.filter.as_deref(), false);
    let description = describe(binary, &suite_args);
    let mut command = suite_command(binary, &suite_args);
    command
        .env("CRITERION_HOME", workspace.criterion_home())
        .env("HIVEKIT_EXTRAS_DIR", workspace.extras_dir());
    if args.quick {
        command.env("HIVEKIT_BENCH_QUICK", "1");
    } else {
        command.env_remove("HIVEKIT_BENCH_QUICK");
    }
    command.env_remove("HIVEKIT_BENCH_FULL_SIZES");
    command.envs(args.extra_env.iter().map(|(k, v)| (k, v)));
    let prefix = format!(
        "[{}/{} {} {}]",
        position.0, position.1, suite.krate, suite.bench
    );
    // On a terminal the running benchmark is shown until its result replaces it; in a log (CI) only
    // finished benchmarks are printed, one line each.
    let terminal = std::io::stdout().is_terminal();
    let mut parser = ProgressParser::default();
    let mut titles = Vec::new();
    let mut output = Vec::new();
    let status = run_captured(&mut command, &description, |stream, line| {
        match stream {
            Stream::Stdout => {
                if let Some(done) = parser.feed(line) {
                    let clear = if terminal { "\r\x1b[2K" } else { "" };
                    println!(
                        "{clear}{prefix} {}  {}",
                        done.title,
                        format_ns(done.typical_ns)
                    );
                    titles.push(done.title);
                }
            }
            Stream::Stderr => {
                if let Some(title) = started(line).filter(|_| terminal) {
                    print!("\r\x1b[2K{prefix} {title} ...");
                }
            }
        }
        // Progress must show while the suite runs, not when it ends.
        let _ = std::io::stdout().flush();
        output.push(line.to_owned());
    })?;
    if !status.success() {
        print_failure(suite, &output);
        return Ok(SuiteRun::Failed);
    }
    if titles.is_empty() {
        println!("{prefix} no benchmark matched");
    }
    Ok(SuiteRun::Completed(titles))
}

/// The command line as the user typed it, for the markdown header.
fn typed_command(raw_args: &[String]) -> String {
    std::iter::once("cargo xtask".to_owned())
        .chain(raw_args.iter().map(|arg| shell_quote(arg)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cargo xtask bench`. `raw_args` are the arguments as typed (for the report header).
pub(crate) fn run_bench(args: &BenchArgs, raw_args: &[String]) -> Result<(), XtaskError> {
    bench_run(args, raw_args).map(|_| ())
}

/// What a comparison against a baseline concluded.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Judged {
    /// Ids of the rows that regressed (after re-measuring).
    pub(crate) regressed: Vec<String>,
    /// Whether the load went above the core count during the run.
    pub(crate) too_busy: bool,
}

/// [`run_bench`], returning the verdict against the baseline for callers that judge it themselves.
pub(crate) fn bench_run(args: &BenchArgs, raw_args: &[String]) -> Result<Judged, XtaskError> {
    // Everything the user can get wrong is checked before the long part starts.
    if let Some(pattern) = &args.filter {
        validate_filter(pattern)?;
    }
    let workspace = Workspace::load(args.manifest_path.as_deref())?;
    let mut suites = workspace.suites(&args.packages)?;
    // Packages that need etcd and protoc are left out when either is missing, and the report says so.
    let tools = Tools::find();
    let skipped: Vec<String> = if tools.missing().is_empty() {
        Vec::new()
    } else {
        workspace.etcd_packages()
    };
    let skip_note = (!skipped.is_empty()).then(|| {
        format!(
            "skipped {}: {} missing; install with `{INSTALL_COMMAND}` (or run `cargo xtask test`, which does)",
            skipped.join(", "),
            tools.missing().join(" and ")
        )
    });
    let default_targets = workspace.root.join("docs").join("targets.json");
    let targets_path = args.targets.as_deref().unwrap_or(&default_targets);
    let targets = load_targets(args.targets.as_deref(), &default_targets)?;
    workspace.check_target_crates(&targets, targets_path)?;
    let baseline_path =
        |name: &str| -> PathBuf { workspace.baselines_dir().join(format!("{name}.json")) };
    let baseline = match &args.baseline {
        Some(name) => Some(Baseline::load(&baseline_path(name), name)?),
        None => None,
    };
    if !args.list && !args.plan {
        prepare_outputs(args)?;
    }
    let selected = !suites.is_empty();
    suites.retain(|suite| !skipped.contains(&suite.krate));
    if let Some(note) = &skip_note {
        eprintln!("note: {note}");
    }
    if suites.is_empty() {
        if let (true, Some(note)) = (selected, skip_note) {
            return Err(XtaskError::AllSkipped { note });
        }
        println!("no crate in this workspace has bench targets");
        return Ok(Judged::default());
    }

    let build_started = Instant::now();
    let binaries = build(&workspace, &suites, &skipped)?;
    let build_time = build_started.elapsed();
    if args.list {
        return list(&binaries, args.filter.as_deref(), args.quick).map(|()| Judged::default());
    }
    if !args.quick || args.plan {
        let targets: Vec<Target> = targets
            .iter()
            .filter(|target| suites.iter().any(|suite| suite.krate == target.krate))
            .cloned()
            .collect();
        print!(
            "{}",
            full_plan(&workspace, &binaries, args, &targets)?.render()
        );
        if args.plan {
            return Ok(Judged::default());
        }
    }

    let mut info = RunInfo::gather(&workspace.root);
    let main_started = Instant::now();
    if let Some(warning) = info.load_warning() {
        eprintln!("warning: {warning}");
    }
    clear_extras(&workspace.extras_dir())?;
    let mut ran: Vec<(String, String)> = Vec::new();
    // Which binary ran each benchmark, for the rounds after the main pass.
    let mut binary_of: HashMap<String, usize> = HashMap::new();
    let mut failed: Vec<String> = Vec::new();
    for (index, binary) in binaries.iter().enumerate() {
        let suite = &binary.suite;
        let run = run_suite(&workspace, binary, (index + 1, binaries.len()), args)?;
        info.sample_load();
        match run {
            SuiteRun::Completed(titles) => {
                for title in titles {
                    binary_of.entry(title.clone()).or_insert(index);
                    ran.push((title, suite.krate.clone()));
                }
            }
            SuiteRun::Failed => failed.push(format!("{} (bench `{}`)", suite.krate, suite.bench)),
        }
    }

    // A title seen twice (two suites with the same group) is ambiguous, since criterion keeps one
    // directory per id: the first is kept and the clash is reported.
    let mut seen = HashSet::new();
    ran.retain(|(title, krate)| {
        let first = seen.insert(title.clone());
        if !first {
            eprintln!(
                "warning: `{title}` ran again in {krate}; group names must be unique across the workspace"
            );
        }
        first
    });
    let (mut results, missing) = collect_results(&workspace.criterion_home(), &ran)?;
    for message in &missing {
        eprintln!("warning: {message}");
    }
    let (extras, warnings) = read_extras(&workspace.extras_dir())?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    join_extras(&mut results, &extras);

    if let Some(baseline) = &baseline {
        warn_unmeasured(
            baseline,
            &results,
            &binaries,
            args.filter.as_deref(),
            &failed,
        );
    }
    let mut report = Report::new(&results, baseline.as_ref().map(|b| (b, args.threshold_pct)));
    // Targets of crates that did not run in this run (`-p`) would all read "not measured": leave them out.
    let ran_crates: std::collections::HashSet<&str> =
        results.iter().map(|result| result.krate.as_str()).collect();
    let defined = targets.len();
    let targets: Vec<_> = targets
        .into_iter()
        .filter(|target| ran_crates.contains(target.krate.as_str()))
        .collect();
    let rows_of = |ids: Vec<String>| -> Vec<(String, usize)> {
        ids.into_iter()
            .filter_map(|id| binary_of.get(&id).map(|&binary| (id, binary)))
            .collect()
    };
    let main_pass = main_started.elapsed();
    let rounds_started = Instant::now();
    let paired_rows = rows_of(paired_ids(&targets, &results));
    let paired_rounds = if args.rounds == 0 || paired_rows.is_empty() {
        Vec::new()
    } else {
        println!(
            "\npaired rounds: {} rows of the ratio targets, {} rounds (quick settings)",
            paired_rows.len(),
            args.rounds
        );
        let rounds = measure_rounds(
            &workspace.target_dir,
            &binaries,
            &paired_rows,
            args.rounds,
            // Quick timing, but the sizes of the run: a full run's targets compare full-only rows.
            if args.quick {
                Settings::Quick
            } else {
                Settings::QuickFullSizes
            },
            "paired",
            &args.extra_env,
        )?;
        info.sample_load();
        rounds
    };
    let outcomes = evaluate_paired(&targets, &results, &paired_rounds);
    // A row slower than the threshold is measured again before the verdict stands.
    let flagged: Vec<String> = report
        .regression_candidates()
        .into_iter()
        .map(|index| results[index].id.clone())
        .collect();
    if let (Some(baseline), false, true) = (&baseline, flagged.is_empty(), args.rounds > 0) {
        let rows = rows_of(flagged);
        println!(
            "\nre-measuring {} row(s) slower than the baseline by more than {}%, {} rounds",
            rows.len(),
            args.threshold_pct,
            args.rounds
        );
        let settings = if args.quick {
            Settings::Quick
        } else {
            Settings::Full
        };
        let rounds = measure_rounds(
            &workspace.target_dir,
            &binaries,
            &rows,
            args.rounds,
            settings,
            "re-measure",
            &args.extra_env,
        )?;
        info.sample_load();
        report.confirm_regressions(baseline, &rounds, args.threshold_pct);
    }
    println!();
    print!("{}", render_table(&report));
    println!();
    print!("{}", legend(&report.columns()));
    if let (Some(name), Some(baseline)) = (&args.baseline, &baseline) {
        println!(
            "baseline `{name}`: commit {}, {}{}; threshold {}%",
            baseline.commit,
            baseline.created,
            if baseline.quick { ", quick mode" } else { "" },
            args.threshold_pct
        );
        if baseline.quick != args.quick {
            let mode = |quick: bool| if quick { "quick" } else { "full" };
            eprintln!(
                "warning: comparing a {} run with a {} baseline; the modes measure differently",
                mode(args.quick),
                mode(baseline.quick)
            );
        }
    }
    if let Some(warning) = info.load_warning() {
        // Repeated here: the first warning scrolled away with the progress lines.
        println!("note: {warning}");
    }
    info.timings = Some(RunTimings {
        build: build_time,
        main_pass,
        rounds: rounds_started.elapsed(),
    });
    println!("{}", info.load_line());
    if let Some(timings) = &info.timings {
        println!("run time: {}", timings.describe());
    }
    if let Some(note) = &skip_note {
        println!("note: {note}");
    }
    println!();
    if outcomes.is_empty() && defined > 0 {
        println!(
            "targets: none of the {defined} in {} concern a crate measured in this run",
            targets_path.display()
        );
    } else {
        print!("{}", format_summary(&outcomes));
    }

    let command = typed_command(raw_args);
    let document = Baseline::new(
        info.date.clone(),
        info.commit.clone(),
        info.machine_line(),
        args.quick,
        &results,
    );
    // Saved first: a baseline is the run's record, whatever happens to the outputs after it.
    if let Some(name) = &args.save_baseline {
        if !failed.is_empty() {
            eprintln!("not saving baseline `{name}`: some suites failed, it would be incomplete");
        } else if results.is_empty() {
            eprintln!(
                "not saving baseline `{name}`: nothing was measured (see --filter), it would replace the saved one with no rows"
            );
        } else {
            let path = baseline_path(name);
            document.save(&path)?;
            println!("saved baseline `{name}` to {}", path.display());
        }
    }
    if let Some(path) = &args.json {
        document.save(path)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.markdown {
        let notes: Vec<String> = skip_note.iter().cloned().collect();
        let chart_dir = path
            .parent()
            .unwrap_or_else(|| std::path::Path::new(""))
            .join(CHART_DIR);
        let charts = write_charts(&chart_dir, &report, &outcomes)?;
        let markdown = render_markdown(
            &report, &info, args.quick, &command, &outcomes, &notes, &charts,
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|error| XtaskError::io("create directory", dir, error))?;
        }
        std::fs::write(path, markdown).map_err(|error| XtaskError::io("write", path, error))?;
        println!("wrote {}", path.display());
    }

    if !failed.is_empty() {
        return Err(XtaskError::SuitesFailed(failed.join(", ")));
    }
    let regressions = report.regressions();
    if !regressions.is_empty() {
        println!("regressed against the baseline:");
        for &index in &regressions {
            let row = &results[index];
            let change = report.comparison(index).and_then(|c| c.change_pct);
            println!(
                "  {}  {}  {}{}",
                row.id,
                format_ns(row.median_ns),
                format_change(change),
                report
                    .remeasured(index)
                    .map(|note| format!("  ({note})"))
                    .unwrap_or_default()
            );
        }
        if args.fail_on_regression {
            return Err(too_busy_or(&info, XtaskError::Regressed(regressions.len())));
        }
    }
    if args.fail_on_regression && info.too_busy() {
        // Not regressed does not mean not slower when the machine was too busy to tell.
        return Err(too_busy_or(&info, XtaskError::Regressed(0)));
    }
    Ok(Judged {
        regressed: regressions
            .iter()
            .map(|&index| results[index].id.clone())
            .collect(),
        too_busy: info.too_busy(),
    })
}

/// With `--fail-on-regression`, a run whose load went above the core count is not judged either way:
/// the verdicts of a busy machine flip with the weather.
fn too_busy_or(info: &RunInfo, verdict: XtaskError) -> XtaskError {
    if info.too_busy() {
        XtaskError::TooBusyToJudge(info.load_line())
    } else {
        verdict
    }
}

/// Creates the directories `--json` and `--markdown` (and its charts) write into, and checks that
/// neither path is a directory: an output that cannot be written fails the run before anything is
/// built or measured, not after.
fn prepare_outputs(args: &BenchArgs) -> Result<(), XtaskError> {
    let parent = |path: &Path| -> PathBuf {
        path.parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    let mut dirs = Vec::new();
    for path in [&args.json, &args.markdown].into_iter().flatten() {
        if path.is_dir() {
            return Err(XtaskError::BadOutputPath {
                path: path.clone(),
                message: "it is a directory".to_owned(),
            });
        }
        dirs.push(parent(path));
    }
    if let Some(markdown) = &args.markdown {
        dirs.push(parent(markdown).join(CHART_DIR));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).map_err(|error| XtaskError::BadOutputPath {
            path: dir.clone(),
            message: format!("cannot create its directory: {error}"),
        })?;
    }
    Ok(())
}

/// Warns about the baseline's rows this run should have measured and did not (a row renamed,
/// removed, or lost with its suite): they drop out of the comparison, which must not go unsaid.
/// Only rows of the crates this run measured, matching `--filter`, count.
fn warn_unmeasured(
    baseline: &Baseline,
    results: &[BenchResult],
    binaries: &[BenchBinary],
    filter: Option<&str>,
    failed: &[String],
) {
    let filter = filter.and_then(|pattern| Regex::new(pattern).ok());
    let measured: HashSet<&str> = results.iter().map(|result| result.id.as_str()).collect();
    let missing: Vec<&str> = baseline
        .results
        .iter()
        .filter(|row| {
            binaries
                .iter()
                .any(|binary| binary.suite.krate == row.krate)
        })
        .filter(|row| {
            filter
                .as_ref()
                .is_none_or(|filter| filter.is_match(&row.id))
        })
        .map(|row| row.id.as_str())
        .filter(|id| !measured.contains(id))
        .collect();
    if missing.is_empty() {
        return;
    }
    let failed_note = if failed.is_empty() {
        String::new()
    } else {
        format!(" (suites failed: {})", failed.join(", "))
    };
    eprintln!(
        "warning: {} row(s) of the baseline were not measured in this run and are not compared{failed_note}: {}",
        missing.len(),
        missing.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_validated_and_passed_safely() {
        assert!(validate_filter("snapshot_(reads|writes)/hivekit").is_ok());
        let error = validate_filter("snapshot_(reads").unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.to_string(),
            "filter `snapshot_(reads` is not a valid regex: unclosed group"
        );
        assert_eq!(criterion_filter("snapshot"), "snapshot");
        assert_eq!(criterion_filter("-x"), "(?:)-x");
        assert!(Regex::new(&criterion_filter("-x")).is_ok_and(|r| r.is_match("a-x")));
    }

    #[test]
    fn criterion_gets_the_filter_last() {
        let args: Vec<String> = criterion_args(Some("reads"), false)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["--color", "never", "reads"]);
        assert!(criterion_args(None, true).iter().any(|a| a == "--list"));
    }

    #[test]
    fn build_failures_name_the_crate() {
        let output = [
            "   Compiling hivekit-hive v0.1.0".to_owned(),
            "error[E0425]: cannot find value `x` in this scope".to_owned(),
            "error: could not compile `hivekit-hive` (bench \"hive\") due to 1 previous error"
                .to_owned(),
            "error: could not compile `hivekit-hive` (lib) due to 1 previous error".to_owned(),
        ];
        assert_eq!(failed_crates(&output), ["hivekit-hive"]);
        assert!(failed_crates(&[]).is_empty());
    }

    #[test]
    fn typed_command_is_shell_ready() {
        let raw = ["bench".to_owned(), "--filter".to_owned(), "a|b".to_owned()];
        assert_eq!(typed_command(&raw), "cargo xtask bench --filter 'a|b'");
    }
}
