//! A stage that ran before it was declared durable has a record without an artifact: a resume
//! with the pipeline that now declares it durable runs it again (it has nothing to restore), as
//! the module docs say of such stages. Before, a missing artifact was read as `null`: an
//! `Option` stage was restored as `None` though it returned `Some` (its dependents ran on a value
//! it never produced), and a `String` stage failed every resume with `CorruptRecord`.

use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("ended in time")
}

fn number(_: StageContext) -> std::future::Ready<Result<u32, StageError>> {
    std::future::ready(Ok(1))
}

fn failing(_: StageContext) -> std::future::Ready<Result<u32, StageError>> {
    std::future::ready(Err(StageError::permanent("not yet")))
}

async fn failed_run(durable: &Durable, pipeline: &Pipeline) {
    let first = bounded(durable.start(pipeline, "r", RunOptions::default()))
        .await
        .expect("started");
    assert!(!first.report().is_success());
}

#[tokio::test]
async fn a_stage_made_durable_after_the_checkpoint_runs_again_rather_than_failing_the_resume() {
    let durable = Durable::new(MemoryStore::new());
    // `text` succeeded without being durable: its record holds no artifact.
    let before = Pipeline::builder()
        .stage("text", |_: StageContext| async {
            Ok::<_, StageError>(String::from("t"))
        })
        .stage("next", failing)
        .durable()
        .after(["text"])
        .build()
        .unwrap();
    failed_run(&durable, &before).await;
    let after = Pipeline::builder()
        .stage("text", |_: StageContext| async {
            Ok::<_, StageError>(String::from("t"))
        })
        .durable()
        .stage("next", number)
        .durable()
        .after(["text"])
        .build()
        .unwrap();
    let resumed = bounded(durable.resume(&after, "r", RunOptions::default())).await;
    let resumed = resumed.expect("a stage with no recorded artifact runs again");
    assert!(resumed.report().is_success(), "{resumed:?}");
    assert!(!resumed.report().stage("text").unwrap().resumed);
}

#[tokio::test]
async fn a_stage_made_durable_after_the_checkpoint_is_not_restored_as_a_null_artifact() {
    let durable = Durable::new(MemoryStore::new());
    let before = Pipeline::builder()
        .stage("found", |_: StageContext| async {
            Ok::<_, StageError>(Some(String::from("a finding")))
        })
        .stage("next", |_: StageContext| async {
            Err::<Option<String>, _>(StageError::permanent("not yet"))
        })
        .durable()
        .after(["found"])
        .build()
        .unwrap();
    failed_run(&durable, &before).await;
    let after = Pipeline::builder()
        .stage("found", |_: StageContext| async {
            Ok::<_, StageError>(Some(String::from("a finding")))
        })
        .durable()
        .stage("next", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.input::<Option<String>>("found")?.as_ref().clone())
        })
        .durable()
        .after(["found"])
        .build()
        .unwrap();
    let resumed = bounded(durable.resume(&after, "r", RunOptions::default()))
        .await
        .expect("resumed");
    assert_eq!(
        *resumed.report().artifact::<Option<String>>("next").unwrap(),
        Some(String::from("a finding")),
        "the stage's artifact was never recorded: it must run again, not read back as None"
    );
}
