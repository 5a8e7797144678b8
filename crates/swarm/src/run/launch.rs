//! Driving a run: stages that became ready are queued, launched while slots and the poll's inline
//! budget allow (an inline stage is polled at once, a spawning one gets a task), and the launched
//! ones are polled until they end or must back off.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hivekit_runtime::{take_panic_message, InlineOrSpawned};

use super::launched::{spawned, BackoffWait, InlineStage, StageTask, TaskStep};
use super::{Run, INLINE_BUDGET};
use crate::context::StageContext;
use crate::error::StageError;
use crate::events::StageEvent;
use crate::report::SkipReason;
use crate::seed::seeded_order;
use crate::stage::{
    poll_single_attempt, single_attempt, FirstPoll, StageFuture, StageOutcome, StageStep,
};

impl Run {
    pub(super) fn poll_progress(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.budget == 0 {
            // The last poll ran out of launch budget: first take in the stages that ended since.
            self.take_finished(cx);
        }
        self.budget = INLINE_BUDGET;
        loop {
            if self.pump(cx).is_pending() {
                // Out of budget: let other tasks run, and come back at once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.stop.is_some() || self.unfinished == 0 {
                return Poll::Ready(());
            }
            if !self.backoffs.is_empty() {
                if let Poll::Ready(Some((stage, future))) = self.backoffs.poll_next_unpin(cx) {
                    match future {
                        Some(future) => {
                            // Ready again: it queues for a slot like any ready stage.
                            self.parked.insert(stage, future);
                            self.batch.push(stage);
                        }
                        // Its timer's runtime was shut down (see `BackoffWait`).
                        None => self.stage_cancelled_from_outside(stage),
                    }
                    continue;
                }
            }
            if self.fleet.is_some() {
                match self.poll_fleet(cx) {
                    Poll::Ready(true) => continue,
                    Poll::Ready(false) => {}
                    Poll::Pending => return Poll::Pending,
                }
            }
            match self.running.poll_next_unpin(cx) {
                Poll::Ready(Some((stage, step))) => self.take_step(stage, step),
                // Nothing runs and nothing can start: every stage has been decided (or waits
                // out a backoff, whose timer wakes the run).
                Poll::Ready(None) if self.backoffs.is_empty() => {
                    // A stage neither run nor skipped here would end the run with its placeholder
                    // status and the run's outcome unaware of it (a helper task's share once did):
                    // loud in debug builds.
                    debug_assert_eq!(
                        self.unfinished, 0,
                        "a run ends with stages neither run nor skipped"
                    );
                    return Poll::Ready(());
                }
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Records a launched stage's step.
    fn take_step(&mut self, stage: u32, step: TaskStep) {
        self.in_flight -= 1;
        match step {
            TaskStep::Done(outcome) => self.complete(stage, outcome),
            TaskStep::Backoff(delay, future) => self.back_off(stage, delay, future),
            // Only `drain` aborts tasks, and it does not poll through here: this task was cancelled
            // from outside (its runtime shut down).
            TaskStep::Cancelled => self.stage_cancelled_from_outside(stage),
        }
    }

    /// Takes in the launched stages that have ended, at most a budget's worth, between launches:
    /// a wide fan is launched over many polls of the run, and a spawned stage's task (its memory)
    /// lives until the run has taken its step, so taking steps only once every stage is launched
    /// kept a task per stage alive at once (10,000 stages: 4.9 MB, which the allocator gave back to
    /// the system after every run and faulted in again on the next: 2,000 page faults a run), and
    /// a fail-fast run noticed a failure only once it had launched every stage of the fan.
    #[cold]
    #[inline(never)]
    fn take_finished(&mut self, cx: &mut Context<'_>) {
        if self.fleet.is_some() {
            // The notes of the fleet's tasks (a seeded run's driver launches the fan itself).
            let _ = self.poll_fleet(cx);
        }
        for _ in 0..INLINE_BUDGET {
            match self.running.poll_next_unpin(cx) {
                Poll::Ready(Some((stage, step))) => self.take_step(stage, step),
                Poll::Ready(None) | Poll::Pending => return,
            }
        }
    }

    pub(super) fn back_off(&mut self, stage: u32, delay: Duration, future: Box<StageFuture>) {
        self.backoffs.push(BackoffWait {
            stage,
            sleep: Box::pin(hivekit_runtime::sleep(delay)),
            future: Some(future),
        });
    }

    /// Queues what became ready and launches as much as the slots allow; `Pending` when the
    /// inline budget of this poll ran out.
    fn pump(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stop.is_some() {
            return Poll::Ready(());
        }
        loop {
            let next = if let Some(stage) = self.lone_ready() {
                stage
            } else if let Some(stage) = self.dispatch_batch_then_pop() {
                stage
            } else if self.take_slot() {
                if self.fleet.is_some() && self.notes_before_slot() {
                    return Poll::Ready(());
                }
                match self.ready.pop() {
                    Some(stage) => stage,
                    None => return Poll::Ready(()),
                }
            } else {
                return Poll::Ready(());
            };
            self.launch(next, cx);
            if self.stop.is_some() {
                return Poll::Ready(());
            }
            self.budget -= 1;
            if self.budget == 0 {
                return Poll::Pending;
            }
        }
    }

    /// The one stage that became ready when it is the only one and a slot is free for it, taken
    /// without queueing it (a chain's every stage): what `dispatch_batch` then `direct.pop_front`
    /// would give, without the trip through the queue (about 20 instructions a stage of a chain).
    #[inline(always)]
    fn lone_ready(&mut self) -> Option<u32> {
        match self.batch[..] {
            [stage]
                if self.fleet.is_none()
                    && self.direct.is_empty()
                    && self.ready.is_empty()
                    && self.in_flight < self.limit =>
            {
                self.batch.clear();
                Some(stage)
            }
            _ => None,
        }
    }

    /// Queues what became ready (see `dispatch_batch`) and takes the first stage a slot was
    /// taken for.
    #[inline(always)]
    fn dispatch_batch_then_pop(&mut self) -> Option<u32> {
        if !self.batch.is_empty() {
            self.dispatch_batch();
        }
        self.direct.pop_front()
    }

    /// Whether a slot is free for a stage of the ready queue. On the fleet it is taken here (tasks
    /// take slots too), only when a stage waits for it, and what the tasks made ready before
    /// giving it back then competes for it (see `take_fleet_slot`).
    fn take_slot(&self) -> bool {
        match &self.fleet {
            Some(fleet) => !self.ready.is_empty() && fleet.0.try_take_slot(),
            None => self.in_flight < self.limit,
        }
    }

    /// Always inlined: out of line (it has a second caller, `take_fleet_slot`), an inline
    /// chain paid a call per stage (+3% of `chain_run/hivekit`).
    #[inline(always)]
    pub(super) fn dispatch_batch(&mut self) {
        if let Some(seed) = self.seed {
            if self.batch.len() > 1 {
                seeded_order(seed, &mut self.batch, &mut self.keyed);
            }
        }
        if self.fleet.is_some() {
            return self.dispatch_on_fleet();
        }
        let reserved = self.in_flight + self.direct.len();
        if self.ready.is_empty() && reserved.saturating_add(self.batch.len()) <= self.limit {
            if let [stage] = self.batch[..] {
                // The common case (a chain): no iterator machinery.
                self.direct.push_back(stage);
                self.batch.clear();
            } else {
                self.direct.extend(self.batch.drain(..));
            }
        } else {
            for stage in self.batch.drain(..) {
                self.ready
                    .push(self.pipeline.stages[stage as usize].hint, stage);
            }
        }
    }

    fn launch(&mut self, stage: u32, cx: &mut Context<'_>) {
        let spec = &self.pipeline.stages[stage as usize];
        let resumed = if self.parked.is_empty() {
            None
        } else {
            self.parked.remove(&stage)
        };
        let mut future = match resumed {
            Some(future) => match self.stages[stage as usize].started {
                Some(started) if self.fleet.is_some() => {
                    self.launch_on_fleet(stage, started, Some(future));
                    return;
                }
                _ if spec.spawns() => return self.spawn_stage(stage, Some(future)),
                _ => future,
            },
            None => {
                if let Some(condition) = spec.condition() {
                    let context = StageContext::new(self.shared.clone(), stage, 1);
                    match catch_unwind(AssertUnwindSafe(|| condition(&context))) {
                        Ok(true) => {}
                        Ok(false) => {
                            self.prune(stage as usize, SkipReason::ConditionFalse);
                            return;
                        }
                        Err(panic) => {
                            let error = StageError::Panicked(take_panic_message(panic));
                            self.complete(
                                stage,
                                StageOutcome::Failed {
                                    error,
                                    attempts: 0,
                                    failed: Vec::new(),
                                },
                            );
                            return;
                        }
                    }
                }
                let started = match self.completed_at.take() {
                    Some(completed_at) => completed_at,
                    None => self.since_start(),
                };
                self.stages[stage as usize].started = Some(started);
                if let Some(events) = &self.shared.events {
                    events.emit(StageEvent::Started {
                        stage: spec.name.clone(),
                    });
                }
                if self.fleet.is_some() {
                    return self.launch_on_fleet(stage, started, None);
                }
                if spec.spawns() {
                    return self.spawn_stage(stage, None);
                }
                if single_attempt(spec) {
                    // Polled at once without its state machine; kept only if it must wait.
                    match poll_single_attempt(&self.shared, stage, &mut self.spare, cx) {
                        FirstPoll::Succeeded(output) => self.succeeded_at_once(stage, output),
                        FirstPoll::Done(outcome) => self.complete(stage, outcome),
                        FirstPoll::Pending(future) => self.keep_running(stage, future),
                    }
                    return;
                }
                // Built and polled in place; boxed only if it must wait.
                let mut future = StageFuture::new(self.shared.clone(), stage);
                match Pin::new(&mut future).poll(cx) {
                    Poll::Ready(StageStep::Done(outcome)) => self.complete(stage, outcome),
                    Poll::Ready(StageStep::Backoff(delay)) => {
                        self.back_off(stage, delay, Box::new(future))
                    }
                    Poll::Pending => self.keep_running(stage, Box::new(future)),
                }
                return;
            }
        };
        // A stage that finishes on its first poll never enters the set.
        match Pin::new(&mut *future).poll(cx) {
            Poll::Ready(StageStep::Done(outcome)) => self.complete(stage, outcome),
            Poll::Ready(StageStep::Backoff(delay)) => self.back_off(stage, delay, future),
            Poll::Pending => self.keep_running(stage, future),
        }
    }

    /// Starts `stage` on a task of its own (the stage is built there, not moved there), `resumed`
    /// its future after a backoff.
    fn spawn_stage(&mut self, stage: u32, resumed: Option<Box<StageFuture>>) {
        let nested = self.nested.clone();
        let task = spawned(
            self.shared.clone(),
            self.span.clone(),
            stage,
            resumed,
            nested,
        );
        let work = InlineOrSpawned::spawn(task);
        self.running.push(StageTask { stage, work });
        self.in_flight += 1;
    }

    /// Keeps an inline stage that must wait in the set of running stages.
    fn keep_running(&mut self, stage: u32, future: Box<StageFuture>) {
        let work = InlineOrSpawned::Inline(InlineStage(Some(future)));
        self.running.push(StageTask { stage, work });
        self.in_flight += 1;
    }
}
