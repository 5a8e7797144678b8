//! The end of a run: draining it when it stops early, and its report.

use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use hivekit_runtime::InlineOrSpawned;

use super::{Run, Stop, TaskStep};
use crate::artifact_cell::ArtifactCell;
use crate::report::{RunOutcome, RunReport, SkipReason, StageStatus};
use crate::stage::StageFuture;

impl Run {
    /// Stops the run: cancels what is running (dropping inline stages, aborting spawned ones and
    /// waiting for them to end, so no task outlives the run), then skips what never started.
    pub(super) async fn drain(&mut self, stop: Stop) {
        self.stop = Some(stop);
        // A future replaced inside a `FuturesUnordered` would not be polled again until woken, so
        // the set is taken apart: inline stages are dropped here, spawned ones aborted and awaited.
        let mut aborted = FuturesUnordered::new();
        // A stopped stage's report keeps the attempts that failed before the stop wherever the
        // run still holds its future (inline, waiting out a backoff, or handed back by its task).
        for mut wait in self.backoffs.take() {
            let failed = wait.future.as_mut().map(|f| f.take_failed());
            self.cancelled_after(wait.stage, failed.unwrap_or_default());
        }
        let mut parked: Vec<(u32, Box<StageFuture>)> =
            std::mem::take(&mut self.parked).into_iter().collect();
        // In stage order, not the map's: a seeded run's events stay the same from run to run.
        parked.sort_unstable_by_key(|(stage, _)| *stage);
        for (stage, mut future) in parked {
            self.cancelled_after(stage, future.take_failed());
        }
        for mut task in self.running.take() {
            self.in_flight -= 1;
            match &mut task.work {
                InlineOrSpawned::Inline(inline) => {
                    let failed = inline.0.as_mut().map(|f| f.take_failed());
                    let stage = task.stage;
                    drop(task);
                    self.cancelled_after(stage, failed.unwrap_or_default());
                }
                InlineOrSpawned::Spawned(handle) => {
                    handle.abort();
                    aborted.push(task);
                }
            }
        }
        while let Some((stage, step)) = aborted.next().await {
            match step {
                // A spawned stage that finished before the abort landed keeps its real outcome.
                TaskStep::Done(outcome) => self.complete(stage, outcome),
                TaskStep::Backoff(_, mut future) => {
                    self.cancelled_after(stage, future.take_failed());
                }
                // Aborted mid-attempt: its task dropped the attempts with the future.
                TaskStep::Cancelled => self.cancelled(stage),
            }
        }
        self.drain_fleet().await;
        let because = match stop {
            Stop::FailFast(stage) => SkipReason::FailFast {
                stage: self.pipeline.stages[stage as usize].name.to_string(),
            },
            Stop::Cancelled => SkipReason::Cancelled,
            Stop::Deadline => SkipReason::DeadlineExceeded,
        };
        for index in 0..self.decided.len() {
            if !self.decided[index] {
                self.skip(index, because.clone());
            }
        }
    }

    /// The report of a run whose driver was cancelled from outside (its runtime shut down): every
    /// stage reads as skipped for that reason.
    pub(super) fn cancelled_from_outside(mut self) -> RunReport {
        for index in 0..self.decided.len() {
            self.skip(index, SkipReason::Cancelled);
        }
        self.into_report(Some(Stop::Cancelled))
    }

    /// The report of a run that could not start: no tokio runtime, and hivekit's could not be built.
    pub(super) fn without_runtime(mut self, error: &hivekit_runtime::RuntimeError) -> RunReport {
        self.failed = true;
        let because = SkipReason::NoRuntime {
            error: error.to_string(),
        };
        for index in 0..self.decided.len() {
            self.skip(index, because.clone());
        }
        self.into_report(None)
    }

    pub(super) fn into_report(mut self, stop: Option<Stop>) -> RunReport {
        // The fleet holds the shared state too; its tasks have all ended.
        self.fleet = None;
        // A cancellation or deadline the run saw only after every stage had ended (a spawned
        // stage's end reaches the driver at its next poll, which may find the token cancelled)
        // cut nothing short: the run ended as its stages did, as a task aborted after it
        // completed still gives its output. Not when a stage failed: it may have failed because
        // it saw the stop (`StageContext::is_cancelled`), which cut it short all the same.
        let stop = match stop {
            Some(Stop::Cancelled | Stop::Deadline)
                if !self.failed
                    && !self
                        .stages
                        .iter()
                        .any(|stage| stopped_by_the_run(&stage.status)) =>
            {
                None
            }
            stop => stop,
        };
        let outcome = match stop {
            Some(Stop::Cancelled) => RunOutcome::Cancelled,
            Some(Stop::Deadline) => RunOutcome::DeadlineExceeded,
            Some(Stop::FailFast(_)) => RunOutcome::Failed,
            None if self.failed => RunOutcome::Failed,
            None if self.interrupted => RunOutcome::Interrupted,
            None => RunOutcome::Succeeded,
        };
        let (artifacts, mut fan_outs, mut iterations) = match Arc::try_unwrap(self.shared) {
            // The usual end: the run holds the last reference, so nothing is locked.
            Ok(shared) => (
                shared.artifacts,
                shared.fan_outs.into_inner(),
                shared.iterations.into_inner(),
            ),
            // A stage kept its context alive (in a task of its own making): share the artifacts.
            Err(shared) => (
                shared
                    .artifacts
                    .iter()
                    .map(|artifact| match artifact.get() {
                        Some(artifact) => ArtifactCell::from(artifact.clone()),
                        None => ArtifactCell::new(),
                    })
                    .collect(),
                std::mem::take(&mut *shared.fan_outs.lock()),
                std::mem::take(&mut *shared.iterations.lock()),
            ),
        };
        let mut stages = self.stages;
        fan_outs.sort_by_key(|(stage, summary)| (*stage, summary.attempt));
        for (stage, summary) in fan_outs {
            stages[stage as usize].fan_out.push(summary);
        }
        // A retried loop stage lists each attempt's iterations in turn, as its fan-outs are listed.
        iterations.sort_by_key(|(stage, attempt, iteration, _)| (*stage, *attempt, *iteration));
        for (stage, _, _, report) in iterations {
            stages[stage as usize].iterations.push(report);
        }
        RunReport {
            name: self.pipeline.name.clone(),
            pipeline: Some(self.pipeline),
            outcome,
            elapsed: self.clock.now(),
            stages,
            artifacts,
            recorded: None,
        }
    }
}

/// Whether a stage did not end on its own because the run stopped.
fn stopped_by_the_run(status: &StageStatus) -> bool {
    matches!(
        status,
        StageStatus::Cancelled
            | StageStatus::Skipped {
                because: SkipReason::Cancelled
                    | SkipReason::DeadlineExceeded
                    | SkipReason::FailFast { .. }
                    | SkipReason::NoRuntime { .. },
            }
    )
}
