//! Blocking stages as users write them (synchronous work on tokio's blocking pool): a timed-out or
//! cancelled attempt is abandoned, so the run does not wait for the thread to finish; a panic on
//! the pool is a failure; retries of a blocking stage run again on the pool.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hivekit_swarm::{
    Backoff, CancellationToken, FailurePolicy, Pipeline, RetryPolicy, RunOptions, RunOutcome,
    StageContext, StageError, StageStatus,
};

/// How long the blocking work below takes; the run must return well before it ends.
const WORK: Duration = Duration::from_millis(300);

fn sleeper() -> Pipeline {
    Pipeline::builder()
        .stage("sync", |_: StageContext| async {
            std::thread::sleep(WORK);
            Ok::<_, StageError>(())
        })
        .blocking()
        .timeout(Duration::from_millis(10))
        .build()
        .expect("valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_blocking_stage_is_abandoned_and_the_run_does_not_wait_for_its_thread() {
    let start = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(5), sleeper().run())
        .await
        .expect("no hang");
    let elapsed = start.elapsed();
    assert_eq!(
        report.status("sync"),
        Some(&StageStatus::TimedOut { attempts: 1 })
    );
    assert!(
        elapsed < WORK * 3 / 4,
        "the run waited {elapsed:?} for an abandoned thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_blocking_stage_is_abandoned_and_the_run_ends_at_once() {
    let pipeline = Pipeline::builder()
        .stage("sync", |_: StageContext| async {
            std::thread::sleep(WORK);
            Ok::<_, StageError>(())
        })
        .blocking()
        .build()
        .expect("valid");
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let start = Instant::now();
    let stop = async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        canceller.cancel();
    };
    let (report, ()) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(
            pipeline.run_with(RunOptions::default().with_cancel(cancel)),
            stop
        )
    })
    .await
    .expect("no hang");
    let elapsed = start.elapsed();
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    assert_eq!(report.status("sync"), Some(&StageStatus::Cancelled));
    assert!(
        elapsed < WORK * 3 / 4,
        "the run waited {elapsed:?} for a cancelled thread"
    );
}

#[tokio::test]
async fn a_blocking_stage_that_panics_is_a_failure_and_is_retried_on_the_pool() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("sync", move |ctx: StageContext| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(ctx.attempt() >= 3, "attempt {} blew up", ctx.attempt());
                Ok::<_, StageError>(std::thread::current().name().map(str::to_owned))
            }
        })
        .blocking()
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .stage("fragile", |_: StageContext| async {
            panic!("always");
            #[allow(unreachable_code)]
            Ok::<_, StageError>(())
        })
        .blocking()
        .build()
        .expect("valid");
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)),
    )
    .await
    .expect("no hang");
    assert_eq!(
        report.status("sync"),
        Some(&StageStatus::Succeeded { attempts: 3 })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(matches!(
        report.status("fragile"),
        Some(StageStatus::Failed { error: StageError::Panicked(message), attempts: 1 }) if message.contains("always")
    ));
}
