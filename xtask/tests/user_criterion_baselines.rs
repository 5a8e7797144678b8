//! criterion's own baseline tests (`--save-baseline`, `--baseline`, retaining a baseline, a
//! baseline that does not exist) ported to `cargo xtask bench`, whose baselines are its own files
//! (`<target>/hivekit-baselines/NAME.json`, docs/BENCHMARKS.md "Baselines and the regression
//! policy"). Every run is on the tiny synthetic workspace of `support` (a fake criterion that
//! "measures" the rows of `FAKE_ROWS`), `--quick --rounds 0`: nothing real is measured.

mod support;

use std::process::Output;

use serde_json::Value;
use support::{text, Fake};

fn ok(output: &Output) -> String {
    let (stdout, stderr) = text(output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    stdout
}

/// The table line of the row `function parameter`.
fn row<'a>(stdout: &'a str, function: &str, parameter: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            !line.starts_with('[')
                && words
                    .windows(2)
                    .any(|pair| pair[0] == function && pair[1] == parameter)
        })
        .unwrap_or_else(|| panic!("no table row `{function} {parameter}`:\n{stdout}"))
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not JSON ({error}):\n{text}", path.display()))
}

/// `id -> median_ns` of a baseline document.
fn medians(document: &Value) -> Vec<(String, f64)> {
    let mut rows: Vec<(String, f64)> = document["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results array: {document}"))
        .iter()
        .map(|entry| {
            (
                entry["id"].as_str().unwrap().to_owned(),
                entry["median_ns"].as_f64().unwrap(),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn write_baseline(fake: &Fake, name: &str, contents: &str) {
    let path = fake.baseline_path(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, contents).unwrap();
}

/// criterion's `test_retain_baseline`: comparing against a baseline (`--baseline NAME` without
/// `--save-baseline`) must not rewrite it, even when this run's numbers differ.
#[test]
fn comparing_against_a_baseline_leaves_its_file_untouched() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100;g/peer/1=300", "kept");
    let before = std::fs::read(fake.baseline_path("kept")).unwrap();
    let stdout = ok(&fake.quick(
        "g/hivekit/1=150;g/peer/1=200;g/hivekit/2=5",
        &["--baseline", "kept"],
    ));
    assert!(row(&stdout, "hivekit", "1").contains("+50.0%"), "{stdout}");
    let after = std::fs::read(fake.baseline_path("kept")).unwrap();
    assert_eq!(
        before, after,
        "comparing against baseline `kept` rewrote it:\n{stdout}"
    );
}

/// criterion's `test_save_baseline`, run twice: saving under an existing name replaces it with this
/// run's rows (a row that is gone does not linger in the file).
#[test]
fn saving_under_an_existing_name_replaces_it_with_this_runs_rows() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100;g/hivekit/old=7", "main");
    fake.save("g/hivekit/1=250;g/hivekit/added=9", "main");
    let saved = read_json(&fake.baseline_path("main"));
    assert_eq!(
        medians(&saved),
        [
            ("g/hivekit/1".to_owned(), 250.0),
            ("g/hivekit/added".to_owned(), 9.0)
        ],
        "{saved}"
    );
}

/// `--baseline main --save-baseline main` in one run: the comparison uses the file as it was before
/// the run (+50%), and afterwards the file holds this run's numbers, so the next comparison reads
/// +0.0%.
#[test]
fn comparing_and_saving_the_same_name_compares_with_the_old_then_replaces_it() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100", "main");
    let stdout = ok(&fake.quick(
        "g/hivekit/1=150",
        &["--baseline", "main", "--save-baseline", "main"],
    ));
    let line = row(&stdout, "hivekit", "1");
    assert!(
        line.contains("+50.0%") && line.ends_with("regressed"),
        "the comparison did not use the baseline as it was before this run: {line}"
    );
    assert_eq!(
        medians(&read_json(&fake.baseline_path("main"))),
        [("g/hivekit/1".to_owned(), 150.0)]
    );
    let again = ok(&fake.quick("g/hivekit/1=150", &["--baseline", "main"]));
    let line = row(&again, "hivekit", "1");
    assert!(
        line.contains("+0.0%") && line.ends_with("within noise"),
        "{line}"
    );
}

