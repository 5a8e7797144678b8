//! gungraun's (iai-callgrind's) regression checks ported to `cargo xtask bench --instructions`:
//! a limit per row (hivekit rows gated at +2% over docs/instructions.json, peers never), every
//! regression reported rather than only the first (gungraun without `--regression-fail-fast`),
//! a filtered run judging only the rows it ran, rows on one side only, and the JSON written
//! whatever the gate says.
//!
//! The fake workspace (`support/instructions.rs`) is the one of `user_instruction_gate.rs`: a local `gungraun` package, a
//! fake `gungraun-runner` that prints that version, and a `benches/instructions.rs` that prints one
//! gungraun JSON summary per row of `FAKE_COUNTS` (`group/function/parameter=instructions;...`),
//! lists them with `--list`, and honours a gungraun pattern. Nothing runs under Valgrind.

mod support;

use std::process::Output;

use support::instructions::{row, Fake};
use support::text;

/// Exit code 1 (the gate) with stdout and stderr for the message.
fn gate_failed(output: &Output) -> (String, String) {
    let (stdout, stderr) = text(output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    (stdout, stderr)
}

/// gungraun without `--regression-fail-fast` runs every benchmark and reports every regression.
/// Three hivekit rows over the gate, in two groups: all three are named (table, `regressed:`
/// lines and the error), each with its change and both counts; the row within the gate is not.
#[test]
fn every_regressed_row_is_reported_not_just_the_first() {
    let fake = Fake::new("user-gungraun");
    fake.write_baseline("a/hivekit/1=1000;a/hivekit/2=1000;b/hivekit/1=500;b/hivekit/2=500");
    let (stdout, stderr) = gate_failed(&fake.run(
        "a/hivekit/1=1100;a/hivekit/2=1010;b/hivekit/1=750;b/hivekit/2=1000",
        &[],
    ));
    for (line, parameter) in [
        ("a/hivekit/1 +10.00% (1000 -> 1100)", "1"),
        ("b/hivekit/1 +50.00% (500 -> 750)", "1"),
        ("b/hivekit/2 +100.00% (500 -> 1000)", "2"),
    ] {
        assert!(
            stdout.contains(&format!("regressed: {line}")),
            "{parameter}: {stdout}"
        );
        assert!(stderr.contains(line), "{stderr}");
    }
    assert!(!stdout.contains("regressed: a/hivekit/2"), "{stdout}");
    assert!(!stderr.contains("a/hivekit/2"), "{stderr}");
    assert!(
        row(&stdout, "hivekit", "2").ends_with("+1.00%"),
        "a/hivekit/2 grew 1%, within the gate: {stdout}"
    );
}

/// The limit is one-sided: a hivekit row that halves its count passes (an improvement), and a
/// peer that doubles passes (hivekit's code cannot move it).
#[test]
fn improvements_and_peer_growth_never_fail_the_gate() {
    let fake = Fake::new("user-gungraun");
    fake.write_baseline("g/hivekit/a=1000;g/arc-swap/a=1000");
    let output = fake.run("g/hivekit/a=500;g/arc-swap/a=2000", &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        row(&stdout, "hivekit", "a").ends_with("-50.00%"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "arc-swap", "a").ends_with("+100.00%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no hivekit row grew more than 2%"),
        "{stdout}"
    );
}

/// docs/BENCHMARKS.md: "A hivekit row (function id starting with `hivekit`) that grows by more than
/// 2% ... fails the run". Variants (`hivekit-sharded`, gungraun's `hivekit_sharded`) are hivekit
/// rows too.
#[test]
fn hivekit_variant_rows_are_gated_too() {
    let fake = Fake::new("user-gungraun");
    fake.write_baseline("g/hivekit-sharded/a=1000;g/hivekit/a=1000");
    let (stdout, stderr) = gate_failed(&fake.run("g/hivekit-sharded/a=1030;g/hivekit/a=1000", &[]));
    assert!(
        stdout.contains("regressed: g/hivekit-sharded/a +3.00% (1000 -> 1030)"),
        "{stdout}"
    );
    assert!(stderr.contains("g/hivekit-sharded/a"), "{stderr}");
}

/// docs/BENCHMARKS.md: "`--filter REGEX` picks rows by id here too, and only the picked rows run".
/// A hivekit row that would fail the gate but is filtered out neither runs nor fails the run.
#[test]
fn a_filtered_run_gates_only_the_rows_it_ran() {
    let fake = Fake::new("user-gungraun");
    fake.write_baseline("g/hivekit/a=1000;g/hivekit/b=1000");
    let counts = "g/hivekit/a=1000;g/hivekit/b=2000";
    let output = fake.run(counts, &["--filter", "^g/hivekit/a$"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(row(&stdout, "hivekit", "a").ends_with("+0.00%"), "{stdout}");
    assert!(!stdout.contains("g/hivekit/b"), "{stdout}");
    // Unfiltered, b fails: the filter, not the data, made the difference.
    gate_failed(&fake.run(counts, &[]));
}

/// A hivekit row of the baseline that the run did not count (renamed, or its bench removed) drops
/// out of the gate: the run must say so, as the criterion comparison does ("Rows of the baseline
/// that the run should have measured ... and did not are listed in a warning"), or a regression
/// hides behind a rename and the gate passes.
#[test]
fn baseline_rows_that_did_not_run_are_reported() {
    let fake = Fake::new("user-gungraun");
    fake.write_baseline("g/hivekit/a=1000;g/hivekit/gone=1000");
    let output = fake.run("g/hivekit/a=1000;g/hivekit/renamed=5000", &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        row(&stdout, "hivekit", "renamed").ends_with("new"),
        "{stdout}"
    );
    assert!(
        format!("{stdout}\n{stderr}").contains("g/hivekit/gone"),
        "the baseline row `g/hivekit/gone` did not run and nothing says so:\n{stdout}\n{stderr}"
    );
}

/// gungraun writes its summaries whatever the regression check says. `--json PATH` with a failing
/// gate: exit 1, and the file holds every row of the run with its count.
#[test]
fn json_is_written_even_when_the_gate_fails() {
    let fake = Fake::new("user-gungraun");
    fake.write_baseline("g/hivekit/a=1000");
    let json = fake.root.join("out").join("i.json");
    std::fs::create_dir_all(json.parent().unwrap()).unwrap();
    gate_failed(&fake.run(
        "g/hivekit/a=2000;g/peer/a=30;h/hivekit/b=7",
        &["--json", json.to_str().unwrap()],
    ));
    let text_json = std::fs::read_to_string(&json)
        .unwrap_or_else(|error| panic!("--json was not written: {error}"));
    let value: serde_json::Value = serde_json::from_str(&text_json).unwrap();
    assert_eq!(value["schema"], 1);
    let mut rows: Vec<(String, u64)> = value["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["instructions"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("g/hivekit/a".to_owned(), 2000),
            ("g/peer/a".to_owned(), 30),
            ("h/hivekit/b".to_owned(), 7)
        ],
        "{text_json}"
    );
}

/// A baseline of another schema version is bad input: exit 2, an `error:` line naming the file and
/// the version, nothing gated against it.
#[test]
fn an_instruction_baseline_of_another_schema_exits_2() {
    let fake = Fake::new("user-gungraun");
    std::fs::create_dir_all(fake.baseline_path().parent().unwrap()).unwrap();
    std::fs::write(
        fake.baseline_path(),
        r#"{"schema": 2, "rustc": "r", "commit": "c", "rows": []}"#,
    )
    .unwrap();
    let output = fake.run("g/hivekit/a=10", &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains("instructions.json")
            && stderr.contains("schema 2"),
        "{stderr}"
    );
}
