//! Stage events: started, retried, finished, skipped, cancelled; to a callback or a channel.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use hivekit_runtime::take_panic_message;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::StageError;
use crate::report::{RunOutcome, SkipReason, StageStatus};

/// Why an attempt failed: an error, or the stage's timeout. Serialized internally tagged by
/// `failure` (`{"failure": "timed_out", "after_us": 5000}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptFailure {
    /// The stage returned (or panicked with) an error.
    Error {
        /// The error.
        error: StageError,
    },
    /// The attempt took longer than the stage's timeout.
    TimedOut {
        /// The timeout.
        #[serde(rename = "after_us", with = "crate::micros")]
        after: Duration,
    },
}

impl AttemptFailure {
    /// The error, if the attempt failed with one.
    pub fn error(&self) -> Option<&StageError> {
        match self {
            Self::Error { error } => Some(error),
            Self::TimedOut { .. } => None,
        }
    }

    /// Whether another attempt may succeed (timeouts may; errors as [`StageError::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Error { error } => error.is_retryable(),
            Self::TimedOut { .. } => true,
        }
    }
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Error { error } => write!(f, "{error}"),
            Self::TimedOut { after } => write!(f, "timed out after {after:?}"),
        }
    }
}

/// Something that happened during a run. Events that end a stage carry the run's progress:
/// `done` stages decided of `total`. Serialized internally tagged by `event`, durations in whole
/// microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StageEvent {
    /// The stage's first attempt started.
    Started {
        /// The stage.
        stage: Arc<str>,
    },
    /// An attempt failed and another follows after `delay`.
    Retried {
        /// The stage.
        stage: Arc<str>,
        /// The number of the attempt that follows (2 for the first retry).
        next_attempt: u32,
        /// Why the previous attempt failed.
        failure: AttemptFailure,
        /// The wait before the next attempt.
        #[serde(rename = "delay_us", with = "crate::micros")]
        delay: Duration,
    },
    /// The stage finished: succeeded, failed or timed out.
    Finished {
        /// The stage.
        stage: Arc<str>,
        /// How it finished.
        status: StageStatus,
        /// From its first attempt's start to its end.
        #[serde(rename = "elapsed_us", with = "crate::micros")]
        elapsed: Duration,
        /// Stages decided so far, this one included.
        done: usize,
        /// Stages in the pipeline.
        total: usize,
    },
    /// The stage will not run.
    Skipped {
        /// The stage.
        stage: Arc<str>,
        /// Why.
        because: SkipReason,
        /// Stages decided so far, this one included.
        done: usize,
        /// Stages in the pipeline.
        total: usize,
    },
    /// The stage was running when the run stopped (fail-fast, deadline or cancellation).
    Cancelled {
        /// The stage.
        stage: Arc<str>,
        /// Stages decided so far, this one included.
        done: usize,
        /// Stages in the pipeline.
        total: usize,
    },
    /// The stage reported its own progress ([`StageContext::progress`](crate::StageContext::progress)).
    Progress {
        /// The stage.
        stage: Arc<str>,
        /// Units of work done.
        done: u64,
        /// Units of work in all.
        total: u64,
    },
    /// A fan-out item's first attempt started.
    ItemStarted {
        /// The stage running the fan-out.
        stage: Arc<str>,
        /// The item's index.
        item: usize,
        /// Items in the fan-out.
        total: usize,
    },
    /// A fan-out item finished (after its retries).
    ItemFinished {
        /// The stage running the fan-out.
        stage: Arc<str>,
        /// The item's index.
        item: usize,
        /// Whether it succeeded.
        succeeded: bool,
        /// Attempts it took.
        attempts: u32,
        /// Items finished so far, this one included.
        done: usize,
        /// Items in the fan-out.
        total: usize,
    },
    /// An iteration of a loop stage finished.
    IterationFinished {
        /// The loop stage.
        stage: Arc<str>,
        /// The iteration, 1 for the first.
        iteration: u32,
        /// How the iteration's run ended.
        outcome: RunOutcome,
    },
}

impl StageEvent {
    /// The stage the event is about.
    pub fn stage(&self) -> &str {
        match self {
            Self::Started { stage }
            | Self::Retried { stage, .. }
            | Self::Finished { stage, .. }
            | Self::Skipped { stage, .. }
            | Self::Cancelled { stage, .. }
            | Self::Progress { stage, .. }
            | Self::ItemStarted { stage, .. }
            | Self::ItemFinished { stage, .. }
            | Self::IterationFinished { stage, .. } => stage,
        }
    }
}

