//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.

use std::ffi::OsString;
use std::path::Path;

use crate::args::CiArgs;
use crate::error::XtaskError;
use crate::process::{cargo_command, display_command};
use crate::workspace::Workspace;

/// One check: a cargo invocation and the environment it needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    /// Arguments to cargo.
    pub(crate) args: Vec<String>,
    /// Extra environment variables.
    pub(crate) env: Vec<(String, OsString)>,
}

impl Step {
    fn cargo(args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: Vec::new(),
        }
    }

    /// The step as a shell line: `RUSTFLAGS='--cfg loom' cargo test ...`.
    pub(crate) fn describe(&self) -> String {
        let env: Vec<String> = self
            .env
            .iter()
            .filter(|(key, _)| key == "RUSTFLAGS")
            .map(|(key, value)| {
                format!(
                    "{key}={}",
                    crate::process::shell_quote(&value.to_string_lossy())
                )
            })
            .collect();
        let args: Vec<OsString> = self.args.iter().map(OsString::from).collect();
        let command = display_command(&OsString::from("cargo"), &args);
        if env.is_empty() {
            command
        } else {
            format!("{} {command}", env.join(" "))
        }
    }
}

/// The steps, in order: fmt, clippy, tests (with doc tests), benches built, then one loom run per
/// package that has a `loom` test target. Loom builds go to `<target>/loom` so that `--cfg loom`
/// does not invalidate the main build.
pub(crate) fn steps(workspace: &Workspace, rustflags: Option<&str>) -> Vec<Step> {
    let mut steps = vec![
        Step::cargo(&["fmt", "--all", "--", "--check"]),
        Step::cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        Step::cargo(&["test", "--workspace"]),
        Step::cargo(&["bench", "--workspace", "--no-run"]),
    ];
    let loom_flags = match rustflags.map(str::trim).filter(|f| !f.is_empty()) {
        Some(existing) => format!("{existing} --cfg loom"),
        None => "--cfg loom".to_owned(),
    };
    let loom_target = workspace.target_dir.join("loom");
    for package in workspace.loom_packages() {
        let mut step = Step::cargo(&["test", "-p", &package, "--release", "--test", "loom"]);
        step.env = vec![
            ("RUSTFLAGS".to_owned(), loom_flags.clone().into()),
            ("CARGO_TARGET_DIR".to_owned(), loom_target.clone().into()),
        ];
        steps.push(step);
    }
    steps
}

fn run_step(root: &Path, step: &Step, number: usize, total: usize) -> Result<(), XtaskError> {
    let description = step.describe();
    println!("ci [{number}/{total}] {description}");
    let args: Vec<OsString> = step.args.iter().map(OsString::from).collect();
    let mut command = cargo_command(root, &args);
    command.envs(step.env.iter().map(|(k, v)| (k, v)));
    let status = command.status().map_err(|error| XtaskError::CiStep {
        step: description.clone(),
        outcome: format!("could not start: {error}"),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(XtaskError::CiStep {
            step: description,
            outcome: status.to_string(),
        })
    }
}

/// Runs `cargo xtask ci`.
pub(crate) fn run_ci(args: &CiArgs) -> Result<(), XtaskError> {
    let workspace = Workspace::load(args.manifest_path.as_deref())?;
    let rustflags = std::env::var("RUSTFLAGS").ok();
    let steps = steps(&workspace, rustflags.as_deref());
    for (index, step) in steps.iter().enumerate() {
        run_step(&workspace.root, step, index + 1, steps.len())?;
    }
    println!("ci: all {} steps passed", steps.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::tests::METADATA;

    #[test]
    fn steps_in_order_with_loom_last() {
        let workspace = Workspace::parse(METADATA.as_bytes()).expect("fixture parses");
        let described: Vec<String> = steps(&workspace, None).iter().map(Step::describe).collect();
        assert_eq!(
            described,
            [
                "cargo fmt --all -- --check",
                "cargo clippy --workspace --all-targets -- -D warnings",
                "cargo test --workspace",
                "cargo bench --workspace --no-run",
                "RUSTFLAGS='--cfg loom' cargo test -p hivekit-lockfree --release --test loom",
            ]
        );
    }

    #[test]
    fn loom_uses_its_own_target_dir_and_keeps_rustflags() {
        let workspace = Workspace::parse(METADATA.as_bytes()).expect("fixture parses");
        let all = steps(&workspace, Some("-C target-cpu=native"));
        let loom = all.last().expect("has a loom step");
        assert!(loom.env.contains(&(
            "CARGO_TARGET_DIR".to_owned(),
            OsString::from("/w/target/loom")
        )));
        assert!(loom.env.contains(&(
            "RUSTFLAGS".to_owned(),
            OsString::from("-C target-cpu=native --cfg loom")
        )));
    }
}
