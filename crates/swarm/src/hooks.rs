//! The seam between a run and its checkpoints: what the run driver asks of a durable run, and the
//! serde codec a stage declared [`durable`](crate::StageBuilder::durable) carries.
//!
//! Kept apart from the driver so that a run without checkpoints pays one `None` check per stage,
//! and so that the checkpoint code (in `checkpoint/`) never reaches into the driver's state.

use std::any::Any;

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

/// Writes and reads back one stage's artifact as JSON.
#[derive(Clone, Copy)]
pub(crate) struct Codec {
    pub(crate) encode: crate::pipeline::Exporter,
    pub(crate) decode: fn(serde_json::Value) -> Result<Artifact, serde_json::Error>,
}

impl Codec {
    pub(crate) fn of<T>() -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        Self {
            encode: crate::builder::export_as::<T>,
            decode: decode_as::<T>,
        }
    }
}

fn decode_as<T>(value: serde_json::Value) -> Result<Artifact, serde_json::Error>
where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    serde_json::from_value::<T>(value).map(|artifact| std::sync::Arc::new(artifact) as Artifact)
}
