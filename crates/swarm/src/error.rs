//! The errors of the swarm: building a pipeline, running a stage, reading an artifact.

use serde::Serialize;

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
    /// A stage's timeout is zero, so no attempt could ever succeed.
    #[error("stage `{stage}` has a zero timeout")]
    ZeroTimeout {
        /// The stage.
        stage: String,
    },
}

/// Why one attempt of a stage failed. Returned by the stage's function, or made by the pipeline for a
/// panic or an unreadable input.
///
/// Everything but [`StageError::Permanent`], [`StageError::Input`] and [`StageError::InvalidFanOut`]
/// is retried when the stage's [`RetryPolicy`](crate::RetryPolicy) allows another attempt.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::StageError;
///
/// let error = StageError::msg("connection reset");
/// assert!(error.is_retryable());
/// assert!(!StageError::permanent("bad schema").is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
pub enum StageError {
    /// The stage failed; another attempt may succeed.
    #[error("{0}")]
    Failed(String),
    /// The stage failed in a way retrying cannot fix.
    #[error("{0}")]
    Permanent(String),
    /// The stage panicked; the panic message.
    #[error("panicked: {0}")]
    Panicked(String),
    /// The stage could not read one of its inputs.
    #[error(transparent)]
    Input(#[from] ArtifactError),
    /// A fan-out finished with fewer successful sub-tasks than it required.
    #[error("fan-out needed {required} of {launched} sub-tasks to succeed, {succeeded} did")]
    FanOut {
        /// Successes required (the k of k-of-n).
        required: usize,
        /// Sub-tasks the fan-out had (the n).
        launched: usize,
        /// Sub-tasks that succeeded.
        succeeded: usize,
    },
    /// A fan-out was asked for something impossible: a zero width, or more successes than items.
    #[error("invalid fan-out: width {width}, {required} required of {items} items")]
    InvalidFanOut {
        /// The requested width.
        width: usize,
        /// The requested number of successes.
        required: usize,
        /// The number of items.
        items: usize,
    },
}

impl StageError {
    /// A retryable failure with a message.
    pub fn msg(message: impl std::fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }

    /// A failure that is never retried.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::Permanent(message.to_string())
    }

    /// A retryable failure from any error, keeping its message and its sources' messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::StageError;
    ///
    /// let parsed = "x1".parse::<u32>().map_err(StageError::from_error);
    /// assert_eq!(parsed.unwrap_err().to_string(), "invalid digit found in string");
    /// ```
    pub fn from_error(error: impl std::error::Error) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Failed(message)
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Failed(_) | Self::Panicked(_) | Self::FanOut { .. }
        )
    }
}

/// Why an artifact could not be read, from a [`StageContext`](crate::StageContext) or a
/// [`RunReport`](crate::RunReport).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
pub enum ArtifactError {
    /// No stage has this name.
    #[error("unknown stage `{stage}`")]
    UnknownStage {
        /// The name asked for.
        stage: String,
    },
    /// A stage asked for the output of a stage it does not depend on (it might not have run yet).
    #[error("stage `{reader}` does not depend on stage `{stage}`")]
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
        expected: &'static str,
        /// The stage's output type.
        actual: &'static str,
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
