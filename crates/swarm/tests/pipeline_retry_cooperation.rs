//! A stage that fails at once on every attempt, retried without backoff up to `u32::MAX` times
//! (inline or on a task of its own), still ends at the run's deadline or soon after its
//! cancellation: each retry spends a unit of tokio's cooperative budget, so the stage hands the
//! thread back and the run sees both between attempts (before, every attempt ran in one poll and
//! only the attempt cap ended the run; a spawned stage's abort never landed). The stage gives up
//! with a permanent error after 100,000 attempts, so a regression fails the test (outcome
//! `Failed`) instead of hanging it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, CancellationToken, Pipeline, RetryPolicy, RunOptions, RunOutcome, SkipReason,
    StageContext, StageError, StageStatus,
};
use support::run_bounded;

mod support;

/// Attempts after which the always failing stage below gives up with a permanent error, so that a
/// retry loop that never notices its deadline ends (as a failure the tests tell apart) instead of
/// recording attempts without bound.
const ATTEMPT_CAP: u32 = 100_000;

fn always_failing(
    calls: &Arc<AtomicU32>,
) -> impl Fn(StageContext) -> std::future::Ready<Result<u32, StageError>> + Send + Sync + 'static {
    let calls = calls.clone();
    move |_: StageContext| {
        let count = calls.fetch_add(1, Ordering::Relaxed) + 1;
        std::future::ready(Err(if count >= ATTEMPT_CAP {
            StageError::permanent("the retry loop never noticed the run stopping")
        } else {
            StageError::msg("always fails")
        }))
    }
}

#[test]
fn unbounded_retries_of_an_instantly_failing_stage_without_backoff_end_at_the_deadline() {
    let calls = Arc::new(AtomicU32::new(0));
    let pipeline = Pipeline::builder()
        .stage("hopeless", always_failing(&calls))
        .retry(RetryPolicy::attempts(u32::MAX).with_backoff(Backoff::NONE))
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["hopeless"])
        .build()
        .expect("valid pipeline");
    let report = run_bounded(
        pipeline,
        RunOptions::default().with_deadline(Duration::from_millis(20)),
        Duration::from_secs(5),
    )
    .expect("the deadline must end the retry loop, not u32::MAX attempts");
    assert_eq!(
        report.outcome(),
        RunOutcome::DeadlineExceeded,
        "{} attempts; hopeless: {:?}",
        calls.load(Ordering::Relaxed),
        report.status("hopeless")
    );
    assert_eq!(report.status("hopeless"), Some(&StageStatus::Cancelled));
    assert!(matches!(
        report.status("after"),
        Some(StageStatus::Skipped {
            because: SkipReason::DeadlineExceeded
        })
    ));
    assert!(calls.load(Ordering::Relaxed) > 1, "the stage was retried");
}

#[test]
fn unbounded_retries_without_backoff_end_when_the_run_is_cancelled() {
    let calls = Arc::new(AtomicU32::new(0));
    let cancel = CancellationToken::new();
    let failing = always_failing(&calls);
    // The 1,000th attempt cancels the run's token itself, so the test needs no timing.
    let canceller = cancel.clone();
    let pipeline = Pipeline::builder()
        .stage("hopeless", move |ctx: StageContext| {
            if ctx.attempt() == 1_000 {
                canceller.cancel();
            }
            failing(ctx)
        })
        .retry(RetryPolicy::attempts(u32::MAX).with_backoff(Backoff::NONE))
        .build()
        .expect("valid pipeline");
    let report = run_bounded(
        pipeline,
        RunOptions::default().with_cancel(cancel),
        Duration::from_secs(5),
    )
    .expect("cancelling must end the retry loop");
    assert_eq!(
        report.outcome(),
        RunOutcome::Cancelled,
        "{} attempts; hopeless: {:?}",
        calls.load(Ordering::Relaxed),
        report.status("hopeless")
    );
    assert_eq!(report.status("hopeless"), Some(&StageStatus::Cancelled));
}

#[test]
fn a_spawned_stage_retrying_instantly_without_backoff_is_stopped_by_the_run_deadline() {
    let calls = Arc::new(AtomicU32::new(0));
    let pipeline = Pipeline::builder()
        .stage("hopeless", always_failing(&calls))
        .spawn()
        .retry(RetryPolicy::attempts(u32::MAX).with_backoff(Backoff::NONE))
        .build()
        .expect("valid pipeline");
    let report = run_bounded(
        pipeline,
        RunOptions::default().with_deadline(Duration::from_millis(20)),
        Duration::from_secs(5),
    )
    .expect("no hang");
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    assert_eq!(
        report.status("hopeless"),
        Some(&StageStatus::Cancelled),
        "{} attempts",
        calls.load(Ordering::Relaxed)
    );
    assert!(calls.load(Ordering::Relaxed) < ATTEMPT_CAP);
}
