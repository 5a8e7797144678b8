//! Spawned stages that launch each other: the fleet of a run whose stages all run on tasks of
//! their own and that needs no stage's end to pass through the driver (no checkpoint, no routing,
//! no conditions).
//!
//! A seeded run uses the fleet too, but what became ready together is launched in the seeded
//! order: a task that succeeds releases its dependents' counters and hands those that became
//! ready to the driver in notes (as it does while the driver holds stages waiting for a slot),
//! which queues them as it queues inline stages (the whole batch launched at once if it fits in
//! the free slots, else queued and launched by hints), so a seed gives spawned stages the start
//! order of inline ones. A lone dependent made ready while the driver holds nothing waiting (a
//! chain's next stage) has no order to keep: it runs next on the same task, as in an unseeded run
//! (the driver's note, wake-up, pass and spawn for it were 82% of a seeded 100-stage chain's
//! instructions). In a run whose limit never refuses a slot, a task also launches up to `SHARE`
//! dependents it made ready together while nothing waits, in the seeded order, as the driver would. Its stages report through the notes the driver reads in
//! bulk, not through a join handle per stage polled in a set (the set's node per future and its
//! wake-ups were a quarter of a seeded wide fan's instructions).
//!
//! In such a run a spawned stage that succeeds does, on its own task, what the driver would do:
//! it sets its artifact, counts down its dependents' dependency counters (atomics shared by every
//! task and the driver) and launches the dependents that became ready. The first runs next on the
//! same task, with the finished stage's concurrency slot (the task is free, and a new one would
//! cost a spawn and a wake-up); the others are spawned, each taking a free slot from the shared
//! counter. The driver is not woken for it: the stage leaves a note (its times and attempts) that
//! the driver reads in bulk, so a chain of spawned stages costs no round trip through the driver
//! and no task per stage.
//!
//! A stage with many dependents (a wide fan) does not spawn them all from its own task: in a run
//! whose concurrency limit can never refuse a slot, it keeps the first `SHARE` and hands the
//! rest to a helper task, which keeps the next `SHARE` and hands the rest on (a relay, spawned
//! before the share so that the fan is spawned about as fast as it runs). A worker that steals
//! a helper spawns its part into its own queue, where those tasks run, instead of one worker
//! spawning 10,000 tasks while the other steals them from it. Helpers run no user code, are counted with
//! the live tasks (the run waits for them) and spawn nothing once the fleet is stopped. A helper
//! also holds a place in the count of stages in flight from its spawn until it has launched its
//! share (a [`HelperHold`]): the driver ends a run when that count is zero and no note is left,
//! and a helper not yet polled when the stages launched beside it had all ended was a run that
//! ended, reported successful, with its share never launched (their stages left `Cancelled`). Under a
//! limit, launches keep the dependents' order (slots are taken in the order of the hints).
//!
//! A run with an event sink uses the fleet too: a task announces each stage it launches itself
//! (`Started`, after the `Finished` of the stage that made it ready) and the success of each
//! stage it ends on the short path (`Finished`). The events that decide a stage carry the count of
//! stages decided so far; the driver emits its own (failures, skips, cancellations) through the
//! same count, under one lock, so the counts a sink sees rise by one at each such event.
//!
//! Everything else goes through the driver, as in any run: a failure, a retry's backoff, and a
//! stage that became ready while the driver holds stages waiting for a slot (so that slots are
//! taken in the order of the stages' scheduling hints). Stopping the run (fail-fast,
//! cancellation, the deadline, dropping the run) reaches stages spawned by other stages too,
//! without a handle per task: a task checks the fleet's `stopping` flag before each poll of its
//! stage and cancels the stage when it is set, and a stage that waits leaves its task's waker in
//! its slot, which stopping wakes. Once the fleet is stopped no task spawns anything more. Tasks
//! are detached, so a task's memory is freed (and reused by the next spawn) as it ends, and a
//! stage that waited takes its waker back as it ends (a wide fan that kept 10,000 task cells
//! alive had the allocator give the memory back to the system and fault it in again on every
//! run). Keeping each task's handle, and dropping it from the task, cost a lock and a handle's
//! bookkeeping twice per stage, 5% of a wide fan. The run waits for its tasks through a count of
//! live tasks. A task that is cancelled or panics before reporting its stage leaves a note saying
//! so, so every launched stage is accounted for exactly once.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use futures::task::AtomicWaker;
use parking_lot::Mutex;

use super::launched::TaskStep;
use crate::context::RunShared;
use crate::events::{EventSink, StageEvent};
use crate::pipeline::{PipelineInner, StageKind};
use crate::report::StageStatus;
use crate::seed::stage_seed;
use crate::stage::{StageFuture, StageOutcome};
use crate::stage_fn::Output;
use task::{run_stage, Unreported};

