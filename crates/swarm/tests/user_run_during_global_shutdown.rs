//! A run driven from synchronous code (no tokio runtime of its own, so its timers and spawned
//! stages live on hivekit's global runtime) while the program shuts that runtime down, as a
//! service's exit path does: the run ends, with a report and without a panic or a hang, and a run
//! started afterwards is refused by name.
//!
//! A shutdown is final for the process, so each case runs in a child process of this test binary
//! (the same test, selected by name, with `CASE_VAR` set): one binary for every case.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, Pipeline, RetryPolicy, RunOptions, RunOutcome, RunReport, SkipReason, StageContext,
    StageError, StageStatus,
};

const CASE_VAR: &str = "HIVEKIT_SHUTDOWN_CASE";
const BOUND: Duration = Duration::from_secs(10);

/// Runs `case` in a child process of this binary (the test named `name`, alone), or runs it here
/// when this process is that child.
fn in_child(name: &str, case: fn()) {
    if std::env::var(CASE_VAR).as_deref() == Ok(name) {
        case();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, name)
        .output()
        .expect("the test binary starts again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed in its child process:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run in its child process:\n{stdout}"
    );
}

/// A stage that says it started, then waits on a future nothing wakes.
fn hanging(
    started: mpsc::Sender<()>,
) -> impl Fn(StageContext) -> futures::future::BoxFuture<'static, Result<(), StageError>>
       + Send
       + Sync
       + 'static {
    move |_ctx| {
        let _ = started.send(());
        Box::pin(std::future::pending())
    }
}

/// Runs `pipeline` with `options` under `futures::executor::block_on` on a thread of its own, shuts
/// the global runtime down once a stage said it started, and returns the run's report.
fn run_through_the_shutdown(
    pipeline: Pipeline,
    options: RunOptions,
    started: mpsc::Receiver<()>,
) -> RunReport {
    let (report_tx, report_rx) = mpsc::channel();
    let runner = pipeline.clone();
    thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            futures::executor::block_on(runner.run_with(options))
        }));
        let _ = report_tx.send(outcome);
    });
    started
        .recv_timeout(BOUND)
        .expect("the hanging stage started");
    hivekit_runtime::shutdown(Duration::from_secs(1)).expect("a plain thread may shut down");
    let report = match report_rx
        .recv_timeout(BOUND)
        .expect("the run must end once its runtime is shut down")
    {
        Ok(report) => report,
        Err(payload) => panic!(
            "the run panicked: {}",
            hivekit_runtime::panic_message(&*payload)
        ),
    };

    // A run started after the shutdown is refused: every stage skipped, naming the cause.
    let later = futures::executor::block_on(pipeline.run());
    assert!(!later.is_success());
    for stage in later.stages() {
        assert!(
            matches!(
                &stage.status,
                StageStatus::Skipped {
                    because: SkipReason::NoRuntime { .. }
                }
            ),
            "{}: {:?}",
            stage.name,
            stage.status
        );
    }
    report
}

/// The stage that was waiting ends cancelled with the run. A shutdown that lands while the run is
/// in the middle of a poll (between its check of the runtime and its poll of the stage's timer)
/// fails the stage instead, with an error naming the shutdown.
fn assert_cancelled(report: &RunReport, stage: &str) {
    let status = report.status(stage).expect("the stage is in the report");
    match status {
        StageStatus::Cancelled
        | StageStatus::Skipped {
            because: SkipReason::Cancelled,
        } => assert_eq!(report.outcome(), RunOutcome::Cancelled, "{report:?}"),
        StageStatus::Failed { error, .. } => {
            assert!(error.to_string().contains("shut down"), "{stage}: {error}");
            assert_eq!(report.outcome(), RunOutcome::Failed, "{report:?}");
        }
        other => panic!("{stage}: {other:?}"),
    }
}

