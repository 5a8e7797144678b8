//! [`RunState`]: a stored run as it stands, read without the pipeline and without running
//! anything (what LangGraph's `get_state` shows): each stage's recorded status, artifact,
//! interrupt and waiting resume value.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::record::{
    normalize, CheckpointError, Header, StageRecord, ITEM_PREFIX, LOOP_PREFIX, REJECTED_VALUE,
    STAGE_PREFIX, VALUE_PREFIX,
};
use super::store::CheckpointStore;
use crate::report::{AttemptRecord, SkipReason, StageStatus};

/// A stored run as it stands: made by [`Durable::inspect`](super::Durable::inspect).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunState {
    /// The run's id.
    pub run: String,
    /// The name of the pipeline it was started with.
    pub pipeline: String,
    /// The run's input as stored (`None`: started without one).
    pub input: Option<serde_json::Value>,
    /// Every stage of the pipeline it was started with, in declaration order.
    pub stages: Vec<StageState>,
}

/// One stage of a stored run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StageState {
    /// The stage's name.
    pub name: String,
    /// The stages it runs after, by name (sorted).
    pub after: Vec<String>,
    /// How the stage last ended in the run, as recorded (`None`: it has not ended in the run yet:
    /// not reached, or running when the run stopped or the process died).
    pub status: Option<StageStatus>,
    /// Every attempt that failed, in order, as [`StageReport::failed_attempts`] lists them.
    ///
    /// [`StageReport::failed_attempts`]: crate::StageReport#structfield.failed_attempts
    pub failed_attempts: Vec<AttemptRecord>,
    /// Why the stage interrupted the run, while it waits for a value
    /// ([`Durable::resume_with`](super::Durable::resume_with)).
    pub interrupt: Option<String>,
    /// Fan-out items and loop iterations recorded under this stage (read back when it runs
    /// again, so they do not run again).
    pub memo_records: usize,
    artifact: Option<String>,
    resume_value: Option<String>,
    /// The artifact type's name, to tell a `()` stage (restored without an artifact).
    unit: bool,
}

impl RunState {
    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&StageState> {
        self.stages.iter().find(|stage| stage.name == name)
    }

    /// The stages waiting for a value: those that interrupted the run, and those that failed
    /// because the value they were handed did not decode (a [`resume_with`] hands them the next).
    ///
    /// [`resume_with`]: super::Durable::resume_with
    pub fn interrupted(&self) -> impl Iterator<Item = &StageState> + '_ {
        self.stages.iter().filter(|stage| stage.is_interrupted())
    }

    /// The stages a resume does not run again (their record holds all it needs).
    pub fn done(&self) -> impl Iterator<Item = &StageState> + '_ {
        self.stages
            .iter()
            .filter(|stage| stage.is_restored_on_resume())
    }

    /// Whether the run ended as a success and a resume would run nothing: every stage is restored
    /// on resume, or was left out by a route not taken or a false condition (which a resume
    /// decides the same way again).
    pub fn is_complete(&self) -> bool {
        self.stages.iter().all(|stage| {
            stage.is_restored_on_resume()
                || matches!(
                    stage.status,
                    Some(StageStatus::Skipped {
                        because: SkipReason::RouteNotTaken { .. }
                            | SkipReason::ConditionFalse
                            | SkipReason::Pruned { .. },
                    })
                )
        })
    }
}

impl StageState {
    /// Whether the stage succeeded in the run.
    pub fn succeeded(&self) -> bool {
        self.status.as_ref().is_some_and(StageStatus::is_success)
    }

    /// Whether a resume restores this stage instead of running it: it succeeded, and its record
    /// holds its artifact (a [`durable`](crate::StageBuilder::durable) stage) or it returns `()`.
    pub fn is_restored_on_resume(&self) -> bool {
        self.succeeded() && (self.artifact.is_some() || self.unit)
    }

    /// Whether the stage waits for a value to go on (see [`RunState::interrupted`]).
    pub fn is_interrupted(&self) -> bool {
        self.interrupt.is_some() || matches!(self.status, Some(StageStatus::Interrupted { .. }))
    }