mod task;

/// What a fleet task tells the driver.
pub(super) enum Note {
    /// The stage succeeded on the short path: its artifact is set and its dependents released.
    Succeeded {
        stage: u32,
        started: Duration,
        completed: Duration,
        attempts: u32,
    },
    /// The stage ended otherwise, must back off, or was cancelled: the driver records it as it
    /// records the stages it polls itself. Boxed: these are rare, and a note per stage of a wide
    /// fan is written to fresh memory (48 bytes a note, not the 180 a `TaskStep` would make it).
    Step {
        stage: u32,
        started: Duration,
        step: Box<TaskStep>,
    },
    /// Every dependency of the stage succeeded, but the task did not launch it (no free slot, the
    /// driver holds stages waiting for one, or the stage must be launched by the driver).
    Ready(u32),
}

/// The fleet's tasks still alive, counted apart from the fleet: a task counts itself out after
/// its future (which holds the run's shared state) is dropped, so a run that saw the count reach
/// zero leaves no task holding the stages' artifacts.
struct Live {
    count: AtomicUsize,
    /// The driver, waiting for the count to reach zero.
    waiter: AtomicWaker,
    /// The run's place in the run it is nested in: given back once the fleet and every task are
    /// gone (here, not in the fleet, whose drop the tasks inline).
    _nested: Option<Arc<super::Nested>>,
}

/// Counts its task out when dropped (after the task's future, the field before it).
struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.waiter.wake();
        }
    }
}

pin_project_lite::pin_project! {
    /// A fleet task's future: the task's work, then its guard (struct fields drop in order).
    struct Tracked<F> {
        #[pin]
        future: F,
        live: LiveGuard,
    }
}

impl<F: std::future::Future<Output = ()>> std::future::Future for Tracked<F> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<()> {
        self.project().future.poll(cx)
    }
}

pub(super) struct Fleet {
    shared: Arc<RunShared>,
    /// The run's span, entered when a task builds its stage's future (whose span it parents).
    span: tracing::Span,
    /// Dependencies not yet succeeded, per stage; whoever brings one to zero launches the stage.
    remaining: Box<[AtomicU32]>,
    limit: usize,
    /// Slots taken: stages launched and not yet ended (a backoff gives its slot back).
    in_flight: AtomicUsize,
    /// Stages the driver holds waiting for a slot. While any wait, tasks hand the stages that
    /// become ready to the driver instead of taking slots before them.
    waiting: AtomicUsize,
    /// The waker of each stage's task while the stage waits (left at its first pending poll,
    /// taken back as it ends). A task leaves it with the slot's lock held and `stopping` checked
    /// under it, so stopping the fleet (which sets `stopping`, then empties every slot and wakes
    /// what it found) cannot miss a waiting stage.
    wakers: Box<[Mutex<Option<Waker>>]>,
    live: Arc<Live>,
    /// The run stopped (or was dropped): nothing more is spawned, and no stage polled again.
    stopping: AtomicBool,
    /// The notes tasks leave for the driver (never taken with a waker slot held).
    notes: Mutex<Vec<Note>>,
    driver: AtomicWaker,
    /// The run's event sink, if it has one.
    events: Option<EventSink>,
    /// Stages decided so far, as the events that decide a stage count them; held while such an
    /// event is emitted, by the tasks and the driver alike, so the counts reach the sink in order.
    decided: Mutex<usize>,
    /// A seeded run: what became ready together is launched in the seeded order, so a task hands
    /// the dependents it makes ready to the driver as notes, and runs only a lone one itself (when
    /// nothing waits), or, when no slot can be refused, up to `SHARE` of them in that order.
    seeded: bool,
}

impl Fleet {
    /// Whether a run may use the fleet: every stage spawns, and nothing needs the driver to see
    /// a stage end before its dependents start (no checkpoint hooks, no routes, no conditions;
    /// a seeded run's tasks hand what they make ready to the driver).
    pub(super) fn suits(pipeline: &PipelineInner, hooked: bool) -> bool {
        pipeline.spawning
            && !hooked
            && !pipeline.routing
            && pipeline
                .stages
                .iter()
                .all(|spec| spec.spawns() && spec.condition().is_none())
    }

