//! The numbers `cargo xtask bench` prints (units, ratios, changes, verdicts, targets, markdown, JSON), end to end on a fake workspace.
//!
//! The fake suite of `support` "measures" the rows of `FAKE_ROWS` (with intervals and
//! throughputs) and writes `FAKE_EXTRAS`. Every run is `--quick --rounds 0` unless a test says
//! otherwise.

mod support;

use std::process::Output;

use support::{text, Fake};

/// The table line of the row `function parameter` (the two words next to each other).
fn row<'a>(stdout: &'a str, function: &str, parameter: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words
                .windows(2)
                .any(|pair| pair[0] == function && pair[1] == parameter)
                && !line.starts_with('[')
        })
        .unwrap_or_else(|| panic!("no table row `{function} {parameter}`:\n{stdout}"))
}

fn ok(output: &Output) -> String {
    let (stdout, stderr) = text(output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    stdout
}

/// The documented wording: a peer row says how hivekit compares (`3.2x faster`, `0.50x (slower)`),
/// the hivekit row lists each peer's ratio; a parameter with no peer has an empty cell; a peer
/// present in one parameter only compares in that parameter.
#[test]
fn ratio_direction_and_wording() {
    let fake = Fake::new();
    let stdout = ok(&fake.quick(
        "g/hivekit/1=100;g/slow/1=320;g/fast/1=50;g/hivekit/2=100;g/hivekit/3=100;g/slow/3=100",
        &[],
    ));
    assert!(
        row(&stdout, "slow", "1").ends_with("hivekit 3.2x faster"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "fast", "1").ends_with("hivekit 0.50x (slower)"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "hivekit", "1").ends_with("vs slow 3.2x, fast 0.50x"),
        "{stdout}"
    );
    assert!(
        !row(&stdout, "hivekit", "2").contains("vs"),
        "parameter 2 has no peer:\n{stdout}"
    );
    // Equal medians: not "slower".
    let equal = row(&stdout, "slow", "3");
    assert!(
        equal.ends_with("hivekit 1.0x faster"),
        "equal medians: {equal}"
    );
}

/// Medians across unit boundaries, sub-nanosecond and huge ones: three significant digits, and a
/// value that rounds to 1000 moves up a unit.
#[test]
fn median_units_and_their_boundaries() {
    let fake = Fake::new();
    let stdout = ok(&fake.quick(
        "g/hivekit/a=0.5;g/hivekit/b=999.4;g/hivekit/c=999.6;g/hivekit/d=1500000;g/hivekit/e=3600000000000",
        &[],
    ));
    for (parameter, median) in [
        ("a", "500 ps"),
        ("b", "999 ns"),
        ("c", "1.00 us"),
        ("d", "1.50 ms"),
        ("e", "3600 s"),
    ] {
        let line = row(&stdout, "hivekit", parameter);
        assert!(
            line.contains(&format!(" {parameter}  {median} "))
                || line.contains(&format!(" {median}  ")),
            "row {parameter} should show {median}: {line}\n{stdout}"
        );
    }
}

/// A zero median neither panics nor yields a ratio (there is none to give), and the row stays.
#[test]
fn zero_median_row_is_kept_without_a_ratio() {
    let fake = Fake::new();
    let stdout = ok(&fake.quick("g/hivekit/1=0,0,0;g/peer/1=10", &[]));
    let ours = row(&stdout, "hivekit", "1");
    assert!(!ours.contains("vs peer"), "{ours}");
    assert!(!ours.contains("inf") && !ours.contains("NaN"), "{ours}");
    let peer = row(&stdout, "peer", "1");
    assert!(
        !peer.contains("faster") && !peer.contains("slower"),
        "{peer}"
    );
}

/// Throughput at a unit boundary: 999.6 Melem/s rounds to 1000, which must read `1.00 Gelem/s`
/// (as a median of 999.6 ns reads `1.00 us`), not a four-digit `1000 Melem/s`.
#[test]
fn throughput_rounding_moves_up_a_unit() {
    let fake = Fake::new();
    // 1 element in 1.0004 ns: 999.6 M elements per second.
    // 1000 elements in 1.0004 us: the same; 2000 decimal bytes in 2.0008 us: 999.6 MB/s.
    let stdout = ok(&fake.quick(
        "g/hivekit/e=1.0004,1.0,1.001,E1;g/hivekit/d=2000.8,2000,2001,D2000;g/hivekit/s=1,0.99,1.01,E1",
        &[],
    ));
    assert!(
        row(&stdout, "hivekit", "s").contains("1.00 Gelem/s"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "hivekit", "e").contains("1.00 Gelem/s"),
        "999.6 Melem/s should read 1.00 Gelem/s:\n{stdout}"
    );
    assert!(
        row(&stdout, "hivekit", "d").contains("1.00 GB/s"),
        "999.6 MB/s should read 1.00 GB/s:\n{stdout}"
    );
}

/// Allocations per op: integers without decimals, fractions with two; a row without figures is
/// empty, not `0`.
#[test]
fn allocations_per_op() {
    let fake = Fake::new();
    let output = fake.run(
        &[
            ("FAKE_ROWS", "g/hivekit/1=10;g/hivekit/2=10;g/hivekit/3=10"),
            (
                "FAKE_EXTRAS",
                "g/hivekit/1@allocs_per_op@2.5;g/hivekit/2@allocs_per_op@3;g/hivekit/1@bytes_per_op@64",
            ),
        ],
        &["--quick", "--rounds", "0"],
    );
    let stdout = ok(&output);
    let header = stdout
        .lines()
        .find(|l| l.starts_with("group"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        header.contains("allocs/op") && header.contains("bytes/op"),
        "{header}"
    );
    let words = |parameter: &str| -> Vec<String> {
        row(&stdout, "hivekit", parameter)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert!(
        words("1").ends_with(&["2.50".into(), "64".into()]),
        "{stdout}"
    );
    assert!(words("2").ends_with(&["ns".into(), "3".into()]), "{stdout}");
    assert!(
        row(&stdout, "hivekit", "3").ends_with("ns"),
        "row 3 recorded no allocations:\n{stdout}"
    );
}

/// docs/BENCHMARKS.md: "A change of exactly the threshold is not beyond it." 7.0 ns to 7.7 ns is
/// exactly +10%, with separated intervals: `within noise` at the default threshold of 10%.
#[test]
fn change_of_exactly_the_threshold_is_within_noise() {
    let fake = Fake::new();
    fake.save("g/hivekit/up=7.0;g/hivekit/down=7.0", "before");
    let stdout = ok(&fake.quick(
        "g/hivekit/up=7.7;g/hivekit/down=6.3",
        &["--baseline", "before"],
    ));
    let up = row(&stdout, "hivekit", "up");
    let down = row(&stdout, "hivekit", "down");
    assert!(up.contains("+10.0%") && down.contains("-10.0%"), "{stdout}");
    assert!(
        up.ends_with("within noise") && down.ends_with("within noise"),
        "exactly +-10% is not beyond the 10% threshold:\n{up}\n{down}"
    );
}

/// The same with re-measuring: rounds that stay at exactly +10% do not confirm a regression.
#[test]
fn remeasured_change_of_exactly_the_threshold_is_within_noise() {
    let fake = Fake::new();
    fake.save("g/hivekit/up=7.0", "before");
    let output = fake.run(
        &[
            ("FAKE_ROWS", "g/hivekit/up=7.8"),
            ("FAKE_ROUND_ROWS", "g/hivekit/up=7.7"),
        ],
        &["--quick", "--rounds", "3", "--baseline", "before"],
    );
    let stdout = ok(&output);
    let up = row(&stdout, "hivekit", "up");
    assert!(up.contains("re-measured 3 rounds: +10.0%"), "{up}");
    assert!(
        up.contains("within noise (re-measured"),
        "rounds at exactly +10% do not go beyond the threshold: {up}"
    );
}

/// Changes and verdicts: clear slowdown, clear speed-up, a big change with overlapping intervals,
/// and a separated change smaller than the threshold.
#[test]
fn change_and_verdict_per_row() {
    let fake = Fake::new();
    fake.save(
        "g/hivekit/slow=100;g/hivekit/fast=100;g/hivekit/noisy=100,50,200;g/hivekit/small=100,99.9,100.1",
        "before",
    );
    let stdout = ok(&fake.quick(
        "g/hivekit/slow=150;g/hivekit/fast=50;g/hivekit/noisy=150,100,300;g/hivekit/small=105,104.9,105.1",
        &["--baseline", "before"],
    ));
    let check = |parameter: &str, change: &str, verdict: &str| {
        let line = row(&stdout, "hivekit", parameter);
        assert!(
            line.contains(change) && line.ends_with(verdict),
            "{parameter}: expected {change} {verdict}: {line}"
        );
    };
    check("slow", "+50.0%", "regressed");
    check("fast", "-50.0%", "improved");
    check("noisy", "+50.0%", "within noise");
    check("small", "+5.0%", "within noise");
    assert!(
        stdout.contains("regressed against the baseline:\n  g/hivekit/slow"),
        "{stdout}"
    );
}

/// `--threshold` edge values that parse: a tiny one flags a separated 1% change, a huge one flags
/// nothing, and the footer repeats the threshold used.
#[test]
fn threshold_edges() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100,99.9,100.1", "before");
    let rows = "g/hivekit/1=101,100.9,101.1";
    let tiny = ok(&fake.quick(rows, &["--baseline", "before", "--threshold", "0.5"]));
    assert!(row(&tiny, "hivekit", "1").ends_with("regressed"), "{tiny}");
    assert!(tiny.contains("threshold 0.5%"), "{tiny}");
    let huge = ok(&fake.quick(rows, &["--baseline", "before", "--threshold", "1e300"]));
    assert!(
        row(&huge, "hivekit", "1").ends_with("within noise"),
        "{huge}"
    );
    let percent = ok(&fake.quick(rows, &["--baseline", "before", "--threshold=0.5%"]));
    assert!(
        row(&percent, "hivekit", "1").ends_with("regressed"),
        "{percent}"
    );
    for bad in ["0", "0.0", "-0", "nan", "-inf", "ten", "10%%", ""] {
        let output = fake.quick(
            rows,
            &["--baseline", "before", &format!("--threshold={bad}")],
        );
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stdout}\n{stderr}");
        assert!(stderr.starts_with("error: "), "{bad}: {stderr}");
        assert!(!stdout.contains("building"), "{bad}: {stdout}");
    }
}

/// `--fail-on-regression`: exit 1 when a row regressed (3 when the machine was too busy to judge),
/// never 1 when rows only improved or stayed within noise.
#[test]
fn fail_on_regression_exit_codes() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100;g/hivekit/2=100", "before");
    let regressed = fake.quick(
        "g/hivekit/1=150;g/hivekit/2=100",
        &["--baseline", "before", "--fail-on-regression"],
    );
    let (stdout, stderr) = text(&regressed);
    assert!(
        matches!(regressed.status.code(), Some(1 | 3)),
        "{stdout}\n{stderr}"
    );
    if regressed.status.code() == Some(1) {
        assert!(stderr.contains("error: "), "{stderr}");
    }
    let improved = fake.quick(
        "g/hivekit/1=50;g/hivekit/2=100",
        &["--baseline", "before", "--fail-on-regression"],
    );
    let (stdout, stderr) = text(&improved);
    assert!(
        matches!(improved.status.code(), Some(0 | 3)),
        "{stdout}\n{stderr}"
    );
    assert!(
        row(&stdout, "hivekit", "1").ends_with("improved"),
        "{stdout}"
    );
}

