//! Bounded loops: a stage that runs a sub-pipeline again and again until a condition holds.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::context::StageContext;
use crate::error::StageError;
use crate::input::RunInput;
use crate::options::RunOptions;
use crate::pipeline::Pipeline;
use crate::report::{RunOutcome, RunReport, StageStatus};

/// When a loop stage ([`PipelineBuilder::repeat`](crate::PipelineBuilder::repeat)) stops: after
/// at most `max_iterations` iterations, or as soon as the stop condition holds for an iteration's
/// report.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::LoopPolicy;
///
/// let policy = LoopPolicy::new(5).until(|report| report.is_success());
/// assert_eq!(policy.max_iterations(), 5);
/// ```
#[derive(Clone)]
#[must_use = "a loop policy does nothing until a loop stage uses it"]
pub struct LoopPolicy {
    max_iterations: u32,
    until: Option<Arc<StopCondition>>,
}

/// Whether a loop stops after an iteration, from that iteration's report.
type StopCondition = dyn Fn(&RunReport) -> bool + Send + Sync;

impl fmt::Debug for LoopPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopPolicy")
            .field("max_iterations", &self.max_iterations)
            .field("until", &self.until.is_some())
            .finish()
    }
}

impl LoopPolicy {
    /// At most `max_iterations` iterations (0 counts as 1), without a stop condition.
    pub fn new(max_iterations: u32) -> Self {
        Self {
            max_iterations: max_iterations.max(1),
            until: None,
        }
    }

    /// Stops after the first iteration whose report satisfies `condition`.
    pub fn until(self, condition: impl Fn(&RunReport) -> bool + Send + Sync + 'static) -> Self {
        Self {
            until: Some(Arc::new(condition)),
            ..self
        }
    }

    /// The most iterations the loop runs.
    pub fn max_iterations(&self) -> u32 {
        self.max_iterations
    }
}

/// Why a loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoopStop {
    /// The stop condition held.
    Condition,
    /// It ran `max_iterations` iterations without the condition holding.
    MaxIterations,
}

/// A loop stage's artifact: every iteration's report, in order, and why it stopped.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoopReport {
    /// One report per iteration.
    pub iterations: Vec<RunReport>,
    /// Why the loop stopped.
    pub stopped: LoopStop,
}

impl LoopReport {
    /// The last iteration's report.
    pub fn last(&self) -> Option<&RunReport> {
        self.iterations.last()
    }
}

/// The input of each iteration of a loop's body: read it with
/// `ctx.run_input::<Iteration>()` in the body's stages.
#[derive(Debug, Clone)]
pub struct Iteration {
    number: u32,
    previous: Option<RunReport>,
    parent: StageContext,
}

impl Iteration {
    /// The iteration's number, 1 for the first.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The previous iteration's report (`None` in the first).
    pub fn previous(&self) -> Option<&RunReport> {
        self.previous.as_ref()
    }

    /// The loop stage's own context: the outer run's input and the artifacts the loop stage may
    /// read (its dependencies and declared reads).
    pub fn parent(&self) -> &StageContext {
        &self.parent
    }
}

/// One attempt of a loop stage.
pub(crate) async fn run_loop(
    context: StageContext,
    body: Pipeline,
    policy: LoopPolicy,
) -> Result<LoopReport, StageError> {
    let mut iterations: Vec<RunReport> = Vec::new();
    for number in 1..=policy.max_iterations {
        // An iteration whose stages finish at once is ready at its first poll: a unit of tokio's
        // cooperative budget per iteration makes a long loop hand the thread back now and then, so
        // the outer run sees its deadline and cancellation (and the loop stops there).
        tokio::task::coop::consume_budget().await;
        // The previous report is lent to the iteration, not copied: it moves into the input and
        // back once the run has let go of it (a copy only when a stage kept its context alive).
        let input = Arc::new(Iteration {
            number,
            previous: iterations.pop(),
            parent: context.clone(),
        });
        let options = RunOptions::default()
            .with_cancel(context.cancellation())
            .with_seed(context.seed() ^ u64::from(number))
            .with_run_input(RunInput::from_arc(input.clone()));
        let report = crate::checkpoint::run_iteration(&context, &body, number, options).await;
        let previous = match Arc::try_unwrap(input) {
            Ok(input) => input.previous,
            Err(shared) => shared.previous.clone(),
        };
        iterations.extend(previous);
        let report = report?;
        context.record_iteration(number, &report);
        if let Some(reason) = interrupted(&report) {
            // The body waits for outside input: so does the loop. In a durable run the loop stage
            // ends interrupted, and a resume re-enters this iteration, where the body's stage that
            // asked gets the value (`Journal::iteration`).
            return Err(StageError::Interrupted {
                reason: format!("iteration {number}: {reason}"),
            });
        }
        if !report.is_success() {
            // The cause: a stage that failed or timed out, before one cancelled because of it (a
            // fail-fast body cancels its other stages) or skipped.
            let stages = report.stages();
            let (stage, status) = stages
                .iter()
                .find(|stage| {
                    matches!(
                        stage.status,
                        StageStatus::Failed { .. } | StageStatus::TimedOut { .. }
                    )
                })
                .or_else(|| {
                    stages.iter().find(|stage| {
                        !stage.status.is_success()
                            && !matches!(stage.status, StageStatus::Skipped { .. })
                    })
                })
                .or_else(|| stages.iter().find(|stage| !stage.status.is_success()))
                .map_or_else(
                    || (String::new(), format!("{:?}", report.outcome())),
                    |stage| (stage.name.to_string(), stage.status.to_string()),
                );
            return Err(StageError::Iteration {
                iteration: number,
                stage,
                status,
            });
        }
        let done = policy.until.as_ref().is_some_and(|until| until(&report));
        iterations.push(report);
        if done {
            return Ok(LoopReport {
                iterations,
                stopped: LoopStop::Condition,
            });
        }
    }
    Ok(LoopReport {
        iterations,
        stopped: LoopStop::MaxIterations,
    })
}

/// Why the iteration paused, when it ended interrupted (one of its stages asked for outside input,
/// and nothing failed).
fn interrupted(report: &RunReport) -> Option<String> {
    if report.outcome() != RunOutcome::Interrupted {
        return None;
    }
    report
        .stages()
        .iter()
        .find_map(|stage| match &stage.status {
            StageStatus::Interrupted { reason, .. } => {
                Some(format!("stage `{}`: {reason}", stage.name))
            }
            _ => None,
        })
}