/// Where a run sends its [`StageEvent`]s: a callback (called on the thread that observed the event;
/// keep it short) or an unbounded channel.
///
/// Stages on tasks of their own emit their events from those tasks, so a callback may be called
/// from several threads at once. The order a run promises holds all the same: a stage's `Started`
/// comes after the event that decided each of its dependencies and before its own, and the events
/// that decide a stage (`Finished`, `Skipped`, `Cancelled`) arrive one at a time, their `done`
/// counts rising by one.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::{EventSink, Pipeline, RunOptions, StageContext, StageError, StageEvent};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), hivekit_swarm::BuildError> {
/// let pipeline = Pipeline::builder()
///     .stage("only", |_: StageContext| async { Ok::<_, StageError>(()) })
///     .build()?;
/// let (sink, mut events) = EventSink::channel();
/// let _report = pipeline.run_with(RunOptions::default().with_events(sink)).await;
/// assert!(matches!(events.recv().await, Some(StageEvent::Started { .. })));
/// assert!(matches!(events.recv().await, Some(StageEvent::Finished { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EventSink {
    deliver: Arc<dyn Fn(StageEvent) + Send + Sync>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink").finish_non_exhaustive()
    }
}

impl EventSink {
    /// Calls `callback` with every event. A callback that panics does not stop the run: the
    /// panic is caught and logged (`tracing`, at ERROR), and that event is lost. No event of a run
    /// comes after the run has returned its report: the run ends once the deliveries under way
    /// have returned (a callback that blocks delays it), and lets go of the sink then.
    ///
    /// The callback runs on the thread that sends the event, and should return promptly: it must
    /// not wait for the run to make progress. No report of an attempt comes after the event that
    /// ended the attempt (`Retried`, `Finished`, `Cancelled`), so a run that ends an attempt
    /// while one of its reports is being delivered waits for that delivery first, on the run's
    /// thread; a callback waiting there for another stage of the same run would wait on a run
    /// that waits on it.
    pub fn callback(callback: impl Fn(StageEvent) + Send + Sync + 'static) -> Self {
        Self {
            deliver: Arc::new(move |event| {
                // The callback is the user's code: a panic in it costs its event, not the run.
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(event))) {
                    // Taken before logging: tracing does not evaluate fields nobody records.
                    let message = take_panic_message(panic);
                    tracing::error!(
                        panic = %message,
                        "an event callback panicked; its event is lost"
                    );
                }
            }),
        }
    }

    /// Sends every event into `sender`; events sent after the receiver is dropped are discarded.
    pub fn sender(sender: mpsc::UnboundedSender<StageEvent>) -> Self {
        Self::callback(move |event| {
            // A dropped receiver means nobody listens any more; that is not the run's failure.
            let _ = sender.send(event);
        })
    }

    /// A new unbounded channel and a sink that sends into it.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<StageEvent>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self::sender(sender), receiver)
    }

    pub(crate) fn emit(&self, event: StageEvent) {
        (self.deliver)(event);
    }

    /// A sink forwarding to this one until the returned gate is dropped (when the run ends): then
    /// it forwards nothing and lets go of this sink, so a channel's sender is dropped and the
    /// channel closes, even while a stage's context outlives the run (a blocking attempt abandoned
    /// at its timeout runs on in its thread).
    pub(crate) fn gated(self) -> (Self, EventGate) {
        let slot = Arc::new(GateSlot {
            closed: std::sync::atomic::AtomicBool::new(false),
            sink: parking_lot::RwLock::new(Some(self)),
        });
        let forward = slot.clone();
        let sink = Self {
            deliver: Arc::new(move |event| {
                // Delivered under the read lock, so that the gate (which takes the write lock)
                // waits for deliveries under way and none lands after the run. Deliveries that
                // start once the gate closes return at once: writer not starved. Recursive: a
                // callback emitting into this sink again does not wait behind the gate.
                if forward.closed.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
                let target = forward.sink.read_recursive();
                if let Some(target) = &*target {
                    target.emit(event);
                }
            }),
        };
        (sink, EventGate(slot))
    }
}

/// Closes a run's gated event sink when dropped (see [`EventSink::gated`]).
pub(crate) struct EventGate(Arc<GateSlot>);

struct GateSlot {
    closed: std::sync::atomic::AtomicBool,
    sink: parking_lot::RwLock<Option<EventSink>>,
}

impl Drop for EventGate {
    fn drop(&mut self) {
        self.0
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        // Waits for the deliveries under way; taken out under the lock, dropped after it: the
        // sink's own drop may run user code.
        let sink = self.0.sink.write().take();
        drop(sink);
    }
}
