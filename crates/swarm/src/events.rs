//! Stage events: started, retried, finished, skipped, cancelled; to a callback or a channel.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::StageError;
use crate::report::{SkipReason, StageStatus};

/// Why an attempt failed: an error, or the stage's timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AttemptFailure {
    /// The stage returned (or panicked with) an error.
    Error(StageError),
    /// The attempt took longer than the stage's timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Error(error) => write!(f, "{error}"),
            Self::TimedOut(after) => write!(f, "timed out after {after:?}"),
        }
    }
}

/// Something that happened to a stage during a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        delay: Duration,
    },
    /// The stage finished: succeeded, failed or timed out.
    Finished {
        /// The stage.
        stage: Arc<str>,
        /// How it finished.
        status: StageStatus,
        /// From its first attempt's start to its end.
        elapsed: Duration,
    },
    /// The stage will not run.
    Skipped {
        /// The stage.
        stage: Arc<str>,
        /// Why.
        because: SkipReason,
    },
    /// The stage was running when the run stopped (fail-fast, deadline or cancellation).
    Cancelled {
        /// The stage.
        stage: Arc<str>,
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
            | Self::Cancelled { stage } => stage,
        }
    }
}

/// Where a run sends its [`StageEvent`]s: a callback (called on the thread that observed the event;
/// keep it short) or an unbounded channel.
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
/// pipeline.run_with(RunOptions::default().with_events(sink)).await;
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
    /// Calls `callback` with every event.
    pub fn callback(callback: impl Fn(StageEvent) + Send + Sync + 'static) -> Self {
        Self {
            deliver: Arc::new(callback),
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
}