    pub(super) fn new(
        shared: Arc<RunShared>,
        limit: usize,
        seeded: bool,
        nested: Option<Arc<super::Nested>>,
    ) -> Arc<Self> {
        let stages = shared.pipeline.stages.len();
        let remaining = shared
            .pipeline
            .in_degree
            .iter()
            .map(|&count| AtomicU32::new(count))
            .collect();
        Arc::new(Self {
            events: shared.events.clone(),
            decided: Mutex::new(0),
            shared,
            span: tracing::Span::current(),
            remaining,
            limit,
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            wakers: (0..stages).map(|_| Mutex::new(None)).collect(),
            live: Arc::new(Live {
                count: AtomicUsize::new(0),
                waiter: AtomicWaker::new(),
                _nested: nested,
            }),
            stopping: AtomicBool::new(false),
            // Sized for every stage at once (pages are only touched as they fill): a wide fan
            // writes a note per stage, and growing by doubling copied the list several times.
            notes: Mutex::new(Vec::with_capacity(stages)),
            driver: AtomicWaker::new(),
            seeded,
        })
    }

    /// Emits the event `make` builds from the count of stages decided with this one, if the run
    /// has an event sink.
    pub(super) fn emit_decided(&self, make: impl FnOnce(usize) -> StageEvent) {
        if let Some(events) = &self.events {
            let mut decided = self.decided.lock();
            *decided += 1;
            events.emit(make(*decided));
        }
    }

    /// Emits `Finished` for a stage that succeeded on a task's short path (out of line: an
    /// unwatched run only tests for the sink).
    #[inline(never)]
    fn emit_succeeded(&self, stage: u32, attempts: u32, elapsed: Duration) {
        let pipeline = &*self.shared.pipeline;
        self.shared.attempt_ended(stage);
        self.emit_decided(|done| StageEvent::Finished {
            stage: pipeline.stages[stage as usize].name.clone(),
            status: StageStatus::Succeeded { attempts },
            elapsed,
            done,
            total: pipeline.stages.len(),
        });
    }

    /// Emits `Started` for a stage a task launched (the driver announces those it launches).
    #[inline(never)]
    fn announce(&self, stage: u32) {
        if let Some(events) = &self.events {
            events.emit(StageEvent::Started {
                stage: self.shared.pipeline.stages[stage as usize].name.clone(),
            });
        }
    }

    /// Takes a concurrency slot if one is free.
    pub(super) fn try_take_slot(&self) -> bool {
        let mut taken = self.in_flight.load(Ordering::SeqCst);
        while taken < self.limit {
            match self.in_flight.compare_exchange_weak(
                taken,
                taken + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => taken = now,
            }
        }
        false
    }

    /// Takes `count` concurrency slots if that many are free, else none.
    pub(super) fn try_take_slots(&self, count: usize) -> bool {
        let mut taken = self.in_flight.load(Ordering::SeqCst);
        while let Some(after) = taken
            .checked_add(count)
            .filter(|&after| after <= self.limit)
        {
            match self.in_flight.compare_exchange_weak(
                taken,
                after,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => taken = now,
            }
        }
        false
    }

