//! What a run reports: each stage's status, timings and artifact, and the run's outcome.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ArtifactError;
use crate::events::AttemptFailure;
use crate::fan_out::FanOutSummary;
use crate::pipeline::{Artifact, PipelineInner};

mod spare;
mod status;

pub(crate) use spare::SpareStages;

pub use status::{RunOutcome, SkipReason, StageStatus};

/// One failed attempt of a stage, as its report keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttemptRecord {
    /// The attempt's number, 1 for the first.
    pub attempt: u32,
    /// When it started, from the run's start. Serialized as `started_us`.
    #[serde(rename = "started_us", with = "crate::micros")]
    pub started: Duration,
    /// How long it ran. Serialized as `elapsed_us`. Report times are read from the machine's
    /// monotonic clock, not tokio's: under a paused tokio clock (tests) an attempt that timed out
    /// after 5 s of tokio time may report microseconds.
    #[serde(rename = "elapsed_us", with = "crate::micros")]
    pub elapsed: Duration,
    /// Why it failed.
    pub failure: AttemptFailure,
    /// The wait before the next attempt (zero after the last). Serialized as `backoff_us`.
    #[serde(rename = "backoff_us", with = "crate::micros")]
    pub backoff: Duration,
}

/// One stage's part of a [`RunReport`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StageReport {
    /// The stage's name.
    pub name: Arc<str>,
    /// How it ended.
    pub status: StageStatus,
    /// When its first attempt started, from the run's start (`None` if it never started).
    /// Serialized as `started_us`, in whole microseconds.
    #[serde(rename = "started_us", with = "crate::micros::option")]
    pub started: Option<Duration>,
    /// From its first attempt's start to its end, backoff waits included (`None` if it never
    /// started). Serialized as `elapsed_us`, in whole microseconds.
    #[serde(rename = "elapsed_us", with = "crate::micros::option")]
    pub elapsed: Option<Duration>,
    /// Every failed attempt, in order: its error, when it ran and the backoff after it. A stage
    /// the run stopped (deadline, cancellation, fail-fast) keeps the attempts that failed before
    /// the stop, except a stage on a task of its own stopped in the middle of an attempt: its task
    /// is aborted, and its records with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<AttemptRecord>,
    /// The sub-tasks of its fan-outs, if it launched any. A stage the run stopped keeps the
    /// summary of the fan-out it was running: the items finished so far, the rest not run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fan_out: Vec<FanOutSummary>,
    /// For a loop stage, the report of each iteration, in order; a retried loop stage lists each
    /// attempt's iterations in turn (the failed attempts' first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iterations: Vec<RunReport>,
    /// Restored from a checkpoint by a resumed run (see [`checkpoint`](crate::checkpoint)): it did
    /// not run again, its artifact was read back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
}

/// The result of a run: every stage's status and timings, the artifacts, and the outcome. Stages are
/// listed in declaration order.
///
/// It serializes both ways: `Serialize` writes the pipeline's name, the outcome, the timings (whole
/// microseconds), every stage with its failed attempts, the dependency edges, and the artifacts of
/// stages registered with [`export`](crate::StageBuilder::export) ([`to_json`](RunReport::to_json)
/// is the shortcut); [`from_json`](RunReport::from_json) reads it back. A report read back has no
/// live artifacts ([`artifact`](RunReport::artifact) says [`ArtifactError::NotLive`]) but keeps the
/// exported ones ([`artifact_json`](RunReport::artifact_json)), the statuses, the errors' messages
/// and source chains, and the graph ([`to_mermaid`](RunReport::to_mermaid)).
///
/// # Examples
///
/// ```
/// use hivekit_swarm::{Pipeline, RunReport, StageContext, StageError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pipeline = Pipeline::builder()
///     .stage("count", |_: StageContext| async { Ok::<_, StageError>(3u32) })
///     .export()
///     .build()?;
/// let report = pipeline.run().await;
/// let json = report.to_json()?;
/// let back = RunReport::from_json(&json)?;
/// assert_eq!(back.outcome(), report.outcome());
/// assert_eq!(back.stages()[0].status, report.stages()[0].status);
/// assert_eq!(back.artifact_json("count")?, serde_json::json!(3));
/// assert_eq!(back.to_json()?, json);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a run's report says whether it failed"]
pub struct RunReport {
    /// The pipeline that ran (`None` for a report read back from JSON).
    pub(crate) pipeline: Option<Arc<PipelineInner>>,
    pub(crate) name: Arc<str>,
    pub(crate) outcome: RunOutcome,
    pub(crate) elapsed: Duration,
    pub(crate) stages: Vec<StageReport>,
    pub(crate) artifacts: Box<[crate::artifact_cell::ArtifactCell]>,
    /// For a report read back: the dependency edges and the exported artifacts it was written with.
    pub(crate) recorded: Option<Arc<Recorded>>,
}

