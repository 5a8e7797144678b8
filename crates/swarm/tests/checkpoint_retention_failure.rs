//! A start whose retention deletions fail still runs the run it created (the failure is logged
//! and only costs space until the next start or prune). Before, the start returned
//! `CheckpointError::Store` after creating the run, which then could not be started again
//! (`RunExists`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{
    CheckpointError, CheckpointStore, Durable, MemoryStore, Retention, RunEntry, StoreError,
    StoredRun,
};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

/// A memory store whose `delete_run` fails while `failing` is set.
#[derive(Clone, Default)]
struct FlakyDeletes {
    inner: MemoryStore,
    failing: Arc<AtomicBool>,
}

impl CheckpointStore for FlakyDeletes {
    fn create_run(&self, run: &str, created_ms: u64, header: &[u8]) -> Result<(), StoreError> {
        self.inner.create_run(run, created_ms, header)
    }
    fn create_run_if_absent(
        &self,
        run: &str,
        created_ms: u64,
        header: &[u8],
    ) -> Result<bool, StoreError> {
        self.inner.create_run_if_absent(run, created_ms, header)
    }
    fn put_record(&self, run: &str, key: &str, record: &[u8]) -> Result<(), StoreError> {
        self.inner.put_record(run, key, record)
    }
    fn load_run(&self, run: &str) -> Result<Option<StoredRun>, StoreError> {
        self.inner.load_run(run)
    }
    fn runs(&self) -> Result<Vec<RunEntry>, StoreError> {
        self.inner.runs()
    }
    fn delete_run(&self, run: &str) -> Result<bool, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                run: run.to_owned(),
                message: "disk busy".to_owned(),
            });
        }
        self.inner.delete_run(run)
    }
}

#[tokio::test]
async fn a_start_whose_retention_fails_runs_and_the_next_start_deletes_what_it_could_not() {
    let pipeline = Pipeline::builder()
        .stage("only", |_: StageContext| async {
            Ok::<_, StageError>(1_u32)
        })
        .durable()
        .build()
        .unwrap();
    let store = FlakyDeletes::default();
    store.inner.create_run("old", 0, b"{}").unwrap();
    let durable = Durable::new(store.clone()).with_retention(Retention::max_runs(1));
    store.failing.store(true, Ordering::SeqCst);
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "job", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("a failed deletion does not fail the start");
    assert!(first.report().is_success());
    // The old run could not be deleted: it only costs space.
    let runs: Vec<String> = durable
        .runs()
        .unwrap()
        .into_iter()
        .map(|entry| entry.run)
        .collect();
    assert_eq!(runs, ["old", "job"]);
    // The run the start reported on exists and is the one that ran.
    let again = durable.start(&pipeline, "job", RunOptions::default()).await;
    assert!(
        matches!(again, Err(CheckpointError::RunExists { .. })),
        "{again:?}"
    );
    // The disk recovers; the next start applies the retention.
    store.failing.store(false, Ordering::SeqCst);
    let next = durable
        .start(&pipeline, "next", RunOptions::default())
        .await
        .expect("started");
    assert!(next.report().is_success());
    let runs: Vec<String> = durable
        .runs()
        .unwrap()
        .into_iter()
        .map(|entry| entry.run)
        .collect();
    assert_eq!(runs, ["next"]);
}
