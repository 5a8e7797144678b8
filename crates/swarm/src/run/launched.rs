//! A launched stage as the run polls it: inline or on a task of its own, and its backoff wait.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hivekit_runtime::{InlineOrSpawned, Spare};

use super::Polling;
use crate::context::RunShared;
use crate::error::StageError;
use crate::stage::{
    poll_single_attempt, single_attempt, FirstPoll, StageFuture, StageOutcome, StageStep,
};
use crate::stage_fn::Output;

/// A launched stage: polled inline, or a spawned task (aborted when dropped).
pub(super) struct StageTask {
    pub(super) stage: u32,
    pub(super) work: InlineOrSpawned<InlineStage>,
}

/// What a launched stage ends with: the stage's end, or a backoff with the stage handed back (so
/// that the run can park it outside its slot).
pub(super) enum LaunchedStep {
    Done(StageOutcome),
    Backoff(Duration, Box<StageFuture>),
}

/// A stage polled in place, handing itself back when it must back off. Boxed: only a stage that
/// must wait enters the run's set, and a set of small entries is cheaper to fill (each entry is
/// moved into a node of its own, spawned stages' entries included).
pub(super) struct InlineStage(pub(super) Option<Box<StageFuture>>);

impl Future for InlineStage {
    type Output = LaunchedStep;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LaunchedStep> {
        let slot = &mut self.get_mut().0;
        let Some(future) = slot.as_mut() else {
            // Handed back already; the run does not poll it again.
            return Poll::Pending;
        };
        Pin::new(&mut **future).poll(cx).map(|step| match step {
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
    Backoff(Duration, Box<StageFuture>),
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
    pub(super) future: Option<Box<StageFuture>>,
}

impl Future for BackoffWait {
    type Output = (u32, Option<Box<StageFuture>>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match hivekit_runtime::poll_sleep(self.sleep.as_mut(), cx) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready((self.stage, self.future.take())),
            // The runtime timing the wait was shut down under the run (a run driven by another
            // executor notices that first and ends cancelled; this is the race with that
            // check): no next attempt, the stage is cancelled.
            Err(_) => Poll::Ready((self.stage, None)),
        }
    }
}

/// Runs `stage` on a task of its own until it ends or must back off: started and polled once in
/// place on the task (see [`poll_stage`]), `resumed` its future after a backoff.
///
/// The stage is built on its task, not moved into it: tokio moves a task's future several times
/// as it spawns it, and a future past 128 bytes (a stage's state machine is 150) is moved by
/// `memcpy` calls, a tenth of a wide seeded fan's instructions. An `async` block, not an `async
/// fn`: such an `async fn` keeps its arguments and their moved copies apart.
#[expect(
    clippy::manual_async_fn,
    reason = "the async fn stores its arguments twice (above)"
)]
pub(super) fn spawned(
    shared: Arc<RunShared>,
    span: tracing::Span,
    stage: u32,
    resumed: Option<Box<StageFuture>>,
    nested: Option<Arc<super::Nested>>,
) -> impl Future<Output = LaunchedStep> {
    async move {
        // A nested run's place stays taken until its spawned stages' tasks are gone.
        let _nested = nested;
        let mut waiting = resumed;
        let polled = poll_fn(|cx| poll_stage(&shared, &span, stage, &mut waiting, cx)).await;
        match polled {
            Polled::AtOnce(output) => LaunchedStep::Done(StageOutcome::Succeeded {
                artifact: output.into_artifact(),
                attempts: 1,
                failed: Vec::new(),
            }),
            Polled::Step(StageStep::Done(outcome)) => LaunchedStep::Done(outcome),
            Polled::Step(StageStep::Backoff(delay)) => match waiting {
                Some(future) => LaunchedStep::Backoff(delay, future),
                None => unreachable!("a stage backing off keeps its future"),
            },
        }
    }
}

thread_local! {
    /// The spare block of the stages started on tasks on this thread: a stage whose attempt ends
    /// on its first poll is built in it and costs no allocation (a fresh task has no block of its
    /// own to reuse).
    static SPARE: Cell<Spare> = const { Cell::new(Spare::new()) };
}

/// Runs `start` with this thread's spare block. The block is taken out while `start` runs, so a
/// stage started from inside it (a stage polling a nested run) finds none and allocates its own.
fn with_thread_spare<R>(start: impl FnOnce(&mut Spare) -> R) -> R {
    let mut spare = SPARE.try_with(Cell::take).unwrap_or_default();
    let answer = start(&mut spare);
    // Put back (freeing any block put there meanwhile); a thread being torn down frees it.
    let _ = SPARE.try_with(move |cell| cell.set(spare));
    answer
}

/// What polling a stage on its task came to.
pub(super) enum Polled {
    /// The stage's single attempt succeeded on its first poll, with this output.
    AtOnce(Output),
    /// The stage ended otherwise, or must back off (its future is then in the task's slot).
    Step(StageStep),
}

/// Polls `stage` on its task: the future in `waiting` if it has one, else starts the stage and
/// polls it once in place (a single attempt without its state machine, in the thread's spare
/// block, as the driver starts its inline stages), boxing its future into `waiting` only if the
/// stage must wait or back off. `span` (the run's) parents the stage's span.
pub(super) fn poll_stage(
    shared: &Arc<RunShared>,
    span: &tracing::Span,
    stage: u32,
    waiting: &mut Option<Box<StageFuture>>,
    cx: &mut Context<'_>,
) -> Poll<Polled> {
    // The stage is this run's: a run it starts is nested in it.
    let _polling = Polling::enter(shared);
    if let Some(future) = waiting {
        return Pin::new(&mut **future).poll(cx).map(Polled::Step);
    }
    let _entered = span.enter();
    if single_attempt(&shared.pipeline.stages[stage as usize]) {
        return match with_thread_spare(|spare| poll_single_attempt(shared, stage, spare, cx)) {
            FirstPoll::Succeeded(output) => Poll::Ready(Polled::AtOnce(output)),
            FirstPoll::Done(outcome) => Poll::Ready(Polled::Step(StageStep::Done(outcome))),
            FirstPoll::Pending(future) => {
                *waiting = Some(future);
                Poll::Pending
            }
        };
    }
    let mut future = StageFuture::new(shared.clone(), stage);
    let polled = Pin::new(&mut future).poll(cx);
    if !matches!(polled, Poll::Ready(StageStep::Done(_))) {
        *waiting = Some(Box::new(future));
    }
    polled.map(Polled::Step)
}
