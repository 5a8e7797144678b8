//! `cargo xtask bench --instructions` end to end on a fake workspace: the 2% gate, its percentages, new/zero rows and `--bless`.
//!
//! The workspace has a local `gungraun` package (so xtask finds a library version), a fake
//! `gungraun-runner` in `<target>/gungraun-runner/bin` that prints that version, and a
//! `benches/instructions.rs` that prints one gungraun JSON summary per row of `FAKE_COUNTS`
//! (`group/function/parameter=instructions;...`, a function's `-` written `_` in the summary as
//! gungraun does), lists them with `--list`, and honours a gungraun pattern (`a::b::*` or an exact
//! path).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const FAKE_SUITE: &str = r#"
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = args.iter().any(|a| a == "--list");
    let pattern = args.iter().find(|a| !a.starts_with("--")).cloned();
    let rows = std::env::var("FAKE_COUNTS").unwrap_or_default();
    for spec in rows.split(';').filter(|s| !s.is_empty()) {
        let (id, count) = spec.split_once('=').unwrap();
        let parts: Vec<&str> = id.split('/').collect();
        let function = parts[1].replace('-', "_");
        let path = format!("instructions::{}::{}::{}", parts[0], function, parts[2]);
        if let Some(p) = &pattern {
            let p = p.replace("[*]", "*");
            let matched = match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == p,
            };
            if !matched { continue; }
        }
        if list { println!("{path}: benchmark"); continue; }
        println!(
            "{{\"group\":\"{}\",\"function_name\":\"{function}\",\"id\":\"{}\",\"profiles\":[{{\"tool\":\"Callgrind\",\"data\":{{\"total\":{{\"summary\":{{\"Callgrind\":{{\"Ir\":{{\"metrics\":{{\"Left\":{{\"Int\":{count}}}}}}},\"EstimatedCycles\":{{\"metrics\":{{\"Left\":{{\"Int\":{count}}}}}}}}}}}}}}}}}]}}",
            parts[0], parts[2]
        );
    }
}
"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct Fake {
    root: PathBuf,
}

impl Fake {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!(
            "xtask-user-instr-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let write = |path: &str, contents: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        };
        write(
            "Cargo.toml",
            "[workspace]\nresolver = \"2\"\nmembers = [\"fake\", \"gungraun\"]\n",
        );
        write(
            "gungraun/Cargo.toml",
            "[package]\nname = \"gungraun\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        );
        write("gungraun/src/lib.rs", "");
        write(
            "fake/Cargo.toml",
            "[package]\nname = \"fake-suite\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dev-dependencies]\ngungraun = { path = \"../gungraun\" }\n\n\
             [[bench]]\nname = \"instructions\"\nharness = false\n",
        );
        write("fake/src/lib.rs", "");
        write("fake/benches/instructions.rs", FAKE_SUITE);
        write(
            "target/gungraun-runner/bin/gungraun-runner",
            "#!/bin/sh\necho gungraun-runner 0.1.0\n",
        );
        let runner = root.join("target/gungraun-runner/bin/gungraun-runner");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { root }
    }

    fn baseline_path(&self) -> PathBuf {
        self.root.join("docs").join("instructions.json")
    }

    /// Writes `docs/instructions.json` with these rows (`id=count;...`).
    fn write_baseline(&self, rows: &str) {
        let rows: Vec<serde_json::Value> = rows
            .split(';')
            .filter(|s| !s.is_empty())
            .map(|spec| {
                let (id, count) = spec.split_once('=').unwrap();
                serde_json::json!({"id": id, "crate": "fake-suite", "instructions": count.parse::<u64>().unwrap()})
            })
            .collect();
        let document =
            serde_json::json!({"schema": 1, "rustc": "rustc test", "commit": "abc", "rows": rows});
        std::fs::create_dir_all(self.baseline_path().parent().unwrap()).unwrap();
        std::fs::write(self.baseline_path(), document.to_string()).unwrap();
    }

    fn baseline_counts(&self) -> Vec<(String, u64)> {
        let text = std::fs::read_to_string(self.baseline_path()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["id"].as_str().unwrap().to_owned(),
                    row["instructions"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// `xtask bench --instructions <args>` with `FAKE_COUNTS=counts`.
    fn run(&self, counts: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["bench", "--instructions"])
            .args(args)
            .arg("--manifest-path")
            .arg(self.root.join("Cargo.toml"))
            .current_dir(&self.root)
            .env("FAKE_COUNTS", counts)
            .env("CARGO_TARGET_DIR", self.root.join("target"))
            .env("CARGO_INCREMENTAL", "0")
            .output()
            .expect("xtask starts")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The table line of `function parameter`.
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

/// Exactly +2% passes; +2.1% fails with exit 1 naming the row, its change and both counts; a peer
/// that grows 50% and a new row never fail.
#[test]
fn gate_at_two_percent() {
    let fake = Fake::new();
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
    let fake = Fake::new();
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
    let fake = Fake::new();
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
    let fake = Fake::new();
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
    let fake = Fake::new();
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
    let fake = Fake::new();
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
    let fake = Fake::new();
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
