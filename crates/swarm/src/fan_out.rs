//! Dynamic fan-out: N sub-tasks decided at run time, bounded width, k-of-n success.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use hivekit_runtime::panic_message;
use serde::Serialize;

use crate::error::StageError;

/// How a [`StageContext::fan_out`](crate::StageContext::fan_out) runs its sub-tasks.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::FanOut;
///
/// let policy = FanOut::new(8).require(3);
/// assert_eq!((policy.width, policy.required), (8, Some(3)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOut {
    /// The most sub-tasks running at once; at least 1.
    pub width: usize,
    /// Successes needed (`None`: all of them).
    pub required: Option<usize>,
    /// Run every sub-task even when the outcome is already certain.
    pub wait_all: bool,
}

impl FanOut {
    /// At most `width` at once, every sub-task must succeed, stop early once one has failed.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            required: None,
            wait_all: false,
        }
    }

    /// Succeed when at least `required` sub-tasks succeed.
    pub fn require(self, required: usize) -> Self {
        Self {
            required: Some(required),
            ..self
        }
    }

    /// Run every sub-task to its end, even after the outcome is certain.
    pub fn wait_all(self) -> Self {
        Self {
            wait_all: true,
            ..self
        }
    }
}

/// How one sub-task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubtaskOutcome<T> {
    /// It succeeded with this value.
    Succeeded(T),
    /// It failed (or panicked).
    Failed(StageError),
    /// It was not started, or dropped unfinished, because the outcome was already certain.
    NotRun,
}

/// Every sub-task's outcome, in item order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutReport<T> {
    /// One outcome per item, in item order.
    pub outcomes: Vec<SubtaskOutcome<T>>,
    /// How many succeeded.
    pub succeeded: usize,
    /// How many failed.
    pub failed: usize,
}

impl<T> FanOutReport<T> {
    /// The successful values, in item order.
    pub fn into_successes(self) -> impl Iterator<Item = T> {
        self.outcomes
            .into_iter()
            .filter_map(|outcome| match outcome {
                SubtaskOutcome::Succeeded(value) => Some(value),
                _ => None,
            })
    }
}

/// A fan-out as the stage report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FanOutSummary {
    /// The stage attempt that ran it.
    pub attempt: u32,
    /// Items (the n).
    pub items: usize,
    /// Successes required (the k).
    pub required: usize,
    /// Sub-tasks that succeeded.
    pub succeeded: usize,
    /// Sub-tasks that failed, with their item index and error.
    pub failures: Vec<(usize, StageError)>,
    /// Sub-tasks not started or dropped unfinished.
    pub not_run: usize,
}

impl fmt::Display for FanOutSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} succeeded ({} required), {} failed, {} not run",
            self.succeeded,
            self.items,
            self.required,
            self.failures.len(),
            self.not_run
        )
    }
}

pub(crate) async fn run<I, F, Fut, T>(
    items: I,
    policy: FanOut,
    attempt: u32,
    mut f: F,
) -> (Result<FanOutReport<T>, StageError>, FanOutSummary)
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, StageError>>,
{
    let items: Vec<I::Item> = items.into_iter().collect();
    let count = items.len();
    let required = policy.required.unwrap_or(count);
    let mut summary = FanOutSummary {
        attempt,
        items: count,
        required,
        succeeded: 0,
        failures: Vec::new(),
        not_run: count,
    };
    if policy.width == 0 || required > count {
        let error = StageError::InvalidFanOut {
            width: policy.width,
            required,
            items: count,
        };
        return (Err(error), summary);
    }

    let mut outcomes: Vec<SubtaskOutcome<T>> = (0..count).map(|_| SubtaskOutcome::NotRun).collect();
    let mut pending = items.into_iter().enumerate();
    let mut running = FuturesUnordered::new();
    let mut failed = 0;
    loop {
        let settled = summary.succeeded >= required || failed > count - required;
        if settled && !policy.wait_all {
            break;
        }
        while running.len() < policy.width {
            let Some((index, item)) = pending.next() else {
                break;
            };
            match std::panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
                Ok(future) => running.push(
                    AssertUnwindSafe(future)
                        .catch_unwind()
                        .map(move |result| (index, result)),
                ),
                Err(panic) => {
                    failed += 1;
                    outcomes[index] =
                        SubtaskOutcome::Failed(StageError::Panicked(panic_message(&*panic)));
                }
            }
        }
        let Some((index, result)) = running.next().await else {
            if pending.len() == 0 {
                break;
            }
            continue;
        };
        outcomes[index] = match result {
            Ok(Ok(value)) => {
                summary.succeeded += 1;
                SubtaskOutcome::Succeeded(value)
            }
            Ok(Err(error)) => {
                failed += 1;
                SubtaskOutcome::Failed(error)
            }
            Err(panic) => {
                failed += 1;
                SubtaskOutcome::Failed(StageError::Panicked(panic_message(&*panic)))
            }
        };
    }
    drop(running);

    summary.failures = outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, outcome)| match outcome {
            SubtaskOutcome::Failed(error) => Some((index, error.clone())),
            _ => None,
        })
        .collect();
    summary.not_run = count - summary.succeeded - failed;
    let result = if summary.succeeded >= required {
        Ok(FanOutReport {
            outcomes,
            succeeded: summary.succeeded,
            failed,
        })
    } else {
        Err(StageError::FanOut {
            required,
            launched: count,
            succeeded: summary.succeeded,
        })
    };
    (result, summary)
}
