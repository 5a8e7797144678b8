//! `cargo xtask bench` baselines, end to end, on a tiny synthetic workspace whose one bench
//! target is a fake criterion (no dependencies, builds in about a second): it lists and "measures"
//! the rows named in `FAKE_ROWS` (`id=median_ns;id=median_ns`), writing criterion 0.8's
//! `new/benchmark.json` and `new/estimates.json` under `CRITERION_HOME` and printing criterion's
//! `time:` lines. Every run is `--quick --rounds 0`, so nothing real is measured.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const FAKE_BENCH: &str = r#"
use std::io::Write;
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = args.iter().any(|a| a == "--list");
    let filter = args.last().filter(|a| !a.starts_with("--") && a.as_str() != "never").cloned();
    let home = std::env::var("CRITERION_HOME").unwrap_or_else(|_| "target/criterion".into());
    // The rounds after the main pass (their own criterion home) measure FAKE_ROUND_ROWS if set.
    let rows = match std::env::var("FAKE_ROUND_ROWS") {
        Ok(rows) if home.contains("hivekit-rounds") => rows,
        _ => std::env::var("FAKE_ROWS").unwrap_or_default(),
    };
    // xtask's exact filters are `^(?:a|b)$` over regex-escaped ids; anything else is a substring.
    let exact: Option<Vec<String>> = filter.as_ref().and_then(|f| f.strip_prefix("^(?:")?.strip_suffix(")$").map(|inner| inner.split('|').map(|id| id.replace('\\', "")).collect()));
    for spec in rows.split(';').filter(|s| !s.is_empty()) {
        let (id, median) = spec.split_once('=').unwrap();
        match (&exact, &filter) {
            (Some(ids), _) => if !ids.iter().any(|x| x == id) { continue; },
            (None, Some(f)) => if !id.contains(f.as_str()) { continue; },
            _ => {}
        }
        if list { println!("{id}: benchmark"); continue; }
        let median: f64 = median.parse().unwrap();
        let parts: Vec<&str> = id.split('/').collect();
        let dir = std::path::Path::new(&home).join(id).join("new");
        std::fs::create_dir_all(&dir).unwrap();
        let value = if parts.len() > 2 { format!("\"{}\"", parts[2]) } else { "null".into() };
        let function = if parts.len() > 1 { format!("\"{}\"", parts[1]) } else { "null".into() };
        std::fs::write(dir.join("benchmark.json"), format!(
            "{{\"group_id\":\"{}\",\"function_id\":{function},\"value_str\":{value},\"throughput\":null,\"full_id\":\"{id}\",\"directory_name\":\"{id}\",\"title\":\"{id}\"}}",
            parts[0])).unwrap();
        let (low, high) = (median * 0.99, median * 1.01);
        std::fs::write(dir.join("estimates.json"), format!(
            "{{\"median\":{{\"confidence_interval\":{{\"confidence_level\":0.95,\"lower_bound\":{low},\"upper_bound\":{high}}},\"point_estimate\":{median},\"standard_error\":0.1}}}}")).unwrap();
        eprintln!("Benchmarking {id}");
        println!("{id}\n                        time:   [{low:.4} ns {median:.4} ns {high:.4} ns]");
        std::io::stdout().flush().unwrap();
    }
}
"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh synthetic workspace with its own target directory.
struct Fake {
    root: PathBuf,
}

impl Fake {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!(
            "xtask-user-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let package = root.join("fake");
        std::fs::create_dir_all(package.join("benches")).unwrap();
        std::fs::create_dir_all(package.join("src")).unwrap();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nresolver = \"2\"\nmembers = [\"fake\"]\n",
        )
        .unwrap();
        std::fs::write(
            package.join("Cargo.toml"),
            "[package]\nname = \"fake-suite\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [[bench]]\nname = \"suite\"\nharness = false\n",
        )
        .unwrap();
        std::fs::write(package.join("src/lib.rs"), "").unwrap();
        std::fs::write(package.join("benches/suite.rs"), FAKE_BENCH).unwrap();
        Self { root }
    }

    fn manifest(&self) -> String {
        self.root.join("Cargo.toml").to_str().unwrap().to_owned()
    }

    fn baseline_path(&self, name: &str) -> PathBuf {
        self.root
            .join("target")
            .join("hivekit-baselines")
            .join(format!("{name}.json"))
    }

    /// `xtask bench <args> --manifest-path <fake>` with `FAKE_ROWS=rows`.
    fn bench(&self, rows: &str, args: &[&str]) -> Output {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        let manifest = self.manifest();
        all.extend_from_slice(&["--manifest-path", &manifest]);
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(&all)
            .current_dir(&self.root)
            .env("FAKE_ROWS", rows)
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

fn save(fake: &Fake, rows: &str, name: &str) {
    let output = fake.bench(rows, &["--quick", "--rounds", "0", "--save-baseline", name]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(fake.baseline_path(name).is_file(), "{stdout}\n{stderr}");
}

/// Sanity: the harness works, and a clear slowdown reads `regressed`, a new row `new`.
#[test]
fn slowdown_reads_regressed_and_new_rows_read_new() {
    let fake = Fake::new();
    save(&fake, "g/hivekit/1=100", "before");
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
    save(&fake, "g/hivekit/1=100;g/hivekit/gone=100", "before");
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
    save(&fake, "g/hivekit/1=100;g/peer/1=300", "main");
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
    save(&fake, "g/hivekit/1=100;g/hivekit/2=100", "before");
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
