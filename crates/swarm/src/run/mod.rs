//! The run driver: one future that walks the DAG.
//!
//! Per-run state lives in flat vectors indexed by stage (remaining-dependency counters, statuses,
//! timings). Inline stages are polled once when launched and, if not finished, kept in one
//! `FuturesUnordered` polled by the run itself: a stage costs no task and no channel. Stages that
//! want a thread of their own are spawned and their join handles sit in the same set. A stage that
//! finishes releases its dependents immediately, in the same poll.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use hivekit_runtime::{panic_message, AbortOnDrop, InlineOrSpawned};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::{RunShared, StageContext};
use crate::error::StageError;
use crate::events::{AttemptFailure, StageEvent};
use crate::hooks::RunHooks;
use crate::options::{FailurePolicy, RunOptions};
use crate::pipeline::{PipelineInner, StageKind};
use crate::ready::ReadyQueue;
use crate::report::{RunReport, SkipReason, StageReport, StageStatus};
use crate::seed::stage_seed;
use crate::stage::{deadline_after, StageFuture, StageOutcome, StageStep};

mod end;
mod launched;
mod skip;

use launched::{spawned, BackoffWait, InlineStage, StageTask, TaskStep};

/// Inline stages launched in one poll of the run before it yields to the runtime, so that a long
/// run of stages that finish at once does not starve other tasks on the same thread.
const INLINE_BUDGET: u32 = 128;

pub(crate) async fn execute(pipeline: &Arc<PipelineInner>, options: RunOptions) -> RunReport {
    execute_hooked(pipeline, options, None).await
}

/// A run with checkpoint hooks (`None`: a plain run).
pub(crate) async fn execute_hooked(
    pipeline: &Arc<PipelineInner>,
    options: RunOptions,
    hooks: Option<Arc<dyn RunHooks>>,
) -> RunReport {
    let span = tracing::info_span!(
        "pipeline_run",
        pipeline = &*pipeline.name,
        stages = pipeline.stages.len()
    );
    if pipeline.spawning && on_multi_thread_runtime() {
        return execute_on_worker(pipeline, options, hooks, span).await;
    }
    execute_in_span(pipeline, options, hooks)
        .instrument(span)
        .await
}

/// Whether the caller runs inside a multi-thread tokio runtime.
fn on_multi_thread_runtime() -> bool {
    Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// A run of a pipeline with spawned stages, driven from a task of its own on the caller's
/// multi-thread runtime. Driven from the caller's thread (a `block_on` outside the workers, say),
/// every spawned stage went to the runtime's shared queue and woke a parked worker, and every
/// finished one woke the caller's thread back: two thread wake-ups per stage. From a worker, a
/// stage the driver spawns lands in that worker's next-task slot, and the stage's completion
/// wakes the driver into the same slot: the driver and its stages take turns on one worker (the
/// other worker steals when several are ready), as tasks that wake each other through channels
/// do. The driver task is aborted when the run's future is dropped (which drops and aborts its
/// stages, as dropping an inline run does).
async fn execute_on_worker(
    pipeline: &Arc<PipelineInner>,
    options: RunOptions,
    hooks: Option<Arc<dyn RunHooks>>,
    span: tracing::Span,
) -> RunReport {
    let owned = pipeline.clone();
    let kept = options.clone();
    let driver = AbortOnDrop::new(tokio::spawn(
        async move { execute_in_span(&owned, options, hooks).await }.instrument(span),
    ));
    match driver.await {
        Ok(report) => report,
        // The driver catches every stage's panic; a panic of its own is the caller's.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // The runtime shut down under the run: nothing more runs.
        Err(_) => Run::new(pipeline, &kept, None).cancelled_from_outside(),
    }
}

async fn execute_in_span(
    pipeline: &Arc<PipelineInner>,
    options: RunOptions,
    hooks: Option<Arc<dyn RunHooks>>,
) -> RunReport {
    // Timers and spawned stages need a tokio runtime: the caller's, else hivekit's global one,
    // entered for the duration of each poll (so the run works on any executor).
    let fallback = match Handle::try_current() {
        Ok(_) => None,
        Err(_) => match hivekit_runtime::try_handle() {
            Ok(handle) => Some(handle),
            Err(error) => return Run::new(pipeline, &options, hooks).without_runtime(&error),
        },
    };
    let external_cancel = options.cancel.clone();
    let mut run = Run::new(pipeline, &options, hooks);
    run.restore();
    let mut cancelled = pin!(external_cancel.cancelled());
    let deadline_at = options
        .deadline
        .and_then(|deadline| deadline_after(tokio::time::Instant::now(), deadline));
    let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let stop = poll_fn(|cx| {
        let _entered = fallback.map(Handle::enter);
        // An atomic load per poll; the token's waiter list is only touched when the run must wait.
        if external_cancel.is_cancelled() {
            return Poll::Ready(Some(Stop::Cancelled));
        }
        if let Some(at) = deadline_at {
            let sleep = deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Stop::Deadline));
            }
        }
        if run.poll_progress(cx).is_ready() {
            return Poll::Ready(run.stop);
        }
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Stop::Cancelled));
        }
        Poll::Pending
    })
    .await;
    if let Some(stop) = stop {
        run.shared.cancel.cancel();
        run.drain(stop).await;
    }
    run.into_report(stop)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    FailFast(u32),
    Cancelled,
    Deadline,
}

