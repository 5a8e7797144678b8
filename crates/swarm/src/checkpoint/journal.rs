//! A durable run's hooks: each finished stage written to the store before its dependents start,
//! and the interrupts and resume values its stages see through their context.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use super::record::{StageRecord, STAGE_PREFIX};
use super::store::CheckpointStore;
use crate::context::StageContext;
use crate::error::StageError;
use crate::hooks::{Restored, RunHooks};
use crate::pipeline::{Artifact, PipelineInner};
use crate::report::{AttemptRecord, StageStatus};

pub(crate) struct Journal {
    pub(crate) store: Arc<dyn CheckpointStore>,
    pub(crate) run: String,
    pub(crate) restored: Mutex<Vec<Restored>>,
    /// Values handed to interrupted stages by `resume_with`, by stage.
    pub(crate) values: HashMap<u32, serde_json::Value>,
    /// Stages that interrupted the run, with their reasons.
    pub(crate) interrupts: Mutex<Vec<(u32, String)>>,
}

impl RunHooks for Journal {
    fn take_restored(&self) -> Vec<Restored> {
        std::mem::take(&mut *self.restored.lock())
    }

    fn finished(
        &self,
        pipeline: &PipelineInner,
        stage: u32,
        status: &StageStatus,
        failed: &[AttemptRecord],
        artifact: Option<&Artifact>,
    ) -> Result<(), StageError> {
        let spec = &pipeline.stages[stage as usize];
        let interrupt = self
            .interrupts
            .lock()
            .iter()
            .find(|(interrupted, _)| *interrupted == stage)
            .map(|(_, reason)| reason.clone());
        let artifact = match (status.is_success(), spec.codec(), artifact) {
            (true, Some(codec), Some(artifact)) => match (codec.encode)(&**artifact) {
                Some(Ok(value)) => Some(value),
                Some(Err(error)) => {
                    return Err(StageError::permanent(format!(
                    "checkpoint of run `{}`: cannot serialize the artifact of stage `{}`: {error}",
                    self.run, spec.name
                )))
                }
                // The codec was made for the stage's own output type.
                None => None,
            },
            _ => None,
        };
        let record = StageRecord {
            status: status.clone(),
            failed_attempts: failed.to_vec(),
            artifact,
            interrupt,
        };
        let bytes = serde_json::to_vec(&record).map_err(|error| {
            StageError::permanent(format!(
                "checkpoint of run `{}`: cannot serialize the record of stage `{}`: {error}",
                self.run, spec.name
            ))
        })?;
        self.store
            .put_record(&self.run, &format!("{STAGE_PREFIX}{}", spec.name), &bytes)
            .map_err(|error| StageError::permanent(format!("checkpoint write failed: {error}")))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl StageContext {
    fn journal(&self) -> (Option<&Journal>, u32) {
        let (hooks, stage) = self.hooks();
        (
            hooks.and_then(|hooks| hooks.as_any().downcast_ref::<Journal>()),
            stage,
        )
    }

    /// Pauses a [durable](crate::checkpoint::Durable) run for outside input (an approval, a human
    /// edit): return the error this gives (`return Err(ctx.interrupt("needs approval"))`). The stage
    /// ends failed and is never retried, the run ends
    /// [`DurableOutcome::Interrupted`](crate::checkpoint::DurableOutcome::Interrupted) with the
    /// stage checkpointed as interrupted, and [`Durable::resume_with`](crate::checkpoint::Durable::resume_with)
    /// runs the stage again with a value it reads with [`resume_value`](StageContext::resume_value).
    ///
    /// Outside a durable run it is a permanent failure with the same message.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{StageContext, StageError};
    ///
    /// async fn publish(ctx: StageContext) -> Result<&'static str, StageError> {
    ///     match ctx.resume_value::<bool>()? {
    ///         Some(true) => Ok("published"),
    ///         Some(false) => Ok("rejected"),
    ///         None => Err(ctx.interrupt("publishing needs an approval")),
    ///     }
    /// }
    /// ```
    pub fn interrupt(&self, reason: impl Display) -> StageError {
        let reason = reason.to_string();
        if let (Some(journal), stage) = self.journal() {
            journal.interrupts.lock().push((stage, reason.clone()));
        }
        StageError::permanent(format!("interrupted: {reason}"))
    }

    /// The value a [`resume_with`](crate::checkpoint::Durable::resume_with) handed this stage after
    /// it [interrupted](StageContext::interrupt) the run (`None`: the first time, or not a durable run).
    ///
    /// # Errors
    ///
    /// [`StageError::Permanent`] when the value does not decode as a `T`.
    pub fn resume_value<T: DeserializeOwned>(&self) -> Result<Option<T>, StageError> {
        let (Some(journal), stage) = self.journal() else {
            return Ok(None);
        };
        let Some(value) = journal.values.get(&stage) else {
            return Ok(None);
        };
        serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|error| {
                StageError::permanent(format!(
                    "the resume value of stage `{}` is not a {}: {error}",
                    self.name(),
                    std::any::type_name::<T>()
                ))
            })
    }
}
