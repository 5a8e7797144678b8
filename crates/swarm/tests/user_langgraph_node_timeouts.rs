//! LangGraph's node timeouts (`test_retry.py`): a timeout bounds each attempt and composes with
//! the retry policy, a heartbeat does not refresh it, a stage's own timeout wins over the
//! pipeline's default, and the writes of an attempt that timed out are discarded: the retried
//! attempt's output is the stage's artifact (and its checkpoint), whatever the abandoned attempt
//! does later, and the abandoned attempt reports nothing into the run's event stream after the
//! stage has finished.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    AttemptFailure, Backoff, EventSink, Pipeline, RetryPolicy, RunOptions, StageContext,
    StageError, StageEvent, StageStatus,
};

/// Polls `condition` until it holds, failing the test after five seconds.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A durable blocking stage with a 50 ms timeout and two attempts: the first attempt blocks until
/// released (then reports progress and returns "first"), the second returns "second" at once.
struct Stale {
    release: mpsc::Sender<()>,
    finished_late: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
    pipeline: Pipeline,
}

fn stale_pipeline() -> Stale {
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let finished_late = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU32::new(0));
    let (late, counted) = (finished_late.clone(), calls.clone());
    let pipeline = Pipeline::builder()
        .stage("slow", move |ctx: StageContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            let released = released.clone();
            let late = late.clone();
            async move {
                if ctx.attempt() == 1 {
                    // Synchronous work that ends when the test says so (at most ten seconds).
                    let _ = released
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(10));
                    ctx.progress(99, 99);
                    late.store(true, Ordering::SeqCst);
                    return Ok::<_, StageError>(String::from("first"));
                }
                Ok(String::from("second"))
            }
        })
        .blocking()
        .durable()
        .timeout(Duration::from_millis(50))
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .build()
        .expect("valid");
    Stale {
        release,
        finished_late,
        calls,
        pipeline,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_blocking_attempt_finishing_late_does_not_replace_the_retried_artifact() {
    let stale = stale_pipeline();
    let durable = Durable::new(MemoryStore::new());
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&stale.pipeline, "t", RunOptions::default()),
    )
    .await
    .expect("the run does not wait for the abandoned thread")
    .expect("starts");
    let report = outcome.report();
    assert_eq!(
        report.status("slow"),
        Some(&StageStatus::Succeeded { attempts: 2 })
    );
    assert_eq!(*report.artifact::<String>("slow").unwrap(), "second");
    let failed = &report.stage("slow").unwrap().failed_attempts;
    assert_eq!(failed.len(), 1);
    assert!(
        matches!(failed[0].failure, AttemptFailure::TimedOut { after } if after == Duration::from_millis(50)),
        "{:?}",
        failed[0]
    );

    // The abandoned attempt now ends with its own output.
    stale.release.send(()).unwrap();
    wait_until("the abandoned attempt to end", || {
        stale.finished_late.load(Ordering::SeqCst)
    })
    .await;

    // Its late output reached neither the report nor the checkpoint.
    assert_eq!(*report.artifact::<String>("slow").unwrap(), "second");
    let resumed = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&stale.pipeline, "t", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("resumes");
    assert!(resumed.report().stage("slow").unwrap().resumed);
    assert_eq!(
        *resumed.report().artifact::<String>("slow").unwrap(),
        "second"
    );
    assert_eq!(stale.calls.load(Ordering::SeqCst), 2, "nothing ran again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_blocking_attempt_reports_nothing_after_its_stage_finished() {
    let stale = stale_pipeline();
    let (sink, mut events) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        stale
            .pipeline
            .run_with(RunOptions::default().with_events(sink)),
    )
    .await
    .expect("the run does not wait for the abandoned thread");
    assert_eq!(*report.artifact::<String>("slow").unwrap(), "second");

    stale.release.send(()).unwrap();
    wait_until("the abandoned attempt to end", || {
        stale.finished_late.load(Ordering::SeqCst)
    })
    .await;

    let mut after_finish = Vec::new();
    let mut finished = false;
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = events.recv().await {
            if finished {
                after_finish.push(event.clone());
            }
            finished |= matches!(event, StageEvent::Finished { .. });
        }
    })
    .await;
    assert!(drained.is_ok(), "the event stream ends");
    assert!(finished, "the stage's Finished event was sent");
    assert!(
        after_finish.is_empty(),
        "the abandoned attempt reported into the run's stream after the stage finished: \
         {after_finish:?}"
    );
}