/// `--json` writes the baseline schema; read back as a baseline, the same rows compare at +0.0%,
/// within noise, with no row `new` and no row reported as unmeasured; the numbers survive exactly.
#[test]
fn json_output_round_trips_as_a_baseline() {
    let fake = Fake::new();
    let rows = "g/hivekit/1=1.38,1.37,1.40,E1;g/peer/1=0.1;g/hivekit=123456.789;g/peer/2=0";
    let json = fake.root.join("out").join("run.json");
    let stdout = ok(&fake.quick(rows, &["--json", json.to_str().unwrap()]));
    assert!(stdout.contains("wrote "), "{stdout}");
    let text_json = std::fs::read_to_string(&json).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text_json).unwrap();
    assert_eq!(value["schema"], 1);
    assert_eq!(value["quick"], true);
    let results = value["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{text_json}");
    let first = results
        .iter()
        .find(|r| r["id"] == "g/hivekit/1")
        .unwrap_or_else(|| panic!("{text_json}"));
    assert_eq!(first["median_ns"], 1.38);
    assert_eq!(first["ci_low_ns"], 1.37);
    assert_eq!(first["ci_high_ns"], 1.40);
    assert_eq!(first["throughput"], serde_json::json!({"elements": 1}));
    assert_eq!(first["crate"], "fake-suite");
    let no_parameter = results
        .iter()
        .find(|r| r["id"] == "g/hivekit")
        .unwrap_or_else(|| panic!("{text_json}"));
    assert_eq!(no_parameter["parameter"], "");
    assert_eq!(no_parameter["function"], "hivekit");

    let path = fake.baseline_path("roundtrip");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(&json, &path).unwrap();
    let output = fake.quick(rows, &["--baseline", "roundtrip"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("not measured"), "{stderr}");
    for (function, parameter) in [("hivekit", "1"), ("peer", "1")] {
        let line = row(&stdout, function, parameter);
        assert!(
            line.contains("+0.0%") && line.ends_with("within noise"),
            "{line}"
        );
    }
    assert!(
        !stdout.lines().any(|l| l.trim_end().ends_with(" new")),
        "{stdout}"
    );
}

