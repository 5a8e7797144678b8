//! The errors of the swarm: building a pipeline, running a stage, reading an artifact.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::source::SourceError;

/// Why [`PipelineBuilder::build`](crate::PipelineBuilder::build) rejected a pipeline.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::{BuildError, Pipeline, StageContext, StageError};
///
/// let error = Pipeline::builder()
///     .stage("a", |_: StageContext| async { Ok::<_, StageError>(()) })
///     .after(["b"])
///     .stage("b", |_: StageContext| async { Ok::<_, StageError>(()) })
///     .after(["a"])
///     .build()
///     .unwrap_err();
/// assert_eq!(error, BuildError::Cycle { path: vec!["a".into(), "b".into(), "a".into()] });
/// assert_eq!(error.to_string(), "dependency cycle: a -> b -> a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The pipeline has no stages.
    #[error("pipeline has no stages")]
    Empty,
    /// Two stages share a name.
    #[error("stage `{0}` is defined more than once")]
    DuplicateStage(String),
    /// A stage's name is empty: nothing could depend on it, read it, or find it in a report.
    #[error("stage {position} (counting from 0 in declaration order) has an empty name")]
    EmptyStageName {
        /// The stage's place in declaration order, from 0.
        position: usize,
    },
    /// A stage depends on a stage that does not exist.
    #[error("stage `{stage}` depends on unknown stage `{missing}`")]
    UnknownDependency {
        /// The stage that declared the dependency.
        stage: String,
        /// The name that matches no stage.
        missing: String,
    },
    /// The dependencies form a cycle.
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle {
        /// The stages of the cycle in execution order, the first repeated at the end
        /// (`a -> b -> a`: `b` runs after `a`, which runs after `b`).
        path: Vec<String>,
    },
    /// A stage's retry policy cannot be followed.
    #[error("stage `{stage}` has an invalid retry policy: {reason}")]
    InvalidRetryPolicy {
        /// The stage.
        stage: String,
        /// What is wrong with the policy.
        reason: &'static str,
    },
    /// A stage declares a read of a stage that does not exist.
    #[error("stage `{stage}` reads unknown stage `{read}`")]
    UnknownRead {
        /// The stage that declared the read.
        stage: String,
        /// The name that matches no stage.
        read: String,
    },
    /// A stage declares a read of a stage that is not one of its ancestors, so it may not have
    /// finished when the reader runs.
    #[error("stage `{stage}` reads stage `{read}`, which is not one of its ancestors")]
    NotAnAncestor {
        /// The stage that declared the read.
        stage: String,
        /// The stage it reads.
        read: String,
    },
    /// A stage's timeout is zero, so no attempt could ever succeed.
    #[error("stage `{stage}` has a zero timeout")]
    ZeroTimeout {
        /// The stage.
        stage: String,
    },
    /// A [`durable`](crate::PipelineBuilder::durable) pipeline has a stage whose artifact cannot be
    /// checkpointed: it is not `()` and the stage did not declare it
    /// [`durable`](crate::StageBuilder::durable) (which needs `Serialize + DeserializeOwned`); or a
    /// loop stage whose body has such a stage (a loop stage is restored iteration by iteration,
    /// from its body's checkpointed stages).
    #[error("stage `{stage}` of a durable pipeline has an artifact of type `{output_type}` that is not declared durable")]
    NotDurable {
        /// The stage.
        stage: String,
        /// Its artifact's type.
        output_type: &'static str,
    },
}

