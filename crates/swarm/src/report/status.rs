//! How a stage ended, why it was skipped, and how a whole run ended.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::StageError;

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
///
/// // Serialized internally tagged by `status`, and read back.
/// let json = serde_json::to_string(&StageStatus::Succeeded { attempts: 1 })?;
/// assert_eq!(json, r#"{"status":"succeeded","attempts":1}"#);
/// assert_eq!(serde_json::from_str::<StageStatus>(&json)?, StageStatus::Succeeded { attempts: 1 });
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
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
    /// The stage paused a [durable](crate::checkpoint::Durable) run for outside input
    /// ([`StageContext::interrupt`](crate::StageContext::interrupt)): not a failure, the run waits
    /// for [`Durable::resume_with`](crate::checkpoint::Durable::resume_with).
    Interrupted {
        /// Why, as the stage said ("needs an editor's approval").
        reason: String,
        /// Attempts made, the interrupting one included.
        attempts: u32,
    },
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
            | Self::TimedOut { attempts }
            | Self::Interrupted { attempts, .. } => *attempts,
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
            Self::Interrupted { reason, .. } => {
                write!(f, "interrupted, waiting for input: {reason}")
            }
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipReason {
    /// A dependency did not succeed: `dependency` directly, and `root` is where the chain of skips
    /// started (the same stage when the dependency itself failed). With several failed ancestors,
    /// `root` is the one whose failure reached this stage first (the first to fail, unless a
    /// concurrency limit held the other's dependents back). Under
    /// [`FailurePolicy::FailFast`](crate::FailurePolicy::FailFast) too, the failed stage's
    /// dependents are skipped with this reason; only the stages that do not depend on it get
    /// [`SkipReason::FailFast`]. [`RunReport::explain`](crate::RunReport::explain) prints the
    /// whole chain.
    Dependency {
        /// The direct dependency that did not succeed.
        dependency: String,
        /// The stage whose failure caused the chain.
        root: String,
        /// How the root ended ("failed: timed out after 3 attempts").
        root_status: String,
    },
    /// The run failed fast after `stage` failed, before this stage (which does not depend on
    /// `stage`: its dependents are skipped with [`SkipReason::Dependency`]) could start.
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
    /// A router before this stage chose other successors. Not a failure: the run still succeeds.
    RouteNotTaken {
        /// The router.
        router: String,
    },
    /// The stage's [`when`](crate::StageBuilder::when) condition was false. Not a failure.
    ConditionFalse,
    /// Every dependency of the stage was itself pruned (a route not taken, a false condition), so
    /// there was nothing to run after. Not a failure.
    Pruned {
        /// The dependency whose pruning was the last to reach this stage.
        dependency: String,
    },
}

impl SkipReason {
    /// Whether the stage was pruned by routing (a route not taken, a false condition) rather
    /// than skipped because something failed or the run stopped.
    pub fn is_pruned(&self) -> bool {
        matches!(
            self,
            Self::RouteNotTaken { .. } | Self::ConditionFalse | Self::Pruned { .. }
        )
    }
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
            Self::RouteNotTaken { router } => write!(f, "route not taken by {router}"),
            Self::ConditionFalse => f.write_str("its condition was false"),
            Self::Pruned { dependency } => write!(f, "{dependency} was pruned"),
        }
    }
}

/// How a whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunOutcome {
    /// Every stage succeeded (or was pruned by routing).
    Succeeded,
    /// At least one stage failed or timed out (with its dependents skipped).
    Failed,
    /// The cancellation token was cancelled while stages were still to run or running (a
    /// cancel seen only after every stage had ended and none failed leaves the outcome to the
    /// stages: a stage that failed may have failed on seeing the stop, so the run stays
    /// `Cancelled`).
    Cancelled,
    /// The run's deadline passed while stages were still to run or running, as for
    /// [`RunOutcome::Cancelled`]. The deadline is checked before the stages are polled: a stage
    /// that would end at the very tick of the deadline is cancelled.
    DeadlineExceeded,
    /// A stage paused the run for outside input and nothing failed: the run is not over, it waits
    /// for [`Durable::resume_with`](crate::checkpoint::Durable::resume_with) (see
    /// [`RunReport::interrupted`](crate::RunReport::interrupted)).
    Interrupted,
}
