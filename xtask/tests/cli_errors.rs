//! The xtask binary's contract on bad input: a one-line message, the usage on stderr where the
//! arguments were wrong, and exit code 2, all before anything is built or measured.

use std::path::PathBuf;
use std::process::{Command, Output};

fn workspace_manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("Cargo.toml")
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("the xtask binary starts")
}

/// Runs `xtask bench <args> --manifest-path <this workspace>`.
fn bench(args: &[&str]) -> Output {
    let manifest = workspace_manifest();
    let manifest = manifest.to_str().expect("the workspace path is UTF-8");
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--manifest-path", manifest]);
    xtask(&all)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_prints_usage_and_succeeds() {
    for args in [
        &[][..],
        &["help"][..],
        &["--help"][..],
        &["bench", "--help"][..],
        &["ci", "-h"][..],
    ] {
        let output = xtask(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.starts_with("usage: cargo xtask"), "{stdout}");
        assert!(!stderr(&output).contains("unknown option"), "{args:?}");
    }
}

#[test]
fn bad_arguments_exit_2_with_usage_on_stderr() {
    for (args, message) in [
        (&["bench", "--fast"][..], "error: unknown option `--fast`"),
        (&["bench", "-p"][..], "error: option `-p` needs a value"),
        (
            &["bench", "--threshold", "0"][..],
            "error: threshold `0` is not a positive number of percent",
        ),
        (
            &["bench", "--threshold", "-5"][..],
            "error: threshold `-5` is not a positive number of percent",
        ),
        (&["deploy"][..], "error: unknown command `deploy`"),
    ] {
        let output = xtask(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = stderr(&output);
        let first_line = stderr.lines().next().unwrap_or_default();
        assert_eq!(first_line, message, "{args:?}");
        assert!(stderr.contains("usage: cargo xtask"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn unknown_crate_exits_2_naming_the_known_ones() {
    let output = bench(&["-p", "no-such-crate"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr(&output);
    assert!(
        stderr.starts_with("error: unknown crate `no-such-crate`; crates with benches: "),
        "{stderr}"
    );
    assert!(stderr.contains("hivekit-runtime"), "{stderr}");
}

#[test]
fn invalid_filter_exits_2_before_building() {
    let output = bench(&["--filter", "snapshot_(reads"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim_end(),
        "error: filter `snapshot_(reads` is not a valid regex: unclosed group"
    );
}

#[test]
fn missing_baseline_exits_2_before_building() {
    let name = format!("xtask-test-missing-{}", std::process::id());
    let output = bench(&["--baseline", &name]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr(&output);
    assert!(
        stderr.starts_with(&format!("error: baseline `{name}` not found")),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("building"));
}

#[test]
fn malformed_targets_file_exits_2_before_building() {
    let path = std::env::temp_dir().join(format!("xtask-targets-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"[{"crate": "c", "target": "t", "check": {"faster": {}}}]"#,
    )
    .expect("write the targets file");
    let output = bench(&["--targets", path.to_str().expect("UTF-8 temp path")]);
    std::fs::remove_file(&path).expect("cleanup");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error: cannot parse "),
        "{}",
        stderr(&output)
    );
}
