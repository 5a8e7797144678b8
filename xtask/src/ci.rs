//! `cargo xtask ci` and `cargo xtask test`: the one definition of what CI checks (`.ci/run` only
//! calls `cargo xtask ci`), in order, stopping at the first failure.
//!
//! Everything builds once: clippy's check builds feed `cargo doc`; `cargo test --workspace` builds
//! the examples the examples step then runs; `cargo bench --workspace --no-run` builds the criterion
//! and instruction suites the last two steps run. Only the loom models build apart (see [`steps`]).

use std::ffi::OsString;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cargo_metadata::Message;

use crate::args::{BenchArgs, CiArgs};
use crate::error::XtaskError;
use crate::process::{cargo_command, display_command};
use crate::provision::provision;
use crate::workspace::Workspace;

/// The group CI runs end to end through `cargo xtask bench --quick` (a few seconds).
const QUICK_BENCH_FILTER: &str = "^execute_baseline/";

/// How long one example may run before it counts as hung.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A cargo invocation and the environment it needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CargoStep {
    /// Arguments to cargo.
    pub(crate) args: Vec<String>,
    /// Extra environment variables.
    pub(crate) env: Vec<(String, OsString)>,
}

impl CargoStep {
    fn new(args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: Vec::new(),
        }
    }

    /// The step as a shell line: `RUSTFLAGS='--cfg loom' cargo test ...`.
    fn describe(&self) -> String {
        let env: Vec<String> = self
            .env
            .iter()
            .filter(|(key, _)| key == "RUSTFLAGS" || key == "RUSTDOCFLAGS")
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

/// One check of CI.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// Install `etcd` and `protoc` when a package needs them and they are missing.
    Provision,
    /// A cargo command.
    Cargo(CargoStep),
    /// `cargo xtask test`: `cargo test --workspace --locked`.
    Test,
    /// Every example of every workspace package, built once and run.
    Examples,
    /// `cargo xtask bench --instructions`: fails when a hivekit row grew more than 2%.
    Instructions,
    /// `cargo xtask bench --quick` on one group, end to end.
    QuickBench,
    /// `cargo xtask aa-test`: 5 A/A comparisons flag nothing, a planted 25% slowdown is caught.
    AaTest,
}

impl Step {
    /// The step as a line of the CI log.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Provision => {
                "provision etcd and protoc when missing (apt-get install -y etcd-server protobuf-compiler)"
                    .to_owned()
            }
            Self::Cargo(step) => step.describe(),
            Self::Test => "cargo xtask test (cargo test --workspace --locked)".to_owned(),
            Self::Examples => {
                "every example: cargo build --workspace --examples --locked, then each one runs"
                    .to_owned()
            }
            Self::Instructions => {
                "cargo xtask bench --instructions (gate: no hivekit row > 2% over docs/instructions.json)"
                    .to_owned()
            }
            Self::QuickBench => format!("cargo xtask bench --quick --filter '{QUICK_BENCH_FILTER}'"),
            Self::AaTest => {
                "cargo xtask aa-test (5 A/A comparisons flag nothing, a planted 25% slowdown is caught)"
                    .to_owned()
            }
        }
    }
}

/// `RUSTFLAGS`-style variable `name` with `extra` appended to what the caller already set.
fn with_flags(existing: Option<&str>, extra: &str) -> OsString {
    match existing.map(str::trim).filter(|f| !f.is_empty()) {
        Some(existing) => format!("{existing} {extra}").into(),
        None => extra.into(),
    }
}

/// The steps, in order. Loom builds go to `<target>/loom`: `--cfg loom` changes every crate's
/// fingerprint, so sharing the main target directory would evict (and rebuild) the main build.
pub(crate) fn steps(
    workspace: &Workspace,
    rustflags: Option<&str>,
    rustdocflags: Option<&str>,
) -> Vec<Step> {
    let mut doc = CargoStep::new(&["doc", "--workspace", "--no-deps", "--locked"]);
    doc.env = vec![(
        "RUSTDOCFLAGS".to_owned(),
        with_flags(rustdocflags, "-D warnings"),
    )];
    let mut steps = vec![
        Step::Provision,
        Step::Cargo(CargoStep::new(&["fmt", "--all", "--", "--check"])),
        Step::Cargo(CargoStep::new(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])),
        // The README's etcd snippet is a doctest of the facade's `etcd` feature, which the facade's
        // dev-dependency on itself turns on in the test run.
        Step::Test,
        Step::Cargo(doc),
        Step::Examples,
    ];
    let loom_target = workspace.target_dir.join("loom");
    for package in workspace.loom_packages() {
        let mut step = CargoStep::new(&[
            "test",
            "-p",
            &package,
            "--release",
            "--locked",
            "--test",
            "loom",
        ]);
        step.env = vec![
            ("RUSTFLAGS".to_owned(), with_flags(rustflags, "--cfg loom")),
            ("CARGO_TARGET_DIR".to_owned(), loom_target.clone().into()),
        ];
        steps.push(Step::Cargo(step));
    }
    steps.extend([
        Step::Cargo(CargoStep::new(&[
            "bench",
            "--workspace",
            "--no-run",
            "--locked",
        ])),
        Step::Instructions,
        Step::QuickBench,
        Step::AaTest,
    ]);
    steps
}

