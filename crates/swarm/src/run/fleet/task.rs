//! A fleet task's own code: the future a task runs (its stages one after another) and the guard
//! that reports a stage its task never reported.
//!
//! The task's future is small (at most 128 bytes, not the 200 it took with a stage's state machine
//! inside): tokio moves a task's future several times as it spawns it, and a future past 128 bytes
//! is moved by `memcpy` calls, about a tenth of a wide fan's instructions. A stage is started and
//! polled once in place ([`poll_stage`]); only a stage that must wait is boxed, once.

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use super::{Fleet, Note};
use crate::error::StageError;
use crate::run::launched::{poll_stage, Polled, TaskStep};
use crate::stage::{StageFuture, StageOutcome, StageStep};

/// A launched stage not yet reported: dropped armed (its task aborted, or a panic outside the
/// stage's own code), it reports the stage cancelled or failed and gives its slot back.
pub(super) struct Unreported {
    pub(super) fleet: Arc<Fleet>,
    pub(super) stage: u32,
    pub(super) started: Duration,
    pub(super) armed: bool,
}

impl Drop for Unreported {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let step = if std::thread::panicking() {
            TaskStep::Done(StageOutcome::Failed {
                error: StageError::Panicked(String::from("the stage's task panicked")),
                attempts: 1,
                failed: Vec::new(),
            })
        } else {
            TaskStep::Cancelled
        };
        self.fleet.report(Note::Step {
            stage: self.stage,
            started: self.started,
            step: Box::new(step),
        });
    }
}

/// A fleet task: runs a stage, reports it and launches what it made ready, then runs the first
/// of those itself (on the finished stage's slot), and so on.
///
/// An `async` block over its captures, not an `async fn`, for the reason given at
/// [`spawned`](crate::run::launched::spawned): as an `async fn` its state kept the arguments and
/// their moved copies apart, and the task's cell is allocated per stage.
#[expect(
    clippy::manual_async_fn,
    reason = "the async fn stores its arguments twice (above)"
)]
pub(super) fn run_stage(
    mut guard: Unreported,
    mut resumed: Option<Box<StageFuture>>,
) -> impl Future<Output = ()> + Send {
    async move {
        loop {
            let ended = {
                let stage = guard.stage;
                // The stage's future, boxed, if it had to wait (or resumes after a backoff).
                let mut waiting = resumed.take();
                let fleet = &guard.fleet;
                // Whether the stage left its task's waker for stopping to wake.
                let mut left_waker = false;
                let polled = poll_fn(|cx| {
                    if fleet.stopped() {
                        return Poll::Ready(None);
                    }
                    let polled = poll_stage(&fleet.shared, &fleet.span, stage, &mut waiting, cx);
                    if polled.is_pending() && !left_waker {
                        // A tokio task's waker stays the same from poll to poll.
                        fleet.wait(stage, cx.waker());
                        left_waker = true;
                    }
                    polled.map(Some)
                })
                .await;
                if left_waker {
                    guard.fleet.waited(stage);
                }
                let Some(polled) = polled else {
                    // Stopped: the stage is cancelled (its future dropped first, then the armed
                    // guard reports it).
                    drop(waiting);
                    return;
                };
                guard.armed = false;
                let (fleet, started) = (&guard.fleet, guard.started);
                let next = match polled {
                    Polled::AtOnce(output) => fleet.succeeded_at_once(stage, started, output),
                    Polled::Step(StageStep::Done(outcome)) => {
                        // The stage's state (its context, its attempts) goes before anything is
                        // released.
                        drop(waiting.take());
                        fleet.finish(stage, started, outcome)
                    }
                    Polled::Step(StageStep::Backoff(delay)) => {
                        match waiting.take() {
                            Some(future) => fleet.report(Note::Step {
                                stage,
                                started,
                                step: Box::new(TaskStep::Backoff(delay, future)),
                            }),
                            None => unreachable!("a stage backing off keeps its future"),
                        }
                        None
                    }
                };
                match next {
                    Some((next, next_started)) => {
                        guard.stage = next;
                        guard.started = next_started;
                        guard.armed = true;
                        false
                    }
                    None => true,
                }
            };
            if ended {
                return;
            }
            // The next stage runs on this task; once the task has used its cooperative budget it
            // lets other tasks run first (a long chain does not hold the worker).
            tokio::task::consume_budget().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LiveGuard, Tracked};
    use super::{run_stage, Unreported};

    /// The size of the future `make` would return (never called).
    fn size_of_made<F>(_: &dyn Fn() -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_fleet_task_future_fits_in_128_bytes_so_that_tokio_moves_it_without_memcpy_calls() {
        let make = || Tracked {
            future: run_stage(unreachable_guard(), None),
            live: unreachable_live(),
        };
        let size = size_of_made(&make);
        assert!(size <= 128, "a fleet task's future takes {size} bytes");
    }

    fn unreachable_guard() -> Unreported {
        unreachable!("only the future's type is looked at")
    }

    fn unreachable_live() -> LiveGuard {
        unreachable!("only the future's type is looked at")
    }
}
