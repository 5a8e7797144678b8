//! Runs started one after another keep their start order in the store, within one millisecond
//! too: retention deletes the oldest first and `runs` lists them in start order. Before, runs
//! started in the same millisecond tied on `created_ms` and were ordered by id: with
//! `max_runs(2)`, starting `z`, `y`, `x` deleted `y` (the newer) and kept `z` (the oldest).

use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore, Retention};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

#[tokio::test]
async fn runs_started_in_the_same_millisecond_are_deleted_oldest_first() {
    let pipeline = Pipeline::builder()
        .stage("only", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build()
        .unwrap();
    // Several rounds: quick starts, most within one millisecond of each other.
    for _ in 0..20 {
        let durable = Durable::new(MemoryStore::new()).with_retention(Retention::max_runs(2));
        for run in ["z", "y", "x"] {
            let outcome = tokio::time::timeout(
                Duration::from_secs(5),
                durable.start(&pipeline, run, RunOptions::default()),
            )
            .await
            .expect("ended")
            .expect("started");
            assert!(outcome.report().is_success());
        }
        let runs = durable.runs().unwrap();
        let ids: Vec<&str> = runs.iter().map(|entry| entry.run.as_str()).collect();
        assert_eq!(ids, ["y", "x"], "z was started first: it is the oldest");
        assert!(runs[0].created_ms < runs[1].created_ms);
    }
}
