//! How a run is carried out: concurrency, failure policy, deadline, cancellation, seed, events.

use std::time::Duration;

use hivekit_runtime::ConcurrencyLimit;
use tokio_util::sync::CancellationToken;

use crate::events::EventSink;
use crate::input::RunInput;

/// What a run does when a stage fails (after its retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Stop the run: running stages are cancelled, stages not started are skipped.
    #[default]
    FailFast,
    /// Skip only the stages that depend on the failed one; everything independent of it still runs.
    ContinueIndependent,
}

/// Options of one run; `RunOptions::default()` runs without a concurrency limit, fails fast, has no
/// deadline and orders ready stages by declaration.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hivekit_swarm::{ConcurrencyLimit, FailurePolicy, RunOptions};
///
/// let options = RunOptions {
///     max_concurrency: ConcurrencyLimit::new(4)?,
///     failure: FailurePolicy::ContinueIndependent,
///     deadline: Some(Duration::from_secs(30)),
///     seed: Some(7),
///     ..RunOptions::default()
/// };
/// assert_eq!(options.max_concurrency.slots(), 4);
/// # Ok::<(), hivekit_swarm::ConcurrencyLimitError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "options do nothing until a run is started with them"]
pub struct RunOptions {
    /// The most stages in flight at once (default: [`ConcurrencyLimit::Unbounded`]). Ready stages
    /// beyond it wait in a priority scheduler ordered by their hints.
    pub max_concurrency: ConcurrencyLimit,
    /// What to do when a stage fails.
    pub failure: FailurePolicy,
    /// The longest the whole run may take, from its start; then running stages are cancelled.
    /// `None`, `Duration::MAX` or any deadline the clock cannot represent from the run's start: no
    /// deadline. `Some(Duration::ZERO)`: the deadline has passed as the run starts; the run ends
    /// as soon as the timer says so (at once, or at tokio's next millisecond tick), and every
    /// stage that has not finished by then is cancelled or skipped.
    pub deadline: Option<Duration>,
    /// Cancels the run from outside; running stages are cancelled and the report says which.
    pub cancel: CancellationToken,
    /// Orders stages that become ready together (a seeded shuffle; `None`: declaration order) and
    /// seeds retry jitter, so a run is reproducible.
    pub seed: Option<u64>,
    /// Where stage events go (`None`: nowhere, at no cost).
    pub events: Option<EventSink>,
    /// The run's input, read by stages with [`StageContext::run_input`](crate::StageContext::run_input).
    pub input: Option<RunInput>,
}

impl RunOptions {
    /// These options with at most `limit` stages in flight.
    pub fn with_max_concurrency(self, limit: impl Into<ConcurrencyLimit>) -> Self {
        Self {
            max_concurrency: limit.into(),
            ..self
        }
    }

    /// These options with another failure policy.
    pub fn with_failure(self, failure: FailurePolicy) -> Self {
        Self { failure, ..self }
    }

    /// These options with a deadline for the whole run.
    pub fn with_deadline(self, deadline: Duration) -> Self {
        Self {
            deadline: Some(deadline),
            ..self
        }
    }

    /// These options with a cancellation token.
    pub fn with_cancel(self, cancel: CancellationToken) -> Self {
        Self { cancel, ..self }
    }

    /// These options with a seed.
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            seed: Some(seed),
            ..self
        }
    }

    /// These options with `input` as the run's input (see [`RunInput`]).
    pub fn with_input<T: Send + Sync + 'static>(self, input: T) -> Self {
        self.with_run_input(RunInput::new(input))
    }

    /// These options with a prepared [`RunInput`] (shared, or serializable).
    pub fn with_run_input(self, input: RunInput) -> Self {
        Self {
            input: Some(input),
            ..self
        }
    }

    /// These options with an event sink.
    pub fn with_events(self, events: EventSink) -> Self {
        Self {
            events: Some(events),
            ..self
        }
    }
}
