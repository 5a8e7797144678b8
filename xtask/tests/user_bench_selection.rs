//! `cargo xtask bench` command-line and crate selection as a user meets them. Nothing here
//! builds or measures: every case stops at argument parsing or crate selection.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("Cargo.toml")
}

fn xtask_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(args).current_dir(dir).env_remove("PROTOC");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the xtask binary starts")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Bad values: exit 2, one `error:` line naming the value, the usage, nothing on stdout.
#[test]
fn bad_values_are_usage_errors() {
    let dir = std::env::temp_dir();
    for (args, needle) in [
        (&["bench", "--threshold", "1e400"][..], "threshold `1e400`"),
        (&["bench", "--threshold", "NaN"][..], "threshold `NaN`"),
        (&["bench", "--threshold", "inf"][..], "threshold `inf`"),
        (
            &["bench", "--rounds", "99999999999999999999999"][..],
            "rounds `99999999999999999999999`",
        ),
        (&["bench", "--rounds", "51"][..], "rounds `51`"),
        (
            &["bench", "--baseline", "../escape"][..],
            "baseline name `../escape`",
        ),
        (
            &["bench", "--save-baseline", "a/b"][..],
            "baseline name `a/b`",
        ),
        (
            &["bench", "--filter"][..],
            "option `--filter` needs a value",
        ),
        (
            &["bench", "--quick=yes"][..],
            "option `--quick` takes no value",
        ),
        (
            &["bench", "--list", "--markdown", "x.md"][..],
            "`--markdown` cannot be used",
        ),
        (
            &["bench", "--instructions", "--baseline", "b"][..],
            "`--baseline` cannot be used",
        ),
    ] {
        let output = xtask_in(&dir, args, &[]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(needle),
            "{args:?}: {first}"
        );
        assert!(stderr.contains("usage: cargo xtask"), "{args:?}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
}

/// A synthetic workspace whose only package has an `instructions` bench (gungraun) and no
/// criterion suite.
fn instructions_only_workspace() -> PathBuf {
    let root = std::env::temp_dir().join(format!("xtask-user-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let package = root.join("only_instr");
    std::fs::create_dir_all(package.join("benches")).unwrap();
    std::fs::create_dir_all(package.join("src")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"only_instr\"]\n",
    )
    .unwrap();
    std::fs::write(
        package.join("Cargo.toml"),
        "[package]\nname = \"only-instr\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [[bench]]\nname = \"instructions\"\nharness = false\n",
    )
    .unwrap();
    std::fs::write(package.join("src/lib.rs"), "").unwrap();
    std::fs::write(package.join("benches/instructions.rs"), "fn main() {}\n").unwrap();
    root
}

/// `-p CRATE` naming a crate whose only bench is the instruction-count suite: `cargo xtask bench`
/// has nothing of it to time, which is the `NoBenches` case ("crate `X` has no bench targets;
/// crates with benches: ..."), exit 2. Today it prints "no crate in this workspace has bench
/// targets" (false: the selection had none) and exits 0, so a CI step running it passes having
/// measured nothing, and a missing `--baseline` is not even looked for.
#[test]
fn package_with_only_an_instructions_suite_is_refused() {
    let root = instructions_only_workspace();
    let manifest = root.join("Cargo.toml");
    let output = xtask_in(
        &root,
        &[
            "bench",
            "-p",
            "only-instr",
            "--manifest-path",
            manifest.to_str().unwrap(),
        ],
        &[],
    );
    let _ = std::fs::remove_dir_all(&root);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.contains("only-instr"), "{stderr}");
}

/// `cargo xtask bench -p etcd --baseline NAME` on a machine without etcd/protoc: the one selected
/// crate is skipped, so nothing is measured. The run must not exit 0 claiming "no crate in this
/// workspace has bench targets" (hivekit-etcd has one), and the missing baseline must still be
/// reported (exit 2, "Bad input is caught before anything is built or measured").
#[test]
fn selecting_only_a_skipped_crate_does_not_pass_silently() {
    let cargo = PathBuf::from(env!("CARGO"));
    let cargo_dir = cargo.parent().expect("cargo has a directory");
    // A PATH with cargo and rustc but neither etcd nor protoc.
    if cargo_dir.join("etcd").is_file() || cargo_dir.join("protoc").is_file() {
        return;
    }
    let manifest = workspace_manifest();
    let name = format!("user-missing-{}", std::process::id());
    let output = xtask_in(
        &std::env::temp_dir(),
        &[
            "bench",
            "-p",
            "etcd",
            "--baseline",
            &name,
            "--manifest-path",
            manifest.to_str().unwrap(),
        ],
        &[("PATH", cargo_dir.to_str().unwrap())],
    );
    let (stdout, stderr) = text(&output);
    assert!(
        !stdout.contains("no crate in this workspace has bench targets"),
        "false claim: {stdout}"
    );
    assert_ne!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
}
