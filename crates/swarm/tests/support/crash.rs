//! Crash tests with real processes: the test binary re-executed as a child that runs a durable
//! pipeline, an append-only side-effect log to count what ran, and a scratch directory for the
//! store (on /dev/shm when there is one: a process crash, not a power cut, is what is tested, so
//! tmpfs shows the same atomicity and keeps the file fast).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The name of the test every crash-test binary declares as its child's entry point.
pub const ENTRY_POINT: &str = "child_process_entry_point";

/// A fresh directory for one child's store and effect log.
pub fn scratch() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").expect("tempdir"),
        false => tempfile::tempdir().expect("tempdir"),
    }
}

/// Appends one line to the side-effect log (one `write` on an append-only file: whole or absent).
pub fn effect(log: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the effect log opens");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("the effect log takes a line");
}

/// The effect log's lines, in order (none when it does not exist yet).
pub fn effect_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// How many times each line of the effect log was written.
pub fn effect_counts(log: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in effect_lines(log) {
        *counts.entry(line).or_default() += 1;
    }
    counts
}

/// The runtime a child (and the test resuming its run) drives the pipeline on.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The command that re-executes this test binary as a child running [`ENTRY_POINT`] in `mode`
/// on `dir` (passed in the environment variables `mode_var` and `dir_var`). Its stdout is piped
/// (the entry point prints what the parent reads) and its stderr dropped.
pub fn child(mode_var: &str, mode: &str, dir_var: &str, dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["--exact", ENTRY_POINT, "--nocapture", "--test-threads=1"])
        .env(mode_var, mode)
        .env(dir_var, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// In the child: the mode and directory [`child`] passed, `None` in a normal test run (where the
/// entry point does nothing).
pub fn child_role(mode_var: &str, dir_var: &str) -> Option<(String, PathBuf)> {
    let mode = std::env::var(mode_var).ok()?;
    let dir = std::env::var(dir_var).ok()?;
    Some((mode, PathBuf::from(dir)))
}
