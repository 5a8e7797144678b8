//! The criterion bench binaries, built once with the workspace's feature resolution and run directly.
//!
//! `cargo bench -p X --bench Y` resolves features for package X alone, which is not how
//! `cargo bench --workspace --no-run` (CI's build) resolves them: it would rebuild a suite at run time
//! and could measure a differently configured binary. So xtask always builds every bench target of
//! the workspace (less the skipped packages), exactly CI's build, even when `-p` selects crates:
//! narrowing with `--bench NAME` would change which dev-dependencies' features unify (resolver 2
//! activates only the dev-dependencies of the targets being built) and so rebuild criterion and
//! friends with other features. It reads the executables from cargo's JSON messages and runs each
//! one itself the way `cargo bench` would: in its package's directory, with `--bench`.
//!
//! The gungraun instruction suites go the same way ([`Harness::Instructions`]): built once by
//! [`instruction_build_args`], then run directly, so `--instructions` never rebuilds a suite for one
//! package's feature set either.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use cargo_metadata::Message;

use crate::workspace::{Suite, Workspace, INSTRUCTIONS_BENCH};

/// One built criterion suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BenchBinary {
    /// The package and bench target.
    pub(crate) suite: Suite,
    /// `target/release/deps/<bench>-<hash>`.
    pub(crate) executable: PathBuf,
    /// The package directory, the working directory `cargo bench` gives its binaries.
    pub(crate) dir: PathBuf,
}

/// Which bench harness a binary belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Harness {
    /// The criterion suites: every bench target but [`INSTRUCTIONS_BENCH`].
    Criterion,
    /// The gungraun suites: the bench targets named [`INSTRUCTIONS_BENCH`].
    Instructions,
}

impl Harness {
    /// Whether a bench target of this name belongs to this harness.
    fn owns(self, target: &str) -> bool {
        (target == INSTRUCTIONS_BENCH) == (self == Harness::Instructions)
    }
}

/// `cargo bench --no-run --workspace [--exclude P].. --message-format=...`: CI's build, so features
/// resolve as there and nothing is built twice.
pub(crate) fn build_args(skipped: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["bench".into(), "--no-run".into(), "--workspace".into()];
    for package in skipped {
        args.extend(["--exclude".into(), package.into()]);
    }
    // Diagnostics rendered on stderr as usual; stdout carries one JSON message per line.
    args.push("--message-format=json-render-diagnostics".into());
    args
}

/// The instruction suites' build: [`build_args`] narrowed to the bench targets named
/// [`INSTRUCTIONS_BENCH`] (the selection `--instructions` has always built, so a CI build of them
/// stays fresh).
pub(crate) fn instruction_build_args(skipped: &[String]) -> Vec<OsString> {
    let mut args = build_args(skipped);
    let at = args.len() - 1;
    args.splice(at..at, ["--bench".into(), INSTRUCTIONS_BENCH.into()]);
    args
}

/// The bench executables of `harness` among cargo's JSON messages (one per stdout line), matched to
/// the workspace's packages by manifest directory. Lines that are not messages are skipped.
pub(crate) fn executables<'a>(
    workspace: &Workspace,
    harness: Harness,
    lines: impl IntoIterator<Item = &'a str>,
) -> Vec<BenchBinary> {
    let mut found: Vec<BenchBinary> = Vec::new();
    for line in lines {
        let Ok(Message::CompilerArtifact(artifact)) = serde_json::from_str::<Message>(line) else {
            continue;
        };
        let Some(executable) = artifact.executable else {
            continue;
        };
        if !artifact.target.is_bench() || !harness.owns(&artifact.target.name) {
            continue;
        }
        let manifest_dir = artifact
            .manifest_path
            .parent()
            .map(|dir| dir.as_std_path().to_path_buf());
        let Some(package) = workspace
            .packages
            .iter()
            .find(|package| Some(&package.dir) == manifest_dir.as_ref())
        else {
            continue;
        };
        let binary = BenchBinary {
            suite: Suite {
                krate: package.name.clone(),
                bench: artifact.target.name.clone(),
            },
            executable: executable.into_std_path_buf(),
            dir: package.dir.clone(),
        };
        if !found.iter().any(|known| known.suite == binary.suite) {
            found.push(binary);
        }
    }
    found
}

/// The command that runs a suite as `cargo bench` would: `--bench` first (criterion runs in test
/// mode without it), then criterion's arguments.
pub(crate) fn suite_command(binary: &BenchBinary, criterion_args: &[OsString]) -> Command {
    let mut command = Command::new(&binary.executable);
    command
        .arg("--bench")
        .args(criterion_args)
        .current_dir(&binary.dir)
        .env("CARGO_MANIFEST_DIR", &binary.dir)
        .env("CARGO_PKG_NAME", &binary.suite.krate);
    command
}