/// What a report read back from JSON keeps instead of the pipeline.
pub(crate) struct Recorded {
    pub(crate) edges: Vec<(String, String)>,
    pub(crate) artifacts: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Debug for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunReport")
            .field("pipeline", &self.name)
            .field("outcome", &self.outcome)
            .field("elapsed", &self.elapsed)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

impl Drop for RunReport {
    /// Most stage reports own nothing on the heap besides their name (a success or a
    /// cancellation, no failed attempt, no fan-out, no iteration). Their generic drop glue makes an
    /// out-of-line call for the status and each of the three lists, about 70 instructions a stage
    /// and most of what dropping a no-op chain's report costs: such stages only drop their name
    /// here, the others their whole report.
    fn drop(&mut self) {
        // The pipeline's next run reuses the list (see `spare.rs`).
        if let Some(pipeline) = &self.pipeline {
            if SpareStages::keep(pipeline, &mut self.stages) {
                return;
            }
        }
        let stages = &mut self.stages;
        let count = stages.len();
        let first = stages.as_mut_ptr();
        // SAFETY: the vector forgets its elements before any is dropped, so each is dropped at
        // most once, by the loop below (a panic in one of those drops leaks the rest, which is
        // safe); the buffer stays allocated until the vector is dropped after this function.
        unsafe { stages.set_len(0) };
        for index in 0..count {
            // SAFETY: `index < count`, the initialised length the buffer had, and nothing else
            // refers to the element (`self` is being dropped and the vector no longer owns it).
            let stage = unsafe { &mut *first.add(index) };
            // Every field, named: a field added to `StageReport` must be considered here.
            let StageReport {
                name: _,
                status: _,
                started: _,
                elapsed: _,
                failed_attempts: _,
                fan_out: _,
                iterations: _,
                resumed: _,
            } = stage;
            let owns_only_its_name = stage.failed_attempts.capacity() == 0
                && stage.fan_out.capacity() == 0
                && stage.iterations.capacity() == 0
                && matches!(
                    stage.status,
                    StageStatus::Succeeded { .. }
                        | StageStatus::Cancelled
                        | StageStatus::TimedOut { .. }
                );
            if owns_only_its_name {
                // SAFETY: the name is live and dropped once; the other fields own nothing (a
                // list of capacity 0 holds no allocation and no element, and these statuses hold
                // no data), so not dropping them leaks nothing.
                unsafe { std::ptr::drop_in_place(&mut stage.name) };
            } else {
                // SAFETY: the element is live and dropped once.
                unsafe { std::ptr::drop_in_place(stage) };
            }
        }
    }
}

impl RunReport {
    /// The name of the pipeline that ran.
    pub fn pipeline_name(&self) -> &str {
        &self.name
    }

