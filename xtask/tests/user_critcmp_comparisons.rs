//! critcmp's comparisons of saved criterion baselines (rows on one side only, `--filter`,
//! `--threshold`, many rows, an empty baseline) ported to `cargo xtask bench --baseline NAME`.
//! Every run is on the tiny synthetic workspace of `support` (a fake criterion that "measures" the
//! rows of `FAKE_ROWS`; its filter is a plain substring), `--rounds 0`: nothing real is measured.

mod support;

use std::process::Output;

use support::{text, Fake};

fn ok(output: &Output) -> (String, String) {
    let (stdout, stderr) = text(output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    (stdout, stderr)
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

/// The warning that lists the baseline's rows this run did not measure, if any.
fn unmeasured_warning(stderr: &str) -> Option<&str> {
    stderr
        .lines()
        .find(|line| line.contains("of the baseline were not measured"))
}

/// critcmp shows a benchmark present in one baseline only with an empty cell on the other side.
/// xtask: a row renamed between the baseline and the run shows on both sides, the old id in the
/// "not measured" warning and the new one as `new`; neither fails `--fail-on-regression` (exit 0,
/// or 3 when the machine is too busy to judge; never 1).
#[test]
fn rows_on_either_side_only_are_reported_and_never_fail_the_run() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100;g/hivekit/old=50;h/peer/x=10", "before");
    let rows = "g/hivekit/1=100;g/hivekit/renamed=50;h/peer/y=10";
    let (stdout, stderr) = ok(&fake.quick(rows, &["--baseline", "before"]));
    let warning = unmeasured_warning(&stderr)
        .unwrap_or_else(|| panic!("no warning about the rows gone from the run:\n{stderr}"));
    assert!(
        warning.contains("2 row(s)")
            && warning.contains("g/hivekit/old")
            && warning.contains("h/peer/x"),
        "{warning}"
    );
    assert!(!warning.contains("g/hivekit/1"), "{warning}");
    assert!(
        row(&stdout, "hivekit", "renamed").ends_with("new"),
        "{stdout}"
    );
    assert!(row(&stdout, "peer", "y").ends_with("new"), "{stdout}");
    assert!(
        row(&stdout, "hivekit", "1").ends_with("within noise"),
        "{stdout}"
    );

    let gated = fake.quick(rows, &["--baseline", "before", "--fail-on-regression"]);
    let (stdout, stderr) = text(&gated);
    assert!(
        matches!(gated.status.code(), Some(0 | 3)),
        "rows on one side only failed the regression gate:\n{stdout}\n{stderr}"
    );
}

/// critcmp `-f REGEX` compares only matching benchmarks. xtask `--filter`: only matching rows run
/// and are compared, and only the baseline's matching rows count as "not measured" (docs: "Rows of
/// the baseline that the run should have measured (its crates, matching `--filter`) and did not").
#[test]
fn filter_narrows_both_the_comparison_and_the_not_measured_report() {
    let fake = Fake::new();
    fake.save(
        "reads/hivekit/1=100;reads/hivekit/2=100;writes/hivekit/1=100",
        "before",
    );
    let (stdout, stderr) = ok(&fake.quick(
        "reads/hivekit/1=150;writes/hivekit/1=150",
        &["--baseline", "before", "--filter", "reads/"],
    ));
    assert!(
        row(&stdout, "hivekit", "1").ends_with("regressed"),
        "{stdout}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("writes")),
        "a row outside the filter was compared:\n{stdout}"
    );
    let warning = unmeasured_warning(&stderr).unwrap_or_else(|| {
        panic!("reads/hivekit/2 is in the filter and was not measured:\n{stderr}")
    });
    assert!(
        warning.contains("1 row(s)") && warning.contains("reads/hivekit/2"),
        "{warning}"
    );
    assert!(
        !warning.contains("writes/hivekit/1"),
        "a row the filter left out is reported as not measured: {warning}"
    );
}

/// critcmp `-t 5` hides differences of 5% or less. xtask's `--threshold` works both ways: a
/// separated 5% change is `regressed` / `improved` at `--threshold 4`, `within noise` at the
/// default 10%.
#[test]
fn threshold_applies_to_slowdowns_and_speedups_alike() {
    let fake = Fake::new();
    fake.save(
        "g/hivekit/up=100,99.9,100.1;g/hivekit/down=100,99.9,100.1",
        "before",
    );
    let rows = "g/hivekit/up=105,104.9,105.1;g/hivekit/down=95,94.9,95.1";
    let (strict, _) = ok(&fake.quick(rows, &["--baseline", "before", "--threshold", "4"]));
    assert!(
        row(&strict, "hivekit", "up").ends_with("regressed"),
        "{strict}"
    );
    assert!(
        row(&strict, "hivekit", "down").ends_with("improved"),
        "{strict}"
    );
    let (default, _) = ok(&fake.quick(rows, &["--baseline", "before"]));
    for parameter in ["up", "down"] {
        assert!(
            row(&default, "hivekit", parameter).ends_with("within noise"),
            "{default}"
        );
    }
}

/// Many rows (critcmp compares whole baselines): of 400 rows, the 200 that are 50% slower are
/// exactly the ones flagged and listed, none of the others, and every row is in the table.
#[test]
fn four_hundred_rows_flag_exactly_the_slow_half() {
    let fake = Fake::new();
    let spec = |slow: bool| -> String {
        (0..400)
            .map(|i| {
                let median = if slow && i % 2 == 0 { 150 } else { 100 };
                format!("g/hivekit/p{i}={median}")
            })
            .collect::<Vec<_>>()
            .join(";")
    };
    fake.save(&spec(false), "before");
    let (stdout, stderr) = ok(&fake.quick(&spec(true), &["--baseline", "before"]));
    for i in 0..400 {
        let line = row(&stdout, "hivekit", &format!("p{i}"));
        let expected = if i % 2 == 0 {
            "regressed"
        } else {
            "within noise"
        };
        assert!(line.ends_with(expected), "p{i}: {line}");
    }
    let summary: Vec<&str> = stdout
        .split("regressed against the baseline:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no regression summary:\n{stdout}"))
        .lines()
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(summary.len(), 200, "{stdout}");
    assert!(unmeasured_warning(&stderr).is_none(), "{stderr}");
}