/// Why one attempt of a stage failed. Returned by the stage's function, or made by the pipeline for a
/// panic or an unreadable input.
///
/// `?` works on any `std::error::Error + Send + Sync + 'static` inside a stage: the error becomes
/// [`StageError::Source`] and keeps its type and source chain (see [`SourceError`]), so a report can
/// be asked what exactly failed, and a [`retry_on`](crate::StageBuilder::retry_on) predicate can
/// look at it. That blanket conversion is why `StageError` itself does not implement
/// `std::error::Error` (as `anyhow::Error` does not); it converts into `Box<dyn Error + Send + Sync>`,
/// and [`as_error`](StageError::as_error) lends it as one.
///
/// [`StageError::Permanent`], [`StageError::Input`], [`StageError::InvalidFanOut`],
/// [`StageError::InvalidFanOutRetry`] and [`StageError::InvalidRoute`] are never retried; everything else is, when the stage's
/// [`RetryPolicy`](crate::RetryPolicy) allows another attempt (and its `retry_on` predicate agrees).
///
/// # Examples
///
/// ```
/// use hivekit_swarm::{Pipeline, StageContext, StageError, StageStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let error = StageError::msg("connection reset");
/// assert!(error.is_retryable());
/// assert!(!StageError::permanent("bad schema").is_retryable());
///
/// let pipeline = Pipeline::builder()
///     .stage("parse", |_: StageContext| async {
///         let value: u32 = "12x".parse()?; // a ParseIntError, kept whole
///         Ok::<_, StageError>(value)
///     })
///     .build()?;
/// let report = pipeline.run().await;
/// let Some(StageStatus::Failed { error, .. }) = report.status("parse") else { unreachable!() };
/// assert!(error.downcast_ref::<std::num::ParseIntError>().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StageError {
    /// The stage failed; another attempt may succeed.
    Failed(String),
    /// The stage failed in a way retrying cannot fix.
    Permanent(String),
    /// The stage panicked; the panic message.
    Panicked(String),
    /// The stage could not read one of its inputs (or the run's input).
    Input(ArtifactError),
    /// An error of any type, returned with `?` or [`StageError::from_error`], with its source chain.
    Source(SourceError),
    /// A fan-out finished with fewer successful sub-tasks than it required.
    FanOut {
        /// Successes required (the k of k-of-n).
        required: usize,
        /// Sub-tasks the fan-out had (the n).
        launched: usize,
        /// Sub-tasks that had succeeded when the outcome became certain (with the default early
        /// stop, the items still running then are cancelled and not counted).
        succeeded: usize,
    },
    /// A fan-out was asked for something impossible: a zero width, or more successes than items.
    InvalidFanOut {
        /// The requested width.
        width: usize,
        /// The requested number of successes.
        required: usize,
        /// The number of items.
        items: usize,
    },
    /// A fan-out was given a retry policy no run could follow (zero attempts, a backoff
    /// multiplier below 1 or not finite, a jitter outside 0..=1), as
    /// [`BuildError::InvalidRetryPolicy`](crate::BuildError::InvalidRetryPolicy) refuses on a
    /// stage; nothing was run.
    InvalidFanOutRetry {
        /// What is wrong with the policy.
        reason: String,
    },
    /// A router chose a stage that is not one of its successors.
    InvalidRoute {
        /// The router.
        router: String,
        /// The name it chose.
        target: String,
    },
    /// An iteration of a loop stage did not succeed.
    Iteration {
        /// The iteration, 1 for the first.
        iteration: u32,
        /// The body's first stage that did not succeed, and how it ended.
        stage: String,
        /// How that stage ended.
        status: String,
    },
    /// The stage paused the run for outside input
    /// ([`StageContext::interrupt`](crate::StageContext::interrupt)); never retried. In a
    /// [durable](crate::checkpoint::Durable) run the stage ends
    /// [`StageStatus::Interrupted`](crate::StageStatus::Interrupted), elsewhere failed with this.
    Interrupted {
        /// Why, as the stage said.
        reason: String,
    },
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(message) | Self::Permanent(message) => f.write_str(message),
            Self::Panicked(message) => write!(f, "panicked: {message}"),
            Self::Input(error) => write!(f, "{error}"),
            Self::Source(error) => write!(f, "{error}"),
            Self::FanOut {
                required,
                launched,
                succeeded,
            } => write!(
                f,
                "fan-out needed {required} of {launched} sub-tasks to succeed, {succeeded} did"
            ),
            Self::InvalidFanOut {
                width,
                required,
                items,
            } => write!(
                f,
                "invalid fan-out: width {width}, {required} required of {items} items"
            ),
            Self::InvalidFanOutRetry { reason } => {
                write!(f, "invalid fan-out retry policy: {reason}")
            }
            Self::InvalidRoute { router, target } => write!(
                f,
                "router `{router}` chose `{target}`, which is not one of its successors"
            ),
            Self::Iteration {
                iteration,
                stage,
                status,
            } => write!(f, "iteration {iteration} failed: {stage} {status}"),
            Self::Interrupted { reason } => write!(f, "interrupted: {reason}"),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for StageError {
    /// Keeps the error whole ([`StageError::Source`]); an [`ArtifactError`] becomes
    /// [`StageError::Input`].
    fn from(error: E) -> Self {
        let boxed: Box<dyn std::error::Error + Send + Sync + 'static> = Box::new(error);
        match boxed.downcast::<ArtifactError>() {
            Ok(artifact) => Self::Input(*artifact),
            Err(other) => Self::Source(SourceError::from_boxed(other)),
        }
    }
}

