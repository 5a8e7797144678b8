//! Dynamic fan-out: N sub-tasks decided at run time, bounded width, k-of-n success.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::future::Either;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use hivekit_runtime::take_panic_message;
use serde::{Deserialize, Serialize};

use crate::context::AttemptEvents;
use crate::error::StageError;
use crate::events::StageEvent;
use crate::retry::RetryPolicy;
use crate::seed::stage_seed;

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
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "a fan-out policy does nothing until `StageContext::fan_out` uses it"]
#[non_exhaustive]
pub struct FanOut {
    /// The most sub-tasks running at once; at least 1 (0 is
    /// [`StageError::InvalidFanOut`]); `usize::MAX` bounds nothing beyond the number of items.
    pub width: usize,
    /// Successes needed (`None`: all of them). `Some(0)` is met before anything runs, so nothing is
    /// started (every sub-task is run only with [`wait_all`](Self::wait_all)); more than the number
    /// of items is [`StageError::InvalidFanOut`].
    pub required: Option<usize>,
    /// Run every sub-task even when the outcome is already certain.
    pub wait_all: bool,
    /// Attempts per item and the backoff between them ([`RetryPolicy::NONE`]: one attempt). A
    /// policy a stage's build would refuse is [`StageError::InvalidFanOutRetry`].
    pub retry: RetryPolicy,
}

impl FanOut {
    /// At most `width` at once, every sub-task must succeed, stop early once one has failed.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            required: None,
            wait_all: false,
            retry: RetryPolicy::NONE,
        }
    }

    /// Retries each failed item on its own according to `policy` (retryable errors only).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use hivekit_swarm::{Backoff, FanOut, Pipeline, RetryPolicy, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// static CALLS: AtomicU32 = AtomicU32::new(0);
    /// let pipeline = Pipeline::builder()
    ///     .stage("files", |ctx: StageContext| async move {
    ///         let policy = FanOut::new(4).retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE));
    ///         let sizes = ctx
    ///             .fan_out(["a.rs", "b.rs", "c.rs"], policy, |file| async move {
    ///                 // b.rs fails once; only b.rs is tried again.
    ///                 if file == "b.rs" && CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
    ///                     return Err(StageError::msg("flaky"));
    ///                 }
    ///                 Ok(file.len())
    ///             })
    ///             .await?;
    ///         Ok::<_, StageError>(sizes.into_successes().sum::<usize>())
    ///     })
    ///     .build()?;
    /// let report = pipeline.run().await;
    /// assert_eq!(*report.artifact::<usize>("files")?, 12);
    /// assert_eq!(report.stage("files").unwrap().fan_out[0].retried, [(1, 2)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn retry(self, policy: RetryPolicy) -> Self {
        Self {
            retry: policy,
            ..self
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
#[non_exhaustive]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Items that took more than one attempt, with their index and attempt count.
    #[serde(default)]
    pub retried: Vec<(usize, u32)>,
    /// Items of a [`durable_fan_out`](crate::StageContext::durable_fan_out) read back from the
    /// run's checkpoint instead of run again (counted in `succeeded` too).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resumed: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
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
        )?;
        if !self.retried.is_empty() {
            write!(f, ", {} retried", self.retried.len())?;
        }
        if self.resumed > 0 {
            write!(f, ", {} read back from the checkpoint", self.resumed)?;
        }
        Ok(())
    }
}

/// How one running entry of the fan-out ended: an item's attempt, or the backoff before its next.
enum Step<T> {
    Attempt(usize, std::thread::Result<Result<T, StageError>>),
    WaitOver(usize),
}

/// Items a checkpoint already has (by index, with their values), and what records an item that
/// succeeds (an error fails the item, for good).
pub(crate) struct Durability<T, R> {
    pub(crate) resumed: Vec<(usize, T)>,
    pub(crate) record: R,
}

/// Records nothing.
pub(crate) type NoRecord<T> = fn(usize, &T) -> Result<(), StageError>;

/// A fan-out that checkpoints nothing.
pub(crate) fn volatile<T>() -> Durability<T, NoRecord<T>> {
    fn nothing<T>(_: usize, _: &T) -> Result<(), StageError> {
        Ok(())
    }
    Durability {
        resumed: Vec::new(),
        record: nothing::<T>,
    }
}

/// Where a fan-out's summary goes when its stage is dropped before the fan-out ends (the run
/// stopped it: deadline, cancellation, fail-fast): the run's list of fan-outs, under its stage.
pub(crate) struct Unfinished<'a> {
    pub(crate) fan_outs: &'a parking_lot::Mutex<Vec<(u32, FanOutSummary)>>,
    pub(crate) stage: u32,
}