    /// The position of a stage by name.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        match &self.pipeline {
            Some(pipeline) => pipeline.lookup(name),
            None => self.stages.iter().position(|stage| &*stage.name == name),
        }
    }

    /// The dependency edges `(from, to)`: `to` runs after `from`.
    pub fn edges(&self) -> Vec<(&str, &str)> {
        match (&self.pipeline, &self.recorded) {
            (Some(pipeline), _) => (0..pipeline.stages.len())
                .flat_map(|stage| {
                    pipeline.dependencies(stage).iter().map(move |&dependency| {
                        (
                            &*pipeline.stages[dependency as usize].name,
                            &*pipeline.stages[stage].name,
                        )
                    })
                })
                .collect(),
            (None, Some(recorded)) => recorded
                .edges
                .iter()
                .map(|(from, to)| (from.as_str(), to.as_str()))
                .collect(),
            (None, None) => Vec::new(),
        }
    }

    /// How the run ended.
    pub fn outcome(&self) -> RunOutcome {
        self.outcome
    }

    /// The first stage (in declaration order) that paused the run for outside input, with its
    /// reason: `Some` whenever the outcome is [`RunOutcome::Interrupted`] (a run that also had a
    /// failure reads [`RunOutcome::Failed`] and may still list an interrupted stage here).
    pub fn interrupted(&self) -> Option<(&str, &str)> {
        self.stages.iter().find_map(|stage| match &stage.status {
            StageStatus::Interrupted { reason, .. } => Some((&*stage.name, reason.as_str())),
            _ => None,
        })
    }

    /// Whether every stage succeeded.
    pub fn is_success(&self) -> bool {
        self.outcome == RunOutcome::Succeeded
    }

    /// The run's wall time.
    ///
    /// The report's times (this one and every stage's) are read from the process's monotonic
    /// clock (the CPU's counter where it has an invariant one), so they are real time: a test that
    /// pauses tokio's clock (`tokio::time::pause`, `start_paused`) does not stop them, while the
    /// run's deadline, its stages' timeouts and backoffs follow tokio's clock. A run stopped by a
    /// 50 ms deadline under a paused clock reports the microseconds it really took.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Every stage, in declaration order.
    pub fn stages(&self) -> &[StageReport] {
        &self.stages
    }

    /// One stage's report.
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.index_of(name).map(|stage| &self.stages[stage])
    }

    /// One stage's status.
    pub fn status(&self, name: &str) -> Option<&StageStatus> {
        self.stage(name).map(|stage| &stage.status)
    }

    /// How many stages ended with a status matching `predicate`.
    pub fn count(&self, predicate: impl Fn(&StageStatus) -> bool) -> usize {
        self.stages
            .iter()
            .filter(|stage| predicate(&stage.status))
            .count()
    }

    /// A stage's artifact, shared (no copy).
    ///
    /// # Errors
    ///
    /// [`ArtifactError::UnknownStage`], [`ArtifactError::Missing`] if the stage did not succeed,
    /// [`ArtifactError::WrongType`] if `T` is not its output type, [`ArtifactError::NotLive`] for
    /// a report read back from JSON.
    pub fn artifact<T: Send + Sync + 'static>(&self, name: &str) -> Result<Arc<T>, ArtifactError> {
        let stage = self
            .index_of(name)
            .ok_or_else(|| ArtifactError::UnknownStage {
                stage: name.to_owned(),
            })?;
        let Some(pipeline) = &self.pipeline else {
            return Err(ArtifactError::NotLive {
                stage: name.to_owned(),
            });
        };
        downcast(pipeline, stage, self.artifacts[stage].get())
    }

    /// The artifacts of stages registered with [`export`](crate::StageBuilder::export), as JSON
    /// values by stage name (stages that did not succeed are left out).
    ///
    /// # Errors
    ///
    /// [`ArtifactError::Serialize`] if an artifact's `Serialize` implementation fails.
    pub fn export_artifacts(
        &self,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ArtifactError> {
        let Some(pipeline) = &self.pipeline else {
            return Ok(self
                .recorded
                .as_ref()
                .map(|recorded| recorded.artifacts.clone())
                .unwrap_or_default());
        };
        let mut exported = serde_json::Map::new();
        for (stage, spec) in pipeline.stages.iter().enumerate() {
            let (Some(exporter), Some(artifact)) = (spec.exporter, self.artifacts[stage].get())
            else {
                continue;
            };
            match exporter(&**artifact) {
                Some(Ok(value)) => {
                    exported.insert(spec.name.to_string(), value);
                }
                Some(Err(error)) => {
                    return Err(ArtifactError::Serialize {
                        stage: spec.name.to_string(),
                        message: error.to_string(),
                    })
                }
                None => {}
            }
        }
        Ok(exported)
    }

    /// One exported artifact as JSON.
    ///
    /// # Errors
    ///
    /// As [`artifact`](RunReport::artifact), and [`ArtifactError::NotExported`] if the stage was not
    /// registered with [`export`](crate::StageBuilder::export).
    pub fn artifact_json(&self, name: &str) -> Result<serde_json::Value, ArtifactError> {
        let stage = self
            .index_of(name)
            .ok_or_else(|| ArtifactError::UnknownStage {
                stage: name.to_owned(),
            })?;
        let Some(pipeline) = &self.pipeline else {
            return self
                .recorded
                .as_ref()
                .and_then(|recorded| recorded.artifacts.get(name).cloned())
                .ok_or_else(|| ArtifactError::NotExported {
                    stage: name.to_owned(),
                });
        };
        let spec = &pipeline.stages[stage];
        let exporter = spec.exporter.ok_or_else(|| ArtifactError::NotExported {
            stage: name.to_owned(),
        })?;
        let artifact = self.artifacts[stage]
            .get()
            .ok_or_else(|| ArtifactError::Missing {
                stage: name.to_owned(),
            })?;
        match exporter(&**artifact) {
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => Err(ArtifactError::Serialize {
                stage: name.to_owned(),
                message: error.to_string(),
            }),
            None => Err(ArtifactError::NotExported {
                stage: name.to_owned(),
            }),
        }
    }

    /// The whole report as JSON (see the type's docs).
    ///
    /// # Errors
    ///
    /// If an exported artifact fails to serialize.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Reads a report written by [`to_json`](RunReport::to_json) (or any `Serialize` of it) back.
    ///
    /// # Errors
    ///
    /// serde_json's error for text that is not such a report.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// A stage's status with the whole chain of skips spelled out:
    /// `"report skipped because render was skipped because parse failed: timed out after 3 attempts"`.
    ///
    /// Stages pruned by routing read the same way: `"post skipped because route not taken by
    /// triage"`, `"notify skipped because post was skipped because its condition was false"`.
    pub fn explain(&self, name: &str) -> Option<String> {
        let mut stage = self.index_of(name)?;
        let mut text = format!("{name} ");
        // Each step moves to a dependency, so the walk ends within the number of stages.
        for _ in 0..=self.stages.len() {
            match &self.stages[stage].status {
                StageStatus::Skipped {
                    because:
                        SkipReason::Dependency { dependency, .. } | SkipReason::Pruned { dependency },
                } => {
                    text.push_str("skipped because ");
                    text.push_str(dependency);
                    text.push(' ');
                    match self.index_of(dependency) {
                        Some(next)
                            if matches!(self.stages[next].status, StageStatus::Skipped { .. }) =>
                        {
                            text.push_str("was ");
                            stage = next;
                        }
                        Some(next) => {
                            stage = next;
                        }
                        None => break,
                    }
                }
                status => {
                    text.push_str(&status.to_string());
                    break;
                }
            }
        }
        Some(text)
    }
}

