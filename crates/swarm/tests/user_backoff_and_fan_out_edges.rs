//! Backoff edges and fan-out early stops.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{Backoff, FanOut, Pipeline, RunOptions, StageContext, StageError, StageStatus};

/// The docs: "a zero `initial` or `max` waits not at all" and "however large the attempt number
/// or the product, it never exceeds `max`". A stage retried many times with a zero initial wait
/// must never wait.
#[test]
fn a_zero_initial_backoff_never_waits_however_many_attempts() {
    let backoff = Backoff {
        initial: Duration::ZERO,
        multiplier: 2.0,
        max: Duration::from_secs(10),
        jitter: 0.0,
    };
    for attempt in [1u32, 2, 10, 100, 1_000, 1_025, 2_000, u32::MAX] {
        assert_eq!(
            backoff.delay(attempt, 7),
            Duration::ZERO,
            "attempt {attempt}: a zero initial wait grew"
        );
    }
}

/// A fan-out "stops early once one has failed" (FanOut::new). Whether the item's closure fails
/// by returning a failing future or by panicking while it builds the future, the next item must
/// not be run once the outcome is certain.
#[tokio::test]
async fn a_fan_out_item_whose_closure_panics_stops_the_fan_out_like_a_failing_item() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let calls = seen.clone();
            async move {
                let report = ctx
                    .fan_out(0..4u32, FanOut::new(1), |item| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        if item == 0 {
                            panic!("bad item {item}");
                        }
                        async move {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, StageError>(item)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.succeeded)
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("run hung");
    assert!(matches!(
        report.status("fan"),
        Some(StageStatus::Failed { .. })
    ));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "items were started after the fan-out's outcome was certain"
    );
    let summary = &report.stage("fan").unwrap().fan_out[0];
    assert_eq!(summary.failures.len(), 1);
    assert_eq!(summary.succeeded, 0, "{summary}");
    assert_eq!(summary.not_run, 3, "{summary}");
}

/// Same, the failure returned by the future: a baseline the panicking case must match.
#[tokio::test]
async fn a_fan_out_item_that_fails_stops_the_fan_out() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let calls = seen.clone();
            async move {
                let report = ctx
                    .fan_out(0..4u32, FanOut::new(1), |item| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async move {
                            if item == 0 {
                                return Err(StageError::permanent("bad"));
                            }
                            Ok::<_, StageError>(item)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.succeeded)
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_with(RunOptions::default()),
    )
    .await
    .expect("run hung");
    assert!(matches!(
        report.status("fan"),
        Some(StageStatus::Failed { .. })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// `FanOut::retry` retries a failed item (retryable errors; a panic is `StageError::Panicked`,
/// which is retryable). An item whose closure panics on its first call, while building its
/// future, must get its retry like an item whose future panics.
#[tokio::test]
async fn a_fan_out_item_whose_closure_panics_once_is_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let calls = seen.clone();
            async move {
                let policy = FanOut::new(2)
                    .retry(hivekit_swarm::RetryPolicy::attempts(3).with_backoff(Backoff::NONE));
                let report = ctx
                    .fan_out([0u32, 1], policy, |item| {
                        if item == 0 && calls.fetch_add(1, Ordering::SeqCst) == 0 {
                            panic!("first call of item 0 breaks");
                        }
                        async move { Ok::<_, StageError>(item) }
                    })
                    .await?;
                Ok::<_, StageError>(report.succeeded)
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("run hung");
    assert_eq!(
        report.status("fan"),
        Some(&StageStatus::Succeeded { attempts: 1 }),
        "{report}"
    );
    assert_eq!(*report.artifact::<usize>("fan").unwrap(), 2);
    assert_eq!(report.stage("fan").unwrap().fan_out[0].retried, [(0, 2)]);
}
