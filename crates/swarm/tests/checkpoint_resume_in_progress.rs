//! A resume of a run still in progress on the same handle is refused (`RunInProgress`) rather
//! than run beside it. Before, it started the stage in flight a second time.

#[path = "support/gate.rs"]
mod gate;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_run_still_running_on_the_same_handle_does_not_run_its_stage_twice() {
    let (gate, latch) = gate::gate();
    let sends = Arc::new(AtomicUsize::new(0));
    let pipeline = {
        let sends = sends.clone();
        Pipeline::builder()
            .stage("send_email", move |_: StageContext| {
                let (sends, latch) = (sends.clone(), latch.clone());
                async move {
                    sends.fetch_add(1, Ordering::SeqCst);
                    latch.pass("send_email").await;
                    Ok::<_, StageError>(())
                }
            })
            .build()
            .unwrap()
    };
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::spawn({
        let (durable, pipeline) = (durable.clone(), pipeline.clone());
        async move { durable.start(&pipeline, "job", RunOptions::default()).await }
    });
    assert_eq!(gate.reached().await, "send_email");
    let second = tokio::spawn({
        let (durable, pipeline) = (durable.clone(), pipeline.clone());
        async move {
            durable
                .resume(&pipeline, "job", RunOptions::default())
                .await
        }
    });
    // Refused at once: the handle knows the run is in progress.
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the resume answered at once")
        .unwrap();
    assert_eq!(
        second.unwrap_err(),
        CheckpointError::RunInProgress {
            run: "job".to_owned()
        }
    );
    gate.open(1);
    let first = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("the first run ended")
        .unwrap()
        .expect("started");
    assert!(first.report().is_success());
    assert_eq!(sends.load(Ordering::SeqCst), 1, "the stage ran once");
    // Once the run has ended it may be resumed (nothing left to run).
    let again = durable
        .resume(&pipeline, "job", RunOptions::default())
        .await
        .expect("an ended run resumes");
    assert!(again.report().is_success());
    assert_eq!(sends.load(Ordering::SeqCst), 1);
}
