//! The redb store: run ids that are prefixes of each other, very long ids, and a store used after
//! an error.

use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointStore, Durable, RedbStore, StoreError};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

fn pipeline() -> Pipeline {
    Pipeline::builder()
        .stage("a", |_: StageContext| {
            std::future::ready(Ok::<_, StageError>(String::from("x")))
        })
        .durable()
        .stage("b", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!("{}y", ctx.input::<String>("a")?))
        })
        .durable()
        .after(["a"])
        .build()
        .expect("valid")
}

#[tokio::test]
async fn deleting_a_run_keeps_the_records_of_runs_whose_ids_extend_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("runs.redb")).unwrap();
    let durable = Durable::new(store.clone());
    let pipeline = pipeline();
    let long = "j".repeat(20_000);
    let ids = ["job", "job\0", "job-2", "jo", "", long.as_str()];
    for id in ids {
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            durable.start(&pipeline, id, RunOptions::default()),
        )
        .await
        .expect("no hang")
        .expect("starts");
        assert!(outcome.report().is_success());
    }
    assert!(durable.delete("job").unwrap());
    assert!(!durable.delete("job").unwrap());
    for id in ["job\0", "job-2", "jo", "", long.as_str()] {
        let stored = store.load_run(id).unwrap().expect("still there");
        assert_eq!(stored.records.len(), 2, "run {:?}", &id[..id.len().min(8)]);
        let resumed = durable
            .resume(&pipeline, id, RunOptions::default())
            .await
            .expect("resumes");
        assert!(resumed.report().stage("b").unwrap().resumed);
    }
    // A record for a deleted run is refused, and the store goes on working.
    assert!(matches!(
        store.put_record("job", "s:a", b"{}"),
        Err(StoreError::UnknownRun { .. })
    ));
    let again = durable
        .start(&pipeline, "job", RunOptions::default())
        .await
        .expect("the id is free again");
    assert!(again.report().is_success());
    assert_eq!(durable.runs().unwrap().len(), ids.len());
    drop(durable);
    drop(store);
    let reopened = RedbStore::open(dir.path().join("runs.redb")).unwrap();
    assert_eq!(reopened.runs().unwrap().len(), ids.len());
    assert_eq!(
        reopened.runs().unwrap().last().unwrap().run,
        "job",
        "oldest first: the restarted run is the newest"
    );
}