fn run_cargo(root: &Path, step: &CargoStep) -> Result<(), XtaskError> {
    let args: Vec<OsString> = step.args.iter().map(OsString::from).collect();
    let mut command = cargo_command(root, &args);
    command.envs(step.env.iter().map(|(k, v)| (k, v)));
    let status = command
        .status()
        .map_err(|error| XtaskError::CommandFailed {
            command: step.describe(),
            outcome: format!("could not start: {error}"),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(XtaskError::CommandFailed {
            command: step.describe(),
            outcome: status.to_string(),
        })
    }
}

/// Provisions what the workspace needs (only when a package depends on etcd-client).
fn provision_for(workspace: &Workspace) -> Result<(), XtaskError> {
    let needing = workspace.etcd_packages();
    if needing.is_empty() {
        println!("provision: no package needs etcd or protoc");
        return Ok(());
    }
    let tools = provision()?;
    let show = |path: &Option<PathBuf>| {
        path.as_deref()
            .map_or_else(String::new, |p| p.display().to_string())
    };
    println!(
        "provision: etcd at {}, protoc at {} (for {})",
        show(&tools.etcd),
        show(&tools.protoc),
        needing.join(", ")
    );
    Ok(())
}

/// Runs `cargo xtask test`: provision, then `cargo test --workspace --locked`.
pub(crate) fn run_test(args: &CiArgs) -> Result<(), XtaskError> {
    let workspace = Workspace::load(args.manifest_path.as_deref())?;
    provision_for(&workspace)?;
    test(&workspace)
}

fn test(workspace: &Workspace) -> Result<(), XtaskError> {
    run_cargo(
        &workspace.root,
        &CargoStep::new(&["test", "--workspace", "--locked"]),
    )
}

/// Builds every example of the workspace with one cargo command and returns their executables.
fn build_examples(workspace: &Workspace) -> Result<Vec<(String, PathBuf)>, XtaskError> {
    let args: Vec<OsString> = [
        "build",
        "--workspace",
        "--examples",
        "--locked",
        "--message-format=json-render-diagnostics",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let description = display_command(&OsString::from("cargo"), &args);
    let mut child = cargo_command(&workspace.root, &args)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| XtaskError::CommandFailed {
            command: description.clone(),
            outcome: format!("could not start: {error}"),
        })?;
    let mut examples = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for message in Message::parse_stream(BufReader::new(stdout)).flatten() {
            if let Message::CompilerArtifact(artifact) = message {
                if let (true, Some(executable)) =
                    (artifact.target.is_example(), artifact.executable)
                {
                    examples.push((artifact.target.name, executable.into_std_path_buf()));
                }
            }
        }
    }
    let status = child.wait().map_err(|error| XtaskError::CommandFailed {
        command: description.clone(),
        outcome: format!("could not be waited for: {error}"),
    })?;
    if !status.success() {
        return Err(XtaskError::CommandFailed {
            command: description,
            outcome: status.to_string(),
        });
    }
    Ok(examples)
}

/// Runs one example with its output discarded; fails on a non-zero exit or after
/// [`EXAMPLE_TIMEOUT`].
fn run_example(root: &Path, name: &str, executable: &Path) -> Result<(), XtaskError> {
    let failed = |outcome: String| XtaskError::CommandFailed {
        command: format!("example `{name}` ({})", executable.display()),
        outcome,
    };
    let started = Instant::now();
    let mut child = Command::new(executable)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|error| failed(format!("could not start: {error}")))?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                println!(
                    "  example {name}: ok in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Ok(Some(status)) => return Err(failed(status.to_string())),
            Ok(None) if started.elapsed() > EXAMPLE_TIMEOUT => {
                // Best effort: the child is ours and is being abandoned as hung.
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "did not finish within {} s",
                    EXAMPLE_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(failed(format!("could not be waited for: {error}"))),
        }
    }
}

fn run_examples(workspace: &Workspace) -> Result<(), XtaskError> {
    let examples = build_examples(workspace)?;
    if examples.is_empty() {
        println!("  no examples in this workspace");
    }
    for (name, executable) in &examples {
        run_example(&workspace.root, name, executable)?;
    }
    Ok(())
}

