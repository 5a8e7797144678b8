//! How a run is carried out: concurrency, failure policy, deadline, cancellation, seed, events.

use std::time::Duration;

use hivekit_runtime::{ConcurrencyLimit, ConcurrencyLimitError, IntoConcurrencyLimit};
use tokio_util::sync::CancellationToken;

use crate::events::EventSink;
use crate::input::RunInput;

/// What a run does when a stage fails (after its retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Stop the run: running stages are cancelled, stages not started are skipped (the failed
    /// stage's dependents with [`SkipReason::Dependency`](crate::SkipReason::Dependency), the
    /// others with [`SkipReason::FailFast`](crate::SkipReason::FailFast)).
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
    ///
    /// What a seed guarantees: stages that become ready together, or wait for a slot together,
    /// start by their scheduling hints, then in the seed's order among equal hints, whether each
    /// is inline or `.spawn()`. With one slot (`max_concurrency` 1) and no retry backing off, that
    /// fixes the whole run's start order, the same for inline and spawned stages and on every run
    /// with the seed. With more slots, which running stage ends first (and so what becomes ready
    /// next) is up to the stages and, for spawned ones, the runtime's threads; an inline stage
    /// that ends on its first poll releases its dependents before the next stage is launched.
    pub seed: Option<u64>,
    /// Where stage events go (`None`: nowhere, at no cost).
    pub events: Option<EventSink>,
    /// The run's input, read by stages with [`StageContext::run_input`](crate::StageContext::run_input).
    pub input: Option<RunInput>,
}

impl RunOptions {
    /// These options with at most `limit` stages in flight (a [`ConcurrencyLimit`], a
    /// `NonZeroUsize`, or `None` for no limit; for a plain integer see
    /// [`try_with_max_concurrency`](Self::try_with_max_concurrency)).
    pub fn with_max_concurrency(self, limit: impl Into<ConcurrencyLimit>) -> Self {
        Self {
            max_concurrency: limit.into(),
            ..self
        }
    }

    /// These options with at most `limit` stages in flight, `limit` any integer (`8`, a `u32`
    /// from a config file) or limit: `RunOptions` has no build step to carry a bad number to, so
    /// the number is checked here.
    ///
    /// # Errors
    ///
    /// [`ConcurrencyLimitError::Zero`] for zero (no stage could ever start) and
    /// [`ConcurrencyLimitError::Negative`] for a negative number.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{ConcurrencyLimitError, RunOptions};
    ///
    /// let options = RunOptions::default().try_with_max_concurrency(8)?;
    /// assert_eq!(options.max_concurrency.slots(), 8);
    /// assert_eq!(
    ///     RunOptions::default().try_with_max_concurrency(0).unwrap_err(),
    ///     ConcurrencyLimitError::Zero
    /// );
    /// # Ok::<(), ConcurrencyLimitError>(())
    /// ```
    pub fn try_with_max_concurrency(
        self,
        limit: impl IntoConcurrencyLimit,
    ) -> Result<Self, ConcurrencyLimitError> {
        Ok(self.with_max_concurrency(limit.into_concurrency_limit()?))
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

/// [`RunOptions`] as a run reads them, the cancellation token optional: [`Pipeline::run`] has none
/// to watch, and making one (`RunOptions::default()` does) is a heap node behind a mutex, made and
/// dropped again by every run.
///
/// [`Pipeline::run`]: crate::Pipeline::run
#[derive(Clone, Default)]
pub(crate) struct RunSettings {
    pub(crate) max_concurrency: ConcurrencyLimit,
    pub(crate) failure: FailurePolicy,
    pub(crate) deadline: Option<Duration>,
    /// `None`: nothing cancels the run from outside.
    pub(crate) cancel: Option<CancellationToken>,
    pub(crate) seed: Option<u64>,
    pub(crate) events: Option<EventSink>,
    pub(crate) input: Option<RunInput>,
}

impl From<RunOptions> for RunSettings {
    fn from(options: RunOptions) -> Self {
        let RunOptions {
            max_concurrency,
            failure,
            deadline,
            cancel,
            seed,
            events,
            input,
        } = options;
        Self {
            max_concurrency,
            failure,
            deadline,
            cancel: Some(cancel),
            seed,
            events,
            input,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_run_has_the_default_options_without_a_token() {
        let plain = RunSettings::default();
        let defaults = RunSettings::from(RunOptions::default());
        assert_eq!(
            plain.max_concurrency.slots(),
            defaults.max_concurrency.slots()
        );
        assert_eq!(plain.failure, defaults.failure);
        assert_eq!(plain.deadline, defaults.deadline);
        assert_eq!(plain.seed, defaults.seed);
        assert_eq!(plain.events.is_some(), defaults.events.is_some());
        assert_eq!(plain.input.is_some(), defaults.input.is_some());
        assert!(plain.cancel.is_none());
        assert!(defaults.cancel.is_some_and(|token| !token.is_cancelled()));
    }
}
