//! Timers that work on any tokio runtime, including one built without `enable_time`.

use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::RuntimeError;

/// A [`Sleep`] until `deadline`, on the current runtime's timer when it has one, else on the
/// global runtime's.
///
/// Inside a tokio runtime built without timers (no `enable_time`/`enable_all`), tokio's own
/// `sleep_until` panics ("timers are disabled"). A library that times its callers' work (a stage's
/// timeout, a run's deadline, an agent's call) should not take the caller down for that, so this
/// catches the panic and registers the timer with the global runtime instead: the `Sleep` still
/// wakes the task polling it, wherever that runs. The caller's runtime keeps its timer whenever it
/// has one, so `tokio::time::pause` and paused test runtimes keep controlling hivekit's timers.
///
/// Outside any runtime it also uses the global runtime's timer.
///
/// # Panics
///
/// With tokio's message when neither the current runtime nor the global one can time it: the
/// global runtime cannot be built, was [shut down](crate::shutdown), or is an adopted runtime that
/// has no timers either. Tokio's panic hook message is printed once per fallback (the panic is
/// caught, not hidden): enable timers on the runtime to silence it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// // A runtime built without timers: tokio's own `sleep` would panic here.
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// runtime.block_on(async {
///     let at = tokio::time::Instant::now() + Duration::from_millis(1);
///     hivekit_runtime::sleep_until(at).await;
/// });
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    match catch_unwind(AssertUnwindSafe(|| tokio::time::sleep_until(deadline))) {
        Ok(sleep) => sleep,
        Err(panic) => match crate::try_handle() {
            Ok(global) => {
                let _entered = global.enter();
                catch_unwind(AssertUnwindSafe(|| tokio::time::sleep_until(deadline)))
                    .unwrap_or_else(|_| resume_unwind(panic))
            }
            Err(_) => resume_unwind(panic),
        },
    }
}

/// Polls `sleep` as [`Future::poll`] does, but answers `Err(RuntimeError::ShutDown)` where tokio
/// panics because the runtime whose timer holds `sleep` is shut down ("A Tokio 1.x context was
/// found, but it is being shutdown"): a run or a round driven by another executor, timed on the
/// global runtime, meets that panic when the program shuts the runtime down under it, and should
/// end rather than unwind through its caller. Any other panic goes on unwinding.
///
/// tokio's panic hook message is still printed for the caught panic; a caller that knows its
/// timer lives on the global runtime checks [`is_shut_down`](crate::is_shut_down) first.
///
/// # Errors
///
/// [`RuntimeError::ShutDown`] once the timer's runtime is shut down.
///
/// # Examples
///
/// ```
/// use std::pin::pin;
/// use std::task::Poll;
/// use std::time::Duration;
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// runtime.block_on(async {
///     let mut sleep = pin!(hivekit_runtime::sleep(Duration::from_millis(1)));
///     let polled = std::future::poll_fn(|cx| match hivekit_runtime::poll_sleep(sleep.as_mut(), cx) {
///         Ok(Poll::Pending) => Poll::Pending,
///         ended => Poll::Ready(ended),
///     });
///     assert!(polled.await.is_ok());
/// });
/// ```
pub fn poll_sleep(sleep: Pin<&mut Sleep>, cx: &mut Context<'_>) -> Result<Poll<()>, RuntimeError> {
    match catch_unwind(AssertUnwindSafe(|| sleep.poll(cx))) {
        Ok(poll) => Ok(poll),
        Err(panic)
            if crate::is_shut_down() || crate::panic_message(&*panic).contains("shutdown") =>
        {
            Err(RuntimeError::ShutDown)
        }
        Err(panic) => resume_unwind(panic),
    }
}

/// A [`Sleep`] for `duration` from now, timed as [`sleep_until`] does (on the global runtime's
/// timer when the current runtime has none). A duration too long to add to now (such as
/// `Duration::MAX`) sleeps for about 30 years, as tokio's own `sleep` does.
///
/// # Panics
///
/// As [`sleep_until`].
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(instant_after(Instant::now(), duration))
}

/// The instant `wait` after `start`, or about 30 years after it when that does not fit in an
/// `Instant` (`Duration::MAX` as a timeout means "no limit"), as tokio does for its own timers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use hivekit_runtime::instant_after;
/// use tokio::time::Instant;
///
/// let now = Instant::now();
/// assert_eq!(instant_after(now, Duration::from_secs(1)), now + Duration::from_secs(1));
/// assert!(instant_after(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
/// ```
#[must_use]
pub fn instant_after(start: Instant, wait: Duration) -> Instant {
    start
        .checked_add(wait)
        .unwrap_or_else(|| start + FAR_FUTURE)
}

/// Tokio's own "far future" for durations that overflow an `Instant`.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
