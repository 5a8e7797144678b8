//! Promises docs/BENCHMARKS.md makes about `cargo xtask bench` that a user meets on the command
//! line: the exit code of an output path that cannot be written, and what the targets summary says
//! when a `--filter` left a target's rows out. Run on the tiny synthetic workspace of `support`.

mod support;

use support::{text, Fake};

/// docs/BENCHMARKS.md ("Exit codes"): "`2` bad input (... an output path that cannot be written),
/// with a one-line message on stderr ... Bad input is caught before anything is built or
/// measured." An existing directory given as `--json` or `--markdown`, and a path under a regular
/// file, are such paths.
#[test]
fn an_output_path_that_cannot_be_written_exits_2_before_measuring() {
    let fake = Fake::new();
    let blocker = fake.root.join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let a_directory = fake.root.join("fake");
    let under_a_file = blocker.join("out");
    for flag in ["--json", "--markdown"] {
        for path in [&a_directory, &under_a_file] {
            let output = fake.quick("g/hivekit/1=100", &[flag, path.to_str().unwrap()]);
            let (stdout, stderr) = text(&output);
            let case = format!("{flag} {}", path.display());
            assert!(
                !stdout.contains("g/hivekit/1"),
                "{case}: measured before refusing the path:\n{stdout}\n{stderr}"
            );
            assert!(
                stderr.starts_with("error: "),
                "{case}: no error line:\n{stderr}"
            );
            assert_eq!(
                output.status.code(),
                Some(2),
                "{case}: docs/BENCHMARKS.md says an output path that cannot be written is bad \
                 input (exit 2):\n{stdout}\n{stderr}"
            );
        }
    }
}

/// docs/BENCHMARKS.md: targets read "`not measured` (a benchmark it needs did not run, e.g.
/// filtered out)". A `--filter` that leaves out every row of the crate must not make the summary
/// claim that the targets file defines no target at all.
#[test]
fn a_filtered_out_target_is_not_reported_as_undefined() {
    let fake = Fake::new();
    let targets = fake.root.join("targets.json");
    std::fs::write(
        &targets,
        r#"[{"crate": "fake-suite", "target": "ours is 2x faster than peer", "check": {"faster_than": {"id": "g/hivekit/1", "peer": "peer", "factor": 2.0}}}]"#,
    )
    .unwrap();
    let output = fake.quick(
        "g/hivekit/1=100;g/peer/1=300",
        &[
            "--filter",
            "^nothing-matches/",
            "--targets",
            targets.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("none defined"),
        "the targets file defines one target, filtered out; the summary says none is defined:\n{stdout}"
    );
}
