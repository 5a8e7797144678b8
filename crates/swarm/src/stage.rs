//! One stage's execution: attempts, the per-attempt timeout, retries with backoff, caught panics.
//!
//! Written as a hand-rolled state machine rather than an `async fn` so that the run can name its type
//! (one `FuturesUnordered` of it, no extra box) and so that the timeout's timer is only created when
//! an attempt actually waits: a stage that finishes on its first poll pays nothing for its timeout.
//!
//! A backoff wait is not spent in here: the future returns [`StageStep::Backoff`] and the run holds
//! it parked, outside its concurrency slots, until the wait is over.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use hivekit_runtime::{take_panic_message, First, Spare};
use tokio::time::{Instant, Sleep};

use crate::context::{RunShared, StageContext};
use crate::error::StageError;
use crate::events::{AttemptFailure, StageEvent};
use crate::pipeline::Artifact;
use crate::report::AttemptRecord;
use crate::seed::stage_seed;
use crate::stage_fn::{AttemptResult, Output};

/// How a stage ended, as the run sees it, with its failed attempts.
pub(crate) enum StageOutcome {
    Succeeded {
        artifact: Artifact,
        attempts: u32,
        failed: Vec<AttemptRecord>,
    },
    Failed {
        error: StageError,
        attempts: u32,
        failed: Vec<AttemptRecord>,
    },
    TimedOut {
        attempts: u32,
        failed: Vec<AttemptRecord>,
    },
}

/// What one poll of a stage came to: the stage ended, or it must wait before its next attempt.
pub(crate) enum StageStep {
    Done(StageOutcome),
    Backoff(Duration),
}

enum AttemptState {
    Start,
    Running {
        future: BoxFuture<'static, AttemptResult>,
        /// When the attempt times out; `None` without a timeout or with one past the clock's end.
        deadline: Option<Instant>,
        timeout: Option<Pin<Box<Sleep>>>,
    },
    Done,
}

impl AttemptState {
    /// Ends the attempt in this state, dropping its future (the user's) here. A panic in that
    /// future's destructor is caught and logged: an inline stage is dropped on the run's driver
    /// (at its timeout, on fail-fast, cancellation or the deadline), and the panic would unwind
    /// out of the run and lose its report; the stage's status stays what ended it.
    fn end(&mut self) {
        let ended = std::mem::replace(self, AttemptState::Done);
        if let AttemptState::Running { .. } = ended {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(ended))) {
                // Taken before logging: tracing does not evaluate fields nobody records.
                let message = take_panic_message(panic);
                tracing::warn!(
                    panic = %message,
                    "a stage's future panicked while being dropped; the panic was caught"
                );
            }
        }
    }
}

/// A stage dropped while an attempt runs ends that attempt (see [`AttemptState::end`]).
impl Drop for Attempts {
    fn drop(&mut self) {
        self.state.end();
    }
}

pub(crate) struct StageFuture {
    attempts: Attempts,
    span: tracing::Span,
}

struct Attempts {
    shared: Arc<RunShared>,
    stage: u32,
    attempt: u32,
    state: AttemptState,
    /// When the current attempt started (read only for stages that may retry: the run knows when
    /// a single attempt started).
    attempt_started: Option<Duration>,
    failed: Vec<AttemptRecord>,
}

/// What the first poll of a stage with a single attempt came to (see [`poll_single_attempt`]).
pub(crate) enum FirstPoll {
    /// The stage succeeded on its first poll (one attempt, none failed), with this output.
    Succeeded(Output),
    /// The stage ended otherwise on its first poll.
    Done(StageOutcome),
    /// It did not: the stage, to be polled again when woken (boxed: it is kept in a set or a task
    /// while it waits, and only a pointer is moved there).
    Pending(Box<StageFuture>),
}

/// Whether a stage can start through [`poll_single_attempt`]: one attempt, no timeout (whose
/// deadline is taken when the attempt starts) and not on the blocking pool.
pub(crate) fn single_attempt(spec: &crate::pipeline::StageSpec) -> bool {
    spec.retry.max_attempts <= 1 && spec.timeout.is_none() && !spec.blocking
}