/// `StageError` as a `std::error::Error` (its [`source`](std::error::Error::source) is the kept
/// error's chain).
struct ErrorAdapter(StageError);

impl fmt::Debug for ErrorAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ErrorAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ErrorAdapter {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            StageError::Source(error) => error.get().source(),
            StageError::Input(error) => Some(error),
            _ => None,
        }
    }
}

impl From<StageError> for Box<dyn std::error::Error + Send + Sync + 'static> {
    fn from(error: StageError) -> Self {
        Box::new(ErrorAdapter(error))
    }
}

impl From<StageError> for Box<dyn std::error::Error + 'static> {
    fn from(error: StageError) -> Self {
        Box::new(ErrorAdapter(error))
    }
}

impl StageError {
    /// A retryable failure with a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }

    /// A failure that is never retried.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self::Permanent(message.to_string())
    }

    /// A failure from any error, kept whole with its source chain (what `?` does): retryable,
    /// except an [`ArtifactError`], which becomes [`StageError::Input`] (never retried).
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::StageError;
    ///
    /// let parsed = "x1".parse::<u32>().map_err(StageError::from_error);
    /// assert_eq!(parsed.unwrap_err().to_string(), "invalid digit found in string");
    /// ```
    pub fn from_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::from(error)
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Failed(_)
                | Self::Panicked(_)
                | Self::Source(_)
                | Self::FanOut { .. }
                | Self::Iteration { .. }
        )
    }

    /// The kept error, for [`StageError::Source`].
    pub fn source_error(&self) -> Option<&SourceError> {
        match self {
            Self::Source(error) => Some(error),
            _ => None,
        }
    }

    /// The first error of type `E` in the kept error's chain ([`StageError::Source`]), or the
    /// [`ArtifactError`] of [`StageError::Input`]; `None` for other variants, and for reports
    /// read back from JSON, which keep only messages.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Source(error) => error.downcast_ref::<E>(),
            Self::Input(error) => (error as &(dyn std::error::Error + 'static)).downcast_ref::<E>(),
            _ => None,
        }
    }

    /// This error as a `std::error::Error` (with the kept error's sources as its sources).
    pub fn as_error(&self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        Box::new(ErrorAdapter(self.clone()))
    }
}

/// The serialized shape of a [`StageError`]: internally tagged by `kind`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StageErrorRepr {
    Failed {
        message: String,
    },
    Permanent {
        message: String,
    },
    Panicked {
        message: String,
    },
    Input {
        error: ArtifactError,
    },
    Source {
        #[serde(flatten)]
        error: SourceError,
    },
    FanOut {
        required: usize,
        launched: usize,
        succeeded: usize,
    },
    InvalidFanOut {
        width: usize,
        required: usize,
        items: usize,
    },
    InvalidFanOutRetry {
        reason: String,
    },
    InvalidRoute {
        router: String,
        target: String,
    },
    Iteration {
        iteration: u32,
        stage: String,
        status: String,
    },
    Interrupted {
        reason: String,
    },
}