fn an_inline_stage_with_a_timeout() {
    let (started_tx, started) = mpsc::channel();
    let pipeline = Pipeline::builder()
        .stage("first", |_: StageContext| async {
            Ok::<_, StageError>(1_u32)
        })
        .into_builder()
        .stage("hangs", hanging(started_tx))
        .after(["first"])
        .timeout(Duration::from_secs(30))
        .into_builder()
        .build()
        .expect("valid");
    let report = run_through_the_shutdown(pipeline, RunOptions::default(), started);
    assert!(matches!(
        report.status("first"),
        Some(StageStatus::Succeeded { .. })
    ));
    assert_cancelled(&report, "hangs");
}

#[test]
fn an_inline_stage_waiting_on_its_timeout_ends_with_the_runtime() {
    in_child(
        "an_inline_stage_waiting_on_its_timeout_ends_with_the_runtime",
        an_inline_stage_with_a_timeout,
    );
}

fn a_run_with_a_deadline() {
    let (started_tx, started) = mpsc::channel();
    let pipeline = Pipeline::builder()
        .stage("hangs", hanging(started_tx))
        .no_timeout()
        .into_builder()
        .build()
        .expect("valid");
    let options = RunOptions::default().with_deadline(Duration::from_secs(30));
    let report = run_through_the_shutdown(pipeline, options, started);
    assert_cancelled(&report, "hangs");
}

#[test]
fn a_run_waiting_on_its_deadline_ends_with_the_runtime() {
    in_child(
        "a_run_waiting_on_its_deadline_ends_with_the_runtime",
        a_run_with_a_deadline,
    );
}

fn a_stage_backing_off() {
    let (started_tx, started) = mpsc::channel();
    let pipeline = Pipeline::builder()
        .stage("retries", move |_: StageContext| {
            let _ = started_tx.send(());
            async { Err::<(), _>(StageError::msg("not yet")) }
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff {
            initial: Duration::from_secs(20),
            multiplier: 1.0,
            max: Duration::from_secs(20),
            jitter: 0.0,
        }))
        .into_builder()
        .build()
        .expect("valid");
    let report = run_through_the_shutdown(pipeline, RunOptions::default(), started);
    assert_cancelled(&report, "retries");
}

#[test]
fn a_stage_waiting_out_its_backoff_ends_with_the_runtime() {
    in_child(
        "a_stage_waiting_out_its_backoff_ends_with_the_runtime",
        a_stage_backing_off,
    );
}

fn a_spawned_stage_among_inline_ones() {
    let (started_tx, started) = mpsc::channel();
    let pipeline = Pipeline::builder()
        .stage("first", |_: StageContext| async {
            Ok::<_, StageError>(1_u32)
        })
        .into_builder()
        .stage("hangs", hanging(started_tx))
        .after(["first"])
        .spawn()
        .into_builder()
        .build()
        .expect("valid");
    let report = run_through_the_shutdown(pipeline, RunOptions::default(), started);
    assert_cancelled(&report, "hangs");
}

#[test]
fn a_spawned_stage_ends_with_the_runtime() {
    in_child(
        "a_spawned_stage_ends_with_the_runtime",
        a_spawned_stage_among_inline_ones,
    );
}

fn spawned_stages_only() {
    let (started_tx, started) = mpsc::channel();
    let pipeline = Pipeline::builder()
        .stage("first", |_: StageContext| async {
            Ok::<_, StageError>(1_u32)
        })
        .spawn()
        .into_builder()
        .stage("hangs", hanging(started_tx))
        .after(["first"])
        .spawn()
        .timeout(Duration::from_secs(30))
        .into_builder()
        .build()
        .expect("valid");
    let report = run_through_the_shutdown(pipeline, RunOptions::default(), started);
    assert_cancelled(&report, "hangs");
}

#[test]
fn a_run_of_spawned_stages_only_ends_with_the_runtime() {
    in_child(
        "a_run_of_spawned_stages_only_ends_with_the_runtime",
        spawned_stages_only,
    );
}
