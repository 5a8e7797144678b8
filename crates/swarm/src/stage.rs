//! One stage's execution: attempts, the per-attempt timeout, retries with backoff, caught panics.
//!
//! Written as a hand-rolled state machine rather than an `async fn` so that the run can name its type
//! (one `FuturesUnordered` of it, no extra box) and so that the timeout's timer is only created when
//! an attempt actually waits: a stage that finishes on its first poll pays nothing for its timeout.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use hivekit_runtime::panic_message;
use tokio::time::{Instant, Sleep};

use crate::context::{RunShared, StageContext};
use crate::error::StageError;
use crate::events::{AttemptFailure, StageEvent};
use crate::pipeline::Artifact;
use crate::seed::stage_seed;

/// How a stage ended, as the run sees it.
pub(crate) enum StageOutcome {
    Succeeded { artifact: Artifact, attempts: u32 },
    Failed { error: StageError, attempts: u32 },
    TimedOut { attempts: u32 },
}

enum AttemptState {
    Start,
    Running {
        future: BoxFuture<'static, Result<Artifact, StageError>>,
        /// When the attempt times out; `None` without a timeout or with one past the clock's end.
        deadline: Option<Instant>,
        timeout: Option<Pin<Box<Sleep>>>,
    },
    Backoff(Pin<Box<Sleep>>),
    Done,
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
}

impl StageFuture {
    pub(crate) fn new(shared: Arc<RunShared>, stage: u32) -> Self {
        let span = tracing::debug_span!(
            "stage",
            name = &*shared.pipeline.stages[stage as usize].name
        );
        Self {
            attempts: Attempts {
                shared,
                stage,
                attempt: 1,
                state: AttemptState::Start,
            },
            span,
        }
    }
}

impl Attempts {
    /// Records a failed attempt: schedules a retry (`None`) or ends the stage.
    fn fail(&mut self, failure: AttemptFailure) -> Option<StageOutcome> {
        let spec = &self.shared.pipeline.stages[self.stage as usize];
        let retryable = match &failure {
            AttemptFailure::Error(error) => error.is_retryable(),
            AttemptFailure::TimedOut(_) => true,
        };
        if retryable && self.attempt < spec.retry.max_attempts {
            let jitter_seed = stage_seed(self.shared.seed, self.stage);
            let delay = spec.retry.backoff.delay(self.attempt, jitter_seed);
            tracing::debug!(attempt = self.attempt, %failure, ?delay, "attempt failed, retrying");
            if let Some(events) = &self.shared.events {
                events.emit(StageEvent::Retried {
                    stage: spec.name.clone(),
                    next_attempt: self.attempt + 1,
                    failure,
                    delay,
                });
            }
            self.attempt += 1;
            self.state = if delay.is_zero() {
                AttemptState::Start
            } else {
                AttemptState::Backoff(Box::pin(tokio::time::sleep(delay)))
            };
            return None;
        }
        self.state = AttemptState::Done;
        let attempts = self.attempt;
        Some(match failure {
            AttemptFailure::Error(error) => StageOutcome::Failed { error, attempts },
            AttemptFailure::TimedOut(_) => StageOutcome::TimedOut { attempts },
        })
    }
}

impl Future for StageFuture {
    type Output = StageOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StageOutcome> {
        let StageFuture { attempts, span } = self.get_mut();
        let _entered = span.enter();
        attempts.poll(cx)
    }
}

impl Attempts {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<StageOutcome> {
        let this = self;
        loop {
            let spec = &this.shared.pipeline.stages[this.stage as usize];
            let failure = match &mut this.state {
                AttemptState::Start => {
                    let context = StageContext::new(this.shared.clone(), this.stage, this.attempt);
                    let func = &spec.func;
                    match catch_unwind(AssertUnwindSafe(|| func(context))) {
                        Ok(future) => {
                            this.state = AttemptState::Running {
                                future,
                                deadline: spec
                                    .timeout
                                    .and_then(|limit| deadline_after(Instant::now(), limit)),
                                timeout: None,
                            };
                            continue;
                        }
                        Err(panic) => {
                            AttemptFailure::Error(StageError::Panicked(panic_message(&*panic)))
                        }
                    }
                }
                AttemptState::Running {
                    future,
                    deadline,
                    timeout,
                } => match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Ready(Ok(artifact))) => {
                        this.state = AttemptState::Done;
                        return Poll::Ready(StageOutcome::Succeeded {
                            artifact,
                            attempts: this.attempt,
                        });
                    }
                    Ok(Poll::Ready(Err(error))) => AttemptFailure::Error(error),
                    Err(panic) => {
                        AttemptFailure::Error(StageError::Panicked(panic_message(&*panic)))
                    }
                    Ok(Poll::Pending) => {
                        let (Some(limit), Some(deadline)) = (spec.timeout, *deadline) else {
                            return Poll::Pending;
                        };
                        // The timer is created on the first wait only.
                        let sleep = timeout
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                        if sleep.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        AttemptFailure::TimedOut(limit)
                    }
                },
                AttemptState::Backoff(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state = AttemptState::Start;
                    continue;
                }
                // The run never polls a finished stage again.
                AttemptState::Done => return Poll::Pending,
            };
            // Drops the failed attempt's future before anything else happens.
            this.state = AttemptState::Done;
            if let Some(outcome) = this.fail(failure) {
                return Poll::Ready(outcome);
            }
        }
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
