//! What a run reports: each stage's status, timings and artifact, and the run's outcome.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::error::{ArtifactError, StageError};
use crate::fan_out::FanOutSummary;
use crate::pipeline::{Artifact, PipelineInner};

/// How a stage ended.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::{StageError, StageStatus};
///
/// let failed = StageStatus::Failed { error: StageError::msg("no route"), attempts: 2 };
/// assert_eq!(failed.to_string(), "failed: no route (after 2 attempts)");
/// assert_eq!(StageStatus::TimedOut { attempts: 3 }.to_string(), "failed: timed out after 3 attempts");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum StageStatus {
    /// The stage produced its artifact, on attempt number `attempts`.
    Succeeded {
        /// Attempts made, the successful one included.
        attempts: u32,
    },
    /// The last attempt failed with `error`.
    Failed {
        /// The last attempt's error.
        error: StageError,
        /// Attempts made.
        attempts: u32,
    },
    /// The last attempt took longer than the stage's timeout.
    TimedOut {
        /// Attempts made.
        attempts: u32,
    },
    /// The stage never started.
    Skipped {
        /// Why.
        because: SkipReason,
    },
    /// The stage was running when the run stopped (fail-fast, deadline or cancellation).
    Cancelled,
}

impl StageStatus {
    /// Whether the stage succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Succeeded { .. })
    }

    /// Attempts made (0 for a skipped or cancelled stage).
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Succeeded { attempts }
            | Self::Failed { attempts, .. }
            | Self::TimedOut { attempts } => *attempts,
            Self::Skipped { .. } | Self::Cancelled => 0,
        }
    }
}

fn plural(count: u32) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

impl fmt::Display for StageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Succeeded { attempts } => {
                write!(f, "succeeded after {attempts} attempt{}", plural(*attempts))
            }
            Self::Failed { error, attempts } => {
                write!(
                    f,
                    "failed: {error} (after {attempts} attempt{})",
                    plural(*attempts)
                )
            }
            Self::TimedOut { attempts } => {
                write!(
                    f,
                    "failed: timed out after {attempts} attempt{}",
                    plural(*attempts)
                )
            }
            Self::Skipped { because } => write!(f, "skipped because {because}"),
            Self::Cancelled => f.write_str("was cancelled"),
        }
    }
}

/// Why a stage was skipped.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::SkipReason;
///
/// let direct = SkipReason::Dependency {
///     dependency: "parse".into(),
///     root: "parse".into(),
///     root_status: "failed: timed out after 3 attempts".into(),
/// };
/// assert_eq!(direct.to_string(), "parse failed: timed out after 3 attempts");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum SkipReason {
    /// A dependency did not succeed: `dependency` directly, and `root` is where the chain of skips
    /// started (the same stage when the dependency itself failed). [`RunReport::explain`] prints the
    /// whole chain.
    Dependency {
        /// The direct dependency that did not succeed.
        dependency: String,
        /// The stage whose failure caused the chain.
        root: String,
        /// How the root ended ("failed: timed out after 3 attempts").
        root_status: String,
    },
    /// The run failed fast after `stage` failed, before this stage could start.
    FailFast {
        /// The stage whose failure stopped the run.
        stage: String,
    },
    /// The run was cancelled before this stage could start.
    Cancelled,
    /// The run's deadline passed before this stage could start.
    DeadlineExceeded,
    /// The run found no tokio runtime and could not build hivekit's global one.
    NoRuntime {
        /// Why the runtime could not be built.
        error: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dependency {
                dependency,
                root,
                root_status,
            } if dependency == root => write!(f, "{root} {root_status}"),
            Self::Dependency {
                dependency,
                root,
                root_status,
            } => write!(
                f,
                "{dependency} was skipped (root cause: {root} {root_status})"
            ),
            Self::FailFast { stage } => write!(f, "the run stopped after {stage} failed"),
            Self::Cancelled => f.write_str("the run was cancelled"),
            Self::DeadlineExceeded => f.write_str("the run's deadline passed"),
            Self::NoRuntime { error } => write!(f, "no tokio runtime is available: {error}"),
        }
    }
}

/// How a whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RunOutcome {
    /// Every stage succeeded.
    Succeeded,
    /// At least one stage failed or timed out (with its dependents skipped).
    Failed,
    /// The cancellation token was cancelled.
    Cancelled,
    /// The run's deadline passed.
    DeadlineExceeded,
}

