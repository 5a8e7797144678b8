//! Artifacts of ordinary serde types read back on resume as the values the stage returned, or are
//! refused when written: "a checkpoint never holds a record that would fail every resume or read
//! back as another value". Before, a 128-bit integer beyond 64 bits was recorded and failed every
//! resume (the record went through a `serde_json::Value`), and a `Some(None)` of a nested
//! `Option` (written as `null`) was restored as `None`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunInput, RunOptions, StageContext, StageError, StageStatus};

/// What became of a value a durable stage returned.
enum Recorded {
    /// Recorded, and a resume restored the same value.
    Restored,
    /// Refused when written: the error the stage failed with.
    Refused(String),
}

/// Starts a one-stage durable run of a stage `make` returning `value`, then resumes it: the
/// resumed report must hold the same value, unless the start refused to record it.
async fn round_trip<T>(value: T) -> Result<Recorded, String>
where
    T: Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync + 'static,
{
    let returned = value.clone();
    let pipeline = Pipeline::builder()
        .stage("make", move |_: StageContext| {
            std::future::ready(Ok::<_, StageError>(returned.clone()))
        })
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("starts");
    let refused = match first.report().status("make") {
        Some(StageStatus::Failed { error, .. }) => Some(error.to_string()),
        _ => None,
    };
    let resumed = tokio::time::timeout(
        Duration::from_secs(5),
        durable.resume(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .map_err(|error| format!("{}: resume failed: {error}", std::any::type_name::<T>()))?;
    let report = resumed.report();
    if let Some(error) = refused {
        // Not recorded: the resume runs the stage again rather than restore anything.
        if report.stage("make").unwrap().resumed {
            return Err(format!(
                "{}: refused, yet restored",
                std::any::type_name::<T>()
            ));
        }
        return Ok(Recorded::Refused(error));
    }
    let got = report
        .artifact::<T>("make")
        .map_err(|error| format!("{}: {error}", std::any::type_name::<T>()))?;
    if *got != value {
        return Err(format!(
            "{}: restored {got:?}, returned {value:?}",
            std::any::type_name::<T>()
        ));
    }
    Ok(Recorded::Restored)
}

/// A failure unless the value was recorded and restored as itself.
fn unless_restored(outcome: Result<Recorded, String>) -> Option<String> {
    match outcome {
        Ok(Recorded::Restored) => None,
        Ok(Recorded::Refused(error)) => Some(format!("refused: {error}")),
        Err(failure) => Some(failure),
    }
}

/// A failure unless the value was restored as itself or refused.
fn unless_restored_or_refused(outcome: Result<Recorded, String>) -> Option<String> {
    outcome.err()
}

#[tokio::test]
async fn u128_and_i128_artifacts_read_back() {
    let mut failures = Vec::new();
    failures.extend(unless_restored(round_trip(u128::MAX).await));
    failures.extend(unless_restored(round_trip(u128::from(u64::MAX) + 1).await));
    failures.extend(unless_restored(round_trip(i128::MIN).await));
    failures.extend(unless_restored(round_trip(vec![i128::MAX, -1]).await));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn maps_with_integer_and_bool_keys_read_back() {
    let mut failures = Vec::new();
    let map: HashMap<u64, String> = [(1, "a".to_owned()), (u64::MAX, "b".to_owned())].into();
    failures.extend(unless_restored(round_trip(map).await));
    let map: BTreeMap<i8, u8> = [(-3, 1), (4, 2)].into();
    failures.extend(unless_restored(round_trip(map).await));
    let map: BTreeMap<char, u8> = [('x', 1)].into();
    failures.extend(unless_restored(round_trip(map).await));
    let map: BTreeMap<bool, u8> = [(false, 1), (true, 2)].into();
    failures.extend(unless_restored(round_trip(map).await));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn nested_options_read_back_or_are_refused() {
    let mut failures = Vec::new();
    failures.extend(unless_restored_or_refused(
        round_trip(Some(None::<u8>)).await,
    ));
    failures.extend(unless_restored_or_refused(
        round_trip(vec![Some(Some(1_u8)), Some(None), None]).await,
    ));
    failures.extend(unless_restored_or_refused(round_trip(Some(())).await));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_some_of_none_artifact_is_refused_with_an_error_naming_the_stage_and_type() {
    for outcome in [
        round_trip(Some(None::<u8>)).await,
        round_trip(vec![Some(Some(1_u8)), Some(None), None]).await,
        round_trip(Some(())).await,
    ] {
        let Ok(Recorded::Refused(error)) = outcome else {
            panic!("recorded: {:?}", outcome.err());
        };
        assert!(error.contains("stage `make`"), "{error}");
        assert!(error.contains("core::option::Option<"), "{error}");
        assert!(error.contains("would read back as `None`"), "{error}");
    }
}

#[tokio::test]
async fn options_whose_null_is_their_own_read_back() {
    let mut failures = Vec::new();
    failures.extend(unless_restored(round_trip(None::<Option<u8>>).await));
    failures.extend(unless_restored(round_trip(Some(Some(7_u8))).await));
    failures.extend(unless_restored(round_trip(vec![Some(1_u8), None]).await));
    failures.extend(unless_restored(round_trip(Some(vec![None::<u8>])).await));
    failures.extend(unless_restored(round_trip(None::<()>).await));
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The run input is kept as a `serde_json::Value`, which holds no integer beyond 64 bits: such an
/// input is refused when the run starts (typed), never written to fail every resume.
#[tokio::test]
async fn a_run_input_beyond_64_bits_is_refused_at_start() {
    let pipeline = Pipeline::builder()
        .stage("read", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.run_input::<u128>()?)
        })
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new()).with_input::<u128>();
    let options = RunOptions::default().with_run_input(RunInput::serializable(u128::MAX));
    let started = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "r", options),
    )
    .await
    .expect("no hang");
    assert!(
        matches!(&started, Err(CheckpointError::InputNotSerializable { run, .. }) if run == "r"),
        "{started:?}"
    );
    assert!(durable.runs().unwrap().is_empty(), "nothing was created");
}