fn run_step(workspace: &Workspace, step: &Step, ci: &CiArgs) -> Result<(), XtaskError> {
    let bench_args = |args: BenchArgs| BenchArgs {
        manifest_path: ci.manifest_path.clone(),
        ..args
    };
    match step {
        Step::Provision => provision_for(workspace),
        Step::Cargo(cargo) => run_cargo(&workspace.root, cargo),
        Step::Test => test(workspace),
        Step::Examples => run_examples(workspace),
        Step::Instructions => crate::instructions::run(&bench_args(BenchArgs {
            instructions: true,
            ..BenchArgs::default()
        })),
        Step::QuickBench => {
            let args = bench_args(BenchArgs {
                quick: true,
                filter: Some(QUICK_BENCH_FILTER.to_owned()),
                ..BenchArgs::default()
            });
            let raw = ["bench", "--quick", "--filter", QUICK_BENCH_FILTER].map(str::to_owned);
            crate::bench::run_bench(&args, &raw)
        }
        Step::AaTest => crate::aa_test::run(ci),
    }
}

/// Runs `cargo xtask ci`.
pub(crate) fn run_ci(args: &CiArgs) -> Result<(), XtaskError> {
    let workspace = Workspace::load(args.manifest_path.as_deref())?;
    let rustflags = std::env::var("RUSTFLAGS").ok();
    let rustdocflags = std::env::var("RUSTDOCFLAGS").ok();
    let steps = steps(&workspace, rustflags.as_deref(), rustdocflags.as_deref());
    let started = Instant::now();
    for (index, step) in steps.iter().enumerate() {
        let description = step.describe();
        println!(
            "\n==> ci [{}/{}] {description}  (at {:.0} s)",
            index + 1,
            steps.len(),
            started.elapsed().as_secs_f64()
        );
        run_step(&workspace, step, args).map_err(|error| XtaskError::CiStep {
            step: description,
            outcome: error.to_string(),
        })?;
    }
    println!(
        "\nci: all {} steps passed in {:.0} s",
        steps.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::tests::METADATA;

    #[test]
    fn one_list_in_order_with_every_check() {
        let workspace = Workspace::parse(METADATA.as_bytes()).expect("fixture parses");
        let described: Vec<String> = steps(&workspace, None, None)
            .iter()
            .map(Step::describe)
            .collect();
        assert_eq!(
            described,
            [
                "provision etcd and protoc when missing (apt-get install -y etcd-server protobuf-compiler)",
                "cargo fmt --all -- --check",
                "cargo clippy --workspace --all-targets --locked -- -D warnings",
                "cargo xtask test (cargo test --workspace --locked)",
                "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps --locked",
                "every example: cargo build --workspace --examples --locked, then each one runs",
                "RUSTFLAGS='--cfg loom' cargo test -p hivekit-lockfree --release --locked --test loom",
                "cargo bench --workspace --no-run --locked",
                "cargo xtask bench --instructions (gate: no hivekit row > 2% over docs/instructions.json)",
                "cargo xtask bench --quick --filter '^execute_baseline/'",
                "cargo xtask aa-test (5 A/A comparisons flag nothing, a planted 25% slowdown is caught)",
            ]
        );
    }

    #[test]
    fn loom_uses_its_own_target_dir_and_keeps_rustflags() {
        let workspace = Workspace::parse(METADATA.as_bytes()).expect("fixture parses");
        let all = steps(
            &workspace,
            Some("-C target-cpu=native"),
            Some("--cfg docsrs"),
        );
        let loom = all
            .iter()
            .find_map(|step| match step {
                Step::Cargo(cargo) if cargo.args.contains(&"loom".to_owned()) => Some(cargo),
                _ => None,
            })
            .expect("has a loom step");
        assert!(loom.env.contains(&(
            "CARGO_TARGET_DIR".to_owned(),
            OsString::from("/w/target/loom")
        )));
        assert!(loom.env.contains(&(
            "RUSTFLAGS".to_owned(),
            OsString::from("-C target-cpu=native --cfg loom")
        )));
        assert!(all.iter().any(|step| step
            .describe()
            .starts_with("RUSTDOCFLAGS='--cfg docsrs -D warnings'")));
    }

    #[test]
    fn a_failing_example_is_reported_by_name() {
        let error = run_example(Path::new("/"), "broken", Path::new("/bin/false")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("`example `broken` (/bin/false)` exit status: 1"),
            "{error}"
        );
        run_example(Path::new("/"), "fine", Path::new("/bin/true")).expect("true succeeds");
    }
}
