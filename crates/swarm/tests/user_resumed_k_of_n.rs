//! A durable k-of-n fan-out resumed after it had met its quorum: the items read back already meet
//! it, so no item runs again and the stage gets the same successes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{FanOut, Pipeline, RunOptions, StageContext, StageError};

fn pipeline(calls: Arc<AtomicUsize>, broken: Arc<AtomicBool>) -> Pipeline {
    Pipeline::builder()
        .stage("quorum", move |ctx: StageContext| {
            let (calls, broken) = (calls.clone(), broken.clone());
            async move {
                let report = ctx
                    .durable_fan_out(0..8_u32, FanOut::new(1).require(3), |item| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, StageError>(item) }
                    })
                    .await?;
                // The stage fails after its fan-out on the first run.
                if broken.load(Ordering::SeqCst) {
                    return Err(StageError::permanent("the writer is down"));
                }
                Ok::<_, StageError>(report.into_successes().collect::<Vec<_>>())
            }
        })
        .durable()
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_fan_out_whose_quorum_was_recorded_runs_no_item_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicBool::new(true));
    let pipeline = pipeline(calls.clone(), broken.clone());
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("started");
    assert!(!first.report().is_success());
    let ran_first = calls.load(Ordering::SeqCst);
    assert_eq!(ran_first, 3, "one at a time, the quorum stops it at three");

    broken.store(false, Ordering::SeqCst);
    let resumed = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("resumed");
    assert!(resumed.report().is_success(), "{resumed:?}");
    assert_eq!(calls.load(Ordering::SeqCst), ran_first, "no item ran again");
    assert_eq!(
        *resumed.report().artifact::<Vec<u32>>("quorum").unwrap(),
        [0, 1, 2]
    );
    let summary = &resumed.report().stage("quorum").unwrap().fan_out[0];
    assert_eq!((summary.resumed, summary.succeeded), (3, 3), "{summary:?}");
}