struct Run {
    pipeline: Arc<PipelineInner>,
    shared: Arc<RunShared>,
    failure: FailurePolicy,
    limit: usize,
    seed: Option<u64>,
    start: Instant,
    remaining: Vec<u32>,
    /// The report being filled in: statuses are placeholders until `decided`.
    stages: Vec<StageReport>,
    decided: Vec<bool>,
    ready: ReadyQueue,
    /// Ready stages with a slot reserved: launched before anything in `ready`.
    direct: VecDeque<u32>,
    /// Stages that just became ready, not yet queued.
    batch: Vec<u32>,
    running: FuturesUnordered<StageTask>,
    /// Stages waiting out a backoff, and those whose wait is over (to be launched again).
    backoffs: FuturesUnordered<BackoffWait>,
    parked: Vec<(u32, StageFuture)>,
    /// For routing pipelines: how many of each stage's dependencies were pruned.
    pruned: Vec<u32>,
    /// Inline stages this poll may still launch before yielding.
    budget: u32,
    in_flight: usize,
    unfinished: usize,
    failed: bool,
    /// A stage paused the run for outside input (a durable run only).
    interrupted: bool,
    stop: Option<Stop>,
    scratch: Vec<u32>,
    /// The time the last stage completed, reused as the start time of the next stage launched
    /// right after it (one clock read per stage instead of two).
    completed_at: Option<Instant>,
    /// Completing stages restored from a checkpoint (which are not recorded again).
    restoring: bool,
}

impl Run {
    fn new(
        pipeline: &Arc<PipelineInner>,
        options: &RunOptions,
        hooks: Option<Arc<dyn RunHooks>>,
    ) -> Self {
        let count = pipeline.stages.len();
        let shared = Arc::new(RunShared {
            pipeline: pipeline.clone(),
            artifacts: (0..count).map(|_| OnceLock::new()).collect(),
            // Cancelled whenever the run stops early, the external token included.
            cancel: CancellationToken::new(),
            events: options.events.clone(),
            seed: options.seed.unwrap_or(0),
            input: options.input.clone(),
            start: Instant::now(),
            fan_outs: parking_lot::Mutex::new(Vec::new()),
            iterations: parking_lot::Mutex::new(Vec::new()),
            hooks,
        });
        Self {
            pipeline: pipeline.clone(),
            shared: shared.clone(),
            failure: options.failure,
            limit: options.max_concurrency.slots(),
            seed: options.seed,
            start: shared.start,
            remaining: pipeline.in_degree.clone(),
            stages: pipeline
                .stages
                .iter()
                .map(|spec| StageReport {
                    name: spec.name.clone(),
                    status: StageStatus::Cancelled,
                    started: None,
                    elapsed: None,
                    failed_attempts: Vec::new(),
                    fan_out: Vec::new(),
                    iterations: Vec::new(),
                    resumed: false,
                })
                .collect(),
            decided: vec![false; count],
            ready: ReadyQueue::default(),
            direct: VecDeque::new(),
            batch: pipeline.roots.clone(),
            running: FuturesUnordered::new(),
            backoffs: FuturesUnordered::new(),
            parked: Vec::new(),
            pruned: if pipeline.routing {
                vec![0; count]
            } else {
                Vec::new()
            },
            budget: INLINE_BUDGET,
            in_flight: 0,
            unfinished: count,
            failed: false,
            interrupted: false,
            stop: None,
            scratch: Vec::new(),
            completed_at: None,
            restoring: false,
        }
    }

    /// Completes the stages a checkpoint restored, before anything runs: their dependents are
    /// released as if they had just succeeded, and they are not launched.
    fn restore(&mut self) {
        let Some(hooks) = self.shared.hooks.clone() else {
            return;
        };
        self.restoring = true;
        for restored in hooks.take_restored() {
            self.stages[restored.stage as usize].resumed = true;
            self.complete(
                restored.stage,
                StageOutcome::Succeeded {
                    artifact: restored.artifact,
                    attempts: restored.attempts,
                    failed: restored.failed,
                },
            );
        }
        self.restoring = false;
        let decided = &self.decided;
        self.batch.retain(|&stage| !decided[stage as usize]);
    }

