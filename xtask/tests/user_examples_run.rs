//! Every example of the `hivekit-examples` package, run as README.md's "Examples" section tells a
//! user to (`cargo run -p hivekit-examples --example NAME`): each exits 0, quickly, and does what
//! its doc comment says. The examples are built once with CI's own command (`cargo build
//! --workspace --examples --locked`, a no-op after `cargo test --workspace`, which builds them),
//! then their executables run directly.
//!
//! Also README's claim about what building an example costs, checked on `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Example name -> executable, for the examples of `hivekit-examples`.
fn examples() -> &'static BTreeMap<String, PathBuf> {
    static EXAMPLES: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let output = Command::new(cargo())
            .args([
                "build",
                "--workspace",
                "--examples",
                "--locked",
                "--quiet",
                "--message-format=json",
            ])
            .current_dir(root())
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo starts");
        assert!(output.status.success(), "building the examples failed");
        let mut examples = BTreeMap::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let is_example = message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "example"));
            let in_examples_package = message["manifest_path"]
                .as_str()
                .is_some_and(|path| path.ends_with("examples/Cargo.toml"));
            if let (true, true, Some(executable)) = (
                is_example,
                in_examples_package,
                message["executable"].as_str(),
            ) {
                examples.insert(
                    message["target"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    PathBuf::from(executable),
                );
            }
        }
        examples
    })
}