/// criterion's strict `--baseline` ("Baseline 'x' must exist before comparison is allowed"), on
/// xtask: a baseline criterion saved itself (`cargo bench -- --save-baseline before`, a `before/`
/// directory beside `new/` in the criterion home) is not an xtask baseline; `--baseline before`
/// exits 2 before building, naming the baseline, the file it looked for, and how to save one.
#[test]
fn a_baseline_saved_by_criterion_itself_is_reported_missing_with_the_way_to_save_one() {
    let fake = Fake::new();
    // A criterion-style saved baseline for the row.
    let dir = fake.root.join("target/criterion/g/hivekit/1/before");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("benchmark.json"),
        r#"{"group_id":"g","function_id":"hivekit","value_str":"1","throughput":null,"full_id":"g/hivekit/1","directory_name":"g/hivekit/1","title":"g/hivekit/1"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("estimates.json"),
        r#"{"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":99.0,"upper_bound":101.0},"point_estimate":100.0,"standard_error":0.1}}"#,
    )
    .unwrap();
    let output = fake.quick("g/hivekit/1=150", &["--baseline", "before"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("error: baseline `before` not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("before.json") && stderr.contains("--save-baseline before"),
        "the error should name the file and the command that saves it: {stderr}"
    );
    assert!(!stdout.contains("building"), "built anyway: {stdout}");
    assert!(!stdout.contains("g/hivekit/1"), "measured anyway: {stdout}");
}

/// critcmp takes a baseline file path (`critcmp before.json`); xtask takes a name. A user who types
/// the file name gets a clear exit 2 naming the file looked for, not a panic or a silent run.
#[test]
fn a_baseline_given_by_its_file_name_is_a_clear_missing_baseline() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100", "before");
    let output = fake.quick("g/hivekit/1=100", &["--baseline", "before.json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("error: baseline `before.json` not found")
            && stderr.contains("before.json.json"),
        "{stderr}"
    );
    let output = fake.quick(
        "g/hivekit/1=100",
        &["--baseline", fake.baseline_path("before").to_str().unwrap()],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("error: baseline name `"),
        "a path is not a baseline name: {stderr}"
    );
}

/// docs/BENCHMARKS.md, exit codes: "`2` bad input (... missing baseline ...)", "Bad input is caught
/// before anything is built or measured". A baseline name whose file is a directory cannot be
/// read as a baseline: it is bad input (exit 2, an `error:` line naming it), not a failure (1,
/// which a CI script reads as "a build or suite failed, a regression").
#[test]
fn a_baseline_path_that_is_a_directory_is_bad_input() {
    let fake = Fake::new();
    std::fs::create_dir_all(fake.baseline_path("odd")).unwrap();
    let output = fake.quick("g/hivekit/1=100", &["--baseline", "odd"]);
    let (stdout, stderr) = text(&output);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("odd.json"),
        "{stderr}"
    );
    assert!(!stdout.contains("building"), "built anyway: {stdout}");
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unreadable baseline is bad input like a missing or corrupt one:\n{stdout}\n{stderr}"
    );
}

fn one_row_baseline(fake: &Fake, name: &str, median: &str) {
    write_baseline(
        fake,
        name,
        &format!(
            r#"{{"schema": 1, "created": "x", "commit": "c", "machine": "m", "quick": true, "results": [{{"id": "g/hivekit/1", "crate": "fake-suite", "group": "g", "function": "hivekit", "parameter": "1", "median_ns": {median}, "ci_low_ns": {median}, "ci_high_ns": {median}}}]}}"#
        ),
    );
}

