//! Resume values read back as what `resume_with` was given, as artifacts do: a 128-bit integer
//! reaches the stage whole, and a value whose JSON would read back as another one (a `Some(None)`,
//! written as the `null` of a `None`) is refused by name instead of reaching the stage as `None`.

use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};
use serde::de::DeserializeOwned;

/// A stage that interrupts until it is handed a `T`, and returns it.
fn waiting_for<T>() -> Pipeline
where
    T: DeserializeOwned + serde::Serialize + Send + Sync + 'static,
{
    Pipeline::builder()
        .stage("answer", |ctx: StageContext| async move {
            match ctx.resume_value::<T>()? {
                Some(value) => Ok::<_, StageError>(value),
                None => Err(ctx.interrupt("needs an answer")),
            }
        })
        .durable()
        .build()
        .expect("valid durable pipeline")
}

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("no hang")
}

#[tokio::test]
async fn a_128_bit_resume_value_reaches_the_stage_whole() {
    for value in [u128::MAX, u128::from(u64::MAX) + 1] {
        let pipeline = waiting_for::<u128>();
        let durable = Durable::new(MemoryStore::new());
        let started = bounded(durable.start(&pipeline, "run", RunOptions::default()))
            .await
            .expect("started");
        assert_eq!(started.interrupted_stage(), Some("answer"));
        let resumed = bounded(durable.resume_with(&pipeline, "run", value, RunOptions::default()))
            .await
            .expect("resumed");
        let report = resumed.report();
        assert!(report.is_success(), "{report}");
        assert_eq!(*report.artifact::<u128>("answer").expect("answer"), value);
    }
}

#[tokio::test]
async fn a_resume_value_that_would_read_back_as_another_is_refused_by_name() {
    let pipeline = waiting_for::<Option<Option<u8>>>();
    let durable = Durable::new(MemoryStore::new());
    let started = bounded(durable.start(&pipeline, "run", RunOptions::default()))
        .await
        .expect("started");
    assert_eq!(started.interrupted_stage(), Some("answer"));
    let refused =
        bounded(durable.resume_with(&pipeline, "run", Some(None::<u8>), RunOptions::default()))
            .await;
    match refused {
        Err(CheckpointError::ValueNotSerializable { run, reason }) => {
            assert_eq!(run, "run");
            assert!(reason.contains("Some"), "{reason}");
        }
        other => panic!("expected ValueNotSerializable, got {other:?}"),
    }
    // Nothing was checkpointed: the run still waits, and takes a value that reads back.
    let resumed =
        bounded(durable.resume_with(&pipeline, "run", Some(Some(7_u8)), RunOptions::default()))
            .await
            .expect("resumed");
    let report = resumed.report();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        *report
            .artifact::<Option<Option<u8>>>("answer")
            .expect("answer"),
        Some(Some(7))
    );
}
