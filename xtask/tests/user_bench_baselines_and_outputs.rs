//! `cargo xtask bench` baselines, end to end, on the tiny synthetic workspace of `support` (a fake
//! criterion "measuring" the rows named in `FAKE_ROWS`). Every run is `--quick --rounds 0`, so
//! nothing real is measured.

use std::process::Command;

mod support;

use support::{text, Fake};

/// Sanity: the harness works, and a clear slowdown reads `regressed`, a new row `new`.
#[test]
fn slowdown_reads_regressed_and_new_rows_read_new() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100", "before");
    let output = fake.bench(
        "g/hivekit/1=150;g/hivekit/2=10",
        &["--quick", "--rounds", "0", "--baseline", "before"],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let row1 = stdout
        .lines()
        .find(|l| l.contains("hivekit") && l.contains("+50.0%"))
        .unwrap_or_else(|| panic!("no +50% row:\n{stdout}"));
    assert!(row1.contains("regressed"), "{row1}");
    let row2 = stdout
        .lines()
        .find(|l| l.contains("10.0") && l.trim_end().ends_with("new"))
        .or_else(|| {
            stdout
                .lines()
                .find(|l| l.contains(" 2 ") && l.contains("new"))
        });
    assert!(row2.is_some(), "the new row should read `new`:\n{stdout}");
}

/// A baseline row that this run did not measure (a benchmark removed or renamed, or lost to a
/// crash) must be reported, not silently dropped: otherwise a renamed row hides its regression.
#[test]
fn baseline_rows_missing_from_the_run_are_reported() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100;g/hivekit/gone=100", "before");
    let output = fake.bench(
        "g/hivekit/1=100",
        &["--quick", "--rounds", "0", "--baseline", "before"],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let all = format!("{stdout}\n{stderr}");
    assert!(
        all.contains("g/hivekit/gone"),
        "the run never mentions that baseline row `g/hivekit/gone` was not measured:\n{all}"
    );
}

fn write_baseline(fake: &Fake, name: &str, contents: &str) {
    let path = fake.baseline_path(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, contents).unwrap();
}

/// Empty, truncated, foreign-schema and non-object baselines: exit 2 with `cannot parse <file>`,
/// before anything is built.
#[test]
fn broken_baselines_exit_2_before_building() {
    let fake = Fake::new();
    let good = r#"{"schema": 1, "created": "x", "commit": "c", "machine": "m", "quick": true, "results": [{"id": "g/hivekit/1", "crate": "fake-suite", "group": "g", "function": "hivekit", "parameter": "1", "median_ns": 100.0, "ci_low_ns": 99.0, "ci_high_ns": 101.0}]}"#;
    for (label, contents, needle) in [
        ("empty", "", "cannot parse"),
        ("truncated", &good[..good.len() / 2], "cannot parse"),
        (
            "schema 2",
            r#"{"schema": 2, "created": "", "commit": "", "machine": "", "quick": false, "results": []}"#,
            "schema 2 is not supported",
        ),
        ("array", "[]", "cannot parse"),
        (
            "row without median",
            r#"{"schema": 1, "created": "x", "commit": "c", "machine": "m", "quick": true, "results": [{"id": "g/hivekit/1", "group": "g"}]}"#,
            "cannot parse",
        ),
    ] {
        write_baseline(&fake, "broken", contents);
        let output = fake.bench("g/hivekit/1=100", &["--quick", "--baseline", "broken"]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{label}: {stdout}\n{stderr}");
        assert!(stderr.starts_with("error: "), "{label}: {stderr}");
        assert!(stderr.contains(needle), "{label}: {stderr}");
        assert!(
            !stdout.contains("building"),
            "{label}: built anyway: {stdout}"
        );
    }
}

/// docs/BENCHMARKS.md: "Bad input is caught before anything is built or measured." A `--markdown`
/// or `--json` path that cannot be written (its parent is a regular file) is known from the command
/// line: it is refused before the run is built and measured, not after (which lost the results and
/// `--save-baseline`).
#[test]
fn unwritable_output_paths_are_refused_before_measuring() {
    for (flag, file) in [("--markdown", "PERFORMANCE.md"), ("--json", "out.json")] {
        let fake = Fake::new();
        let blocker = fake.root.join("not-a-dir");
        std::fs::write(&blocker, "a file").unwrap();
        let target = blocker.join(file);
        let output = fake.bench(
            "g/hivekit/1=100",
            &[
                "--quick",
                "--rounds",
                "0",
                flag,
                target.to_str().unwrap(),
                "--save-baseline",
                "kept",
            ],
        );
        let (stdout, stderr) = text(&output);
        assert_ne!(output.status.code(), Some(0), "{flag}: {stdout}\n{stderr}");
        assert!(
            !stdout.contains("g/hivekit/1"),
            "measured before refusing the unwritable {flag} path:\n{stdout}\n{stderr}"
        );
    }
}

/// `--list` on the fake workspace names its rows; run from a subdirectory of the workspace
/// without `--manifest-path`.
#[test]
fn list_from_a_subdirectory() {
    let fake = Fake::new();
    let sub = fake.root.join("fake").join("benches");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--list"])
        .current_dir(&sub)
        .env("FAKE_ROWS", "g/hivekit/1=1;g/peer/1=2")
        .env("CARGO_TARGET_DIR", fake.root.join("target"))
        .env("CARGO_INCREMENTAL", "0")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("fake-suite (bench `suite`): 2 benchmarks"),
        "{stdout}"
    );
    assert!(stdout.contains("    g/peer/1"), "{stdout}");
}

