//! Streamed progress of a resumed durable run (LangGraph: stream a resumed thread): the events
//! keep the order a run promises, every stage is decided once with `done` rising by one to the
//! total, and the report marks what was restored.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{EventSink, Pipeline, RunOptions, StageContext, StageError, StageEvent};

/// fetch -> parse -> publish; publish fails while `broken` is set.
fn pipeline(broken: Arc<AtomicBool>, runs: Arc<AtomicUsize>) -> Pipeline {
    let fetch_runs = runs.clone();
    Pipeline::builder()
        .stage("fetch", move |_: StageContext| {
            fetch_runs.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, StageError>(String::from("page")) }
        })
        .durable()
        .stage("parse", move |ctx: StageContext| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, StageError>(ctx.input::<String>("fetch")?.len()) }
        })
        .after(["fetch"])
        .durable()
        .stage("publish", move |ctx: StageContext| {
            let broken = broken.clone();
            async move {
                if broken.load(Ordering::SeqCst) {
                    return Err(StageError::msg("the site is down"));
                }
                Ok::<_, StageError>(*ctx.input::<usize>("parse")?)
            }
        })
        .after(["parse"])
        .durable()
        .build()
        .unwrap()
}

/// Checks the order a run promises and returns, per stage, how many events decided it.
fn check_order(events: &[StageEvent], stages: &[&str]) -> Vec<usize> {
    let mut decided = vec![0; stages.len()];
    let mut done_so_far = 0;
    for (at, event) in events.iter().enumerate() {
        let index = stages
            .iter()
            .position(|stage| *stage == event.stage())
            .unwrap_or_else(|| panic!("unknown stage in {event:?}"));
        match event {
            StageEvent::Started { .. } => {
                assert_eq!(decided[index], 0, "{event:?} after the stage was decided");
                // Dependencies come earlier in this chain: each must be decided before.
                for dependency in 0..index {
                    assert_eq!(
                        decided[dependency], 1,
                        "{event:?} before {}",
                        stages[dependency]
                    );
                }
            }
            StageEvent::Finished { done, total, .. }
            | StageEvent::Skipped { done, total, .. }
            | StageEvent::Cancelled { done, total, .. } => {
                decided[index] += 1;
                done_so_far += 1;
                assert_eq!(
                    (*done, *total),
                    (done_so_far, stages.len()),
                    "event {at}: {event:?}"
                );
            }
            _ => {}
        }
    }
    decided
}

#[tokio::test]
async fn a_resumed_run_streams_each_stage_decided_once_in_order_with_done_rising_to_the_total() {
    let broken = Arc::new(AtomicBool::new(true));
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = pipeline(broken.clone(), runs.clone());
    let durable = Durable::new(MemoryStore::new());
    let stages = ["fetch", "parse", "publish"];

    let (sink, mut receiver) = EventSink::channel();
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "job", RunOptions::default().with_events(sink)),
    )
    .await
    .expect("the run ended")
    .unwrap();
    assert!(!first.report().is_success());
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    assert_eq!(check_order(&events, &stages), [1, 1, 1]);
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    broken.store(false, Ordering::SeqCst);
    let (sink, mut receiver) = EventSink::channel();
    let resumed = tokio::time::timeout(
        Duration::from_secs(10),
        durable.resume(&pipeline, "job", RunOptions::default().with_events(sink)),
    )
    .await
    .expect("the run ended")
    .unwrap();
    let report = resumed.report();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "fetch and parse were restored, not rerun"
    );
    let resumed_marks: Vec<bool> = stages
        .iter()
        .map(|stage| report.stage(stage).unwrap().resumed)
        .collect();
    assert_eq!(resumed_marks, [true, true, false]);
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    assert_eq!(
        check_order(&events, &stages),
        [1, 1, 1],
        "each stage decided once in the resumed run's stream: {events:?}"
    );
}
