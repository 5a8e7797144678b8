//! A stage's end as the run records it: its status and timings, its artifact, the checkpoint
//! record and events, and the release of its dependents (or their skipping).

use std::time::Duration;

use super::{Run, Stop};
use crate::error::StageError;
use crate::events::{AttemptFailure, StageEvent};
use crate::options::FailurePolicy;
use crate::pipeline::StageKind;
use crate::report::{AttemptRecord, SkipReason, StageStatus};
use crate::stage::StageOutcome;
use crate::stage_fn::Output;

impl Run {
    pub(super) fn complete(&mut self, stage: u32, outcome: StageOutcome) {
        let index = stage as usize;
        let elapsed = self.ended(index);
        match outcome {
            // The common end, kept short (no events, no checkpoint, no route).
            StageOutcome::Succeeded {
                artifact,
                attempts,
                failed,
            } if self.quiet
                && failed.is_empty()
                && self.pipeline.stages[index].kind != StageKind::Router =>
            {
                // `failed` is empty, like the report's list: nothing to move.
                self.succeeded_quietly(index, Output::Value(artifact), attempts);
            }
            outcome => self.complete_watched(index, outcome, elapsed),
        }
    }

    /// `complete` for an inline stage whose first attempt succeeded on its first poll, without
    /// building (and taking apart) a `StageOutcome`, nor making an artifact of a unit output.
    pub(super) fn succeeded_at_once(&mut self, stage: u32, output: Output) {
        let index = stage as usize;
        if !self.quiet || self.pipeline.stages[index].kind == StageKind::Router {
            let outcome = StageOutcome::Succeeded {
                artifact: output.into_artifact(),
                attempts: 1,
                failed: Vec::new(),
            };
            return self.complete(stage, outcome);
        }
        self.ended(index);
        self.succeeded_quietly(index, output, 1);
    }

    /// Times a stage's end (its elapsed time, the start of the next stage launched) and counts it
    /// finished.
    #[inline]
    fn ended(&mut self, index: usize) -> Option<Duration> {
        let now = self.since_start();
        self.completed_at = Some(now);
        let elapsed = self.elapsed(index, now);
        self.stages[index].elapsed = elapsed;
        self.unfinished -= 1;
        elapsed
    }

    /// The common end, kept short: a plain stage succeeded without a failed attempt in a run
    /// nobody watches (no event sink, no checkpoint hooks), so there is no route to resolve, no
    /// record to write and nothing to emit.
    #[inline(always)]
    fn succeeded_quietly(&mut self, index: usize, output: Output, attempts: u32) {
        // Each stage completes once, so the cell is empty.
        let _ = self.shared.artifacts[index].set_output(output);
        let placeholder = std::mem::replace(
            &mut self.stages[index].status,
            StageStatus::Succeeded { attempts },
        );
        // The placeholder of an undecided stage holds nothing to free: forgetting it saves an
        // out-of-line drop per stage.
        if matches!(placeholder, StageStatus::Cancelled) {
            std::mem::forget(placeholder);
        }
        self.decided[index] = true;
        self.release_dependents(index, None);
    }

    /// The end of a stage in general: a router's route, a checkpoint record, events, failures.
    fn complete_watched(&mut self, index: usize, outcome: StageOutcome, elapsed: Option<Duration>) {
        let stage = index as u32;
        // Kept here until the stage's status is final: a router's invalid route or a durable
        // stage's unrecordable artifact still fails it, and a failed stage has no artifact.
        let mut artifact = None;
        let (status, mut failed) = match outcome {
            StageOutcome::Succeeded {
                artifact: output,
                attempts,
                failed,
            } => {
                artifact = Some(output);
                (StageStatus::Succeeded { attempts }, failed)
            }
            // A durable run pauses at an interrupt; elsewhere nothing could resume it: a failure.
            StageOutcome::Failed {
                error: StageError::Interrupted { reason },
                attempts,
                failed,
            } if self.shared.hooks.is_some() => {
                let mut failed = failed;
                // The interrupting attempt paused the stage: it is not a failed attempt.
                if failed.last().is_some_and(|record| {
                    matches!(
                        &record.failure,
                        AttemptFailure::Error {
                            error: StageError::Interrupted { .. }
                        }
                    )
                }) {
                    failed.pop();
                }
                (StageStatus::Interrupted { reason, attempts }, failed)
            }
            StageOutcome::Failed {
                error,
                attempts,
                failed,
            } => (StageStatus::Failed { error, attempts }, failed),
            StageOutcome::TimedOut { attempts, failed } => {
                (StageStatus::TimedOut { attempts }, failed)
            }
        };
        // A stage without retries did not time its one attempt: it ran the whole stage.
        if let [record] = &mut failed[..] {
            if record.elapsed.is_zero() && record.started.is_zero() {
                record.started = self.stages[index].started.unwrap_or_default();
                record.elapsed = elapsed.unwrap_or_default();
            }
        }
        self.stages[index].failed_attempts = failed;
        let route = artifact
            .as_ref()
            .filter(|_| self.pipeline.stages[index].kind == StageKind::Router);
        let (status, taken) = match route {
            Some(route) => match self.resolve_route(index, &**route) {
                Ok(taken) => (status, Some(taken)),
                Err(error) => (
                    StageStatus::Failed {
                        error,
                        attempts: status.attempts(),
                    },
                    None,
                ),
            },
            None => (status, None),
        };
        // A durable run records the stage before any dependent can start.
        let status = match (&self.shared.hooks, self.restoring) {
            (Some(hooks), false) => match hooks.finished(
                &self.pipeline,
                stage,
                &status,
                &self.stages[index].failed_attempts,
                artifact.as_ref(),
            ) {
                Ok(()) => status,
                Err(error) => StageStatus::Failed {
                    error,
                    attempts: status.attempts(),
                },
            },
            _ => status,
        };
        let succeeded = status.is_success();
        if let Some(artifact) = artifact.filter(|_| succeeded) {
            // Each stage completes once, so the cell is empty.
            let _ = self.shared.artifacts[index].set(artifact);
        }
        if self.shared.events.is_some() {
            self.emit_decided(index as u32, |done, total| StageEvent::Finished {
                stage: self.pipeline.stages[index].name.clone(),
                status: status.clone(),
                elapsed: elapsed.unwrap_or_default(),
                done,
                total,
            });
        }
        let interrupted = matches!(status, StageStatus::Interrupted { .. });
        if interrupted {
            tracing::info!(
                pipeline = &*self.pipeline.name,
                stage = &*self.pipeline.stages[index].name,
                %status,
                "stage paused the run"
            );
        } else if !succeeded {
            tracing::warn!(
                pipeline = &*self.pipeline.name,
                stage = &*self.pipeline.stages[index].name,
                %status,
                "stage failed"
            );
        }
        self.stages[index].status = status;
        self.decided[index] = true;
        if succeeded {
            self.release_dependents(index, taken.as_deref());
        } else if interrupted {
            // Not a failure: what does not depend on the stage still runs (and is checkpointed).
            self.interrupted = true;
            self.skip_dependents(stage);
        } else {
            self.failed = true;
            self.skip_dependents(stage);
            if self.failure == FailurePolicy::FailFast && self.stop.is_none() {
                self.stop = Some(Stop::FailFast(stage));
            }
        }
    }