/// Runs example `name` (optionally under `wrapper`, e.g. valgrind) with `env`, killing it after
/// `limit`; returns its output, or fails the test if it did not finish in time.
fn run_with(name: &str, wrapper: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let executable = examples()
        .get(name)
        .unwrap_or_else(|| panic!("no example `{name}`: {:?}", examples().keys()));
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(executable);
            command
        }
        None => Command::new(executable),
    };
    command
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .env_remove("HIVEKIT_WORKER_THREADS");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the example starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    // The child is waited for on a thread of its own; this one waits for that at most `limit`.
    let pid = child.id();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait().expect("wait"));
    });
    let status = match exited.recv_timeout(limit) {
        Ok(status) => status,
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("example `{name}` did not finish within {limit:?}");
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs example `name` plainly; fails unless it exits 0 within 10 s. Returns its stdout.
fn run_ok(name: &str) -> String {
    let output = run_with(name, &[], &[], Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "example `{name}`: {}\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[test]
fn every_example_of_examples_cargo_toml_is_built() {
    let declared: BTreeSet<String> = std::fs::read_to_string(root().join("examples/Cargo.toml"))
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|name| *name != "hivekit-examples")
        .map(str::to_owned)
        .collect();
    let built: BTreeSet<String> = examples().keys().cloned().collect();
    assert_eq!(built, declared);
}

/// bridge.rs: sync code calls async code, fans out, bridges back from a blocking thread, is
/// refused inside a current-thread runtime, and prints the bridge's counts.
#[test]
fn bridge_runs_everything_its_doc_lists() {
    let stdout = run_ok("bridge");
    for needle in [
        "configuration schema v1.4.2",
        "fetched agent-5: threshold=55",
        "checksum of agent-9 config:",
        "refused as expected: ",
        "schema still v1.4.2",
        "1 blocking spawns, 1 refused",
    ] {
        assert!(stdout.contains(needle), "no `{needle}`:\n{stdout}");
    }
}

/// shared_memory.rs: four workers commit 400 tasks into one SnapshotCell, one version each.
#[test]
fn shared_memory_loses_no_task() {
    let stdout = run_ok("shared_memory");
    assert!(stdout.contains("version 400: 400 tasks done"), "{stdout}");
}

/// aggregate_round.rs: conflicts found, settled by priority (#2 High beats #1 and #3 on
/// `workers`, #5 Critical beats #3 on `queue` and #4 on `cache`), the accepted changes merged.
/// The agents submit from their own threads, so the order of the lines (and which winner a
/// proposal that lost twice names) follows the submission order; the sets do not.
#[test]
fn aggregate_round_settles_by_priority_and_merges() {
    let stdout = run_ok("aggregate_round");
    // `accepted #5, #6, #2` and `rejected #3: lost to ...` lines.
    let ids = |prefix: &str| -> BTreeSet<String> {
        stdout
            .lines()
            .filter_map(|line| line.strip_prefix(prefix))
            .flat_map(|rest| rest.split(", "))
            .map(|id| id.split(':').next().unwrap_or_default().trim().to_owned())
            .collect()
    };
    assert_eq!(
        ids("accepted "),
        ["#2", "#5", "#6"].map(String::from).into(),
        "{stdout}"
    );
    assert_eq!(
        ids("rejected "),
        ["#1", "#3", "#4"].map(String::from).into(),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "merged change {\"cache\": Sum(16), \"queue\": Sum(16), \"timeouts\": Sum(3), \"workers\": Sum(8)}"
        ),
        "{stdout}"
    );
}

/// resolve_packs.rs: the accepted pins are committed as one new version of the lockfile.
#[test]
fn resolve_packs_commits_a_lockfile() {
    let stdout = run_ok("resolve_packs");
    assert!(stdout.contains("Lockfile at version 1:"), "{stdout}");
    assert!(stdout.contains("ballot on "), "no vote was held:\n{stdout}");
}

/// pipeline.rs: "template generation is flaky (its first attempt fails) and succeeds on a retry",
/// and the run succeeds.
#[test]
fn pipeline_retries_its_flaky_stage_and_succeeds() {
    let stdout = run_ok("pipeline");
    assert!(
        stdout.contains("finished  template_generation: succeeded after 2 attempts"),
        "{stdout}"
    );
    assert!(stdout.contains("run Succeeded in "), "{stdout}");
}

/// reviewer_agents.rs: "one reviewer hangs and one fails", conflicting edits go to a vote, the
/// decision is exported as JSON.
#[test]
fn reviewer_agents_survives_a_hung_and_a_failing_agent() {
    let stdout = run_ok("reviewer_agents");
    for needle in [
        "failed: agent 4 timed out in propose",
        "failed: agent 5 returned an error: model endpoint returned 503 in propose",
        "ballot on \"timeout\"",
        "the configuration at version 1:",
        "as JSON:\n{",
    ] {
        assert!(stdout.contains(needle), "no `{needle}`:\n{stdout}");
    }
}

/// code_review.rs: both pull requests are reviewed, one commented on, one approved (its posting
/// "skipped"), and "the example runs in well under a second" (allowed 5 s here, for a busy machine).
#[test]
fn code_review_reviews_both_pull_requests_quickly() {
    examples(); // Built before the clock starts.
    let started = Instant::now();
    let stdout = run_ok("code_review");
    let elapsed = started.elapsed();
    assert!(stdout.contains("summary: commented ("), "{stdout}");
    assert!(stdout.contains("summary: approved #102"), "{stdout}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

/// `calling the model for step NN` lines before and after the kill, and the restored count.
fn durable_parts(stdout: &str) -> (Vec<usize>, Vec<usize>, usize) {
    let (child, resumed) = stdout
        .split_once("child process: killed")
        .unwrap_or_else(|| panic!("no kill:\n{stdout}"));
    let steps = |text: &str| -> Vec<usize> {
        text.lines()
            .filter_map(|line| line.trim().strip_prefix("calling the model for step "))
            .map(|step| step.parse().unwrap())
            .collect()
    };
    let restored = resumed
        .lines()
        .find_map(|line| {
            line.split_once(" of 30 stages restored")
                .map(|(count, _)| count)
        })
        .unwrap_or_else(|| panic!("no restored count:\n{stdout}"))
        .trim()
        .parse()
        .unwrap();
    (steps(child), steps(resumed), restored)
}

/// durable_resume.rs: "Stages that finished before the kill are not called again; the one in
/// flight is", in "a second or two".
#[test]
fn durable_resume_reruns_only_what_had_not_finished() {
    examples(); // Built before the clock starts.
    let started = Instant::now();
    let stdout = run_ok("durable_resume");
    let elapsed = started.elapsed();
    let (child, resumed, restored) = durable_parts(&stdout);
    assert!(
        (1..30).contains(&restored),
        "the kill was not mid-way:\n{stdout}"
    );
    assert_eq!(
        resumed,
        (restored..30).collect::<Vec<_>>(),
        "the resumed process must call exactly the stages not restored:\n{stdout}"
    );
    assert!(
        child.iter().all(|step| *step <= restored),
        "a stage the child called after the restored ones was lost:\n{stdout}"
    );
    assert!(
        stdout.contains("final answer: abcdefghijklmnopqrstuvwxyzabcd"),
        "{stdout}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

/// durable_resume.rs kills its child after a fixed 300 ms. On a busy machine (CI shares two cores
/// with other builds) the child may not have started its run by then; the example must still
/// show a resumed run, not fail with `UnknownRun`. A slow-starting child is simulated by running
/// the example under valgrind (which follows the child too), installed where the instruction
/// counts run; without valgrind there is nothing to simulate with, and the test says so.
#[test]
fn durable_resume_survives_a_child_that_starts_slowly() {
    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !valgrind {
        eprintln!("valgrind is not installed (apt-get install -y valgrind): not simulated");
        return;
    }
    let output = run_with(
        "durable_resume",
        &[
            "valgrind",
            "-q",
            "--trace-children=yes",
            "--error-exitcode=0",
        ],
        &[],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "durable_resume failed when its child started slowly ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// README.md, "Examples": "The examples package depends only on the library crates and what the
/// examples use ... so building an example from a fresh clone compiles the library crates and
/// their dependencies only". No example uses hivekit-etcd, which needs `protoc` to build
/// (README's crate table): `cargo run -p hivekit-examples --example bridge` must not need it.
#[test]
fn building_an_example_needs_no_etcd_client_and_no_protoc() {
    // `cargo tree` resolves features for exactly this selection, as `cargo run -p
    // hivekit-examples --example NAME` does: the package's normal, build and dev dependencies
    // (examples link the dev ones), and only the normal and build ones further down.
    let output = Command::new(cargo())
        .args([
            "tree",
            "-p",
            "hivekit-examples",
            "-e",
            "normal,build,dev",
            "-i",
            "etcd-client",
            "--locked",
            "--manifest-path",
        ])
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo tree runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `-i` of a package outside the selection's graph is an error naming it.
    assert!(
        !output.status.success() && stderr.contains("etcd-client"),
        "building an example compiles etcd-client (its build script runs protoc):\n{stdout}{stderr}"
    );
}
