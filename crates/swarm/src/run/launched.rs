//! A launched stage as the run polls it: inline or on a task of its own, and its backoff wait.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hivekit_runtime::InlineOrSpawned;

use crate::error::StageError;
use crate::stage::{StageFuture, StageOutcome, StageStep};

/// A launched stage: polled inline, or a spawned task (aborted when dropped).
pub(super) struct StageTask {
    pub(super) stage: u32,
    pub(super) work: InlineOrSpawned<InlineStage>,
}

/// What a launched stage ends with: the stage's end, or a backoff with the stage handed back (so
/// that the run can park it outside its slot).
pub(super) enum LaunchedStep {
    Done(StageOutcome),
    Backoff(Duration, StageFuture),
}

/// A stage polled in place, handing itself back when it must back off.
pub(super) struct InlineStage(pub(super) Option<StageFuture>);

impl Future for InlineStage {
    type Output = LaunchedStep;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LaunchedStep> {
        let slot = &mut self.get_mut().0;
        let Some(future) = slot.as_mut() else {
            // Handed back already; the run does not poll it again.
            return Poll::Pending;
        };
        Pin::new(future).poll(cx).map(|step| match step {
            StageStep::Done(outcome) => LaunchedStep::Done(outcome),
            StageStep::Backoff(delay) => match slot.take() {
                Some(future) => LaunchedStep::Backoff(delay, future),
                None => unreachable!("the slot held the future just polled"),
            },
        })
    }
}

/// What the run learns from a launched stage.
pub(super) enum TaskStep {
    Done(StageOutcome),
    /// Cancelled (a spawned stage aborted).
    Cancelled,
    /// The stage waits `Duration` before its next attempt, outside its slot.
    Backoff(Duration, StageFuture),
}

impl Future for StageTask {
    type Output = (u32, TaskStep);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut this.work).poll(cx).map(|joined| {
            let step = match joined {
                Ok(LaunchedStep::Done(outcome)) => TaskStep::Done(outcome),
                Ok(LaunchedStep::Backoff(delay, future)) => TaskStep::Backoff(delay, future),
                Err(error) if error.is_cancelled() => TaskStep::Cancelled,
                // The stage future catches the stage's panics; this is a panic while dropping.
                Err(error) => TaskStep::Done(StageOutcome::Failed {
                    error: StageError::Panicked(error.to_string()),
                    attempts: 1,
                    failed: Vec::new(),
                }),
            };
            (this.stage, step)
        })
    }
}

/// A stage waiting out its backoff, holding no concurrency slot.
pub(super) struct BackoffWait {
    pub(super) stage: u32,
    pub(super) sleep: Pin<Box<tokio::time::Sleep>>,
    pub(super) future: Option<StageFuture>,
}

impl Future for BackoffWait {
    type Output = (u32, Option<StageFuture>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        std::task::ready!(self.sleep.as_mut().poll(cx));
        Poll::Ready((self.stage, self.future.take()))
    }
}

/// Runs a stage on a task of its own until it ends or must back off.
///
/// An `async` block that borrows the stage it captured, not an `async fn` awaiting its argument:
/// such an `async fn` keeps the argument and its moved copy apart (288 bytes against 152), which
/// made each spawned stage's task a 512-1,024-byte allocation instead of a 256-512-byte one.
#[expect(
    clippy::manual_async_fn,
    reason = "the async fn stores its argument twice (above)"
)]
pub(super) fn spawned(mut future: StageFuture) -> impl Future<Output = LaunchedStep> {
    async move {
        match (&mut future).await {
            StageStep::Done(outcome) => LaunchedStep::Done(outcome),
            StageStep::Backoff(delay) => LaunchedStep::Backoff(delay, future),
        }
    }
}