    fn poll_progress(&mut self, cx: &mut Context<'_>) -> Poll<()> {
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
                            self.parked.push((stage, future));
                            self.batch.push(stage);
                        }
                        None => self.cancelled(stage),
                    }
                    continue;
                }
            }
            match self.running.poll_next_unpin(cx) {
                Poll::Ready(Some((stage, step))) => {
                    self.in_flight -= 1;
                    match step {
                        TaskStep::Done(outcome) => self.complete(stage, outcome),
                        TaskStep::Backoff(delay, future) => self.back_off(stage, delay, future),
                        // Only `drain` aborts tasks, and it does not poll through here.
                        TaskStep::Cancelled => self.cancelled(stage),
                    }
                }
                // Nothing runs and nothing can start: every stage has been decided (or waits
                // out a backoff, whose timer wakes the run).
                Poll::Ready(None) if self.backoffs.is_empty() => return Poll::Ready(()),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn back_off(&mut self, stage: u32, delay: Duration, future: StageFuture) {
        self.backoffs.push(BackoffWait {
            stage,
            sleep: Box::pin(tokio::time::sleep(delay)),
            future: Some(future),
        });
    }

    /// Queues what became ready and launches as much as the slots allow; `Pending` when the
    /// inline budget of this poll ran out.
    fn pump(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if !self.batch.is_empty() {
                self.dispatch_batch();
            }
            let next = if let Some(stage) = self.direct.pop_front() {
                stage
            } else if self.in_flight < self.limit {
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

    fn dispatch_batch(&mut self) {
        if let Some(seed) = self.seed {
            if self.batch.len() > 1 {
                self.batch
                    .sort_unstable_by_key(|&stage| stage_seed(seed, stage));
            }
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
        let resumed = match self.parked.iter().position(|(parked, _)| *parked == stage) {
            Some(position) => Some(self.parked.swap_remove(position).1),
            None => None,
        };
        let mut future = match resumed {
            Some(future) => future,
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
                            let error = StageError::Panicked(panic_message(&*panic));
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
                let started = self.completed_at.take().unwrap_or_else(Instant::now);
                self.stages[stage as usize].started =
                    Some(started.saturating_duration_since(self.start));
                if let Some(events) = &self.shared.events {
                    events.emit(StageEvent::Started {
                        stage: spec.name.clone(),
                    });
                }
                StageFuture::new(self.shared.clone(), stage)
            }
        };
        if spec.spawns() {
            let work = InlineOrSpawned::spawn(spawned(future));
            self.running.push(StageTask { stage, work });
            self.in_flight += 1;
            return;
        }
        // A stage that finishes on its first poll never enters the set.
        match Pin::new(&mut future).poll(cx) {
            Poll::Ready(StageStep::Done(outcome)) => self.complete(stage, outcome),
            Poll::Ready(StageStep::Backoff(delay)) => self.back_off(stage, delay, future),
            Poll::Pending => {
                let work = InlineOrSpawned::Inline(InlineStage(Some(future)));
                self.running.push(StageTask { stage, work });
                self.in_flight += 1;
            }
        }
    }

    fn complete(&mut self, stage: u32, outcome: StageOutcome) {
        let index = stage as usize;
        let now = Instant::now();
        self.completed_at = Some(now);
        let elapsed = self.elapsed(index, now);
        self.stages[index].elapsed = elapsed;
        self.unfinished -= 1;
        let mut route = None;
        let (status, mut failed) = match outcome {
            StageOutcome::Succeeded {
                artifact,
                attempts,
                failed,
            } => {
                if self.pipeline.stages[index].kind == StageKind::Router {
                    route = Some(artifact.clone());
                }
                // Each stage completes once, so the cell is empty.
                let _ = self.shared.artifacts[index].set(artifact);
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
        let (status, taken) = match route {
            Some(route) => match self.resolve_route(index, &*route) {
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
                self.shared.artifacts[index].get(),
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
        if let Some(events) = &self.shared.events {
            events.emit(StageEvent::Finished {
                stage: self.pipeline.stages[index].name.clone(),
                status: status.clone(),
                elapsed: elapsed.unwrap_or_default(),
                done: self.stages.len() - self.unfinished,
                total: self.stages.len(),
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
            // Positions into the dependents' list rather than a borrow of it (or a clone of the
            // pipeline's `Arc`, an atomic round trip per stage): releasing a pruned dependent
            // needs `self` mutably.
            let first = self.pipeline.dependent_start[index] as usize;
            let end = self.pipeline.dependent_start[index + 1] as usize;
            for slot in first..end {
                let dependent = self.pipeline.dependent_list[slot];
                if taken.as_ref().is_some_and(|taken| !taken[slot - first]) {
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

    /// From a stage's start to `now`.
    fn elapsed(&self, index: usize, now: Instant) -> Option<Duration> {
        let since_start = now.saturating_duration_since(self.start);
        self.stages[index]
            .started
            .map(|started| since_start.saturating_sub(started))
    }

    fn cancelled(&mut self, stage: u32) {
        let index = stage as usize;
        self.stages[index].elapsed = self.elapsed(index, Instant::now());
        self.stages[index].status = StageStatus::Cancelled;
        self.decided[index] = true;
        self.unfinished -= 1;
        if let Some(events) = &self.shared.events {
            events.emit(StageEvent::Cancelled {
                stage: self.pipeline.stages[index].name.clone(),
                done: self.stages.len() - self.unfinished,
                total: self.stages.len(),
            });
        }
    }
}
