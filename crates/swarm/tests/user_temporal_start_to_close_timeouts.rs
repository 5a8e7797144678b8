//! Temporal's start-to-close timeout tests, ported to durable runs: an attempt that outlives its
//! timeout is abandoned (its future dropped) and retried; a stage that times out on every attempt
//! is recorded timed out, and the replay runs it again without running what finished before it.

use std::future::pending;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    AttemptFailure, Backoff, Pipeline, RetryPolicy, RunOptions, StageContext, StageError,
    StageStatus,
};

/// Counts the attempts whose future was dropped before it finished.
struct DropCount(Arc<AtomicU32>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> Arc<AtomicU32> {
    Arc::new(AtomicU32::new(0))
}

/// fetch (durable) -> render: hangs while `hangs_until_attempt` is above the attempt number.
fn render(
    fetches: Arc<AtomicU32>,
    renders: Arc<AtomicU32>,
    dropped: Arc<AtomicU32>,
    hang_on_first: Arc<AtomicU32>,
    attempts: u32,
) -> Pipeline {
    Pipeline::builder()
        .stage("fetch", move |_: StageContext| {
            let fetches = fetches.clone();
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                Ok::<_, StageError>(String::from("page"))
            }
        })
        .durable()
        .stage("render", move |ctx: StageContext| {
            let (renders, dropped, hang) =
                (renders.clone(), dropped.clone(), hang_on_first.clone());
            async move {
                renders.fetch_add(1, Ordering::SeqCst);
                let guard = DropCount(dropped);
                if ctx.attempt() <= hang.load(Ordering::SeqCst) {
                    pending::<()>().await;
                }
                std::mem::forget(guard);
                Ok::<_, StageError>(format!("<p>{}</p>", ctx.input::<String>("fetch")?))
            }
        })
        .after(["fetch"])
        .timeout(Duration::from_secs(5))
        .retry(RetryPolicy::attempts(attempts).with_backoff(Backoff::fixed(Duration::from_secs(1))))
        .durable()
        .build()
        .expect("a valid pipeline")
}

#[tokio::test(start_paused = true)]
async fn an_attempt_past_its_timeout_is_dropped_retried_and_recorded_as_timed_out() {
    let (fetches, renders, dropped) = (counter(), counter(), counter());
    let hang = Arc::new(AtomicU32::new(1));
    let pipeline = render(fetches, renders.clone(), dropped.clone(), hang, 3);
    let durable = Durable::new(MemoryStore::new());
    let began = tokio::time::Instant::now();
    let report = durable
        .start(&pipeline, "page-1", RunOptions::default())
        .await
        .expect("the run starts")
        .into_report();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(6),
        "5 s timeout, 1 s backoff"
    );
    assert_eq!(renders.load(Ordering::SeqCst), 2);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the timed-out attempt was dropped"
    );

    let state = durable.inspect("page-1").expect("stored");
    let stage = state.stage("render").expect("render");
    assert_eq!(stage.status, Some(StageStatus::Succeeded { attempts: 2 }));
    assert_eq!(stage.failed_attempts.len(), 1);
    let attempt = &stage.failed_attempts[0];
    assert_eq!(attempt.attempt, 1);
    assert!(
        matches!(attempt.failure, AttemptFailure::TimedOut { after } if after == Duration::from_secs(5)),
        "{:?}",
        attempt.failure
    );
    assert_eq!(attempt.backoff, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_stage_timing_out_on_every_attempt_is_recorded_timed_out_and_the_replay_runs_only_it() {
    let (fetches, renders, dropped) = (counter(), counter(), counter());
    let hang = Arc::new(AtomicU32::new(u32::MAX));
    let pipeline = render(
        fetches.clone(),
        renders.clone(),
        dropped.clone(),
        hang.clone(),
        2,
    );
    let durable = Durable::new(MemoryStore::new());
    let began = tokio::time::Instant::now();
    let report = durable
        .start(&pipeline, "page-2", RunOptions::default())
        .await
        .expect("the run starts")
        .into_report();
    assert!(!report.is_success());
    assert_eq!(began.elapsed(), Duration::from_secs(11), "5 s, 1 s, 5 s");
    assert_eq!(
        report.status("render"),
        Some(&StageStatus::TimedOut { attempts: 2 })
    );
    assert_eq!(dropped.load(Ordering::SeqCst), 2);

    let state = durable.inspect("page-2").expect("stored");
    let stage = state.stage("render").expect("render");
    assert_eq!(stage.status, Some(StageStatus::TimedOut { attempts: 2 }));
    assert_eq!(stage.failed_attempts.len(), 2);
    assert!(stage
        .failed_attempts
        .iter()
        .all(|attempt| matches!(attempt.failure, AttemptFailure::TimedOut { .. })));
    assert!(!stage.is_restored_on_resume());

    // The slow dependency is fixed; the replay renders once, and fetch is not run again.
    hang.store(0, Ordering::SeqCst);
    let resumed_at = tokio::time::Instant::now();
    let resumed = durable
        .resume(&pipeline, "page-2", RunOptions::default())
        .await
        .expect("the run resumes")
        .into_report();
    assert!(resumed.is_success(), "{resumed:?}");
    assert_eq!(resumed_at.elapsed(), Duration::ZERO);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(renders.load(Ordering::SeqCst), 3);
    assert!(resumed.stage("fetch").expect("fetch").resumed);
    assert_eq!(
        *resumed.artifact::<String>("render").expect("rendered"),
        "<p>page</p>"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_stage_over_its_timeout_on_a_multi_thread_runtime_is_recorded_and_replayed() {
    let calls = counter();
    let release = Arc::new(std::sync::Barrier::new(2));
    let pipeline = {
        let (calls, release) = (calls.clone(), release.clone());
        Pipeline::builder()
            .stage("scan", move |ctx: StageContext| {
                let (calls, release) = (calls.clone(), release.clone());
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if ctx.attempt() == 1 {
                        // Held on a blocking-pool thread until the test lets go: a real
                        // start-to-close timeout cannot stop such an attempt, only abandon it.
                        release.wait();
                        return Ok::<_, StageError>(String::from("late"));
                    }
                    Ok::<_, StageError>(String::from("on time"))
                }
            })
            .blocking()
            .timeout(Duration::from_millis(50))
            .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
            .durable()
            .build()
            .expect("a valid pipeline")
    };
    let durable = Durable::new(MemoryStore::new());
    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "scan", RunOptions::default()),
    )
    .await;
    // Let the stuck attempt go before any assertion, so a failure does not hang the runtime.
    release.wait();
    let report = ended
        .expect("the run ends though its first attempt is stuck")
        .expect("the run starts")
        .into_report();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        *report.artifact::<String>("scan").expect("scanned"),
        "on time"
    );
    let state = durable.inspect("scan").expect("stored");
    let scan = state.stage("scan").expect("scan");
    assert_eq!(
        scan.artifact::<String>().expect("decodes").as_deref(),
        Some("on time")
    );
    assert_eq!(scan.failed_attempts.len(), 1);

    let again = durable
        .resume(&pipeline, "scan", RunOptions::default())
        .await
        .expect("the run resumes")
        .into_report();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "nothing ran on replay");
    assert_eq!(
        *again.artifact::<String>("scan").expect("restored"),
        "on time"
    );
}
