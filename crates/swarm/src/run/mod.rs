//! The run driver: one future that walks the DAG.
//!
//! Per-run state lives in flat vectors indexed by stage (remaining-dependency counters, statuses,
//! timings). Inline stages are polled once when launched and, if not finished, kept in one
//! `FuturesUnordered` polled by the run itself: a stage costs no task and no channel. Stages that
//! want a thread of their own are spawned: when every stage spawns (and no checkpoint, route or
//! condition needs the driver), on the fleet (`fleet.rs`), whose tasks report through notes the
//! run reads in bulk, seeded runs included; otherwise their join handles sit in the same set. A
//! stage that finishes releases its dependents immediately, in the same poll.
//!
//! Here: the entry points, the run's state and its start. `launch.rs` drives the run (queues,
//! launches and polls stages), `complete.rs` records a stage's end and releases its dependents,
//! `skip.rs` decides what will not run, `end.rs` drains a stopped run and builds the report, and
//! `launched.rs` holds the futures the run polls for its launched stages.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hivekit_runtime::{AbortOnDrop, LazyCancel, Spare};
use rustc_hash::FxHashMap;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::artifact_cell::ArtifactCell;
use crate::clock::RunClock;
use crate::context::RunShared;
use crate::events::EventGate;
use crate::hooks::RunHooks;
use crate::options::{FailurePolicy, RunSettings};
use crate::pipeline::PipelineInner;
use crate::ready::ReadyQueue;
use crate::report::{RunReport, SpareStages, StageReport};
use crate::stage::{deadline_after, StageFuture, StageOutcome};

mod complete;
mod end;
mod fleet;
mod launch;
mod launched;
mod lazy_set;
mod nesting;
mod skip;

use fleet::{Fleet, FleetGuard, Note};
use launched::{BackoffWait, StageTask, TaskStep};
use lazy_set::LazySet;
use nesting::{nested_ended, nested_here, DropWatch, Nested};
pub(crate) use nesting::{Polling, Scopes};

/// Inline stages launched in one poll of the run before it yields to the runtime, so that a long
/// run of stages that finish at once does not starve other tasks on the same thread.
const INLINE_BUDGET: u32 = 128;

pub(crate) async fn execute(pipeline: &Arc<PipelineInner>, options: RunSettings) -> RunReport {
    execute_hooked(pipeline, options, None).await
}