/// Starts a stage that [`single_attempt`] accepts and polls it once, without building its
/// [`StageFuture`] unless it has to wait: a stage that ends at once (most no-op and cheap
/// stages) pays for no state machine, no clone of the run's shared state and no allocation of
/// its future (built in `spare`'s block). The attempt runs in the stage's span, panics are
/// caught, and a failure is recorded as `StageFuture` would.
#[inline(always)]
pub(crate) fn poll_single_attempt(
    shared: &Arc<RunShared>,
    stage: u32,
    spare: &mut Spare,
    cx: &mut Context<'_>,
) -> FirstPoll {
    let span = stage_span(shared, stage);
    let entered = span.enter();
    let func = &shared.pipeline.stages[stage as usize].func;
    let context = StageContext::new(shared.clone(), stage, 1);
    // Built and polled in the run's spare block: an attempt that ends at once costs no allocation.
    let failure = match func.start_in(context, spare, cx) {
        Ok(First::Ready(Ok(artifact))) => return FirstPoll::Succeeded(artifact),
        Ok(First::Ready(Err(error))) => AttemptFailure::Error { error },
        Ok(First::Pending(future)) => {
            drop(entered);
            let state = AttemptState::Running {
                future,
                deadline: None,
                timeout: None,
            };
            let future = StageFuture::with_state(shared.clone(), stage, state, span);
            return FirstPoll::Pending(Box::new(future));
        }
        Err(panic) => AttemptFailure::Error {
            error: StageError::Panicked(take_panic_message(panic)),
        },
    };
    drop(entered);
    let mut future = StageFuture::with_state(shared.clone(), stage, AttemptState::Done, span);
    match future.attempts.fail(failure) {
        Some(StageStep::Done(outcome)) => FirstPoll::Done(outcome),
        // With one attempt allowed a failure ends the stage; were a retry scheduled, the next
        // attempt starts when the run first polls the stage.
        _ => FirstPoll::Pending(Box::new(future)),
    }
}

/// The span a stage's attempts run in.
fn stage_span(shared: &RunShared, stage: u32) -> tracing::Span {
    tracing::info_span!(
        "stage",
        pipeline = &*shared.pipeline.name,
        stage = &*shared.pipeline.stages[stage as usize].name
    )
}

impl StageFuture {
    pub(crate) fn new(shared: Arc<RunShared>, stage: u32) -> Self {
        let span = stage_span(&shared, stage);
        Self::with_state(shared, stage, AttemptState::Start, span)
    }

    fn with_state(
        shared: Arc<RunShared>,
        stage: u32,
        state: AttemptState,
        span: tracing::Span,
    ) -> Self {
        Self {
            attempts: Attempts {
                shared,
                stage,
                attempt: 1,
                state,
                attempt_started: None,
                failed: Vec::new(),
            },
            span,
        }
    }
}