pub(crate) fn downcast<T: Send + Sync + 'static>(
    pipeline: &PipelineInner,
    stage: usize,
    artifact: Option<&Artifact>,
) -> Result<Arc<T>, ArtifactError> {
    let spec = &pipeline.stages[stage];
    let artifact = artifact.ok_or_else(|| ArtifactError::Missing {
        stage: spec.name.to_string(),
    })?;
    Arc::clone(artifact)
        .downcast::<T>()
        .map_err(|_| ArtifactError::WrongType {
            stage: spec.name.to_string(),
            expected: std::any::type_name::<T>().to_owned(),
            actual: spec.output_type.to_owned(),
        })
}

/// The serialized shape of a [`RunReport`].
#[derive(Serialize, Deserialize)]
struct ReportRepr<'a> {
    pipeline: std::borrow::Cow<'a, str>,
    outcome: RunOutcome,
    elapsed_us: u64,
    stages: std::borrow::Cow<'a, [StageReport]>,
    #[serde(default)]
    edges: Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    #[serde(default)]
    artifacts: serde_json::Map<String, serde_json::Value>,
}

impl Serialize for RunReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let artifacts = self.export_artifacts().map_err(serde::ser::Error::custom)?;
        ReportRepr {
            pipeline: std::borrow::Cow::Borrowed(&self.name),
            outcome: self.outcome,
            elapsed_us: crate::micros::micros(self.elapsed),
            stages: std::borrow::Cow::Borrowed(&self.stages),
            edges: self
                .edges()
                .into_iter()
                .map(|(from, to)| (from.into(), to.into()))
                .collect(),
            artifacts,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RunReport {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = ReportRepr::deserialize(deserializer)?;
        let stages = repr.stages.into_owned();
        Ok(Self {
            pipeline: None,
            name: Arc::from(&*repr.pipeline),
            outcome: repr.outcome,
            elapsed: Duration::from_micros(repr.elapsed_us),
            artifacts: Box::new([]),
            recorded: Some(Arc::new(Recorded {
                edges: repr
                    .edges
                    .into_iter()
                    .map(|(from, to)| (from.into_owned(), to.into_owned()))
                    .collect(),
                artifacts: repr.artifacts,
            })),
            stages,
        })
    }
}

