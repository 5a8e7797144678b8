//! `cargo xtask bench --instructions` end to end on a fake workspace: the 2% gate, its percentages, new/zero rows and `--bless`.
//!
//! The workspace has a local `gungraun` package (so xtask finds a library version), a fake
//! `gungraun-runner` in `<target>/gungraun-runner/bin` that prints that version, and a
//! `benches/instructions.rs` that prints one gungraun JSON summary per row of `FAKE_COUNTS`
//! (`group/function/parameter=instructions;...`, a function's `-` written `_` in the summary as
//! gungraun does), lists them with `--list`, and honours a gungraun pattern (`a::b::*` or an exact
//! path).

mod support;

use support::instructions::{row, Fake};
use support::text;

/// Exactly +2% passes; +2.1% fails with exit 1 naming the row, its change and both counts; a peer
/// that grows 50% and a new row never fail.
#[test]
fn gate_at_two_percent() {
    let fake = Fake::new("user-instr");
    fake.write_baseline("g/hivekit/a=1000;g/arc-swap/a=1000");
    let output = fake.run("g/hivekit/a=1020;g/arc-swap/a=1500;g/hivekit/new=7", &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(row(&stdout, "hivekit", "a").ends_with("+2.00%"), "{stdout}");
    assert!(
        row(&stdout, "arc-swap", "a").ends_with("+50.00%"),
        "{stdout}"
    );
    assert!(row(&stdout, "hivekit", "new").ends_with("new"), "{stdout}");
    assert!(
        row(&stdout, "arc-swap", "a").contains("hivekit 1.5x fewer"),
        "{stdout}"
    );

    let output = fake.run("g/hivekit/a=1021;g/arc-swap/a=1000", &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        row(&stdout, "hivekit", "a").ends_with("+2.10%  REGRESSED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("regressed: g/hivekit/a +2.10% (1000 -> 1021)"),
        "{stdout}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
}

/// Ratio direction: a peer that executes fewer instructions than hivekit reads `(more)` on its
/// row and below 1x on the hivekit row.
#[test]
fn ratio_direction() {
    let fake = Fake::new("user-instr");
    fake.write_baseline("");
    let output = fake.run("g/hivekit/a=1000;g/pollster/a=300;g/heap/a=3000", &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        row(&stdout, "hivekit", "a").contains("vs pollster 0.30x, heap 3.0x"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "pollster", "a").contains("hivekit 0.30x (more)"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "heap", "a").contains("hivekit 3.0x fewer"),
        "{stdout}"
    );
}

/// A hivekit row with 0 instructions has no meaningful ratio: it must not show one computed
/// against a pretend count of 1 (its peer row shows none either).
#[test]
fn zero_instructions_give_no_ratio() {
    let fake = Fake::new("user-instr");
    fake.write_baseline("");
    let output = fake.run("g/hivekit/a=0;g/peer/a=1000", &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        !row(&stdout, "peer", "a").contains("hivekit"),
        "peer row: {stdout}"
    );
    assert!(
        !row(&stdout, "hivekit", "a").contains("vs peer"),
        "the hivekit row shows a ratio against 0 instructions:\n{stdout}"
    );
}

/// A row that is in the baseline with 0 instructions is not `new`, and growing from 0 to 500
/// instructions is more than 2%: the gate fails.
#[test]
fn growth_from_a_zero_baseline_is_not_new_and_fails_the_gate() {
    let fake = Fake::new("user-instr");
    fake.write_baseline("g/hivekit/a=0");
    let output = fake.run("g/hivekit/a=500", &[]);
    let (stdout, stderr) = text(&output);
    let line = row(&stdout, "hivekit", "a");
    assert!(
        !line.ends_with("new"),
        "the row is in the baseline (with 0 instructions), yet reads `new`: {line}"
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "0 -> 500 instructions passed the 2% gate:\n{stdout}\n{stderr}"
    );
}

/// `--bless` writes this run's counts and keeps the baseline rows that did not run (a filtered
/// bless rewrites only the picked rows); the next run passes the gate at +0.00%.
#[test]
fn bless_rewrites_the_rows_that_ran_and_keeps_the_rest() {
    let fake = Fake::new("user-instr");
    fake.write_baseline("g/hivekit/a=1000;g/hivekit/b=2000;old/hivekit/x=5");
    let counts = "g/hivekit/a=1100;g/hivekit/b=2500";
    let output = fake.run(counts, &["--filter", "^g/hivekit/a$", "--bless"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let mut counts_now = fake.baseline_counts();
    counts_now.sort();
    assert_eq!(
        counts_now,
        [
            ("g/hivekit/a".to_owned(), 1100),
            ("g/hivekit/b".to_owned(), 2000),
            ("old/hivekit/x".to_owned(), 5)
        ],
        "{stdout}"
    );
    // b still regressed (+25%); a passes at +0.00%.
    let output = fake.run(counts, &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(row(&stdout, "hivekit", "a").ends_with("+0.00%"), "{stdout}");
    assert!(
        row(&stdout, "hivekit", "b").ends_with("+25.00%  REGRESSED"),
        "{stdout}"
    );
    assert!(stderr.contains("g/hivekit/b"), "{stderr}");
    // A full bless, then a clean run.
    let output = fake.run(counts, &["--bless"]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let output = fake.run(counts, &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("no hivekit row grew more than 2%"),
        "{stdout}"
    );
}

/// `--json PATH` with `--instructions` writes this run's rows in the baseline schema.
#[test]
fn json_output_holds_the_counts() {
    let fake = Fake::new("user-instr");
    fake.write_baseline("g/hivekit/a=10");
    let json = fake.root.join("out").join("i.json");
    std::fs::create_dir_all(json.parent().unwrap()).unwrap();
    let output = fake.run(
        "g/hivekit/a=10;g/peer/a=30",
        &["--json", json.to_str().unwrap()],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(value["schema"], 1);
    let rows = value["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{value}");
    assert!(rows
        .iter()
        .any(|r| r["id"] == "g/peer/a" && r["instructions"] == 30));
}

/// A malformed `docs/instructions.json` is bad input: exit 2 with `error:` naming the file.
#[test]
fn malformed_instruction_baseline_exits_2() {
    let fake = Fake::new("user-instr");
    std::fs::create_dir_all(fake.baseline_path().parent().unwrap()).unwrap();
    std::fs::write(fake.baseline_path(), "{\"schema\": 1, \"rows\": [").unwrap();
    let output = fake.run("g/hivekit/a=10", &[]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("instructions.json"),
        "{stderr}"
    );
}