impl Attempts {
    /// Records a failed attempt: schedules a retry (`Backoff`, or `None` to start it at once) or
    /// ends the stage.
    fn fail(&mut self, mut failure: AttemptFailure) -> Option<StageStep> {
        let spec = &self.shared.pipeline.stages[self.stage as usize];
        let mut retryable = failure.is_retryable();
        if let (true, Some(predicate)) = (retryable, spec.retry_on()) {
            // The predicate is the user's code: a panic in it fails the stage (not retried), as a
            // panic in the stage itself does, instead of unwinding through the run.
            match catch_unwind(AssertUnwindSafe(|| predicate(&failure))) {
                Ok(retry) => retryable = retry,
                Err(panic) => {
                    failure = AttemptFailure::Error {
                        error: StageError::Panicked(take_panic_message(panic)),
                    };
                    retryable = false;
                }
            }
        }
        let (started, elapsed) = match self.attempt_started {
            Some(started) => (started, self.shared.clock.now().saturating_sub(started)),
            // A stage without retries: the run fills in its one attempt's times.
            None => (Duration::ZERO, Duration::ZERO),
        };
        if retryable && self.attempt < spec.retry.max_attempts {
            let jitter_seed = stage_seed(self.shared.seed, self.stage);
            let delay = spec.retry.backoff.delay(self.attempt, jitter_seed);
            tracing::info!(attempt = self.attempt, %failure, ?delay, "attempt failed, retrying");
            if let Some(events) = &self.shared.events {
                // Nothing the failed attempt still sends goes out after this event.
                self.shared.attempt_ended(self.stage);
                events.emit(StageEvent::Retried {
                    stage: spec.name.clone(),
                    next_attempt: self.attempt + 1,
                    failure: failure.clone(),
                    delay,
                });
            }
            self.failed.push(AttemptRecord {
                attempt: self.attempt,
                started,
                elapsed,
                failure,
                backoff: delay,
            });
            self.attempt += 1;
            self.state = AttemptState::Start;
            return (!delay.is_zero()).then_some(StageStep::Backoff(delay));
        }
        self.state.end();
        let attempts = self.attempt;
        let failed = {
            let mut failed = std::mem::take(&mut self.failed);
            failed.push(AttemptRecord {
                attempt: self.attempt,
                started,
                elapsed,
                failure: failure.clone(),
                backoff: Duration::ZERO,
            });
            failed
        };
        Some(StageStep::Done(match failure {
            AttemptFailure::Error { error } => StageOutcome::Failed {
                error,
                attempts,
                failed,
            },
            AttemptFailure::TimedOut { .. } => StageOutcome::TimedOut { attempts, failed },
        }))
    }

    /// Starts the current attempt's future (on the blocking pool for a blocking stage).
    fn start(&mut self) -> Result<BoxFuture<'static, AttemptResult>, StageError> {
        let spec = &self.shared.pipeline.stages[self.stage as usize];
        if spec.retry.max_attempts > 1 {
            self.attempt_started = Some(self.shared.clock.now());
        }
        let context = StageContext::new(self.shared.clone(), self.stage, self.attempt);
        let func = &spec.func;
        let future = catch_unwind(AssertUnwindSafe(|| func.call(context)))
            .map_err(|panic| StageError::Panicked(take_panic_message(panic)))?;
        if !spec.blocking {
            return Ok(future);
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|error| {
            StageError::permanent(format!("a blocking stage needs a tokio runtime: {error}"))
        })?;
        let on_pool = handle.clone();
        let joined = tokio::task::spawn_blocking(move || on_pool.block_on(future));
        Ok(async move {
            match joined.await {
                Ok(result) => result,
                Err(error) if error.is_panic() => {
                    Err(StageError::Panicked(take_panic_message(error.into_panic())))
                }
                Err(error) => Err(StageError::msg(error)),
            }
        }
        .boxed())
    }
}

impl StageFuture {
    /// The attempts that failed so far, taken out (for a stage the run stops before it ends: its
    /// report keeps them).
    pub(crate) fn take_failed(&mut self) -> Vec<AttemptRecord> {
        std::mem::take(&mut self.attempts.failed)
    }
}

impl Future for StageFuture {
    type Output = StageStep;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StageStep> {
        let StageFuture { attempts, span } = self.get_mut();
        let _entered = span.enter();
        attempts.poll(cx)
    }
}