/// One stage's part of a [`RunReport`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StageReport {
    /// The stage's name.
    pub name: Arc<str>,
    /// How it ended.
    pub status: StageStatus,
    /// When its first attempt started, from the run's start (`None` if it never started).
    /// Serialized as `started_us`, in microseconds.
    #[serde(rename = "started_us", serialize_with = "optional_micros")]
    pub started: Option<Duration>,
    /// From its first attempt's start to its end, backoff waits included (`None` if it never
    /// started). Serialized as `elapsed_us`, in microseconds.
    #[serde(rename = "elapsed_us", serialize_with = "optional_micros")]
    pub elapsed: Option<Duration>,
    /// The sub-tasks of its fan-outs, if it launched any.
    pub fan_out: Vec<FanOutSummary>,
}

/// The result of a run: every stage's status and timings, the artifacts, and the outcome. Stages are
/// listed in declaration order.
///
/// `Serialize` writes the outcome, the timings, every stage, and the artifacts of stages registered
/// with [`export`](crate::StageBuilder::export); [`to_json`](RunReport::to_json) is the shortcut.
#[derive(Clone)]
pub struct RunReport {
    pub(crate) pipeline: Arc<PipelineInner>,
    pub(crate) outcome: RunOutcome,
    pub(crate) elapsed: Duration,
    pub(crate) stages: Vec<StageReport>,
    pub(crate) artifacts: Box<[std::sync::OnceLock<Artifact>]>,
}

impl fmt::Debug for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunReport")
            .field("outcome", &self.outcome)
            .field("elapsed", &self.elapsed)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

impl RunReport {
    /// How the run ended.
    pub fn outcome(&self) -> RunOutcome {
        self.outcome
    }

    /// Whether every stage succeeded.
    pub fn is_success(&self) -> bool {
        self.outcome == RunOutcome::Succeeded
    }

    /// The run's wall time.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Every stage, in declaration order.
    pub fn stages(&self) -> &[StageReport] {
        &self.stages
    }

    /// One stage's report.
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.pipeline.lookup(name).map(|stage| &self.stages[stage])
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
    /// [`ArtifactError::WrongType`] if `T` is not its output type.
    pub fn artifact<T: Send + Sync + 'static>(&self, name: &str) -> Result<Arc<T>, ArtifactError> {
        let stage = self
            .pipeline
            .lookup(name)
            .ok_or_else(|| ArtifactError::UnknownStage {
                stage: name.to_owned(),
            })?;
        downcast(&self.pipeline, stage, self.artifacts[stage].get())
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
        let mut exported = serde_json::Map::new();
        for (stage, spec) in self.pipeline.stages.iter().enumerate() {
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
            .pipeline
            .lookup(name)
            .ok_or_else(|| ArtifactError::UnknownStage {
                stage: name.to_owned(),
            })?;
        let spec = &self.pipeline.stages[stage];
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

    /// A stage's status with the whole chain of skips spelled out:
    /// `"report skipped because render was skipped because parse failed: timed out after 3 attempts"`.
    pub fn explain(&self, name: &str) -> Option<String> {
        let mut stage = self.pipeline.lookup(name)?;
        let mut text = format!("{name} ");
        // Each step moves to a dependency, so the walk ends within the number of stages.
        for _ in 0..=self.stages.len() {
            match &self.stages[stage].status {
                StageStatus::Skipped {
                    because: SkipReason::Dependency { dependency, .. },
                } => {
                    text.push_str("skipped because ");
                    text.push_str(dependency);
                    text.push(' ');
                    match self.pipeline.lookup(dependency) {
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

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn optional_micros<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    duration.map(micros).serialize(serializer)
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
            expected: std::any::type_name::<T>(),
            actual: spec.output_type,
        })
}

impl Serialize for RunReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let artifacts = self.export_artifacts().map_err(serde::ser::Error::custom)?;
        let mut report = serializer.serialize_struct("RunReport", 4)?;
        report.serialize_field("outcome", &self.outcome)?;
        report.serialize_field("elapsed_us", &micros(self.elapsed))?;
        report.serialize_field("stages", &self.stages)?;
        report.serialize_field("artifacts", &artifacts)?;
        report.end()
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
        }
        write!(f, "run {:?} in {:.3?}", self.outcome, self.elapsed)
    }
}
