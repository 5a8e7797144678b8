//! A stage whose future panics while being dropped (timed out, failed fast, cancelled): the run must still return a report.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hivekit_swarm::{
    CancellationToken, FailurePolicy, Pipeline, RunOptions, RunReport, StageContext, StageError,
    StageStatus,
};

/// A future that never finishes and panics when dropped.
struct PanicsOnDrop;

impl Future for PanicsOnDrop {
    type Output = Result<(), StageError>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Pending
    }
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("boom while dropping");
        }
    }
}

/// Runs `pipeline` on its own task so that a panic escaping the run is observed, bounded.
async fn run_caught(pipeline: Pipeline, options: RunOptions) -> Result<RunReport, String> {
    let handle = tokio::spawn(async move { pipeline.run_with(options).await });
    match tokio::time::timeout(Duration::from_secs(10), handle).await {
        Err(_) => Err("the run hung".to_owned()),
        Ok(Ok(report)) => Ok(report),
        Ok(Err(error)) => Err(format!("the run itself panicked: {error}")),
    }
}

fn timing_out(spawn: bool) -> Pipeline {
    let builder = Pipeline::builder()
        .stage("hang", |_: StageContext| PanicsOnDrop)
        .timeout(Duration::from_millis(20));
    let builder = if spawn { builder.spawn() } else { builder };
    builder
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["hang"])
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_stage_that_panics_when_dropped_at_its_timeout_fails_the_stage_not_the_run() {
    let report = run_caught(timing_out(false), RunOptions::default())
        .await
        .unwrap_or_else(|error| panic!("expected a report: {error}"));
    assert!(!report.is_success());
    assert!(
        !report.status("hang").unwrap().is_success(),
        "{:?}",
        report.status("hang")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_stage_that_panics_when_dropped_at_its_timeout_fails_the_stage_not_the_run() {
    let report = run_caught(timing_out(true), RunOptions::default())
        .await
        .unwrap_or_else(|error| panic!("expected a report: {error}"));
    assert!(!report.is_success());
    assert!(!report.status("hang").unwrap().is_success());
}

fn failing_fast(spawn: bool) -> Pipeline {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let builder = Pipeline::builder().stage("hang", move |_: StageContext| {
        let _ = tx.send(true);
        PanicsOnDrop
    });
    let builder = if spawn { builder.spawn() } else { builder };
    builder
        .stage("fail", move |_: StageContext| {
            let mut rx = rx.clone();
            async move {
                // Fails once `hang` is running.
                let _ = rx.wait_for(|started| *started).await;
                Err::<(), _>(StageError::permanent("no"))
            }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_stage_that_panics_when_dropped_by_fail_fast_still_gives_a_report() {
    let report = run_caught(failing_fast(false), RunOptions::default())
        .await
        .unwrap_or_else(|error| panic!("expected a report: {error}"));
    assert!(!report.is_success());
    assert!(matches!(
        report.status("fail"),
        Some(StageStatus::Failed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_stage_that_panics_when_dropped_by_fail_fast_still_gives_a_report() {
    let report = run_caught(failing_fast(true), RunOptions::default())
        .await
        .unwrap_or_else(|error| panic!("expected a report: {error}"));
    assert!(!report.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_stage_that_panics_when_dropped_by_cancellation_still_gives_a_report() {
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pipeline = Pipeline::builder()
        .stage("hang", move |_: StageContext| {
            let _ = tx.send(());
            PanicsOnDrop
        })
        .build()
        .unwrap();
    let options = RunOptions::default()
        .with_cancel(cancel.clone())
        .with_failure(FailurePolicy::ContinueIndependent);
    let run = tokio::spawn(run_caught(pipeline, options));
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the stage started");
    cancel.cancel();
    let report = run
        .await
        .unwrap()
        .unwrap_or_else(|error| panic!("expected a report: {error}"));
    assert_eq!(report.status("hang"), Some(&StageStatus::Cancelled));
}