/// A run with checkpoint hooks (`None`: a plain run).
pub(crate) async fn execute_hooked(
    pipeline: &Arc<PipelineInner>,
    options: RunSettings,
    hooks: Option<Arc<dyn RunHooks>>,
) -> RunReport {
    let span = tracing::info_span!(
        "pipeline_run",
        pipeline = &*pipeline.name,
        stages = pipeline.stages.len()
    );
    // Taken here, in the poll of the stage that starts the run, if one does: a driver spawned
    // below would not know it.
    let nested = nested_here();
    let watch = DropWatch::new(nested.as_ref());
    let report = if pipeline.spawning && on_multi_thread_runtime() {
        execute_on_worker(pipeline, options, hooks, nested, span).await
    } else {
        execute_in_span(pipeline, options, hooks, nested)
            .instrument(span)
            .await
    };
    watch.finished();
    report
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
/// do. The driver task is aborted when the run's future is dropped; its stages stop when the
/// aborted task is dropped on a worker, shortly after (see `Pipeline::run`'s cancel safety).
async fn execute_on_worker(
    pipeline: &Arc<PipelineInner>,
    options: RunSettings,
    hooks: Option<Arc<dyn RunHooks>>,
    nested: Option<Arc<Nested>>,
    span: tracing::Span,
) -> RunReport {
    let owned = pipeline.clone();
    let kept = options.clone();
    let driver = AbortOnDrop::new(tokio::spawn(
        async move { execute_in_span(&owned, options, hooks, nested).await }.instrument(span),
    ));
    match driver.await {
        Ok(report) => report,
        // The driver catches every stage's panic; a panic of its own is the caller's.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // The runtime shut down under the run: nothing more runs.
        Err(_) => Run::new(pipeline, &kept, None, None).cancelled_from_outside(),
    }
}

async fn execute_in_span(
    pipeline: &Arc<PipelineInner>,
    options: RunSettings,
    hooks: Option<Arc<dyn RunHooks>>,
    nested: Option<Arc<Nested>>,
) -> RunReport {
    // Timers and spawned stages need a tokio runtime: the caller's, else hivekit's global one,
    // entered for the duration of each poll (so the run works on any executor).
    let fallback = match Handle::try_current() {
        Ok(_) => None,
        Err(_) => match hivekit_runtime::try_handle() {
            Ok(handle) => Some(handle),
            Err(error) => {
                return Run::new(pipeline, &options, hooks, nested).without_runtime(&error);
            }
        },
    };
    let external_cancel = options.cancel.as_ref();
    let mut run = Run::new(pipeline, &options, hooks, nested);
    // Dropped before it ends (by its caller, or with the stage that runs it as a loop body or a
    // nested pipeline), the run is cancelled: so is its own token, which stages hand to work of
    // their own (`StageContext::cancellation`).
    let mut cancel_on_drop = CancelOnDrop(Some(run.shared.clone()));
    run.restore();
    let mut cancelled = pin!(external_cancel.map(CancellationToken::cancelled));
    let deadline_at = options
        .deadline
        .and_then(|deadline| deadline_after(tokio::time::Instant::now(), deadline));
    let mut deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let stop = poll_fn(|cx| {
        let _entered = fallback.map(Handle::enter);
        // The inline stages polled below are this run's: a run they start is nested in it.
        let _polling = Polling::enter(&run.shared);
        // An atomic load per poll; the token's waiter list is only touched when the run must wait.
        // A run timed on the global runtime ends with it: its timers and spawned stages are gone.
        if external_cancel.is_some_and(CancellationToken::is_cancelled)
            || (fallback.is_some() && hivekit_runtime::is_shut_down())
        {
            return Poll::Ready(Some(Stop::Cancelled));
        }
        if let Some(at) = deadline_at {
            let sleep = deadline.get_or_insert_with(|| Box::pin(hivekit_runtime::sleep_until(at)));
            match hivekit_runtime::poll_sleep(sleep.as_mut(), cx) {
                Ok(Poll::Ready(())) => return Poll::Ready(Some(Stop::Deadline)),
                Ok(Poll::Pending) => {}
                Err(_) => return Poll::Ready(Some(Stop::Cancelled)),
            }
        }
        if run.poll_progress(cx).is_ready() {
            return Poll::Ready(run.stop);
        }
        if let Some(cancelled) = cancelled.as_mut().as_pin_mut() {
            if cancelled.poll(cx).is_ready() {
                return Poll::Ready(Some(Stop::Cancelled));
            }
        }
        Poll::Pending
    })
    .await;
    if let Some(stop) = stop {
        run.shared.cancel.cancel();
        run.drain(stop).await;
    } else {
        run.join_fleet().await;
    }
    // Runs nested in stages the run dropped (a fan-out met its quorum, the run stopped) may still
    // be stopping theirs.
    nested_ended(&run.shared).await;
    cancel_on_drop.0 = None;
    run.into_report(stop)
}

/// Cancels a run's own token when dropped armed (see `execute_in_span`).
struct CancelOnDrop(Option<Arc<RunShared>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.cancel.cancel();
        }
    }
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
    clock: RunClock,
    remaining: Vec<u32>,
    /// The report being filled in: statuses are placeholders until `decided`.
    stages: Vec<StageReport>,
    decided: Vec<bool>,
    ready: ReadyQueue,
    /// Ready stages with a slot reserved: launched before anything in `ready`.
    direct: VecDeque<u32>,
    /// Stages that just became ready, not yet queued.
    batch: Vec<u32>,
    running: LazySet<StageTask>,
    /// The heap block inline stages' first attempts are built and polled in (see
    /// `poll_single_attempt`): one allocation per run, not per stage.
    spare: Spare,
    /// Stages waiting out a backoff, and those whose wait is over (to be launched again).
    backoffs: LazySet<BackoffWait>,
    /// Stages whose backoff is over, by stage, until launched again (a map: a wide fan that backs
    /// off at once must not search a list per launch).
    parked: FxHashMap<u32, Box<StageFuture>>,
    /// The run's span (the current one when the run starts): parents the spans of the stages
    /// started on tasks of their own.
    span: tracing::Span,
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
    /// The seeded order's keys of `batch` (seeded runs only; see `seeded_order`).
    keyed: Vec<(u64, u32)>,
    /// The time (from the run's start) the last stage completed, reused as the start time of the
    /// next stage launched right after it (one clock read per stage instead of two).
    completed_at: Option<Duration>,
    /// Nobody watches the run's stages end (no event sink, no checkpoint hooks): a stage that
    /// succeeds takes the short path through `complete`.
    quiet: bool,
    /// Completing stages restored from a checkpoint (which are not recorded again).
    restoring: bool,
    /// Spawned stages that launch their dependents themselves (see `fleet.rs`), in runs that
    /// allow it; the run's dependency counters then live there.
    fleet: Option<FleetGuard>,
    notes: Vec<Note>,
    /// The run's place in the run it is nested in (also held by its fleet and spawned tasks).
    nested: Option<Arc<Nested>>,
    /// Closes the run's event sink when the run ends, so that no event comes after the run and a
    /// channel closes (declared last: dropped last).
    _events_gate: Option<EventGate>,
}