/// Markdown: a `|` inside a parameter is escaped, so every table row has as many cells as its
/// header; a target sentence with `|` is escaped too.
#[test]
fn markdown_escapes_pipes_in_cells() {
    let fake = Fake::new();
    let targets = fake.root.join("targets.json");
    std::fs::write(
        &targets,
        r#"[{"crate": "fake-suite", "target": "a|b is 2x faster", "check": {"faster_than": {"id": "g/hivekit/a|b", "peer": "peer", "factor": 2}}}]"#,
    )
    .unwrap();
    let md = fake.root.join("docs").join("PERF.md");
    let stdout = ok(&fake.quick(
        "g/hivekit/a|b=10;g/peer/a|b=30",
        &[
            "--markdown",
            md.to_str().unwrap(),
            "--targets",
            targets.to_str().unwrap(),
        ],
    ));
    let page = std::fs::read_to_string(&md).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    // Cells of a markdown row: split on `|` not preceded by a backslash.
    let cells = |line: &str| -> usize {
        let bytes = line.as_bytes();
        (0..bytes.len())
            .filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\'))
            .count()
    };
    let table: Vec<&str> = page
        .lines()
        .skip_while(|l| !l.starts_with("### g"))
        .skip(1)
        .filter(|l| l.starts_with('|'))
        .take_while(|l| !l.starts_with("| #"))
        .collect();
    assert!(table.len() >= 4, "{page}");
    let header = cells(table[0]);
    for line in &table {
        assert_eq!(cells(line), header, "{line}\n{page}");
    }
    assert!(page.contains("| a\\|b |"), "{page}");
    assert!(page.contains("a\\|b is 2x faster"), "{page}");
    assert!(page.contains("hivekit 3.0x faster"), "{page}");
    assert!(page.contains("Targets: 1 of 1 met"), "{page}");
}