/// `path/to/bench-hash --bench <args>`, for messages.
pub(crate) fn describe(binary: &BenchBinary, criterion_args: &[OsString]) -> String {
    let program = OsString::from(relative(&binary.executable));
    let mut args: Vec<OsString> = vec!["--bench".into()];
    args.extend(criterion_args.iter().cloned());
    crate::process::display_command(&program, &args)
}

/// The executable's path from `target/` on, which is what a reader can find.
fn relative(path: &Path) -> String {
    let text = path.display().to_string();
    match text.find("/release/") {
        Some(at) => format!("target{}", &text[at..]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Artifact messages in the shape cargo 1.9x prints them (trimmed to the fields read).
    fn artifact(manifest: &str, kind: &str, name: &str, executable: Option<&str>) -> String {
        serde_json::json!({
            "reason": "compiler-artifact",
            "package_id": format!("path+file://{manifest}#0.1.0"),
            "manifest_path": format!("{manifest}/Cargo.toml"),
            "target": {"kind": [kind], "crate_types": ["bin"], "name": name, "src_path": "x.rs",
                        "edition": "2021", "doc": false, "doctest": false, "test": false},
            "profile": {"opt_level": "3", "debuginfo": 0, "debug_assertions": false,
                         "overflow_checks": false, "test": false},
            "features": [],
            "filenames": [executable.unwrap_or("/w/target/release/deps/libx.rlib")],
            "executable": executable,
            "fresh": true
        })
        .to_string()
    }

    #[test]
    fn bench_executables_are_found_in_cargo_messages() {
        let workspace =
            Workspace::parse(crate::workspace::tests::METADATA.as_bytes()).expect("fixture parses");
        let lines = [
            artifact("/w/crates/lockfree", "lib", "hivekit_lockfree", None),
            artifact(
                "/w/crates/lockfree",
                "bench",
                "snapshot",
                Some("/w/target/release/deps/snapshot-0123abcd"),
            ),
            artifact(
                "/w/crates/runtime",
                "bench",
                "instructions",
                Some("/w/target/release/deps/instructions-99"),
            ),
            artifact(
                "/w/crates/runtime",
                "bench",
                "runtime",
                Some("/w/target/release/deps/runtime-42"),
            ),
            "   Compiling hivekit-lockfree v0.1.0".to_owned(),
            r#"{"reason":"build-finished","success":true}"#.to_owned(),
        ];
        let found = executables(
            &workspace,
            Harness::Criterion,
            lines.iter().map(String::as_str),
        );
        assert_eq!(
            found,
            [
                BenchBinary {
                    suite: Suite {
                        krate: "hivekit-lockfree".into(),
                        bench: "snapshot".into()
                    },
                    executable: "/w/target/release/deps/snapshot-0123abcd".into(),
                    dir: "/w/crates/lockfree".into(),
                },
                BenchBinary {
                    suite: Suite {
                        krate: "hivekit-runtime".into(),
                        bench: "runtime".into()
                    },
                    executable: "/w/target/release/deps/runtime-42".into(),
                    dir: "/w/crates/runtime".into(),
                },
            ]
        );
        assert_eq!(
            describe(&found[0], &["--list".into()]),
            "target/release/deps/snapshot-0123abcd --bench --list"
        );
        let counted = executables(
            &workspace,
            Harness::Instructions,
            lines.iter().map(String::as_str),
        );
        assert_eq!(
            counted,
            [BenchBinary {
                suite: Suite {
                    krate: "hivekit-runtime".into(),
                    bench: "instructions".into()
                },
                executable: "/w/target/release/deps/instructions-99".into(),
                dir: "/w/crates/runtime".into(),
            }]
        );
    }

    #[test]
    fn the_build_keeps_the_workspace_package_set() {
        let text = |args: Vec<OsString>| {
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            text(build_args(&["hivekit-etcd".into()])),
            "bench --no-run --workspace --exclude hivekit-etcd --message-format=json-render-diagnostics"
        );
        assert_eq!(
            text(build_args(&[])),
            "bench --no-run --workspace --message-format=json-render-diagnostics"
        );
        assert_eq!(
            text(instruction_build_args(&["hivekit-etcd".into()])),
            "bench --no-run --workspace --exclude hivekit-etcd --bench instructions \
             --message-format=json-render-diagnostics"
        );
    }
}