/// A corrupt baseline row (a negative median, which no measurement can produce) must not be
/// compared as if it were fine: the file is rejected naming it (exit 2, like other corrupt
/// baselines), instead of the row reading `within noise` with no change, which makes
/// `--fail-on-regression` pass whatever the run measured.
#[test]
fn a_baseline_row_with_a_negative_median_is_rejected_as_corrupt() {
    let fake = Fake::new();
    one_row_baseline(&fake, "corrupt", "-100.0");
    // Without `--fail-on-regression`, so that the machine's load (exit 3) cannot decide.
    let output = fake.quick("g/hivekit/1=1000000", &["--baseline", "corrupt"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a baseline row with median -100 ns was accepted:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.starts_with("error: ") && stderr.contains("corrupt.json"),
        "{stderr}"
    );
}

/// xtask itself saves a row measured at 0 ns (criterion can measure an optimised-away body at
/// zero; `--json` round-trips it). docs/BENCHMARKS.md defines `regressed` as "the change is above
/// `+threshold` and the confidence intervals do not overlap (this run's lower bound is above the
/// baseline's upper bound)": from 0 ns to 1 ms both hold, so the row is `regressed`, not
/// `within noise` (the instruction gate, likewise, fails a row that grows from 0).
#[test]
fn growth_from_a_zero_median_baseline_row_is_a_regression() {
    let fake = Fake::new();
    one_row_baseline(&fake, "zero", "0.0");
    let stdout = ok(&fake.quick("g/hivekit/1=1000000", &["--baseline", "zero"]));
    let line = row(&stdout, "hivekit", "1");
    assert!(
        line.ends_with("regressed"),
        "0 ns -> 1 ms, intervals apart, is not flagged: {line}\n{stdout}"
    );
}

/// docs/BENCHMARKS.md: "A suite that fails prints the last 40 lines of its output with the crate's
/// name ... and the command exits 1 at the end"; "A baseline is not saved when a suite failed (it
/// would be incomplete)". The saved baseline of the same name stays as it was.
#[test]
fn a_failed_suite_exits_1_and_keeps_the_saved_baseline() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100;g/hivekit/2=200", "main");
    let before = std::fs::read(fake.baseline_path("main")).unwrap();
    // The fake suite panics on a median that does not parse, after measuring the first row.
    let output = fake.quick(
        "g/hivekit/1=50;g/hivekit/2=not-a-number",
        &["--save-baseline", "main"],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("fake-suite") && stderr.contains("error: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("not saving baseline `main`"),
        "the run should say why the baseline was not saved:\n{stderr}"
    );
    assert_eq!(
        before,
        std::fs::read(fake.baseline_path("main")).unwrap(),
        "a failed run replaced baseline `main`"
    );
}

/// criterion keeps a run's results whatever its comparison says. With `--fail-on-regression` and a
/// regression (exit 1, or 3 when the machine is too busy to judge), `--save-baseline` and `--json`
/// are still written, complete: every row of the run, the regressed one and the new one included,
/// and the two documents hold the same rows.
#[test]
fn a_run_that_fails_on_regression_still_saves_and_writes_every_row() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100;g/peer/1=300", "before");
    let json = fake.root.join("out/run.json");
    let output = fake.quick(
        "g/hivekit/1=150;g/peer/1=300;g/hivekit/2=10,9,11,E4",
        &[
            "--baseline",
            "before",
            "--fail-on-regression",
            "--save-baseline",
            "after",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&output);
    assert!(
        matches!(output.status.code(), Some(1 | 3)),
        "{stdout}\n{stderr}"
    );
    let written = read_json(&json);
    let saved = read_json(&fake.baseline_path("after"));
    let expected = [
        ("g/hivekit/1".to_owned(), 150.0),
        ("g/hivekit/2".to_owned(), 10.0),
        ("g/peer/1".to_owned(), 300.0),
    ];
    assert_eq!(medians(&written), expected, "{written}");
    assert_eq!(medians(&saved), expected, "{saved}");
    assert_eq!(written["results"], saved["results"]);
    assert_eq!(written["schema"], 1);
    let new_row = written["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "g/hivekit/2")
        .unwrap();
    assert_eq!(new_row["ci_low_ns"], 9.0);
    assert_eq!(new_row["ci_high_ns"], 11.0);
    assert_eq!(new_row["throughput"], serde_json::json!({"elements": 4}));
    assert_eq!(new_row["crate"], "fake-suite");
    assert_eq!(new_row["group"], "g");
    assert_eq!(new_row["function"], "hivekit");
    assert_eq!(new_row["parameter"], "2");
}

/// criterion lays a benchmark out as `<group>/<function>/<parameter>/new/`, and keeps its own
/// `base/` (the previous run) and `report/` beside `new/`. A benchmark whose parameter is `new` or
/// `base`, or whose function is `base` (`BenchmarkId::new("hivekit", "new")` for a constructor is
/// natural), lives at `g/hivekit/new/new/`, `g/hivekit/base/new/`, `g/base/1/new/`: its results must
/// be read like any other row's, not dropped as "criterion left no results for it".
#[test]
fn rows_whose_ids_look_like_criterions_own_directories_are_read() {
    let fake = Fake::new();
    let json = fake.root.join("out.json");
    let output = fake.quick(
        "g/hivekit/1=100;g/hivekit/new=200;g/hivekit/base=300;g/base/1=400",
        &["--json", json.to_str().unwrap()],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        medians(&read_json(&json)),
        [
            ("g/base/1".to_owned(), 400.0),
            ("g/hivekit/1".to_owned(), 100.0),
            ("g/hivekit/base".to_owned(), 300.0),
            ("g/hivekit/new".to_owned(), 200.0),
        ],
        "rows were dropped:\n{stdout}\n{stderr}"
    );
}