/// Targets exactly at their limit pass (docs: `>= factor`, `<= factor`, `<= ns`, `<= value`),
/// judged on the main pass (`--rounds 0`).
#[test]
fn targets_exactly_at_their_limit_are_met() {
    let fake = Fake::new();
    let targets = fake.root.join("targets.json");
    std::fs::write(
        &targets,
        r#"[
 {"crate": "fake-suite", "target": "exactly 3x faster", "check": {"faster_than": {"id": "g/hivekit/1", "peer": "peer", "factor": 3}}},
 {"crate": "fake-suite", "target": "within exactly 3x", "check": {"within": {"id": "g/hivekit/2", "peer": "g/peer/2", "factor": 3}}},
 {"crate": "fake-suite", "target": "under exactly 1.1 ns", "check": {"under": {"id": "g/hivekit/1", "ns": 1.1}}},
 {"crate": "fake-suite", "target": "no allocation", "check": {"extra_under": {"id": "g/hivekit/1", "name": "allocs_per_op", "value": 0}}}
]"#,
    )
    .unwrap();
    let output = fake.run(
        &[
            (
                "FAKE_ROWS",
                "g/hivekit/1=1.1;g/peer/1=3.3;g/hivekit/2=3.3;g/peer/2=1.1",
            ),
            ("FAKE_EXTRAS", "g/hivekit/1@allocs_per_op@0"),
        ],
        &[
            "--quick",
            "--rounds",
            "0",
            "--targets",
            targets.to_str().unwrap(),
        ],
    );
    let stdout = ok(&output);
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no target `{name}`:\n{stdout}"))
            .to_owned()
    };
    for name in [
        "exactly 3x faster",
        "within exactly 3x",
        "under exactly 1.1 ns",
        "no allocation",
    ] {
        let l = line(name);
        assert!(l.trim_start().starts_with("[met]"), "{l}\n{stdout}");
    }
    assert!(
        line("exactly 3x faster").contains("3.00x faster than peer (needs >= 3.00x)"),
        "{stdout}"
    );
    assert!(stdout.contains("targets: 4 of 4 met"), "{stdout}");
}