/// The event stream ends with the run even while a timed-out blocking attempt, still holding its
/// stage context, runs on (LangGraph's `stream` ends with the run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_ends_with_the_run_while_an_abandoned_attempt_holds_its_context() {
    let stale = stale_pipeline();
    let (sink, mut events) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        stale
            .pipeline
            .run_with(RunOptions::default().with_events(sink)),
    )
    .await
    .expect("the run does not wait for the abandoned thread");
    assert!(report.is_success(), "{report}");
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        while events.recv().await.is_some() {}
    })
    .await;
    // Let the abandoned thread end whatever happened.
    stale.release.send(()).unwrap();
    wait_until("the abandoned attempt to end", || {
        stale.finished_late.load(Ordering::SeqCst)
    })
    .await;
    assert!(
        drained.is_ok(),
        "the event stream stayed open after the run ended, held by the abandoned attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_bounds_each_attempt_and_the_retry_that_fits_succeeds() {
    let pipeline = Pipeline::builder()
        .stage("node", |ctx: StageContext| async move {
            if ctx.attempt() < 3 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok::<_, StageError>(ctx.attempt())
        })
        .timeout(Duration::from_millis(100))
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(
        report.status("node"),
        Some(&StageStatus::Succeeded { attempts: 3 })
    );
    assert_eq!(*report.artifact::<u32>("node").unwrap(), 3);
    let failed = &report.stage("node").unwrap().failed_attempts;
    assert_eq!(
        failed
            .iter()
            .map(|record| record.attempt)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(failed
        .iter()
        .all(|record| matches!(record.failure, AttemptFailure::TimedOut { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_stage_timing_out_on_every_attempt_ends_timed_out_with_its_attempts_counted() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("node", move |_: StageContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, StageError>(())
            }
        })
        .timeout(Duration::from_millis(10))
        .retry(RetryPolicy::attempts(4).with_backoff(Backoff::fixed(Duration::from_millis(5))))
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["node"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(
        report.status("node"),
        Some(&StageStatus::TimedOut { attempts: 4 })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(report.stage("node").unwrap().failed_attempts.len(), 4);
    assert!(matches!(
        report.status("after"),
        Some(StageStatus::Skipped { .. })
    ));
}

/// `test_arun_with_retry_run_timeout_is_not_refreshed_by_heartbeat`: progress reports do not
/// extend the attempt's timeout.
#[tokio::test(start_paused = true)]
async fn progress_reports_do_not_refresh_a_stage_timeout() {
    let pipeline = Pipeline::builder()
        .stage("beating", |ctx: StageContext| async move {
            for beat in 1..=50 {
                ctx.progress(beat, 50);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let (sink, mut events) = EventSink::channel();
    let report = pipeline
        .run_with(RunOptions::default().with_events(sink))
        .await;
    assert_eq!(
        report.status("beating"),
        Some(&StageStatus::TimedOut { attempts: 1 })
    );
    let mut beats = 0;
    while let Ok(event) = events.try_recv() {
        beats += u32::from(matches!(event, StageEvent::Progress { .. }));
    }
    assert!(
        (5..=12).contains(&beats),
        "about ten beats before the timeout, got {beats}"
    );
}

/// `test_set_node_defaults_timeout_per_node_wins`.
#[tokio::test(start_paused = true)]
async fn a_stages_own_timeout_wins_over_the_pipeline_default_and_no_timeout_opts_out() {
    let sleeper = |_: StageContext| async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, StageError>(())
    };
    let pipeline = Pipeline::builder()
        .default_timeout(Duration::from_millis(50))
        .stage("defaulted", sleeper)
        .stage("own", sleeper)
        .timeout(Duration::from_secs(1))
        .stage("unbounded", sleeper)
        .no_timeout()
        .build()
        .unwrap();
    let report = pipeline
        .run_with(
            RunOptions::default().with_failure(hivekit_swarm::FailurePolicy::ContinueIndependent),
        )
        .await;
    assert_eq!(
        report.status("defaulted"),
        Some(&StageStatus::TimedOut { attempts: 1 })
    );
    assert_eq!(
        report.status("own"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
    assert_eq!(
        report.status("unbounded"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
}
