//! Durable runs with the run ids users pass: empty, unicode, with a NUL byte.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

fn counting_pipeline(runs: &Arc<AtomicUsize>) -> Pipeline {
    let runs = runs.clone();
    Pipeline::builder()
        .stage("work", move |_: StageContext| {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok::<_, StageError>(7u64))
        })
        .durable()
        .build()
        .expect("valid durable pipeline")
}

#[tokio::test]
async fn empty_and_unicode_run_ids_start_and_resume() {
    let durable = Durable::new(MemoryStore::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let pipeline = counting_pipeline(&runs);
    for run_id in ["", "ジョブ 1/2 ✓", "a\0b"] {
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            durable.start(&pipeline, run_id, RunOptions::default()),
        )
        .await
        .expect("no hang")
        .expect("any string is a run id");
        assert!(outcome.report().is_success());
        let resumed = tokio::time::timeout(
            Duration::from_secs(5),
            durable.resume(&pipeline, run_id, RunOptions::default()),
        )
        .await
        .expect("no hang")
        .expect("resumes");
        assert_eq!(
            *resumed.report().artifact::<u64>("work").expect("artifact"),
            7
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "resuming a finished run runs nothing again"
    );
    assert_eq!(durable.runs().expect("runs").len(), 3);
}
