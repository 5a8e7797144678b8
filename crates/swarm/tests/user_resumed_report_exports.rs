//! The report of a resumed run is as auditable as an uninterrupted run's: restored stages'
//! exported artifacts are in its JSON, marked resumed, and read back.

use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, RunReport, StageContext, StageError};

fn pipeline(broken: bool) -> Pipeline {
    Pipeline::builder()
        .stage("findings", |_: StageContext| async {
            Ok::<_, StageError>(vec![String::from("unused import"), String::from("typo")])
        })
        .durable()
        .export()
        .stage("verdict", move |ctx: StageContext| async move {
            if broken {
                return Err(StageError::permanent("not yet"));
            }
            Ok::<_, StageError>(ctx.input::<Vec<String>>("findings")?.len())
        })
        .durable()
        .export()
        .after(["findings"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn restored_artifacts_are_exported_and_marked_resumed_in_the_json() {
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline(true), "r", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("started");
    assert!(!first.report().is_success());
    let resumed = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&pipeline(false), "r", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("resumed");
    let json = resumed.report().to_json().unwrap();
    let back = RunReport::from_json(&json).unwrap();
    assert_eq!(
        back.artifact_json("findings").unwrap(),
        serde_json::json!(["unused import", "typo"])
    );
    assert_eq!(back.artifact_json("verdict").unwrap(), serde_json::json!(2));
    assert!(back.stage("findings").unwrap().resumed);
    assert!(!back.stage("verdict").unwrap().resumed);
    assert!(back.is_success());
    assert_eq!(
        back.to_json().unwrap(),
        json,
        "a report read back writes the same JSON"
    );
}
