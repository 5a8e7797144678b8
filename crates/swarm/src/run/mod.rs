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
use hivekit_runtime::{panic_message, InlineOrSpawned};
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
use crate::report::{RunOutcome, RunReport, SkipReason, StageReport, StageStatus};
use crate::route::Route;
use crate::seed::stage_seed;
use crate::stage::{deadline_after, StageFuture, StageOutcome, StageStep};

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
    execute_in_span(pipeline, options, hooks)
        .instrument(span)
        .await
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

/// A launched stage: polled inline, or a spawned task (aborted when dropped).
struct StageTask {
    stage: u32,
    work: InlineOrSpawned<InlineStage>,
}

/// What a launched stage ends with: the stage's end, or a backoff with the stage handed back (so
/// that the run can park it outside its slot).
enum LaunchedStep {
    Done(StageOutcome),
    Backoff(Duration, StageFuture),
}

/// A stage polled in place, handing itself back when it must back off.
struct InlineStage(Option<StageFuture>);

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
enum TaskStep {
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
struct BackoffWait {
    stage: u32,
    sleep: Pin<Box<tokio::time::Sleep>>,
    future: Option<StageFuture>,
}

impl Future for BackoffWait {
    type Output = (u32, Option<StageFuture>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        std::task::ready!(self.sleep.as_mut().poll(cx));
        Poll::Ready((self.stage, self.future.take()))
    }
}

/// Runs a stage on a task of its own until it ends or must back off.
async fn spawned(mut future: StageFuture) -> LaunchedStep {
    match (&mut future).await {
        StageStep::Done(outcome) => LaunchedStep::Done(outcome),
        StageStep::Backoff(delay) => LaunchedStep::Backoff(delay, future),
    }
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

    /// Which of a router's dependents its route takes, by position among its dependents.
    fn resolve_route(
        &self,
        router: usize,
        route: &(dyn std::any::Any + Send + Sync),
    ) -> Result<Vec<bool>, StageError> {
        let dependents = self.pipeline.dependents(router);
        let name = |stage: u32| &*self.pipeline.stages[stage as usize].name;
        let Some(route) = route.downcast_ref::<Route>() else {
            return Ok(vec![true; dependents.len()]);
        };
        if let Some(target) = route.targets.iter().find(|target| {
            !dependents
                .iter()
                .any(|&dependent| name(dependent) == *target)
        }) {
            return Err(StageError::InvalidRoute {
                router: self.pipeline.stages[router].name.to_string(),
                target: target.clone(),
            });
        }
        Ok(dependents
            .iter()
            .map(|&dependent| route.takes(name(dependent)))
            .collect())
    }

    /// One dependency of `stage` was pruned (`because` says how, for a direct dependent): the
    /// stage runs if another dependency succeeded, else it is pruned too, and so on downwards.
    fn release_pruned(&mut self, stage: u32, because: SkipReason) {
        let mut work = vec![(stage, because)];
        while let Some((stage, because)) = work.pop() {
            let index = stage as usize;
            if self.decided[index] {
                continue;
            }
            self.remaining[index] -= 1;
            self.pruned[index] += 1;
            if self.remaining[index] > 0 {
                continue;
            }
            if self.pruned[index] < self.pipeline.in_degree[index] {
                self.batch.push(stage);
                continue;
            }
            self.skip(index, because);
            let name = self.pipeline.stages[index].name.to_string();
            for &dependent in self.pipeline.dependents(index) {
                work.push((
                    dependent,
                    SkipReason::Pruned {
                        dependency: name.clone(),
                    },
                ));
            }
        }
    }

    /// Prunes a stage whose condition was false, and releases its dependents.
    fn prune(&mut self, index: usize, because: SkipReason) {
        self.skip(index, because);
        let name = self.pipeline.stages[index].name.to_string();
        let pipeline = self.pipeline.clone();
        for &dependent in pipeline.dependents(index) {
            self.release_pruned(
                dependent,
                SkipReason::Pruned {
                    dependency: name.clone(),
                },
            );
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

    /// Skips everything downstream of a stage that did not succeed (iteratively: chains may be long).
    fn skip_dependents(&mut self, root: u32) {
        let root_name = self.pipeline.stages[root as usize].name.to_string();
        let root_status = self.stages[root as usize].status.to_string();
        let pipeline = self.pipeline.clone();
        let mut work = std::mem::take(&mut self.scratch);
        work.push(root);
        while let Some(from) = work.pop() {
            for &dependent in pipeline.dependents(from as usize) {
                let index = dependent as usize;
                if self.decided[index] {
                    continue;
                }
                let because = SkipReason::Dependency {
                    dependency: self.pipeline.stages[from as usize].name.to_string(),
                    root: root_name.clone(),
                    root_status: root_status.clone(),
                };
                self.skip(index, because);
                work.push(dependent);
            }
        }
        self.scratch = work;
    }

    fn skip(&mut self, index: usize, because: SkipReason) {
        self.stages[index].status = StageStatus::Skipped { because };
        self.decided[index] = true;
        self.unfinished -= 1;
        if let Some(events) = &self.shared.events {
            let StageStatus::Skipped { because } = &self.stages[index].status else {
                return;
            };
            events.emit(StageEvent::Skipped {
                stage: self.pipeline.stages[index].name.clone(),
                because: because.clone(),
                done: self.stages.len() - self.unfinished,
                total: self.stages.len(),
            });
        }
    }

    /// Stops the run: cancels what is running (dropping inline stages, aborting spawned ones and
    /// waiting for them to end, so no task outlives the run), then skips what never started.
    async fn drain(&mut self, stop: Stop) {
        self.stop = Some(stop);
        // A future replaced inside a `FuturesUnordered` would not be polled again until woken, so
        // the set is taken apart: inline stages are dropped here, spawned ones aborted and awaited.
        let mut aborted = FuturesUnordered::new();
        for wait in std::mem::take(&mut self.backoffs) {
            self.cancelled(wait.stage);
        }
        for (stage, future) in std::mem::take(&mut self.parked) {
            drop(future);
            self.cancelled(stage);
        }
        for task in std::mem::take(&mut self.running) {
            self.in_flight -= 1;
            match &task.work {
                InlineOrSpawned::Inline(_) => {
                    let stage = task.stage;
                    drop(task);
                    self.cancelled(stage);
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
                TaskStep::Backoff(..) | TaskStep::Cancelled => self.cancelled(stage),
            }
        }
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

    /// The report of a run that could not start: no tokio runtime, and hivekit's could not be built.
    fn without_runtime(mut self, error: &hivekit_runtime::RuntimeError) -> RunReport {
        self.failed = true;
        let because = SkipReason::NoRuntime {
            error: error.to_string(),
        };
        for index in 0..self.decided.len() {
            self.skip(index, because.clone());
        }
        self.into_report(None)
    }

    fn into_report(self, stop: Option<Stop>) -> RunReport {
        let outcome = match stop {
            Some(Stop::Cancelled) => RunOutcome::Cancelled,
            Some(Stop::Deadline) => RunOutcome::DeadlineExceeded,
            Some(Stop::FailFast(_)) => RunOutcome::Failed,
            None if self.failed => RunOutcome::Failed,
            None if self.interrupted => RunOutcome::Interrupted,
            None => RunOutcome::Succeeded,
        };
        let mut fan_outs = std::mem::take(&mut *self.shared.fan_outs.lock());
        let mut iterations = std::mem::take(&mut *self.shared.iterations.lock());
        let artifacts = match Arc::try_unwrap(self.shared) {
            Ok(shared) => shared.artifacts,
            // A stage kept its context alive (in a task of its own making): share the artifacts.
            Err(shared) => shared
                .artifacts
                .iter()
                .map(|artifact| match artifact.get() {
                    Some(artifact) => OnceLock::from(artifact.clone()),
                    None => OnceLock::new(),
                })
                .collect(),
        };
        let mut stages = self.stages;
        fan_outs.sort_by_key(|(stage, summary)| (*stage, summary.attempt));
        for (stage, summary) in fan_outs {
            stages[stage as usize].fan_out.push(summary);
        }
        iterations.sort_by_key(|(stage, iteration, _)| (*stage, *iteration));
        for (stage, _, report) in iterations {
            stages[stage as usize].iterations.push(report);
        }
        RunReport {
            name: self.pipeline.name.clone(),
            pipeline: Some(self.pipeline),
            outcome,
            elapsed: self.start.elapsed(),
            stages,
            artifacts,
            recorded: None,
        }
    }
}
