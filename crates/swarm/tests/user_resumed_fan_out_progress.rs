//! The progress of a durable fan-out resumed after some items were recorded: the items read back
//! count as done, so the live items' `done` counts rise to the fan-out's total, and the summary
//! says how many were read back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    EventSink, FanOut, Pipeline, RunOptions, StageContext, StageError, StageEvent,
};

fn pipeline(broken: Arc<AtomicBool>) -> Pipeline {
    Pipeline::builder()
        .stage("review", move |ctx: StageContext| {
            let broken = broken.clone();
            async move {
                let report = ctx
                    .durable_fan_out(0..8_u32, FanOut::new(1), move |item| {
                        let broken = broken.load(Ordering::SeqCst);
                        async move {
                            if broken && item >= 5 {
                                return Err(StageError::permanent("down"));
                            }
                            Ok::<_, StageError>(item)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.into_successes().sum::<u32>())
            }
        })
        .durable()
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_resumed_fan_out_counts_the_items_read_back_as_done() {
    let broken = Arc::new(AtomicBool::new(true));
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline(broken.clone()), "r", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("started");
    assert!(!first.report().is_success());
    broken.store(false, Ordering::SeqCst);

    let (sink, mut events) = EventSink::channel();
    let resumed = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(
            &pipeline(broken),
            "r",
            RunOptions::default().with_events(sink),
        ),
    )
    .await
    .expect("ended")
    .expect("resumed");
    assert!(resumed.report().is_success(), "{resumed:?}");
    assert_eq!(*resumed.report().artifact::<u32>("review").unwrap(), 28);
    let summary = resumed.report().stage("review").unwrap().fan_out[0].clone();
    assert_eq!(summary.resumed, 5, "{summary:?}");
    let mut started = Vec::new();
    let mut finished = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            StageEvent::ItemStarted { item, total, .. } => started.push((item, total)),
            StageEvent::ItemFinished {
                item, done, total, ..
            } => finished.push((item, done, total)),
            _ => {}
        }
    }
    assert_eq!(
        started,
        [(5, 8), (6, 8), (7, 8)],
        "only the missing items start"
    );
    assert_eq!(
        finished,
        [(5, 6, 8), (6, 7, 8), (7, 8, 8)],
        "done counts the items read back and rises to the total"
    );
}
