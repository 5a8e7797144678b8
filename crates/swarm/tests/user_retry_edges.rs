//! Retries and timeouts at the edges a demanding user reaches first: `u32::MAX` attempts of a stage
//! that always times out, bounded only by the run's deadline; a 1 ns timeout; a stage that panics
//! after the run was cancelled; panics with odd payloads. Every wait is bounded so a hang fails.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, CancellationToken, Pipeline, RetryPolicy, RunOptions, RunOutcome, StageContext,
    StageError, StageStatus,
};
use support::run_bounded;

mod support;

#[test]
fn unbounded_retries_of_a_stage_that_always_times_out_end_at_the_deadline() {
    let pipeline = Pipeline::builder()
        .stage("stuck", |_: StageContext| async {
            std::future::pending::<()>().await;
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_millis(1))
        .retry(RetryPolicy::attempts(u32::MAX).with_backoff(Backoff::NONE))
        .build()
        .expect("valid pipeline");
    let report = run_bounded(
        pipeline,
        RunOptions::default().with_deadline(Duration::from_millis(30)),
        Duration::from_secs(5),
    )
    .expect("the deadline must end the retries");
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    assert_eq!(report.status("stuck"), Some(&StageStatus::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn a_one_nanosecond_timeout_times_out_a_pending_stage_after_each_attempt() {
    let pipeline = Pipeline::builder()
        .stage("stuck", |_: StageContext| async {
            std::future::pending::<()>().await;
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_nanos(1))
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .stage("report", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["stuck"])
        .build()
        .expect("valid pipeline");
    let report = tokio::time::timeout(Duration::from_secs(10), pipeline.run())
        .await
        .expect("no hang");
    assert_eq!(
        report.status("stuck"),
        Some(&StageStatus::TimedOut { attempts: 3 })
    );
    assert_eq!(
        report.explain("report").as_deref(),
        Some("report skipped because stuck failed: timed out after 3 attempts")
    );
}

#[tokio::test(start_paused = true)]
async fn a_stage_that_panics_once_cancelled_is_recorded_as_cancelled() {
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let pipeline = Pipeline::builder()
        .stage("trigger", move |_: StageContext| {
            let canceller = canceller.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                canceller.cancel();
                Ok::<_, StageError>(())
            }
        })
        .stage("panicky", |ctx: StageContext| async move {
            ctx.cancellation().cancelled().await;
            panic!("cleanup went wrong");
            #[allow(unreachable_code)]
            Ok::<_, StageError>(())
        })
        .build()
        .expect("valid pipeline");
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline.run_with(RunOptions::default().with_cancel(cancel)),
    )
    .await
    .expect("no hang");
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    assert!(
        matches!(
            report.status("panicky"),
            Some(StageStatus::Cancelled | StageStatus::Failed { .. })
        ),
        "got {:?}",
        report.status("panicky")
    );
}

#[tokio::test]
async fn a_panic_with_a_non_string_payload_is_a_failure_not_a_crash() {
    let pipeline = Pipeline::builder()
        .stage("odd", |_: StageContext| async {
            std::panic::panic_any(42_u64);
            #[allow(unreachable_code)]
            Ok::<_, StageError>(())
        })
        .build()
        .expect("valid pipeline");
    let report = pipeline.run().await;
    assert_eq!(report.outcome(), RunOutcome::Failed);
    assert!(matches!(
        report.status("odd"),
        Some(StageStatus::Failed {
            error: StageError::Panicked(_),
            attempts: 1
        })
    ));
}

#[tokio::test]
async fn a_panicking_stage_is_not_retried_past_its_policy_and_its_attempts_are_counted() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("boom", move |_: StageContext| {
            counter.fetch_add(1, Ordering::Relaxed);
            async {
                panic!("boom");
                #[allow(unreachable_code)]
                Ok::<_, StageError>(())
            }
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .build()
        .expect("valid pipeline");
    let report = pipeline.run().await;
    let attempts = report.status("boom").map(StageStatus::attempts);
    assert_eq!(attempts, Some(calls.load(Ordering::Relaxed)));
    assert!(matches!(
        report.status("boom"),
        Some(StageStatus::Failed {
            error: StageError::Panicked(_),
            ..
        })
    ));
}