impl Attempts {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<StageStep> {
        let this = self;
        loop {
            let limit = this.shared.pipeline.stages[this.stage as usize].timeout;
            let failure = match &mut this.state {
                AttemptState::Start => match this.start() {
                    Ok(mut future) => {
                        let deadline =
                            limit.and_then(|limit| deadline_after(Instant::now(), limit));
                        // The first poll happens before the future is stored: an attempt that
                        // finishes at once never enters `Running`.
                        match poll_attempt(&mut future, cx) {
                            Poll::Ready(Ok(artifact)) => {
                                return Poll::Ready(this.succeeded(artifact))
                            }
                            Poll::Ready(Err(failure)) => failure,
                            Poll::Pending => {
                                let mut timeout = None;
                                let timed_out = poll_timeout(limit, deadline, &mut timeout, cx);
                                this.state = AttemptState::Running {
                                    future,
                                    deadline,
                                    timeout,
                                };
                                match timed_out {
                                    Some(failure) => failure,
                                    None => return Poll::Pending,
                                }
                            }
                        }
                    }
                    Err(error) => AttemptFailure::Error { error },
                },
                AttemptState::Running {
                    future,
                    deadline,
                    timeout,
                } => match poll_attempt(future, cx) {
                    Poll::Ready(Ok(artifact)) => {
                        this.state.end();
                        return Poll::Ready(this.succeeded(artifact));
                    }
                    Poll::Ready(Err(failure)) => failure,
                    Poll::Pending => match poll_timeout(limit, *deadline, timeout, cx) {
                        Some(failure) => failure,
                        None => return Poll::Pending,
                    },
                },
                // The run never polls a finished stage again.
                AttemptState::Done => return Poll::Pending,
            };
            // Drops the failed attempt's future before anything else happens.
            this.state.end();
            if let Some(step) = this.fail(failure) {
                return Poll::Ready(step);
            }
            // A retry without backoff starts in this same poll. Each one spends a unit of tokio's
            // cooperative budget, so a stage that fails at once on every attempt hands the thread
            // back now and then: the run sees its deadline and its cancellation between attempts
            // instead of spinning through `u32::MAX` of them.
            match tokio::task::coop::poll_proceed(cx) {
                Poll::Ready(restore) => restore.made_progress(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn succeeded(&mut self, output: Output) -> StageStep {
        self.state.end();
        StageStep::Done(StageOutcome::Succeeded {
            artifact: output.into_artifact(),
            attempts: self.attempt,
            failed: std::mem::take(&mut self.failed),
        })
    }
}

/// Polls an attempt's future, a panic caught as a failure.
fn poll_attempt(
    future: &mut BoxFuture<'static, AttemptResult>,
    cx: &mut Context<'_>,
) -> Poll<Result<Output, AttemptFailure>> {
    match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
        Ok(Poll::Ready(Ok(artifact))) => Poll::Ready(Ok(artifact)),
        Ok(Poll::Ready(Err(error))) => Poll::Ready(Err(AttemptFailure::Error { error })),
        Err(panic) => Poll::Ready(Err(AttemptFailure::Error {
            error: StageError::Panicked(take_panic_message(panic)),
        })),
        Ok(Poll::Pending) => Poll::Pending,
    }
}

/// After an attempt's future returned `Pending`: the timeout it ran into, if any. The timer is
/// created on the first wait only, so an attempt that never waits pays nothing for its timeout.
fn poll_timeout(
    limit: Option<Duration>,
    deadline: Option<Instant>,
    timeout: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
) -> Option<AttemptFailure> {
    let (Some(limit), Some(deadline)) = (limit, deadline) else {
        return None;
    };
    let sleep = timeout.get_or_insert_with(|| Box::pin(hivekit_runtime::sleep_until(deadline)));
    match hivekit_runtime::poll_sleep(sleep.as_mut(), cx) {
        Ok(Poll::Ready(())) => Some(AttemptFailure::TimedOut { after: limit }),
        Ok(Poll::Pending) => None,
        // The runtime timing the attempt was shut down under the run (a run driven by another
        // executor notices that first and ends cancelled; this is the race with that check).
        Err(error) => Some(AttemptFailure::Error {
            error: StageError::Permanent(format!("its timeout could not be timed: {error}")),
        }),
    }
}

/// `start + limit`, or `None` when the clock cannot represent that instant: a limit that far away
/// (`Duration::MAX`, the usual way to say "no limit", or anything near it) means no limit. tokio
/// rounds a deadline up to the next millisecond, so that much more must fit too.
pub(crate) fn deadline_after(start: Instant, limit: Duration) -> Option<Instant> {
    let deadline = start.checked_add(limit)?;
    deadline.checked_add(Duration::from_millis(1))?;
    Some(deadline)
}
