//! The seam between a run and its checkpoints: what the run driver asks of a durable run, and the
//! serde codec a stage declared [`durable`](crate::StageBuilder::durable) carries.
//!
//! Kept apart from the driver so that a run without checkpoints pays one `None` check per stage,
//! and so that the checkpoint code (in `checkpoint/`) never reaches into the driver's state.

use std::any::Any;

use crate::checkpoint::LossyNull;
use crate::error::StageError;
use crate::pipeline::{Artifact, PipelineInner};
use crate::report::{AttemptRecord, StageStatus};

/// A stage restored from a checkpoint: it is not run again.
pub(crate) struct Restored {
    pub(crate) stage: u32,
    pub(crate) artifact: Artifact,
    pub(crate) attempts: u32,
    pub(crate) failed: Vec<AttemptRecord>,
}

/// What the run driver calls on a durable run.
pub(crate) trait RunHooks: Send + Sync {
    /// The stages an earlier run finished, in topological order (taken once, before the run starts).
    fn take_restored(&self) -> Vec<Restored>;

    /// A stage ended (not restored, not cancelled). Called before its dependents are released, so
    /// no dependent starts before this returns; an error fails the stage with it.
    fn finished(
        &self,
        pipeline: &PipelineInner,
        stage: u32,
        status: &StageStatus,
        failed: &[AttemptRecord],
        artifact: Option<&Artifact>,
    ) -> Result<(), StageError>;

    /// For the stage context's interrupt and resume value.
    fn as_any(&self) -> &dyn Any;
}

/// Encodes a stage's whole checkpoint record (status, failed attempts, artifact) as JSON in one
/// pass, the artifact typed (no intermediate `serde_json::Value`); with the record, where the
/// artifact's JSON starts in it (its length when there is none), so that the check for a value
/// that would not read back looks at the artifact alone.
pub(crate) type RecordEncoder = fn(
    &StageStatus,
    &[AttemptRecord],
    Option<&(dyn Any + Send + Sync)>,
) -> Result<(Vec<u8>, usize), serde_json::Error>;

/// Writes and reads back one stage's artifact as JSON.
#[derive(Clone, Copy)]
pub(crate) struct Codec {
    /// The record with the artifact when it is a `T` (`None`, or another type: no artifact).
    pub(crate) encode: RecordEncoder,
    /// The artifact from its JSON text (straight into a `T`: no `serde_json::Value` between,
    /// which cannot hold integers beyond 64 bits).
    pub(crate) decode: fn(&str) -> Result<Artifact, serde_json::Error>,
    /// What an artifact (when it is a `T`) holds whose JSON `null` would read back as another
    /// value rather than fail (`Some(NaN)`, `Some(None)`: both as `None`), if anything.
    pub(crate) lossy_null: fn(&(dyn Any + Send + Sync)) -> Option<LossyNull>,
    /// Whether a record holding `null` is checked before it is written, to see that it reads
    /// back as itself: serde_json writes a non-finite float as `null` (no error), which no `f64`
    /// reads, and a `Some(None)` as the `null` of a `None`. Not for `()`, whose artifact is
    /// always `null` and always reads back.
    pub(crate) verify: bool,
}

impl Codec {
    pub(crate) fn of<T>() -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        Self {
            encode: encode_record::<T>,
            decode: decode_as::<T>,
            lossy_null: lossy_null_as::<T>,
            verify: std::any::TypeId::of::<T>() != std::any::TypeId::of::<()>(),
        }
    }
}

/// A stage's record as written: the layout `checkpoint`'s `StageRecord` reads back.
#[derive(serde::Serialize)]
struct RecordRef<'a, T> {
    status: &'a StageStatus,
    #[serde(skip_serializing_if = "<[AttemptRecord]>::is_empty")]
    failed_attempts: &'a [AttemptRecord],
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact: Option<&'a T>,
}

/// The record of a stage whose artifact is a `T`, and where the artifact starts in it.
pub(crate) fn encode_record<T: serde::Serialize + 'static>(
    status: &StageStatus,
    failed_attempts: &[AttemptRecord],
    artifact: Option<&(dyn Any + Send + Sync)>,
) -> Result<(Vec<u8>, usize), serde_json::Error> {
    let record = RecordRef::<T> {
        status,
        failed_attempts,
        artifact: None,
    };
    // A succeeded stage with a small artifact fits without growing.
    let mut bytes = Vec::with_capacity(96);
    serde_json::to_writer(&mut bytes, &record)?;
    let Some(artifact) = artifact.and_then(|artifact| artifact.downcast_ref::<T>()) else {
        let end = bytes.len();
        return Ok((bytes, end));
    };
    // The artifact is the record's last field: it takes the place of the closing brace.
    bytes.pop();
    bytes.extend_from_slice(br#","artifact":"#);
    let start = bytes.len();
    serde_json::to_writer(&mut bytes, artifact)?;
    bytes.push(b'}');
    Ok((bytes, start))
}

fn lossy_null_as<T: serde::Serialize + 'static>(
    artifact: &(dyn Any + Send + Sync),
) -> Option<LossyNull> {
    artifact
        .downcast_ref::<T>()
        .and_then(crate::checkpoint::lossy_null)
}

fn decode_as<T>(json: &str) -> Result<Artifact, serde_json::Error>
where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    serde_json::from_str::<T>(json).map(|artifact| std::sync::Arc::new(artifact) as Artifact)
}
