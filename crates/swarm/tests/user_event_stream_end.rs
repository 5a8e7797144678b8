//! The event channel of a run is closed when the run ends (LangGraph's `stream` ends with the
//! run): a consumer looping `while let Some(event) = events.recv().await` must not hang, whatever
//! kinds of stages the run had and however it ended. The events deciding stages equal the report.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    EventSink, FanOut, LoopPolicy, Pipeline, Route, RunOptions, RunOutcome, RunReport,
    StageContext, StageError, StageEvent, StageStatus,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

/// Every event until the channel closes; fails if it does not close within a few seconds.
async fn drain(mut events: UnboundedReceiver<StageEvent>) -> Vec<StageEvent> {
    tokio::time::timeout(Duration::from_secs(5), async move {
        let mut all = Vec::new();
        while let Some(event) = events.recv().await {
            all.push(event);
        }
        all
    })
    .await
    .expect("the event stream ends when the run has ended")
}

/// Stage-deciding events (finished, skipped, cancelled) per stage agree with the report.
fn check_against(report: &RunReport, events: &[StageEvent]) {
    let mut decided: Vec<&str> = events
        .iter()
        .filter(|event| {
            matches!(
                event,
                StageEvent::Finished { .. }
                    | StageEvent::Skipped { .. }
                    | StageEvent::Cancelled { .. }
            )
        })
        .map(StageEvent::stage)
        .collect();
    decided.sort_unstable();
    let mut stages: Vec<&str> = report.stages().iter().map(|stage| &*stage.name).collect();
    stages.sort_unstable();
    assert_eq!(decided, stages, "one deciding event per stage: {events:?}");
}

fn every_kind() -> Pipeline {
    let body = Pipeline::builder()
        .stage("step", |_: StageContext| async {
            Ok::<_, StageError>(1_u32)
        })
        .build()
        .unwrap();
    Pipeline::builder()
        .stage("inline", |_: StageContext| async {
            Ok::<_, StageError>(1_u32)
        })
        .durable()
        .stage("spawned", |_: StageContext| async {
            tokio::task::yield_now().await;
            Ok::<_, StageError>(2_u32)
        })
        .spawn()
        .durable()
        .after(["inline"])
        .stage("blocking", |_: StageContext| async {
            Ok::<_, StageError>(3_u32)
        })
        .blocking()
        .durable()
        .after(["inline"])
        .stage("fan", |ctx: StageContext| async move {
            let report = ctx
                .durable_fan_out(vec![1_u32, 2, 3], FanOut::new(2), |item| async move {
                    Ok::<_, StageError>(item * 2)
                })
                .await?;
            Ok::<_, StageError>(report.into_successes().sum::<u32>())
        })
        .durable()
        .after(["spawned", "blocking"])
        .repeat("loop", body, LoopPolicy::new(3))
        .after(["fan"])
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["taken"]))
        })
        .after(["loop"])
        .stage("taken", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["route"])
        .stage("not_taken", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["route"])
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_of_a_run_with_every_kind_of_stage_ends_with_the_run() {
    let (sink, events) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        every_kind().run_with(RunOptions::default().with_events(sink)),
    )
    .await
    .expect("the run ended");
    assert!(report.is_success(), "{report:?}");
    let events = drain(events).await;
    check_against(&report, &events);
    assert!(events
        .iter()
        .any(|event| matches!(event, StageEvent::IterationFinished { iteration: 3, .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_of_a_durable_run_and_of_its_resume_end_with_them() {
    let pipeline = every_kind();
    let durable = Durable::new(MemoryStore::new());
    let (sink, events) = EventSink::channel();
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "r", RunOptions::default().with_events(sink)),
    )
    .await
    .expect("the run ended")
    .expect("started");
    let events = drain(events).await;
    check_against(first.report(), &events);

    let (sink, events) = EventSink::channel();
    let again = tokio::time::timeout(
        Duration::from_secs(10),
        durable.resume(&pipeline, "r", RunOptions::default().with_events(sink)),
    )
    .await
    .expect("the resume ended")
    .expect("resumed");
    assert!(again.report().is_success());
    let events = drain(events).await;
    check_against(again.report(), &events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_of_a_cancelled_run_with_hung_spawned_stages_ends_with_the_run() {
    let pipeline = Pipeline::builder()
        .stage("hung_spawned", |_: StageContext| {
            std::future::pending::<Result<(), StageError>>()
        })
        .spawn()
        .stage("hung_inline", |_: StageContext| {
            std::future::pending::<Result<(), StageError>>()
        })
        .stage("never", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["hung_spawned", "hung_inline"])
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let (sink, mut events) = EventSink::channel();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            pipeline
                .run_with(RunOptions::default().with_events(sink).with_cancel(cancel))
                .await
        }
    });
    // Both hung stages have started: then cancel.
    let mut started = 0;
    let mut seen = Vec::new();
    while started < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("an event")
            .expect("the run is live");
        if matches!(event, StageEvent::Started { .. }) {
            started += 1;
        }
        seen.push(event);
    }
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run ended")
        .unwrap();
    seen.extend(drain(events).await);
    check_against(&report, &seen);
    assert_eq!(
        report.count(|status| matches!(status, StageStatus::Cancelled)),
        2,
        "{report:?}"
    );
}

#[tokio::test]
async fn the_stream_of_a_failed_fail_fast_run_ends_with_the_run() {
    let pipeline = Pipeline::builder()
        .stage("broken", |_: StageContext| async {
            Err::<(), _>(StageError::permanent("no"))
        })
        .stage("hung", |_: StageContext| {
            std::future::pending::<Result<(), StageError>>()
        })
        .spawn()
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["broken"])
        .build()
        .unwrap();
    let (sink, events) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_with(RunOptions::default().with_events(sink)),
    )
    .await
    .expect("the run ended");
    assert!(!report.is_success());
    let events = drain(events).await;
    check_against(&report, &events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_of_a_run_that_abandoned_a_blocking_stage_ends_with_the_run() {
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let pipeline = Pipeline::builder()
        .stage("sync", move |_: StageContext| {
            let released = released.clone();
            async move {
                // Synchronous work that ends when the test says so (at most ten seconds).
                let _ = released
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(10));
                Ok::<_, StageError>(())
            }
        })
        .blocking()
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let (sink, mut events) = EventSink::channel();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            pipeline
                .run_with(RunOptions::default().with_cancel(cancel).with_events(sink))
                .await
        }
    });
    let started = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event")
        .expect("live");
    assert!(matches!(started, StageEvent::Started { .. }));
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run ended at once")
        .unwrap();
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        while events.recv().await.is_some() {}
    })
    .await;
    let _ = release.send(());
    assert!(
        drained.is_ok(),
        "the event stream stayed open after the run ended"
    );
}