/// A baseline that holds no row (valid, schema 1): every row of the run reads `new`, nothing is
/// reported missing, nothing fails.
#[test]
fn an_empty_baseline_makes_every_row_new() {
    let fake = Fake::new();
    let path = fake.baseline_path("empty");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        r#"{"schema": 1, "created": "x", "commit": "c", "machine": "m", "quick": true, "results": []}"#,
    )
    .unwrap();
    let (stdout, stderr) =
        ok(&fake.quick("g/hivekit/1=100;g/peer/1=300", &["--baseline", "empty"]));
    assert!(row(&stdout, "hivekit", "1").ends_with("new"), "{stdout}");
    assert!(row(&stdout, "peer", "1").ends_with("new"), "{stdout}");
    assert!(!stdout.contains("regressed against"), "{stdout}");
    assert!(unmeasured_warning(&stderr).is_none(), "{stderr}");
}

/// docs/BENCHMARKS.md: "Compare quick runs with quick baselines and full runs with full ones; the
/// table footer names the baseline's commit, date and mode." A full run against a quick baseline
/// says so.
#[test]
fn comparing_a_full_run_with_a_quick_baseline_warns() {
    let fake = Fake::new();
    fake.save("g/hivekit/1=100", "quick");
    let (stdout, stderr) =
        ok(&fake.bench("g/hivekit/1=100", &["--rounds", "0", "--baseline", "quick"]));
    assert!(
        stdout.contains("baseline `quick`: commit ") && stdout.contains("quick mode"),
        "{stdout}"
    );
    assert!(
        stderr.contains("comparing a full run with a quick baseline"),
        "{stderr}"
    );
}