impl fmt::Display for RunReport {
    /// A table: one line per stage with its status and timings, then the outcome.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .stages
            .iter()
            .map(|stage| stage.name.len())
            .max()
            .unwrap_or(0);
        for stage in &self.stages {
            let timing = match (stage.started, stage.elapsed) {
                (Some(started), Some(elapsed)) => {
                    format!("at {started:>10.3?}  took {elapsed:>10.3?}")
                }
                _ => format!("{:30}", ""),
            };
            writeln!(f, "{:width$}  {timing}  {}", stage.name, stage.status)?;
            for fan_out in &stage.fan_out {
                writeln!(f, "{:width$}    fan-out: {fan_out}", "")?;
            }
            for record in &stage.failed_attempts {
                writeln!(
                    f,
                    "{:width$}    attempt {} failed after {:.3?}: {}",
                    "", record.attempt, record.elapsed, record.failure
                )?;
            }
            if !stage.iterations.is_empty() {
                writeln!(f, "{:width$}    iterations: {}", "", stage.iterations.len())?;
            }
        }
        match (self.outcome, self.interrupted()) {
            (RunOutcome::Interrupted, Some((stage, reason))) => write!(
                f,
                "run Interrupted (paused at stage {stage}, waiting for input: {reason}) in {:.3?}",
                self.elapsed
            ),
            (outcome, _) => write!(f, "run {outcome:?} in {:.3?}", self.elapsed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{AttemptRecord, RunOutcome, RunReport, SkipReason, StageReport, StageStatus};
    use crate::error::StageError;
    use crate::events::AttemptFailure;

    fn stage(name: &Arc<str>, status: StageStatus) -> StageReport {
        StageReport {
            name: name.clone(),
            status,
            started: Some(Duration::ZERO),
            elapsed: Some(Duration::ZERO),
            failed_attempts: Vec::new(),
            fan_out: Vec::new(),
            iterations: Vec::new(),
            resumed: false,
        }
    }

    fn report(name: &Arc<str>, stages: Vec<StageReport>) -> RunReport {
        RunReport {
            pipeline: None,
            name: name.clone(),
            outcome: RunOutcome::Failed,
            elapsed: Duration::ZERO,
            stages,
            artifacts: Box::new([]),
            recorded: None,
        }
    }

    #[test]
    fn dropping_a_report_drops_every_stage_name_once_on_the_short_and_the_full_path() {
        let names: Vec<Arc<str>> = (0..7).map(|n| Arc::from(format!("s{n}"))).collect();
        let nested = report(
            &names[6],
            vec![stage(&names[6], StageStatus::Succeeded { attempts: 1 })],
        );
        let mut failed = stage(
            &names[1],
            StageStatus::Failed {
                error: StageError::permanent("no"),
                attempts: 1,
            },
        );
        failed.failed_attempts.push(AttemptRecord {
            attempt: 1,
            started: Duration::ZERO,
            elapsed: Duration::ZERO,
            failure: AttemptFailure::Error {
                error: StageError::permanent("no"),
            },
            backoff: Duration::ZERO,
        });
        let mut looped = stage(&names[4], StageStatus::Succeeded { attempts: 1 });
        looped.iterations.push(nested);
        let mut reserved = stage(&names[5], StageStatus::Succeeded { attempts: 1 });
        reserved.fan_out.reserve(4);
        let stages = vec![
            stage(&names[0], StageStatus::Succeeded { attempts: 1 }),
            failed,
            stage(
                &names[2],
                StageStatus::Skipped {
                    because: SkipReason::FailFast {
                        stage: String::from("s1"),
                    },
                },
            ),
            stage(&names[3], StageStatus::Cancelled),
            looped,
            reserved,
        ];
        let run = report(&names[0], stages);
        let copy = run.clone();
        drop(run);
        drop(copy);
        for name in &names {
            assert_eq!(Arc::strong_count(name), 1, "{name} is dropped exactly once");
        }
    }
}