/// The same boundary on paired rounds: every round at exactly 3x faster reads `met`.
#[test]
fn paired_target_exactly_at_its_factor_is_met() {
    let fake = Fake::new();
    let targets = fake.root.join("targets.json");
    std::fs::write(
        &targets,
        r#"[{"crate": "fake-suite", "target": "exactly 3x faster", "check": {"faster_than": {"id": "g/hivekit/1", "peer": "peer", "factor": 3}}}]"#,
    )
    .unwrap();
    let output = fake.run(
        &[("FAKE_ROWS", "g/hivekit/1=1.1;g/peer/1=3.3")],
        &[
            "--quick",
            "--rounds",
            "3",
            "--targets",
            targets.to_str().unwrap(),
        ],
    );
    let stdout = ok(&output);
    let line = stdout
        .lines()
        .find(|l| l.contains("exactly 3x faster"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("paired, 3 rounds"), "{line}");
    assert!(line.trim_start().starts_with("[met]"), "{line}");
}

/// Ratios at their format boundary: 99.96x rounds to 100, which must read `100x` (ratios of 100
/// and more have no decimals), not a four-digit `100.0x`.
#[test]
fn ratio_rounding_at_100x() {
    let fake = Fake::new();
    let stdout = ok(&fake.quick(
        "g/hivekit/1=10;g/peer/1=999.6;g/hivekit/2=10;g/peer/2=1234",
        &[],
    ));
    assert!(
        row(&stdout, "peer", "2").ends_with("hivekit 123x faster"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "peer", "1").ends_with("hivekit 100x faster"),
        "99.96x should read 100x:\n{stdout}"
    );
}
