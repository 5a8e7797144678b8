//! Checkpoint stores: the in-memory one and the redb one on disk keep runs, list and delete them,
//! and keep the store bounded.

use hivekit_swarm::checkpoint::{
    CheckpointStore, Durable, MemoryStore, RedbStore, Retention, StoreError,
};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

fn exercise(store: &dyn CheckpointStore) {
    assert!(store.runs().expect("runs").is_empty());
    assert_eq!(store.load_run("a").expect("load"), None);
    store.create_run("b", 2, b"header b").expect("create");
    store.create_run("a", 1, b"header a").expect("create");
    store.put_record("a", "s:x", b"1").expect("put");
    store.put_record("a", "s:y", b"2").expect("put");
    store.put_record("a", "s:x", b"3").expect("replace");
    store.put_record("b", "s:x", b"4").expect("put");
    let a = store.load_run("a").expect("load").expect("a");
    assert_eq!(a.header, b"header a");
    assert_eq!(
        a.records,
        vec![
            ("s:x".to_owned(), b"3".to_vec()),
            ("s:y".to_owned(), b"2".to_vec())
        ]
    );
    let runs: Vec<_> = store
        .runs()
        .expect("runs")
        .into_iter()
        .map(|entry| entry.run)
        .collect();
    assert_eq!(runs, ["a", "b"], "oldest first");
    // Creating a run again starts it over.
    store.create_run("a", 3, b"again").expect("create");
    assert!(store
        .load_run("a")
        .expect("load")
        .expect("a")
        .records
        .is_empty());
    assert!(store.delete_run("b").expect("delete"));
    assert!(!store.delete_run("b").expect("delete"));
    assert_eq!(store.load_run("b").expect("load"), None);
    assert_eq!(
        store.put_record("b", "k", b""),
        Err(StoreError::UnknownRun { run: "b".into() }),
        "a record never outlives its run"
    );
}

#[test]
fn the_memory_store_keeps_lists_replaces_and_deletes_runs() {
    exercise(&MemoryStore::new());
}

#[test]
fn the_redb_store_keeps_lists_replaces_and_deletes_runs_and_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runs.redb");
    {
        let store = RedbStore::open(&path).expect("open");
        exercise(&store);
        // The file is locked while open.
        assert!(matches!(
            RedbStore::open(&path),
            Err(StoreError::Open { .. })
        ));
    }
    let store = RedbStore::open(&path).expect("reopen");
    assert_eq!(
        store.load_run("a").expect("load").expect("a").header,
        b"again"
    );
}

#[test]
fn opening_a_file_that_is_not_a_store_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("junk.redb");
    std::fs::write(&path, vec![0x5a; 8192]).expect("write");
    let error = RedbStore::open(&path).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot open checkpoint store at "),
        "{error}"
    );
}

#[tokio::test]
async fn retention_keeps_at_most_max_runs_deleting_the_oldest_first() {
    let store = MemoryStore::new();
    let pipeline = Pipeline::builder()
        .stage("only", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build()
        .expect("valid");
    for (created, run) in ["r1", "r2", "r3"].into_iter().enumerate() {
        store
            .create_run(run, created as u64, b"{}")
            .expect("create");
    }
    let durable = Durable::new(store.clone()).with_retention(Retention::max_runs(3));
    let _ = durable
        .start(&pipeline, "r4", RunOptions::default())
        .await
        .expect("started");
    let runs: Vec<_> = durable
        .runs()
        .expect("runs")
        .into_iter()
        .map(|entry| entry.run)
        .collect();
    assert_eq!(runs, ["r2", "r3", "r4"]);
    assert!(durable.delete("r2").expect("delete"));
    assert_eq!(durable.runs().expect("runs").len(), 2);

    let forgetful = Durable::new(store).with_retention(Retention::max_runs(3).delete_succeeded());
    let _ = forgetful
        .start(&pipeline, "r5", RunOptions::default())
        .await
        .expect("started");
    assert!(forgetful
        .runs()
        .expect("runs")
        .iter()
        .all(|entry| entry.run != "r5"));
}