    /// The recorded artifact's JSON text (durable stages that succeeded).
    pub fn artifact_json(&self) -> Option<&str> {
        self.artifact.as_deref()
    }

    /// The recorded artifact, decoded as `T` (`Ok(None)`: none recorded).
    ///
    /// # Errors
    ///
    /// When the JSON does not decode as `T`.
    pub fn artifact<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.artifact_json().map(serde_json::from_str).transpose()
    }

    /// The value a resume hands this stage, recorded by
    /// [`Durable::resume_with`](super::Durable::resume_with), as JSON text.
    pub fn resume_value_json(&self) -> Option<&str> {
        self.resume_value.as_deref()
    }
}

/// Reads run `run` from `store` (see [`Durable::inspect`](super::Durable::inspect)).
pub(super) fn inspect(store: &dyn CheckpointStore, run: &str) -> Result<RunState, CheckpointError> {
    let Some(stored) = store.load_run(run)? else {
        return Err(CheckpointError::UnknownRun {
            run: run.to_owned(),
        });
    };
    let mut header = Header::read(run, &stored.header)?;
    normalize(&mut header.shape);
    let mut stages: Vec<StageState> = header
        .shape
        .into_iter()
        .map(|stage| StageState {
            unit: stage.output == "()",
            name: stage.name,
            after: stage.after,
            status: None,
            failed_attempts: Vec::new(),
            interrupt: None,
            memo_records: 0,
            artifact: None,
            resume_value: None,
        })
        .collect();
    let corrupt = |stage: &str, reason: String| CheckpointError::CorruptRecord {
        run: run.to_owned(),
        stage: stage.to_owned(),
        reason,
    };
    for (key, bytes) in stored.records {
        if let Some(name) = key.strip_prefix(STAGE_PREFIX) {
            let record: StageRecord =
                serde_json::from_slice(&bytes).map_err(|error| corrupt(name, error.to_string()))?;
            let stage = find(&mut stages, name).ok_or_else(|| corrupt(name, no_stage()))?;
            stage.interrupt = match &record.status {
                StageStatus::Interrupted { reason, .. } => Some(reason.clone()),
                _ => record.interrupt,
            };
            stage.status = Some(record.status);
            stage.failed_attempts = record.failed_attempts;
            stage.artifact = record.artifact.map(|artifact| artifact.get().to_owned());
        } else if let Some(name) = key.strip_prefix(VALUE_PREFIX) {
            let stage = find(&mut stages, name).ok_or_else(|| corrupt(name, no_stage()))?;
            if bytes == REJECTED_VALUE {
                // The value it was handed did not decode: unless it succeeded since (records come
                // in key order, a stage's before its value's), it waits for another.
                if !stage.succeeded() {
                    stage.interrupt.get_or_insert_with(|| {
                        "the value it was handed did not decode; it waits for another".to_owned()
                    });
                }
                continue;
            }
            let value: Box<RawValue> = serde_json::from_slice(&bytes)
                .map_err(|error| corrupt(name, format!("resume value: {error}")))?;
            stage.resume_value = Some(value.get().to_owned());
        } else if let Some(rest) = key
            .strip_prefix(ITEM_PREFIX)
            .or_else(|| key.strip_prefix(LOOP_PREFIX))
        {
            // `{stage index}:...`: counted under the stage it belongs to.
            let index = rest.split(':').next().and_then(|index| index.parse().ok());
            if let Some(stage) = index.and_then(|index: usize| stages.get_mut(index)) {
                stage.memo_records += 1;
            }
        }
    }
    Ok(RunState {
        run: run.to_owned(),
        pipeline: header.pipeline,
        input: header.input,
        stages,
    })
}

fn find<'a>(stages: &'a mut [StageState], name: &str) -> Option<&'a mut StageState> {
    stages.iter_mut().find(|stage| stage.name == name)
}

fn no_stage() -> String {
    "the checkpointed pipeline has no such stage".to_owned()
}