    /// Whether a slot looks free (a hint for the driver, which then tries to take one).
    pub(super) fn slot_free(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) < self.limit
    }

    /// Whether no launched stage is still running.
    pub(super) fn idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Gives a slot back, waking the driver when it waits for one or for the run's end.
    fn release_slot(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::SeqCst);
        // Sequentially consistent against the driver's store of `waiting` and its own check of
        // `in_flight`: one of the two sides sees the other.
        if before == 1 || self.waiting.load(Ordering::SeqCst) > 0 {
            self.driver.wake();
        }
    }

    /// Counts down one dependency of `stage`; true when that was its last.
    pub(super) fn release(&self, stage: u32) -> bool {
        self.remaining[stage as usize].fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// How many stages the driver holds waiting for a slot.
    pub(super) fn set_waiting(&self, waiting: usize) {
        self.waiting.store(waiting, Ordering::SeqCst);
    }

    /// Registers the driver's waker, before it reads the notes.
    pub(super) fn register(&self, cx: &Context<'_>) {
        self.driver.register(cx.waker());
    }

    /// Moves the notes left since the last call into `into` (empty). The two vectors are
    /// swapped, and only when there are notes, so the capacity the list started with stays in use.
    pub(super) fn take_notes(&self, into: &mut Vec<Note>) {
        let mut notes = self.notes.lock();
        if !notes.is_empty() {
            std::mem::swap(&mut *notes, into);
        }
    }

    /// Launches `stage` (holding a slot taken for it) on a task of its own; `resumed` is its
    /// future after a backoff.
    pub(super) fn launch(
        self: &Arc<Self>,
        stage: u32,
        started: Duration,
        resumed: Option<Box<StageFuture>>,
    ) {
        // The driver launches only while the run goes on, as it did when the fleet kept a list.
        self.spawn(stage, started, resumed, false);
    }

    /// Spawns the task of `stage`. Launched `from_task` (not by the driver), it is not spawned
    /// (false) once the fleet is stopped, and is announced here.
    fn spawn(
        self: &Arc<Self>,
        stage: u32,
        started: Duration,
        resumed: Option<Box<StageFuture>>,
        from_task: bool,
    ) -> bool {
        if from_task {
            if self.stopping.load(Ordering::SeqCst) {
                return false;
            }
            if self.events.is_some() {
                // Before the task can emit anything, and only for a stage that will be decided
                // (run, or cancelled if the run stops first), as the driver announces at launch.
                self.announce(stage);
            }
        }
        let guard = Unreported {
            fleet: self.clone(),
            stage,
            started,
            armed: true,
        };
        self.live.count.fetch_add(1, Ordering::Relaxed);
        let task = Tracked {
            future: run_stage(guard, resumed),
            live: LiveGuard(self.live.clone()),
        };
        // Detached: stopping reaches the task through `stopping` and the waker it leaves (a task
        // spawned just after the fleet stopped sees the flag at its first poll).
        drop(tokio::spawn(task));
        true
    }

    /// Whether the fleet is stopped: a task cancels its stage instead of polling it.
    fn stopped(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Leaves the waker of the task running `stage`, whose poll was pending, for stopping to
    /// wake. If the fleet stopped meanwhile, wakes the task at once instead (its next poll sees
    /// the flag).
    fn wait(&self, stage: u32, waker: &Waker) {
        let mut slot = self.wakers[stage as usize].lock();
        if self.stopping.load(Ordering::SeqCst) {
            drop(slot);
            waker.wake_by_ref();
        } else {
            slot.replace(waker.clone());
        }
    }

    /// Takes back the waker `stage` left (its task's memory is then freed as soon as it ends).
    fn waited(&self, stage: u32) {
        let waker = self.wakers[stage as usize].lock().take();
        drop(waker);
    }

    /// Stops the fleet (nothing more is spawned, no stage polled again) and wakes the tasks of
    /// the stages that wait, so that they cancel them.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for slot in self.wakers.iter() {
            let waker = slot.lock().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Waits until every task spawned has ended (its future dropped).
    async fn ended(&self) {
        std::future::poll_fn(|cx| {
            self.live.waiter.register(cx.waker());
            if self.live.count.load(Ordering::Acquire) == 0 {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
    }

    /// Records a note the driver must act on, gives the stage's slot back and wakes the driver.
    fn report(&self, note: Note) {
        self.notes.lock().push(note);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.driver.wake();
    }

    /// A stage ended on its task: the short path for a plain success, else a note for the driver.
    /// Returns the dependent that runs next on the same task (with the finished stage's slot)
    /// and its start time.
    fn finish(
        self: &Arc<Self>,
        stage: u32,
        started: Duration,
        outcome: StageOutcome,
    ) -> Option<(u32, Duration)> {
        let index = stage as usize;
        let pipeline = &*self.shared.pipeline;
        match outcome {
            StageOutcome::Succeeded {
                artifact,
                attempts,
                failed,
            } if failed.is_empty() && pipeline.stages[index].kind != StageKind::Router => {
                self.succeeded(stage, started, Output::Value(artifact), attempts)
            }
            step => {
                let step = Box::new(TaskStep::Done(step));
                self.report(Note::Step {
                    stage,
                    started,
                    step,
                });
                None
            }
        }
    }

    /// A stage that succeeded at its first attempt's first poll, with its output (a unit output
    /// is stored as such: no clone of the shared unit artifact, and no drop of it later).
    fn succeeded_at_once(
        self: &Arc<Self>,
        stage: u32,
        started: Duration,
        output: Output,
    ) -> Option<(u32, Duration)> {
        if self.shared.pipeline.stages[stage as usize].kind == StageKind::Router {
            let outcome = StageOutcome::Succeeded {
                artifact: output.into_artifact(),
                attempts: 1,
                failed: Vec::new(),
            };
            return self.finish(stage, started, outcome);
        }
        self.succeeded(stage, started, output, 1)
    }

    /// The short path of a plain success: stores the output, leaves a note, releases the
    /// dependents and launches those that became ready.
    fn succeeded(
        self: &Arc<Self>,
        stage: u32,
        started: Duration,
        output: Output,
        attempts: u32,
    ) -> Option<(u32, Duration)> {
        let index = stage as usize;
        let pipeline = &*self.shared.pipeline;
        let completed = self.shared.clock.now();
        // Each stage completes once, so the cell is empty. Set before any dependent is launched:
        // the dependents' counters (acquire-release) carry it to whichever task launches them.
        let _ = self.shared.artifacts[index].set_output(output);
        if self.events.is_some() {
            // Before any dependent is launched (and announced).
            self.emit_succeeded(stage, attempts, completed.saturating_sub(started));
        }
        if self.seeded {
            return self.succeeded_seeded(stage, started, completed, attempts);
        }
        let mut next = None;
        let mut wake = false;
        self.notes.lock().push(Note::Succeeded {
            stage,
            started,
            completed,
            attempts,
        });
        let dependents = pipeline.dependents(index);
        let mut own = dependents.len();
        if own > SHARE && self.limit >= pipeline.stages.len() {
            // No slot is ever refused, so the order of launches is not seen: a wide fan's
            // spawning is shared with the other workers (a relay of helper tasks).
            self.relay(stage, completed, SHARE, own);
            own = SHARE;
        }
        // While the driver holds stages waiting for a slot, ready stages queue behind them.
        let queue = self.waiting.load(Ordering::SeqCst) > 0;
        let mut ready = dependents[..own]
            .iter()
            .copied()
            // Not ready, or the run stopped: a stopped run skips what never started.
            .filter(|&dependent| self.release(dependent) && !self.stopping.load(Ordering::Acquire));
        {
            // The first taker gets the finished stage's slot and its task (no spawn, no
            // wake-up); the others a free slot or a place in the queue.
            let mut take = |dependent: u32| {
                if !queue && next.is_none() {
                    next = Some((dependent, completed));
                } else {
                    wake |= self.launch_ready(dependent, completed, queue);
                }
            };
            if self.limit < pipeline.stages.len() {
                // Where the limit can refuse a slot, stages made ready together take slots by
                // their hints (the first of equals first), as the driver gives scarce slots.
                // Handed out in declaration order, a lower stage took a free slot before a higher
                // one declared after it was seen. (Without a limit the order is not seen.)
                let first = ready.next();
                let mut others: Vec<u32> = ready.collect();
                if others.is_empty() {
                    first.into_iter().for_each(&mut take);
                } else {
                    others.extend(first);
                    others.rotate_right(1);
                    others.sort_by_key(|&stage| {
                        std::cmp::Reverse(pipeline.stages[stage as usize].hint.sort_key())
                    });
                    others.into_iter().for_each(&mut take);
                }
            } else {
                ready.for_each(&mut take);
            }
        }
        match next {
            Some((chosen, _)) if self.events.is_some() => self.announce(chosen),
            Some(_) => {}
            None => self.release_slot(),
        }
        if wake {
            self.driver.wake();
        }
        next
    }

    /// A seeded run's short path of a plain success (its output stored): notes the success and
    /// each dependent that became ready, under one lock, for the driver to launch in the seeded
    /// order, and gives the stage's slot back.
    ///
    /// A lone dependent made ready while the driver holds no stage waiting (a chain's next stage)
    /// has no order to keep: it is what became ready with this stage's end, alone, and the driver
    /// would launch it at once on the slot this stage gives back. It runs next on this task
    /// instead, as in an unseeded run: a note, a wake-up and a pass of the driver and a spawn per
    /// stage of a chain were 82% of a seeded 100-stage chain's instructions.
    ///
    /// In a run whose limit never refuses a slot, stages made ready together (at most `SHARE`)
    /// while nothing waits are launched from this task too, in the seeded order (the first runs
    /// next here, the others are spawned in order): with every one of them given a slot at once
    /// the driver would launch them in that order and nothing else, and its note, wake-up, pass
    /// and spawns were what a seeded run of the Cargo.lock graph paid beyond an unseeded one.
    fn succeeded_seeded(
        self: &Arc<Self>,
        stage: u32,
        started: Duration,
        completed: Duration,
        attempts: u32,
    ) -> Option<(u32, Duration)> {
        let mut ready = 0;
        {
            let mut notes = self.notes.lock();
            notes.push(Note::Succeeded {
                stage,
                started,
                completed,
                attempts,
            });
            for &dependent in self.shared.pipeline.dependents(stage as usize) {
                // A stopped run skips what never started.
                if self.release(dependent) && !self.stopping.load(Ordering::Acquire) {
                    notes.push(Note::Ready(dependent));
                    ready += 1;
                }
            }
            // Read under the notes' lock: a task that noted a stage counted it there.
            if ready == 1 && self.waiting.load(Ordering::SeqCst) == 0 {
                // The lone dependent's note is the last one pushed.
                if let Some(&Note::Ready(lone)) = notes.last() {
                    notes.pop();
                    drop(notes);
                    if self.events.is_some() {
                        self.announce(lone);
                    }
                    // This stage's slot goes to the next one; the driver is not woken.
                    return Some((lone, completed));
                }
            }
            let unlimited = self.limit >= self.shared.pipeline.stages.len();
            if ready > 1 && ready <= SHARE && unlimited && self.waiting.load(Ordering::SeqCst) == 0
            {
                return self.launch_together(notes, ready, completed);
            }
            if ready > 0 {
                // Counted as waiting until the driver has read them (it resets the count after
                // taking the notes, so this is added under their lock), as `launch_ready` does.
                self.waiting.fetch_add(ready, Ordering::SeqCst);
            }
        }
        // After the notes: once no slot is taken, every note is in.
        self.release_slot();
        if ready > 0 {
            self.driver.wake();
        }
        None
    }

    /// Launches the `ready` stages (at most `SHARE`) a seeded run's task made ready together, the
    /// last notes in `notes`, in the seeded order: the first runs next on the task (with its
    /// finished stage's slot), the others are spawned in order. Out of line: its key array is
    /// not set up on a chain's path.
    #[inline(never)]
    fn launch_together(
        self: &Arc<Self>,
        mut notes: parking_lot::MutexGuard<'_, Vec<Note>>,
        ready: usize,
        completed: Duration,
    ) -> Option<(u32, Duration)> {
        let mut keyed = [(0u64, 0u32); SHARE];
        let mut count = 0;
        let first = notes.len() - ready;
        for note in notes.drain(first..) {
            if let Note::Ready(dependent) = note {
                keyed[count] = (stage_seed(self.shared.seed, dependent), dependent);
                count += 1;
            }
        }
        drop(notes);
        let together = &mut keyed[..count];
        // The keys are distinct (see `seeded_order`).
        together.sort_unstable_by_key(|&(key, _)| key);
        let (&(_, first), others) = together.split_first()?;
        if self.events.is_some() {
            self.announce(first);
        }
        let mut wake = false;
        for &(_, dependent) in others {
            // The limit refuses no slot: spawned (else noted for the driver).
            wake |= self.launch_ready(dependent, completed, false);
        }
        if wake {
            self.driver.wake();
        }
        Some((first, completed))
    }

    /// Launches `dependent`, ready, on a task of its own if a slot is free and the driver holds
    /// no stage waiting for one (`queue` false), else hands it to the driver; true when the
    /// driver must be woken for it.
    fn launch_ready(self: &Arc<Self>, dependent: u32, completed: Duration, queue: bool) -> bool {
        if !queue && self.try_take_slot() {
            if !self.spawn(dependent, completed, None, true) {
                self.release_slot();
            }
            false
        } else {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            self.notes.lock().push(Note::Ready(dependent));
            true
        }
    }

    /// Hands the dependents of `stage` from `start` to `end` (past the caller's own `SHARE`) to a
    /// helper task, which keeps the next `SHARE` and hands the rest on the same way (a relay).
    ///
    /// The helper is spawned before the caller's share, so it queues behind what was queued
    /// before and runs once part of that has run: a wide fan is spawned about as fast as its
    /// stages end, a few hundred tasks queued at once. Helpers that halved their range again at
    /// once spawned the whole 10,000-stage fan before most of it ran, past the worker's local
    /// queue (256 tasks, the overflow goes to the runtime's shared queue, under its lock) and
    /// through 2.5 MB of task cells alive together: the relay took a seventh off the unseeded
    /// 10,000-stage fan's time and 2.5% off the 1,000-stage one's instructions. The other
    /// worker still takes its part: it steals half of the queue, helpers included, and a
    /// helper it takes spawns into its own queue.
    ///
    /// Out of line, and called only for a range wider than a share: the helper's spawn inlined
    /// into a stage's short path cost every stage of a chain about 10 instructions, and the
    /// task's own poll lost an inlining (+3.3% on `chain_run/hivekit-spawn`), though a chain
    /// never spawns a helper.
    #[cold]
    #[inline(never)]
    fn relay(self: &Arc<Self>, stage: u32, completed: Duration, start: usize, end: usize) {
        // Taken before the spawn, given back when the helper's future ends or is dropped.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let hold = HelperHold(self.clone());
        self.live.count.fetch_add(1, Ordering::Relaxed);
        let helper = Tracked {
            future: async move { hold.0.release_range(stage, completed, start, end) },
            live: LiveGuard(self.live.clone()),
        };
        // Detached: the helper runs no user code and spawns nothing once the fleet stops.
        drop(tokio::spawn(helper));
    }

    /// A helper's share: releases the dependents of `stage` from `start` to `end` and launches
    /// those that became ready (the helper holds no slot of its own).
    fn release_range(self: &Arc<Self>, stage: u32, completed: Duration, start: usize, end: usize) {
        if self.stopping.load(Ordering::Acquire) {
            // A stopped run skips what never started; nothing to hand out.
            return;
        }
        let end = if end - start > SHARE {
            self.relay(stage, completed, start + SHARE, end);
            start + SHARE
        } else {
            end
        };
        let dependents = &self.shared.pipeline.dependents(stage as usize)[start..end];
        let mut wake = false;
        for &dependent in dependents {
            if !self.release(dependent) || self.stopping.load(Ordering::Acquire) {
                continue;
            }
            let queue = self.waiting.load(Ordering::SeqCst) > 0;
            wake |= self.launch_ready(dependent, completed, queue);
        }
        if wake {
            self.driver.wake();
        }
    }
}

/// How many dependents of one stage a task launches itself before handing the rest out.
const SHARE: usize = 128;

/// A helper task's place in the count of stages in flight: the fleet is not idle while a helper
/// has dependents left to launch (the stages it launches take their own places first, and a note
/// it leaves is in before this one is given back).
struct HelperHold(Arc<Fleet>);

impl Drop for HelperHold {
    fn drop(&mut self) {
        self.0.release_slot();
    }
}

/// The driver's hold on its fleet: dropped with the run (its future dropped before the end), it
/// stops the fleet, so every task still running cancels its stage, as dropping a spawned stage's
/// handle aborts it.
pub(super) struct FleetGuard(pub(super) Arc<Fleet>);

impl Drop for FleetGuard {
    fn drop(&mut self) {
        // A fleet already stopped (the run joined or drained it) has no task left to stop.
        if self.0.stopping.load(Ordering::SeqCst) {
            return;
        }
        self.0.stop();
    }
}

impl super::Run {
    /// The driver's side of the fleet: reads the tasks' notes. `Ready(true)` when that made
    /// progress (or a slot came free for a waiting stage), `Ready(false)` when no launched stage
    /// runs any more, `Pending` (woken by a task) otherwise; `Ready(false)` without a fleet.
    #[inline(never)]
    pub(super) fn poll_fleet(&mut self, cx: &mut Context<'_>) -> std::task::Poll<bool> {
        let Some(FleetGuard(fleet)) = &self.fleet else {
            return std::task::Poll::Ready(false);
        };
        let fleet = fleet.clone();
        fleet.register(cx);
        // Read before the notes: a task leaves its note before giving its slot back, so once
        // no slot is taken every note is in.
        let idle = fleet.idle();
        let progressed = self.take_fleet_notes(&fleet);
        fleet.set_waiting(self.ready.len() + self.batch.len());
        if progressed || (!self.ready.is_empty() && fleet.slot_free()) {
            std::task::Poll::Ready(true)
        } else if idle {
            std::task::Poll::Ready(false)
        } else {
            std::task::Poll::Pending
        }
    }

    /// Records the notes the fleet's tasks left since the last call; true if there were any.
    fn take_fleet_notes(&mut self, fleet: &Fleet) -> bool {
        let mut notes = std::mem::take(&mut self.notes);
        fleet.take_notes(&mut notes);
        let progressed = !notes.is_empty();
        for note in notes.drain(..) {
            self.take_note(note);
        }
        self.notes = notes;
        progressed
    }

    /// Before a queued stage takes the slot the driver just took: records the notes left so far,
    /// whose ready stages queue (the queue is not empty) beside those waiting; true if that
    /// stopped the run. A task notes the
    /// stages it made ready before it gives its slot back, so the slot's stage is chosen among
    /// all of them by their hints, as in a run of inline stages, where a stage's end releases its
    /// dependents before anything else is launched (choosing first, the driver started a stage
    /// it held before a dependent with a higher hint that the task had just noted).
    #[inline(never)]
    pub(super) fn notes_before_slot(&mut self) -> bool {
        let Some(FleetGuard(fleet)) = &self.fleet else {
            return false;
        };
        let fleet = fleet.clone();
        self.take_fleet_notes(&fleet);
        if self.stop.is_some() {
            // The run stops: the slot is not given back (nothing more is launched).
            return true;
        }
        if !self.batch.is_empty() {
            // The queue is not empty: the batch joins it, in the seeded order.
            self.dispatch_batch();
        }
        false
    }

    /// Records what a fleet task noted.
    fn take_note(&mut self, note: Note) {
        match note {
            Note::Succeeded {
                stage,
                started,
                completed,
                attempts,
            } => {
                let index = stage as usize;
                let report = &mut self.stages[index];
                report.started = Some(started);
                report.elapsed = Some(completed.saturating_sub(started));
                let placeholder =
                    std::mem::replace(&mut report.status, StageStatus::Succeeded { attempts });
                // The placeholder of an undecided stage holds nothing to free: forgetting it
                // saves an out-of-line drop per stage (as `succeeded_quietly` does).
                if matches!(placeholder, StageStatus::Cancelled) {
                    std::mem::forget(placeholder);
                }
                self.decided[index] = true;
                self.unfinished -= 1;
            }
            Note::Step {
                stage,
                started,
                step,
            } => {
                self.stages[stage as usize].started.get_or_insert(started);
                match *step {
                    TaskStep::Done(outcome) => self.complete(stage, outcome),
                    TaskStep::Backoff(delay, future) => self.back_off(stage, delay, future),
                    TaskStep::Cancelled => self.stage_cancelled_from_outside(stage),
                }
            }
            Note::Ready(stage) => self.batch.push(stage),
        }
    }

    /// Launches a spawned stage on the fleet (its slot taken). Out of line, like the fleet's
    /// other driver steps, to keep the inline stages' path short.
    #[inline(never)]
    pub(super) fn launch_on_fleet(
        &self,
        stage: u32,
        started: Duration,
        resumed: Option<Box<StageFuture>>,
    ) {
        if let Some(FleetGuard(fleet)) = &self.fleet {
            fleet.launch(stage, started, resumed);
        }
    }

    /// Queues the stages that became ready: `direct` holds those with a slot taken for them.
    #[inline(never)]
    pub(super) fn dispatch_on_fleet(&mut self) {
        let Some(FleetGuard(fleet)) = &self.fleet else {
            return;
        };
        // As for inline stages: the batch goes straight to launch only if nothing waits and it
        // fits in the free slots whole; else all of it queues, and slots go by the hints (taking
        // slots for the first stages of the seeded order and queueing the rest started those
        // first, whatever their hints, where an inline run starts the highest hints first).
        if self.ready.is_empty() && fleet.try_take_slots(self.batch.len()) {
            self.direct.extend(self.batch.drain(..));
        } else {
            for stage in self.batch.drain(..) {
                self.ready
                    .push(self.pipeline.stages[stage as usize].hint, stage);
            }
        }
        // What still waits for a slot: a batch that took slots for all its stages (a seeded wide
        // fan) no longer counts, so the tasks that end no longer wake the driver for it.
        fleet.set_waiting(self.ready.len());
    }

    /// Counts down the dependencies of a stage the driver saw succeed; tasks count the same
    /// counters down, and whoever brings one to zero launches the stage.
    #[inline(never)]
    pub(super) fn release_on_fleet(&mut self, index: usize) {
        let Some(FleetGuard(fleet)) = &self.fleet else {
            return;
        };
        for &dependent in self.pipeline.dependents(index) {
            if fleet.release(dependent) {
                self.batch.push(dependent);
            }
        }
    }

    /// The end of a run that was not stopped: waits for the fleet's tasks to end (every stage
    /// has been reported; they are past that), so that no task outlives the run.
    pub(super) async fn join_fleet(&mut self) {
        let Some(FleetGuard(fleet)) = &self.fleet else {
            return;
        };
        let fleet = fleet.clone();
        // Every stage has been reported; the tasks are past that and spawn nothing more. The
        // count of live tasks says when they have all ended.
        fleet.stopping.store(true, Ordering::SeqCst);
        fleet.ended().await;
    }

    /// Stopping a run: stops the fleet, so every task cancels its stage (those that other stages
    /// spawned included), and waits for them to end, then records what they noted. A stage that
    /// ended before its task saw the stop keeps its real outcome; what was ready but not launched
    /// is skipped with the rest.
    pub(super) async fn drain_fleet(&mut self) {
        let Some(FleetGuard(fleet)) = &self.fleet else {
            return;
        };
        let fleet = fleet.clone();
        fleet.stop();
        // A cancelled stage's note is left before its task counts itself out.
        fleet.ended().await;
        let mut notes = Vec::new();
        fleet.take_notes(&mut notes);
        for note in notes {
            match note {
                Note::Ready(_) => {}
                Note::Step {
                    stage,
                    started,
                    step,
                } if matches!(*step, TaskStep::Backoff(..)) => {
                    self.stages[stage as usize].started.get_or_insert(started);
                    self.cancelled(stage);
                }
                note => self.take_note(note),
            }
        }
    }
}