/// A fan-out's items so far. Dropped before the fan-out ends, it records what finished (the rest
/// not run) as the stage's fan-out summary, as a loop stage keeps the iterations it finished.
struct Progress<'a, T> {
    outcomes: Vec<SubtaskOutcome<T>>,
    attempts: Vec<u32>,
    summary: FanOutSummary,
    unfinished: Option<Unfinished<'a>>,
}

impl<T> Progress<'_, T> {
    /// Fills in the summary's failures, retried items and items not run from the outcomes.
    fn summarize(&mut self) {
        let summary = &mut self.summary;
        summary.failures = self
            .outcomes
            .iter()
            .enumerate()
            .filter_map(|(index, outcome)| match outcome {
                SubtaskOutcome::Failed(error) => Some((index, error.clone())),
                _ => None,
            })
            .collect();
        summary.retried = self
            .attempts
            .iter()
            .enumerate()
            .filter(|&(_, &attempts)| attempts > 1)
            .map(|(index, &attempts)| (index, attempts))
            .collect();
        summary.not_run = summary.items - summary.succeeded - summary.failures.len();
    }
}

impl<T> Drop for Progress<'_, T> {
    fn drop(&mut self) {
        if let Some(unfinished) = self.unfinished.take() {
            self.summarize();
            let summary = std::mem::take(&mut self.summary);
            unfinished.fan_outs.lock().push((unfinished.stage, summary));
        }
    }
}