    /// Counts down the dependencies of a succeeded stage's dependents and queues those that
    /// became ready; `taken` (a router's) says, by position, which dependents its route took.
    #[inline(always)]
    fn release_dependents(&mut self, index: usize, taken: Option<&[bool]>) {
        // Positions into the dependents' list rather than a borrow of it (or a clone of the
        // pipeline's `Arc`, an atomic round trip per stage): releasing a pruned dependent needs
        // `self` mutably.
        if self.fleet.is_some() {
            return self.release_on_fleet(index);
        }
        let first = self.pipeline.dependent_start[index] as usize;
        let end = self.pipeline.dependent_start[index + 1] as usize;
        for slot in first..end {
            let dependent = self.pipeline.dependent_list[slot];
            if taken.is_some_and(|taken| !taken[slot - first]) {
                let router = self.pipeline.stages[index].name.to_string();
                self.release_pruned(dependent, SkipReason::RouteNotTaken { router });
                continue;
            }
            let remaining = &mut self.remaining[dependent as usize];
            *remaining -= 1;
            if *remaining == 0 && !self.decided[dependent as usize] {
                self.batch.push(dependent);
            }
        }
    }

    /// The time since the run's start: one clock read and one subtraction, the only ones a
    /// stage that finishes at once pays for (its start is the previous stage's end).
    pub(super) fn since_start(&self) -> Duration {
        self.clock.now()
    }

    /// From a stage's start to `now` (both from the run's start).
    fn elapsed(&self, index: usize, now: Duration) -> Option<Duration> {
        self.stages[index]
            .started
            .map(|started| now.saturating_sub(started))
    }

    pub(super) fn cancelled(&mut self, stage: u32) {
        self.cancelled_after(stage, Vec::new());
    }

    /// A stage cancelled by something other than the run's own stop (its task's runtime shut
    /// down, its timer gone with it): the run stops too, cancelled, instead of going on to report
    /// success with a stage that never ran to its end.
    pub(super) fn stage_cancelled_from_outside(&mut self, stage: u32) {
        self.cancelled(stage);
        if self.stop.is_none() {
            self.stop = Some(Stop::Cancelled);
        }
    }

    /// A stage stopped by the run after the attempts in `failed` had failed: its report keeps
    /// them, with their errors and backoffs, as a finished stage's does.
    pub(super) fn cancelled_after(&mut self, stage: u32, failed: Vec<AttemptRecord>) {
        let index = stage as usize;
        self.stages[index].failed_attempts = failed;
        self.stages[index].elapsed = self.elapsed(index, self.since_start());
        self.stages[index].status = StageStatus::Cancelled;
        self.decided[index] = true;
        self.unfinished -= 1;
        if self.shared.events.is_some() {
            self.emit_decided(stage, |done, total| StageEvent::Cancelled {
                stage: self.pipeline.stages[index].name.clone(),
                done,
                total,
            });
        }
    }

    /// Emits, if the run has an event sink, the event that decides `stage`, built from the count
    /// of stages decided so far (this one included) and the total: the fleet's count when the
    /// run has one (its tasks emit such events too), else the driver's. The stage's attempt has
    /// ended: nothing it sends goes out after this event.
    #[inline(never)]
    pub(super) fn emit_decided(&self, stage: u32, make: impl FnOnce(usize, usize) -> StageEvent) {
        let Some(events) = &self.shared.events else {
            return;
        };
        self.shared.attempt_ended(stage);
        let total = self.stages.len();
        match &self.fleet {
            Some(fleet) => fleet.0.emit_decided(|done| make(done, total)),
            None => events.emit(make(total - self.unfinished, total)),
        }
    }
}