impl Serialize for StageError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let repr = match self.clone() {
            Self::Failed(message) => StageErrorRepr::Failed { message },
            Self::Permanent(message) => StageErrorRepr::Permanent { message },
            Self::Panicked(message) => StageErrorRepr::Panicked { message },
            Self::Input(error) => StageErrorRepr::Input { error },
            Self::Source(error) => StageErrorRepr::Source { error },
            Self::FanOut {
                required,
                launched,
                succeeded,
            } => StageErrorRepr::FanOut {
                required,
                launched,
                succeeded,
            },
            Self::InvalidFanOut {
                width,
                required,
                items,
            } => StageErrorRepr::InvalidFanOut {
                width,
                required,
                items,
            },
            Self::InvalidFanOutRetry { reason } => StageErrorRepr::InvalidFanOutRetry { reason },
            Self::InvalidRoute { router, target } => {
                StageErrorRepr::InvalidRoute { router, target }
            }
            Self::Iteration {
                iteration,
                stage,
                status,
            } => StageErrorRepr::Iteration {
                iteration,
                stage,
                status,
            },
            Self::Interrupted { reason } => StageErrorRepr::Interrupted { reason },
        };
        repr.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StageError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match StageErrorRepr::deserialize(deserializer)? {
            StageErrorRepr::Failed { message } => Self::Failed(message),
            StageErrorRepr::Permanent { message } => Self::Permanent(message),
            StageErrorRepr::Panicked { message } => Self::Panicked(message),
            StageErrorRepr::Input { error } => Self::Input(error),
            StageErrorRepr::Source { error } => Self::Source(error),
            StageErrorRepr::FanOut {
                required,
                launched,
                succeeded,
            } => Self::FanOut {
                required,
                launched,
                succeeded,
            },
            StageErrorRepr::InvalidFanOut {
                width,
                required,
                items,
            } => Self::InvalidFanOut {
                width,
                required,
                items,
            },
            StageErrorRepr::InvalidFanOutRetry { reason } => Self::InvalidFanOutRetry { reason },
            StageErrorRepr::InvalidRoute { router, target } => {
                Self::InvalidRoute { router, target }
            }
            StageErrorRepr::Iteration {
                iteration,
                stage,
                status,
            } => Self::Iteration {
                iteration,
                stage,
                status,
            },
            StageErrorRepr::Interrupted { reason } => Self::Interrupted { reason },
        })
    }
}

/// Why an artifact could not be read, from a [`StageContext`](crate::StageContext) or a
/// [`RunReport`](crate::RunReport).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ArtifactError {
    /// No stage has this name.
    #[error("unknown stage `{stage}`")]
    UnknownStage {
        /// The name asked for.
        stage: String,
    },
    /// A stage asked for the output of a stage it neither depends on nor declared a read of (with
    /// [`reads`](crate::StageBuilder::reads)), so it might not have run yet.
    #[error("stage `{reader}` neither depends on nor declares a read of stage `{stage}`")]
    NotADependency {
        /// The stage that asked.
        reader: String,
        /// The stage whose output it asked for.
        stage: String,
    },
    /// The stage produced no artifact: it did not succeed.
    #[error("stage `{stage}` produced no artifact")]
    Missing {
        /// The stage.
        stage: String,
    },
    /// The artifact has another type than the one asked for.
    #[error("artifact of stage `{stage}` is a `{actual}`, not a `{expected}`")]
    WrongType {
        /// The stage.
        stage: String,
        /// The type asked for.
        expected: String,
        /// The stage's output type.
        actual: String,
    },
    /// A stage asked for the run's input, and the run has none.
    #[error("stage `{stage}` asked for the run's input, and the run has none")]
    NoRunInput {
        /// The stage that asked.
        stage: String,
    },
    /// The run's input has another type than the one asked for.
    #[error("the run's input is a `{actual}`, not a `{expected}` (asked for by stage `{stage}`)")]
    RunInputWrongType {
        /// The stage that asked.
        stage: String,
        /// The type asked for.
        expected: String,
        /// The input's type.
        actual: String,
    },
    /// The report was read back from JSON: it has no live artifacts, only the exported ones
    /// ([`RunReport::artifact_json`](crate::RunReport::artifact_json)).
    #[error("the report of stage `{stage}` was read back from JSON and holds no live artifact")]
    NotLive {
        /// The stage.
        stage: String,
    },
    /// The stage's output was not registered for export (`.export()` on the stage).
    #[error("artifact of stage `{stage}` is not exported")]
    NotExported {
        /// The stage.
        stage: String,
    },
    /// Serializing the artifact failed.
    #[error("cannot serialize artifact of stage `{stage}`: {message}")]
    Serialize {
        /// The stage.
        stage: String,
        /// serde_json's message.
        message: String,
    },
}
