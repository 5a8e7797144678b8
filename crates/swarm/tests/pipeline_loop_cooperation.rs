//! A loop whose body finishes at once, and a fan-out whose items fail at once and are retried
//! without backoff, both ready at every poll, still end at the run's deadline or soon after its
//! cancellation: each iteration and each immediate retry spends a unit of tokio's cooperative
//! budget, so they hand the thread back and the run sees both (before, everything ran in one poll
//! and only the body's own cap ended the run). The bodies fail for good after 100,000 calls, so a
//! regression fails the test instead of hanging it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, FanOut, LoopPolicy, Pipeline, RetryPolicy, RunOptions, RunOutcome, StageContext,
    StageError, StageStatus,
};
use support::run_bounded;

mod support;

/// The most iterations the instant body below allows before it fails on purpose, so that a loop
/// that never notices its deadline ends (as a failure, which the tests tell apart) instead of
/// growing without bound.
const BODY_CAP: u32 = 100_000;

/// A body that finishes at once; with `cancel`, its 1,000th iteration cancels that token (the
/// run's), so the test needs no timing.
fn instant_body(
    iterations: &Arc<AtomicU32>,
    cancel: Option<hivekit_swarm::CancellationToken>,
) -> Pipeline {
    let iterations = iterations.clone();
    Pipeline::builder()
        .stage("step", move |_: StageContext| {
            let count = iterations.fetch_add(1, Ordering::Relaxed) + 1;
            if count == 1_000 {
                if let Some(cancel) = &cancel {
                    cancel.cancel();
                }
            }
            std::future::ready(if count >= BODY_CAP {
                Err(StageError::msg("the loop never noticed its deadline"))
            } else {
                Ok(count)
            })
        })
        .build()
        .expect("valid body")
}

#[test]
fn a_loop_of_u32_max_iterations_with_an_instant_body_ends_at_the_run_deadline() {
    let iterations = Arc::new(AtomicU32::new(0));
    let pipeline = Pipeline::builder()
        .repeat(
            "forever",
            instant_body(&iterations, None),
            LoopPolicy::new(u32::MAX),
        )
        .build()
        .expect("valid");
    let report = run_bounded(
        pipeline,
        RunOptions::default().with_deadline(Duration::from_millis(20)),
        Duration::from_secs(20),
    )
    .expect("no hang");
    assert_eq!(
        report.outcome(),
        RunOutcome::DeadlineExceeded,
        "{} iterations ran; forever: {:?}",
        iterations.load(Ordering::Relaxed),
        report.status("forever")
    );
    assert_eq!(report.status("forever"), Some(&StageStatus::Cancelled));
}

#[test]
fn a_loop_of_u32_max_iterations_with_an_instant_body_ends_when_cancelled() {
    let iterations = Arc::new(AtomicU32::new(0));
    let cancel = hivekit_swarm::CancellationToken::new();
    let pipeline = Pipeline::builder()
        .repeat(
            "forever",
            instant_body(&iterations, Some(cancel.clone())),
            LoopPolicy::new(u32::MAX),
        )
        .build()
        .expect("valid");
    let report = run_bounded(
        pipeline,
        RunOptions::default().with_cancel(cancel),
        Duration::from_secs(20),
    )
    .expect("no hang");
    assert_eq!(
        report.outcome(),
        RunOutcome::Cancelled,
        "{} iterations ran; forever: {:?}",
        iterations.load(Ordering::Relaxed),
        report.status("forever")
    );
}

#[test]
fn a_fan_out_item_retried_u32_max_times_without_backoff_ends_at_the_run_deadline() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let counter = counter.clone();
            async move {
                let policy = FanOut::new(2)
                    .retry(RetryPolicy::attempts(u32::MAX).with_backoff(Backoff::NONE));
                let report = ctx
                    .fan_out([1u32, 2], policy, move |_| {
                        let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
                        std::future::ready(if count >= BODY_CAP {
                            Err(StageError::permanent(
                                "the fan-out never noticed its deadline",
                            ))
                        } else {
                            Err::<u32, _>(StageError::msg("always fails"))
                        })
                    })
                    .await?;
                Ok::<_, StageError>(report.into_successes().count())
            }
        })
        .build()
        .expect("valid");
    let report = run_bounded(
        pipeline,
        RunOptions::default().with_deadline(Duration::from_millis(20)),
        Duration::from_secs(20),
    )
    .expect("no hang");
    assert_eq!(
        report.outcome(),
        RunOutcome::DeadlineExceeded,
        "{} calls; fan: {:?}",
        calls.load(Ordering::Relaxed),
        report.status("fan")
    );
}
