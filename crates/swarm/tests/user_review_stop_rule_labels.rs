//! Review of "a stop counts when it cut a stage short" (d5b5f04, `Run::into_report`): a run
//! whose stop is dropped because no stage reads `Cancelled` or skipped-by-the-stop. The rule
//! must not relabel a run that really was cut short: a stage that saw the cancellation (the
//! documented use of `StageContext::is_cancelled`, "for long synchronous work") and gave up with
//! an error is a run cancelled, not a run that failed on its own.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hivekit_swarm::{
    Backoff, CancellationToken, Pipeline, RetryPolicy, RunOptions, RunOutcome, RunReport,
    StageContext, StageError, StageStatus,
};

const LIMIT: Duration = Duration::from_secs(10);

/// A spawned stage doing long synchronous work that checks `is_cancelled` (bounded: it gives up
/// after `LIMIT` anyway) and fails when it sees the stop, as the docs suggest.
fn cruncher(started: Arc<AtomicBool>) -> Pipeline {
    Pipeline::builder()
        .stage("crunch", move |ctx: StageContext| {
            let started = started.clone();
            async move {
                started.store(true, Ordering::SeqCst);
                let begun = Instant::now();
                while !ctx.is_cancelled() && begun.elapsed() < LIMIT {
                    std::hint::spin_loop();
                }
                Err::<u32, _>(StageError::permanent("gave up: the run is being stopped"))
            }
        })
        .spawn()
        .build()
        .expect("a valid pipeline")
}

async fn wait_for(flag: &AtomicBool) {
    let deadline = Instant::now() + LIMIT;
    while !flag.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the stage never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn finish(run: tokio::task::JoinHandle<RunReport>) -> RunReport {
    tokio::time::timeout(LIMIT * 2, run)
        .await
        .expect("the run ended in time")
        .expect("the run did not panic")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_stage_that_gives_up_when_it_sees_the_cancellation_leaves_the_run_cancelled() {
    let started = Arc::new(AtomicBool::new(false));
    let pipeline = cruncher(started.clone());
    let cancel = CancellationToken::new();
    let options = RunOptions::default().with_cancel(cancel.clone());
    let run = tokio::spawn(async move { pipeline.run_with(options).await });
    wait_for(&started).await;
    cancel.cancel();
    let report = finish(run).await;
    assert!(
        matches!(report.status("crunch"), Some(StageStatus::Failed { .. })),
        "the stage keeps its own outcome: {:?}",
        report.status("crunch")
    );
    assert_eq!(
        report.outcome(),
        RunOutcome::Cancelled,
        "the user cancelled the run and its only stage stopped because of it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_stage_that_gives_up_at_the_deadline_leaves_the_run_past_its_deadline() {
    let started = Arc::new(AtomicBool::new(false));
    let pipeline = cruncher(started.clone());
    let options = RunOptions::default().with_deadline(Duration::from_millis(100));
    let run = tokio::spawn(async move { pipeline.run_with(options).await });
    wait_for(&started).await;
    let report = finish(run).await;
    assert_eq!(
        report.outcome(),
        RunOutcome::DeadlineExceeded,
        "the run's deadline stopped its only stage: {:?}",
        report.status("crunch")
    );
}

/// Pins what must stay: a stage waiting out a retry's backoff when the run is cancelled was cut
/// short (it had attempts left), spawned or inline.
async fn a_retry_pending_at_the_stop_is_cut_short(spawned: bool) {
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let builder = Pipeline::builder()
        .stage("flaky", move |_: StageContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<u32, _>(StageError::msg("try later")) }
        })
        .retry(RetryPolicy::attempts(5).with_backoff(Backoff::fixed(Duration::from_secs(3600))));
    let pipeline = match spawned {
        true => builder.spawn(),
        false => builder,
    }
    .build()
    .unwrap();
    let cancel = CancellationToken::new();
    let options = RunOptions::default().with_cancel(cancel.clone());
    let run = tokio::spawn(async move { pipeline.run_with(options).await });
    let deadline = Instant::now() + LIMIT;
    while attempts.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the stage never ran");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Its first attempt failed; it now waits an hour for the second.
    tokio::time::sleep(Duration::from_millis(20)).await;
    cancel.cancel();
    let report = finish(run).await;
    assert_eq!(report.outcome(), RunOutcome::Cancelled, "{report:?}");
    assert_eq!(report.status("flaky"), Some(&StageStatus::Cancelled));
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_stage_waiting_out_a_backoff_at_the_cancellation_is_cut_short() {
    a_retry_pending_at_the_stop_is_cut_short(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_stage_waiting_out_a_backoff_at_the_cancellation_is_cut_short() {
    a_retry_pending_at_the_stop_is_cut_short(true).await;
}