impl Run {
    fn new(
        pipeline: &Arc<PipelineInner>,
        options: &RunSettings,
        hooks: Option<Arc<dyn RunHooks>>,
        nested: Option<Arc<Nested>>,
    ) -> Self {
        let count = pipeline.stages.len();
        let (events, events_gate) = match options.events.clone() {
            Some(sink) => {
                let (sink, gate) = sink.gated();
                (Some(sink), Some(gate))
            }
            None => (None, None),
        };
        let shared = Arc::new(RunShared {
            pipeline: pipeline.clone(),
            artifacts: (0..count).map(|_| ArtifactCell::new()).collect(),
            // Cancelled whenever the run stops early, the external token included.
            cancel: LazyCancel::new(),
            events,
            seed: options.seed.unwrap_or(0),
            input: options.input.clone(),
            clock: RunClock::start(),
            fan_outs: parking_lot::Mutex::new(Vec::new()),
            iterations: parking_lot::Mutex::new(Vec::new()),
            hooks,
            nesting: Scopes::new(nested.as_ref()),
            attempt_gates: RunShared::attempt_gates(count, options.events.is_some()),
        });
        let quiet = options.events.is_none() && shared.hooks.is_none();
        let limit = options.max_concurrency.slots();
        let fleet = Fleet::suits(pipeline, shared.hooks.is_some()).then(|| {
            let seeded = options.seed.is_some();
            FleetGuard(Fleet::new(shared.clone(), limit, seeded, nested.clone()))
        });
        Self {
            pipeline: pipeline.clone(),
            clock: shared.clock,
            shared,
            failure: options.failure,
            limit,
            seed: options.seed,
            remaining: pipeline.in_degree.clone(),
            stages: SpareStages::take(pipeline),
            decided: vec![false; count],
            ready: ReadyQueue::default(),
            direct: VecDeque::new(),
            batch: pipeline.roots.clone(),
            running: LazySet::new(),
            spare: Spare::new(),
            backoffs: LazySet::new(),
            parked: FxHashMap::default(),
            span: tracing::Span::current(),
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
            keyed: Vec::new(),
            completed_at: None,
            quiet,
            restoring: false,
            fleet,
            notes: Vec::new(),
            nested,
            _events_gate: events_gate,
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
}