/// A filter that matches nothing measures nothing ("no benchmark matched"); with
/// `--save-baseline main` it must not replace a good baseline with an empty one, just as a run
/// with a failed suite is not saved ("it would be incomplete").
#[test]
fn a_run_that_measured_nothing_does_not_clobber_the_baseline() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100;g/peer/1=300", "main");
    let before = std::fs::read_to_string(fake.baseline_path("main")).unwrap();
    let output = fake.bench(
        "g/hivekit/1=100;g/peer/1=300",
        &[
            "--quick",
            "--rounds",
            "0",
            "--filter",
            "no-such-row",
            "--save-baseline",
            "main",
        ],
    );
    let (stdout, stderr) = text(&output);
    let after = std::fs::read_to_string(fake.baseline_path("main")).unwrap();
    let rows = |json: &str| -> usize {
        serde_json::from_str::<serde_json::Value>(json).unwrap()["results"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(rows(&before), 2);
    assert_eq!(
        rows(&after),
        2,
        "baseline `main` was overwritten by a run that measured nothing:\n{stdout}\n{stderr}"
    );
}

/// The re-measuring rounds decide: a row 50% slower in the main pass but back at the baseline in
/// the rounds reads `within noise`; one that stays slow reads `regressed`.
#[test]
fn remeasuring_decides_the_verdict() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100;g/hivekit/2=100", "before");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "bench",
            "--quick",
            "--rounds",
            "3",
            "--baseline",
            "before",
            "--manifest-path",
            &fake.manifest(),
        ])
        .current_dir(&fake.root)
        .env("FAKE_ROWS", "g/hivekit/1=150;g/hivekit/2=150")
        .env("FAKE_ROUND_ROWS", "g/hivekit/1=100;g/hivekit/2=150")
        .env("CARGO_TARGET_DIR", fake.root.join("target"))
        .env("CARGO_INCREMENTAL", "0")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let row = |parameter: &str| {
        stdout
            .lines()
            .find(|l| l.contains("+50.0%") && l.split_whitespace().any(|w| w == parameter))
            .unwrap_or_else(|| panic!("no row {parameter}:\n{stdout}"))
            .to_owned()
    };
    assert!(
        row("1").contains("within noise (re-measured 3 rounds"),
        "{stdout}"
    );
    assert!(
        row("2").contains("regressed (re-measured 3 rounds"),
        "{stdout}"
    );
}

/// `--targets PATH` with a target whose `crate` is misspelt (no such package in the workspace):
/// the target must be reported (an error naming it, or `not measured`), never dropped so that the
/// summary reads "1 of 1 met" as if the file held one target.
#[test]
fn target_naming_an_unknown_crate_is_not_silently_dropped() {
    let fake = Fake::new();
    let targets = fake.root.join("targets.json");
    std::fs::write(
        &targets,
        r#"[{"crate": "fake-suit", "target": "ours is 2x faster than peer", "check": {"faster_than": {"id": "g/hivekit/1", "peer": "peer", "factor": 2.0}}},
 {"crate": "fake-suite", "target": "ours under 1 us", "check": {"under": {"id": "g/hivekit/1", "ns": 1000}}}]"#,
    )
    .unwrap();
    let output = fake.bench(
        "g/hivekit/1=100;g/peer/1=300",
        &[
            "--quick",
            "--rounds",
            "0",
            "--targets",
            targets.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&output);
    let all = format!("{stdout}\n{stderr}");
    assert!(
        all.contains("fake-suit`") || all.contains("ours is 2x faster than peer"),
        "the target of unknown crate `fake-suit` vanished:\n{all}"
    );
}
