//! Events: started, retried, finished, skipped, cancelled, in a consistent order.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    AttemptFailure, Backoff, EventSink, Pipeline, RetryPolicy, RunOptions, StageContext,
    StageError, StageEvent, StageStatus,
};
use parking_lot::Mutex;
use support::noop;

#[tokio::test(start_paused = true)]
async fn every_stage_event_is_reported_in_order() {
    let pipeline = Pipeline::builder()
        .stage("flaky", |ctx: StageContext| async move {
            if ctx.attempt() == 1 {
                Err(StageError::msg("first try"))
            } else {
                Ok(())
            }
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_secs(1))))
        .stage("broken", |_: StageContext| async {
            Err::<(), _>(StageError::msg("broken"))
        })
        .after(["flaky"])
        .stage("downstream", noop)
        .after(["broken"])
        .build()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = EventSink::callback({
        let log = log.clone();
        move |event| log.lock().push(event)
    });
    let _report = pipeline
        .run_with(RunOptions::default().with_events(sink))
        .await;
    let events = log.lock().clone();
    let summary: Vec<String> = events
        .iter()
        .map(|event| match event {
            StageEvent::Started { stage } => format!("started {stage}"),
            StageEvent::Retried {
                stage,
                next_attempt,
                failure,
                delay,
            } => {
                assert_eq!(
                    *failure,
                    AttemptFailure::Error {
                        error: StageError::msg("first try")
                    }
                );
                format!("retried {stage} {next_attempt} {delay:?}")
            }
            StageEvent::Finished { stage, status, .. } => {
                format!("finished {stage} {}", status.is_success())
            }
            StageEvent::Skipped { stage, .. } => format!("skipped {stage}"),
            StageEvent::Cancelled { stage, .. } => format!("cancelled {stage}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "started flaky",
            "retried flaky 2 1s",
            "finished flaky true",
            "started broken",
            "finished broken false",
            "skipped downstream",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn cancelled_stages_are_reported_through_a_channel() {
    let pipeline = Pipeline::builder()
        .stage("sleeps", |_: StageContext| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, StageError>(())
        })
        .stage("fails", |_: StageContext| async {
            Err::<(), _>(StageError::permanent("no"))
        })
        .build()
        .unwrap();
    let (sink, mut receiver) = EventSink::channel();
    let report = pipeline
        .run_with(RunOptions::default().with_events(sink))
        .await;
    assert_eq!(report.status("sleeps"), Some(&StageStatus::Cancelled));
    let mut cancelled = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        if let StageEvent::Cancelled { stage, .. } = event {
            cancelled.push(stage.to_string());
        }
    }
    assert_eq!(cancelled, ["sleeps"]);
}

#[tokio::test(start_paused = true)]
async fn a_callback_that_panics_loses_its_events_not_the_run() {
    let pipeline = Pipeline::builder()
        .stage("first", noop)
        .stage("spawned", noop)
        .spawn()
        .after(["first"])
        .stage("last", noop)
        .after(["spawned"])
        .build()
        .unwrap();
    let calls = Arc::new(Mutex::new(0));
    let sink = EventSink::callback({
        let calls = calls.clone();
        move |_| {
            *calls.lock() += 1;
            panic!("the progress bar broke");
        }
    });
    let report = pipeline
        .run_with(RunOptions::default().with_events(sink))
        .await;
    assert!(report.is_success(), "{report}");
    // Every event was still offered: a start and a finish per stage.
    assert_eq!(*calls.lock(), 6);
}
