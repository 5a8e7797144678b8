//! A durable stage's artifact whose `Serialize` panics while the run checkpoints it.
//!
//! `Durable::start`: "A stage whose record cannot be written fails (and the report says why)";
//! a stage's own panics are failures, never a crash of the run ("a panicking stage is a failure").
//! The record is written by the run itself, outside the stage's future, so a panic there must be
//! caught like the stage's own: the run still returns its report, the stage failed, and the
//! independent stage still ran.

use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{FailurePolicy, Pipeline, RunOptions, StageContext, StageError, StageStatus};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An artifact whose serializer panics (a bug in a user's hand-written `Serialize`).
#[derive(Debug)]
struct PanicsWhenWritten;

impl Serialize for PanicsWhenWritten {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        panic!("serializer bug");
    }
}

impl<'de> Deserialize<'de> for PanicsWhenWritten {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| PanicsWhenWritten)
    }
}

fn pipeline(spawned: bool) -> Pipeline {
    let stage = Pipeline::builder()
        .stage("writes", |_: StageContext| async {
            Ok::<_, StageError>(PanicsWhenWritten)
        })
        .durable();
    let stage = if spawned { stage.spawn() } else { stage };
    stage
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["writes"])
        .stage("independent", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .build()
        .expect("valid")
}

async fn run(spawned: bool) {
    let durable = Durable::new(MemoryStore::new());
    let pipeline = pipeline(spawned);
    let task = tokio::spawn(async move {
        durable
            .start(
                &pipeline,
                "run",
                RunOptions::default().with_failure(FailurePolicy::ContinueIndependent),
            )
            .await
            .map(|outcome| outcome.into_report())
    });
    let joined = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the run ends: it does not hang on the panic");
    let report = match joined {
        Ok(started) => started.expect("the run starts"),
        Err(error) => panic!(
            "spawned {spawned}: the serializer's panic unwound out of the run instead of failing \
             the stage: {error}"
        ),
    };
    assert!(
        matches!(report.status("writes"), Some(StageStatus::Failed { .. })),
        "{report}"
    );
    assert!(matches!(
        report.status("after"),
        Some(StageStatus::Skipped { .. })
    ));
    assert!(report.status("independent").unwrap().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_stage_whose_durable_artifact_panics_when_written_fails_the_stage_not_the_run() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_stage_whose_durable_artifact_panics_when_written_fails_the_stage_not_the_run() {
    run(true).await;
}