// One caller (`StageContext::fan_out_with`), which hands over its stage's pieces one by one.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<I, F, Fut, T, R>(
    items: I,
    policy: FanOut,
    attempt: u32,
    seed: u64,
    events: Option<AttemptEvents<'_>>,
    durability: Durability<T, R>,
    unfinished: Option<Unfinished<'_>>,
    mut f: F,
) -> (Result<FanOutReport<T>, StageError>, FanOutSummary)
where
    I: IntoIterator,
    I::Item: Clone,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, StageError>>,
    R: FnMut(usize, &T) -> Result<(), StageError>,
{
    let Durability {
        resumed,
        mut record,
    } = durability;
    let mut items: Vec<Option<I::Item>> = items.into_iter().map(Some).collect();
    let count = items.len();
    let required = policy.required.unwrap_or(count);
    let summary = FanOutSummary {
        attempt,
        items: count,
        required,
        succeeded: 0,
        failures: Vec::new(),
        not_run: count,
        retried: Vec::new(),
        resumed: 0,
    };
    if policy.width == 0 || required > count {
        let error = StageError::InvalidFanOut {
            width: policy.width,
            required,
            items: count,
        };
        return (Err(error), summary);
    }
    if let Err(reason) = policy.retry.validate() {
        let error = StageError::InvalidFanOutRetry {
            reason: reason.to_owned(),
        };
        return (Err(error), summary);
    }
    let max_attempts = policy.retry.max_attempts;

    let mut progress = Progress {
        outcomes: (0..count).map(|_| SubtaskOutcome::NotRun).collect(),
        attempts: vec![0u32; count],
        summary,
        unfinished,
    };
    // Items whose backoff is over, to start again before new items.
    let mut again: Vec<usize> = Vec::new();
    let mut next_item = 0;
    let mut running = FuturesUnordered::new();
    // Attempts in flight (backoff waits in `running` hold no place in the width).
    let mut in_flight = 0;
    let mut failed = 0;
    let mut finished = 0;
    // Items read back from a checkpoint are done: not started again.
    let mut done_before = Vec::new();
    if !resumed.is_empty() {
        done_before = vec![false; count];
        for (index, value) in resumed {
            if index < count && !done_before[index] {
                done_before[index] = true;
                items[index] = None;
                progress.outcomes[index] = SubtaskOutcome::Succeeded(value);
                progress.summary.succeeded += 1;
                progress.summary.resumed += 1;
                finished += 1;
            }
        }
    }
    loop {
        let settled = progress.summary.succeeded >= required || failed > count - required;
        if settled && !policy.wait_all {
            break;
        }
        // Items that end on their first poll would otherwise all run in this one poll of the
        // stage: a unit of tokio's cooperative budget per ended attempt hands the thread back now
        // and then, so the run sees its deadline and cancellation (as a loop's iterations do).
        // Spent here, once the last attempt's end is recorded: a stop at this await drops no
        // item that ended.
        tokio::task::coop::consume_budget().await;
        // An item whose closure panicked before it gave a future: a failed attempt like any other
        // (retried, or counted against the fan-out), handled below before waiting for more.
        let mut panicked_at_start = None;
        while in_flight < policy.width {
            let index = match again.pop() {
                Some(index) => index,
                None if next_item < count => {
                    next_item += 1;
                    if done_before.get(next_item - 1) == Some(&true) {
                        continue;
                    }
                    next_item - 1
                }
                None => break,
            };
            progress.attempts[index] += 1;
            // The last attempt an item can get takes the item; earlier ones clone it.
            let item = if progress.attempts[index] >= max_attempts {
                items[index].take()
            } else {
                items[index].clone()
            };
            let Some(item) = item else { continue };
            if progress.attempts[index] == 1 {
                if let Some(events) = &events {
                    events.emit(|| StageEvent::ItemStarted {
                        stage: events.stage.clone(),
                        item: index,
                        total: count,
                    });
                }
            }
            match std::panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
                Ok(future) => {
                    in_flight += 1;
                    running.push(Either::Left(
                        AssertUnwindSafe(future)
                            .catch_unwind()
                            .map(move |result| Step::Attempt(index, result)),
                    ));
                }
                Err(panic) => {
                    panicked_at_start =
                        Some((index, StageError::Panicked(take_panic_message(panic))));
                    break;
                }
            }
        }
        let (index, result) = if let Some((index, error)) = panicked_at_start {
            (index, Ok(Err(error)))
        } else {
            let Some(step) = running.next().await else {
                if next_item == count && again.is_empty() {
                    break;
                }
                continue;
            };
            match step {
                Step::WaitOver(index) => {
                    again.push(index);
                    continue;
                }
                Step::Attempt(index, result) => {
                    in_flight -= 1;
                    (index, result)
                }
            }
        };
        let error = match result {
            Ok(Ok(value)) => match record(index, &value) {
                Ok(()) => {
                    progress.summary.succeeded += 1;
                    finished += 1;
                    progress.outcomes[index] = SubtaskOutcome::Succeeded(value);
                    emit_finished(
                        &events,
                        index,
                        true,
                        progress.attempts[index],
                        finished,
                        count,
                    );
                    continue;
                }
                // Its checkpoint failed: done, but unrecorded; retrying it would repeat its effects.
                Err(error) => {
                    failed += 1;
                    finished += 1;
                    progress.outcomes[index] = SubtaskOutcome::Failed(error);
                    emit_finished(
                        &events,
                        index,
                        false,
                        progress.attempts[index],
                        finished,
                        count,
                    );
                    continue;
                }
            },
            Ok(Err(error)) => error,
            Err(panic) => StageError::Panicked(take_panic_message(panic)),
        };
        if error.is_retryable() && progress.attempts[index] < max_attempts {
            let delay = policy
                .retry
                .backoff
                .delay(progress.attempts[index], stage_seed(seed, index as u32));
            if delay.is_zero() {
                // Relaunched in this same poll (the budget spent above lets the run look in).
                again.push(index);
            } else {
                running.push(Either::Right(
                    hivekit_runtime::sleep(delay).map(move |()| Step::WaitOver(index)),
                ));
            }
            continue;
        }
        failed += 1;
        finished += 1;
        progress.outcomes[index] = SubtaskOutcome::Failed(error);
        emit_finished(
            &events,
            index,
            false,
            progress.attempts[index],
            finished,
            count,
        );
    }
    drop(running);

    // Ended here: nothing left for the drop to record.
    progress.unfinished = None;
    progress.summarize();
    let outcomes = std::mem::take(&mut progress.outcomes);
    let summary = std::mem::take(&mut progress.summary);
    let result = if summary.succeeded >= required {
        Ok(FanOutReport {
            outcomes,
            succeeded: summary.succeeded,
            failed,
        })
    } else if let Some(error) = interrupted(&outcomes) {
        // The stage cannot succeed until an item gets its outside input: the stage waits for it
        // (in a durable run it ends interrupted, and its resume value reaches the items).
        Err(error)
    } else {
        Err(StageError::FanOut {
            required,
            launched: count,
            succeeded: summary.succeeded,
        })
    };
    (result, summary)
}

/// The first item that paused for outside input ([`crate::StageContext::interrupt`]), as the stage's own
/// interrupt naming the item.
fn interrupted<T>(outcomes: &[SubtaskOutcome<T>]) -> Option<StageError> {
    outcomes
        .iter()
        .enumerate()
        .find_map(|(item, outcome)| match outcome {
            SubtaskOutcome::Failed(StageError::Interrupted { reason }) => {
                Some(StageError::Interrupted {
                    reason: format!("item {item}: {reason}"),
                })
            }
            _ => None,
        })
}

fn emit_finished(
    events: &Option<AttemptEvents<'_>>,
    item: usize,
    succeeded: bool,
    attempts: u32,
    done: usize,
    total: usize,
) {
    if let Some(events) = events {
        events.emit(|| StageEvent::ItemFinished {
            stage: events.stage.clone(),
            item,
            succeeded,
            attempts,
            done,
            total,
        });
    }
}
