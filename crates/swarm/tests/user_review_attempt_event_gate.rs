//! Review of the per-stage attempt gate (b1b87ea, then `attempt_gate.rs`): an attempt's own
//! events (`Progress`, a fan-out's `ItemStarted`/`ItemFinished`, a loop's `IterationFinished`) go
//! out only while the attempt is current, and the run closes the gate (turning later reports
//! away, waiting for those under way) before the stage's `Retried`, `Finished`, `Cancelled` or
//! `Skipped`.
//!
//! Checked here, with watchdogs (a deadlock fails a test instead of hanging it):
//! - no event of an attempt goes out after the event that ended it, and none of a stage after its
//!   deciding event, under concurrency (abandoned blocking attempts, tasks and threads holding
//!   contexts, retries with and without backoff, multi-thread and current-thread runtimes);
//! - no event of a current attempt is lost, on every path that starts an attempt (the inline
//!   first poll, the state machine, a spawned stage, the fleet, seeded or not, a conditioned stage,
//!   a blocking stage, a fan-out with item retries, a loop's iterations, a resumed durable run);
//! - callbacks that re-enter (`ctx.progress` from a callback, from a thread it joins, a nested
//!   run with the same sink, cancelling the run's token, aborting the run's task) do not
//!   deadlock.
//!
//! Found in the first gate (an `RwLock` per stage): `AttemptEvents::emit` dropped the read guard
//! before it delivered the event, so a report that passed the gate could still arrive after the
//! event that ended its attempt (the two repros at the end). A lock held across the delivery
//! would let an abandoned attempt's reporters hold off the stage's end for as long as they
//! report (`an_abandoned_attempts_reporters_do_not_hold_off_the_stages_end`); the gate turns
//! later reports away first and waits only for those under way. The cost of the guarantee: a
//! callback that waits for the run to make progress while it delivers a report waits on a run
//! that waits on it (`a_callback_waiting_for_the_run_is_waited_for`, and `EventSink::callback`'s
//! docs).
//!
//! Every `Progress` here carries its attempt number as `total`, so the checker can tell which
//! attempt sent it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    Backoff, CancellationToken, EventSink, FailurePolicy, FanOut, Iteration, LoopPolicy, Pipeline,
    RetryPolicy, RunOptions, RunReport, StageContext, StageError, StageEvent, StageStatus,
};

const WATCHDOG: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Recording and checking
// ---------------------------------------------------------------------------------------------

/// Keeps every event (never holding its lock while user code runs) and lets threads wait for one.
#[derive(Clone, Default)]
struct Recorder(Arc<(Mutex<Vec<StageEvent>>, Condvar)>);

impl Recorder {
    fn push(&self, event: StageEvent) {
        let (events, changed) = &*self.0;
        events.lock().unwrap().push(event);
        changed.notify_all();
    }

    fn sink(&self) -> EventSink {
        let recorder = self.clone();
        EventSink::callback(move |event| recorder.push(event))
    }

    fn events(&self) -> Vec<StageEvent> {
        self.0 .0.lock().unwrap().clone()
    }

    /// Blocks (at most `limit`) until an event matching `wanted` was recorded.
    fn wait_for(&self, limit: Duration, wanted: impl Fn(&StageEvent) -> bool) -> bool {
        let (events, changed) = &*self.0;
        let guard = events.lock().unwrap();
        let (guard, _) = changed
            .wait_timeout_while(guard, limit, |events| !events.iter().any(&wanted))
            .unwrap();
        guard.iter().any(&wanted)
    }
}

fn is_decided(event: &StageEvent) -> bool {
    matches!(
        event,
        StageEvent::Finished { .. } | StageEvent::Cancelled { .. } | StageEvent::Skipped { .. }
    )
}

fn decided(stage: &'static str) -> impl Fn(&StageEvent) -> bool {
    move |event| event.stage() == stage && is_decided(event)
}

/// What the checker saw of one stage.
#[derive(Debug, Default, Clone)]
struct Seen {
    started: bool,
    /// The current attempt (1 at `Started`, then each `Retried`'s `next_attempt`).
    attempt: u32,
    decided: Option<String>,
    /// `(done, attempt)` of each `Progress`, in order.
    progress: Vec<(u64, u64)>,
    items_started: usize,
    items_finished: usize,
    iterations: usize,
    retried: usize,
}

/// Checks the stream's per-stage order and returns what each stage sent: nothing of a stage
/// before its `Started` or after its deciding event; a `Progress` only from the current attempt
/// (`total` is the attempt number); `Retried` counts attempts up by one.
fn check(events: &[StageEvent]) -> HashMap<String, Seen> {
    check_with(events, 0)
}

/// [`check`], tolerating up to `stragglers` events per stage that come after the end of their
/// attempt (after `Retried`, or after the deciding event): what the race of
/// `reports_racing_the_stages_end_never_arrive_after_it` lets through, at most one per reporter
/// whose check passed just before the end (without the gate, an abandoned reporter's every report
/// would come through: dozens here).
fn check_with(events: &[StageEvent], stragglers: usize) -> HashMap<String, Seen> {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut late: HashMap<String, Vec<String>> = HashMap::new();
    for (at, event) in events.iter().enumerate() {
        let stage = seen.entry(event.stage().to_owned()).or_default();
        let context = || format!("event {at}: {event:?}\nstream: {events:#?}");
        let straggles = match (event, &stage.decided) {
            (_, Some(_)) => true,
            (StageEvent::Progress { total, .. }, None) => *total < u64::from(stage.attempt),
            _ => false,
        };
        if straggles && stragglers > 0 {
            let late = late.entry(event.stage().to_owned()).or_default();
            late.push(format!("{event:?}"));
            assert!(
                late.len() <= stragglers,
                "more than {stragglers} events of {} after their attempt ended: {late:#?}",
                event.stage()
            );
            continue;
        }
        if let Some(by) = &stage.decided {
            panic!("after the stage was decided by {by}: {}", context());
        }
        match event {
            StageEvent::Started { .. } => {
                assert!(!stage.started, "started twice: {}", context());
                stage.started = true;
                stage.attempt = 1;
            }
            StageEvent::Skipped { .. } => {
                stage.decided = Some(format!("{event:?}"));
            }
            StageEvent::Finished { .. } | StageEvent::Cancelled { .. } => {
                // A stage cancelled or failed before it started has no `Started` (a condition
                // that panicked): only a started one is required to have one when it ran.
                stage.decided = Some(format!("{event:?}"));
            }
            StageEvent::Retried { next_attempt, .. } => {
                assert!(stage.started, "retried before started: {}", context());
                assert_eq!(*next_attempt, stage.attempt + 1, "{}", context());
                stage.attempt = *next_attempt;
                stage.retried += 1;
            }
            StageEvent::Progress { done, total, .. } => {
                assert!(stage.started, "progress before started: {}", context());
                assert_eq!(
                    *total,
                    u64::from(stage.attempt),
                    "progress of another attempt than the current one: {}",
                    context()
                );
                stage.progress.push((*done, *total));
            }
            StageEvent::ItemStarted { .. } => {
                assert!(stage.started, "{}", context());
                stage.items_started += 1;
            }
            StageEvent::ItemFinished { .. } => {
                assert!(stage.started, "{}", context());
                stage.items_finished += 1;
            }
            StageEvent::IterationFinished { .. } => {
                assert!(stage.started, "{}", context());
                stage.iterations += 1;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    seen
}

fn progress_of(seen: &HashMap<String, Seen>, stage: &str) -> Vec<(u64, u64)> {
    seen.get(stage)
        .unwrap_or_else(|| panic!("no events of {stage}: {seen:#?}"))
        .progress
        .clone()
}

fn attempt(ctx: &StageContext) -> u64 {
    u64::from(ctx.attempt())
}

fn retry(attempts: u32, backoff: Duration) -> RetryPolicy {
    RetryPolicy::attempts(attempts).with_backoff(Backoff::fixed(backoff))
}

fn options(sink: EventSink) -> RunOptions {
    RunOptions::default()
        .with_events(sink)
        .with_failure(FailurePolicy::ContinueIndependent)
        .try_with_max_concurrency(64)
        .unwrap()
}

async fn run_watched(pipeline: &Pipeline, options: RunOptions) -> RunReport {
    tokio::time::timeout(WATCHDOG, pipeline.run_with(options))
        .await
        .expect("the run deadlocked (watchdog)")
}

/// Waits (asynchronously, at most 10 s) until `count` reaches zero.
async fn until_zero(count: &AtomicUsize) {
    for _ in 0..1_000 {
        if count.load(Ordering::SeqCst) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the abandoned work did not end");
}

// ---------------------------------------------------------------------------------------------
// 2. No event of a current attempt is lost, whatever path started the attempt
// ---------------------------------------------------------------------------------------------

/// A stage body: reports `(0, attempt)`, yields, reports `(1, attempt)`, fails before attempt 3.
async fn report_and_fail_twice(ctx: StageContext) -> Result<(), StageError> {
    ctx.progress(0, attempt(&ctx));
    tokio::task::yield_now().await;
    ctx.progress(1, attempt(&ctx));
    if ctx.attempt() < 3 {
        return Err(StageError::msg("not yet"));
    }
    Ok(())
}

fn every_path_pipeline() -> Pipeline {
    let body = Pipeline::builder()
        .stage("body", |ctx: StageContext| async move {
            let iteration = ctx.run_input::<Iteration>()?;
            let parent = iteration.parent();
            parent.progress(u64::from(iteration.number()), u64::from(parent.attempt()));
            Ok::<_, StageError>(())
        })
        .build()
        .unwrap();
    Pipeline::builder()
        // The inline first poll (one attempt, no timeout, not blocking): reports on its first
        // poll and after a yield.
        .stage("inline_once", |ctx: StageContext| async move {
            ctx.progress(0, attempt(&ctx));
            tokio::task::yield_now().await;
            ctx.progress(1, attempt(&ctx));
            Ok::<_, StageError>(())
        })
        // The state machine, retried at once and after a backoff.
        .stage("inline_retry", report_and_fail_twice)
        .retry(retry(3, Duration::ZERO))
        .stage("inline_backoff", report_and_fail_twice)
        .retry(retry(3, Duration::from_millis(2)))
        // A timeout that never fires: the attempt's deadline is taken at its start.
        .stage("inline_timeout", report_and_fail_twice)
        .timeout(Duration::from_secs(30))
        .retry(retry(3, Duration::ZERO))
        .stage("blocking_retry", report_and_fail_twice)
        .blocking()
        .retry(retry(3, Duration::from_millis(1)))
        // Spawned on a task of its own (not the fleet: another stage has a condition).
        .stage("spawned_retry", report_and_fail_twice)
        .spawn()
        .retry(retry(3, Duration::from_millis(1)))
        .stage("spawned_blocking", report_and_fail_twice)
        .spawn()
        .blocking()
        .retry(retry(3, Duration::ZERO))
        // The condition's context is made for attempt 1 before the attempt's own.
        .stage("conditioned", report_and_fail_twice)
        .when(|ctx| ctx.attempt() == 1)
        .retry(retry(3, Duration::ZERO))
        .stage("conditioned_once", |ctx: StageContext| async move {
            ctx.progress(0, attempt(&ctx));
            Ok::<_, StageError>(())
        })
        .when(|_| true)
        // A fan-out whose items report, odd items failing their first try (retried alone), and
        // the stage's first attempt failing after its fan-out.
        .stage("fan", |ctx: StageContext| async move {
            let tries = Arc::new(Mutex::new(HashMap::<u32, u32>::new()));
            let item_ctx = ctx.clone();
            ctx.fan_out(
                0..8_u32,
                FanOut::new(3).retry(retry(2, Duration::ZERO)),
                move |item| {
                    let (ctx, tries) = (item_ctx.clone(), tries.clone());
                    async move {
                        ctx.progress(u64::from(item), attempt(&ctx));
                        tokio::task::yield_now().await;
                        let tried = {
                            let mut tries = tries.lock().unwrap();
                            let tried = tries.entry(item).or_default();
                            *tried += 1;
                            *tried
                        };
                        if item % 2 == 1 && tried == 1 {
                            return Err(StageError::msg("flaky item"));
                        }
                        Ok::<_, StageError>(item)
                    }
                },
            )
            .await?;
            if ctx.attempt() == 1 {
                return Err(StageError::msg("again"));
            }
            Ok(())
        })
        .retry(retry(2, Duration::ZERO))
        .into_builder()
        .repeat("loop", body, LoopPolicy::new(3))
        .into_builder()
        // Dependents started by the driver after their dependency's end.
        .stage("after_inline", report_and_fail_twice)
        .after(["inline_once"])
        .retry(retry(3, Duration::ZERO))
        .stage("after_spawned", report_and_fail_twice)
        .after(["spawned_retry"])
        .spawn()
        .retry(retry(3, Duration::ZERO))
        .build()
        .unwrap()
}

fn check_every_path(events: &[StageEvent], report: &RunReport) {
    assert!(report.is_success(), "{report:?}");
    let seen = check(events);
    let three_attempts = vec![(0, 1), (1, 1), (0, 2), (1, 2), (0, 3), (1, 3)];
    for stage in [
        "inline_retry",
        "inline_backoff",
        "inline_timeout",
        "blocking_retry",
        "spawned_retry",
        "spawned_blocking",
        "conditioned",
        "after_inline",
        "after_spawned",
    ] {
        assert_eq!(progress_of(&seen, stage), three_attempts, "{stage}");
        assert_eq!(seen[stage].retried, 2, "{stage}");
    }
    assert_eq!(progress_of(&seen, "inline_once"), vec![(0, 1), (1, 1)]);
    assert_eq!(progress_of(&seen, "conditioned_once"), vec![(0, 1)]);
    // Per stage attempt: 8 items' first tries and the 4 odd items' retries report.
    let fan = &seen["fan"];
    assert_eq!(fan.progress.len(), 24, "{fan:?}");
    assert_eq!(fan.progress.iter().filter(|(_, a)| *a == 1).count(), 12);
    assert_eq!((fan.items_started, fan.items_finished), (16, 16), "{fan:?}");
    let looped = &seen["loop"];
    assert_eq!(looped.progress, vec![(1, 1), (2, 1), (3, 1)], "{looped:?}");
    assert_eq!(looped.iterations, 3, "{looped:?}");
    for (stage, seen) in &seen {
        assert!(seen.decided.is_some(), "{stage} never decided: {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_attempt_reports_on_every_start_path_multi_thread() {
    let pipeline = every_path_pipeline();
    for _ in 0..5 {
        let recorder = Recorder::default();
        let report = run_watched(&pipeline, options(recorder.sink())).await;
        check_every_path(&recorder.events(), &report);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_attempt_reports_on_every_start_path_current_thread() {
    let pipeline = every_path_pipeline();
    for seed in [None, Some(7)] {
        let recorder = Recorder::default();
        let mut options = options(recorder.sink());
        if let Some(seed) = seed {
            options = options.with_seed(seed);
        }
        let report = run_watched(&pipeline, options).await;
        check_every_path(&recorder.events(), &report);
    }
}

/// Every stage spawns and nothing needs the driver: the fleet runs them, a task announcing and
/// finishing stages itself (its short path closes the gate in `emit_succeeded`), the driver
/// relaunching retried ones after their backoff.
fn fleet_pipeline() -> Pipeline {
    let mut builder = Pipeline::builder()
        .stage("root", report_and_fail_twice)
        .spawn()
        .retry(retry(3, Duration::ZERO))
        .into_builder();
    let mut previous = String::from("root");
    for index in 0..4 {
        let name = format!("chain{index}");
        builder = builder
            .stage(name.clone(), report_and_fail_twice)
            .after([previous.as_str()])
            .spawn()
            .retry(retry(3, Duration::from_millis((index % 2) as u64)))
            .into_builder();
        previous = name;
    }
    for index in 0..6 {
        // Single attempts started on a task's first poll (`poll_single_attempt`).
        builder = builder
            .stage(format!("once{index}"), |ctx: StageContext| async move {
                ctx.progress(0, attempt(&ctx));
                tokio::task::yield_now().await;
                ctx.progress(1, attempt(&ctx));
                Ok::<_, StageError>(())
            })
            .after(["root"])
            .spawn()
            .into_builder();
    }
    builder.build().unwrap()
}

fn check_fleet(events: &[StageEvent], report: &RunReport) {
    assert!(report.is_success(), "{report:?}");
    let seen = check(events);
    let three_attempts = vec![(0, 1), (1, 1), (0, 2), (1, 2), (0, 3), (1, 3)];
    for stage in ["root", "chain0", "chain1", "chain2", "chain3"] {
        assert_eq!(progress_of(&seen, stage), three_attempts, "{stage}");
    }
    for index in 0..6 {
        assert_eq!(
            progress_of(&seen, &format!("once{index}")),
            vec![(0, 1), (1, 1)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_loses_no_report_of_a_current_attempt() {
    let pipeline = fleet_pipeline();
    for round in 0..10_u64 {
        let recorder = Recorder::default();
        let mut options = options(recorder.sink());
        if round % 2 == 1 {
            options = options.with_seed(round);
        }
        let report = run_watched(&pipeline, options).await;
        check_fleet(&recorder.events(), &report);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_fleet_loses_no_report_of_a_current_attempt_on_one_thread() {
    let pipeline = fleet_pipeline();
    for seed in [None, Some(3)] {
        let recorder = Recorder::default();
        let mut options = options(recorder.sink());
        if let Some(seed) = seed {
            options = options.with_seed(seed);
        }
        let report = run_watched(&pipeline, options).await;
        check_fleet(&recorder.events(), &report);
    }
}

/// A resumed durable run: restored stages are decided first (closing gates that were never
/// opened), and the stage that failed in the first run runs again and reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_reports_the_stage_it_runs_again() {
    let broken = Arc::new(AtomicBool::new(true));
    let failing = broken.clone();
    let pipeline = Pipeline::builder()
        .stage("fetch", |ctx: StageContext| async move {
            ctx.progress(0, attempt(&ctx));
            Ok::<_, StageError>(1_u32)
        })
        .durable()
        .stage("publish", move |ctx: StageContext| {
            let broken = failing.clone();
            async move {
                ctx.progress(0, attempt(&ctx));
                tokio::task::yield_now().await;
                ctx.progress(1, attempt(&ctx));
                if broken.load(Ordering::SeqCst) {
                    return Err(StageError::permanent("down"));
                }
                Ok::<_, StageError>(*ctx.input::<u32>("fetch")?)
            }
        })
        .after(["fetch"])
        .durable()
        .build()
        .unwrap();
    let durable = Durable::new(MemoryStore::new());
    let recorder = Recorder::default();
    let first = tokio::time::timeout(
        WATCHDOG,
        durable.start(&pipeline, "job", options(recorder.sink())),
    )
    .await
    .expect("watchdog")
    .unwrap();
    assert!(!first.report().is_success());
    let seen = check(&recorder.events());
    assert_eq!(progress_of(&seen, "publish"), vec![(0, 1), (1, 1)]);

    broken.store(false, Ordering::SeqCst);
    let recorder = Recorder::default();
    let resumed = tokio::time::timeout(
        WATCHDOG,
        durable.resume(&pipeline, "job", options(recorder.sink())),
    )
    .await
    .expect("watchdog")
    .unwrap();
    assert!(resumed.report().is_success(), "{:?}", resumed.report());
    let seen = check(&recorder.events());
    assert_eq!(progress_of(&seen, "publish"), vec![(0, 1), (1, 1)]);
    assert!(seen["fetch"].progress.is_empty(), "restored, not rerun");
}

// ---------------------------------------------------------------------------------------------
// 3. Nothing of an ended attempt after its end, under concurrency
// ---------------------------------------------------------------------------------------------

/// Work that may outlive its attempt: counted in `count` from `Running::new` until dropped.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Stages whose ended attempts go on reporting (from abandoned blocking threads, tasks and
/// threads holding contexts) while the run goes on, and a `hold` stage that keeps the run open
/// until all that work has ended. Every attempt of every stage reports `(0, attempt)` first.
fn abandoning_pipeline(
    width: usize,
    outstanding: &Arc<AtomicUsize>,
    recorder: &Recorder,
) -> Pipeline {
    let mut builder = Pipeline::builder();
    for index in 0..width {
        // Blocking, timing out at every one of 3 attempts and running on for 30 ms each.
        let work = outstanding.clone();
        builder = builder
            .stage(format!("blocking{index}"), move |ctx: StageContext| {
                let running = Running::new(&work);
                async move {
                    let _running = running;
                    let attempt = attempt(&ctx);
                    ctx.progress(0, attempt);
                    let until = Instant::now() + Duration::from_millis(30);
                    let mut done = 1;
                    while Instant::now() < until {
                        ctx.progress(done, attempt);
                        if done % 4 == 0 {
                            let _ = ctx
                                .fan_out(0..2_u32, FanOut::new(1), |item| async move {
                                    Ok::<_, StageError>(item)
                                })
                                .await;
                        }
                        done += 1;
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Ok::<_, StageError>(())
                }
            })
            .blocking()
            .timeout(Duration::from_millis(10))
            .retry(retry(
                3,
                Duration::from_millis(if index % 2 == 0 { 0 } else { 2 }),
            ))
            .into_builder();

        // Spawns a task with its context at every attempt, failing the first two attempts: the
        // tasks report after `Retried` and after `Finished`.
        let work = outstanding.clone();
        let spawn = index % 2 == 0;
        let stage = builder
            .stage(format!("spawner{index}"), move |ctx: StageContext| {
                let work = work.clone();
                async move {
                    let attempt = attempt(&ctx);
                    ctx.progress(0, attempt);
                    let running = Running::new(&work);
                    let late = ctx.clone();
                    tokio::spawn(async move {
                        let _running = running;
                        for done in 1..=20 {
                            late.progress(done, attempt);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    });
                    tokio::task::yield_now().await;
                    if ctx.attempt() < 3 {
                        return Err(StageError::msg("again"));
                    }
                    Ok::<_, StageError>(())
                }
            })
            .retry(retry(3, Duration::ZERO));
        builder = if spawn { stage.spawn() } else { stage }.into_builder();

        // A thread holding the context of a stage that succeeded at once.
        let work = outstanding.clone();
        builder = builder
            .stage(format!("threaded{index}"), move |ctx: StageContext| {
                let running = Running::new(&work);
                async move {
                    let attempt = attempt(&ctx);
                    ctx.progress(0, attempt);
                    let late = ctx.clone();
                    std::thread::spawn(move || {
                        let _running = running;
                        for done in 1..=100 {
                            late.progress(done, attempt);
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    });
                    Ok::<_, StageError>(())
                }
            })
            .after([format!("spawner{index}").as_str()])
            .into_builder();
    }
    let (work, recorder) = (outstanding.clone(), recorder.clone());
    let others = 3 * width;
    builder
        .stage("hold", move |_: StageContext| {
            let (work, recorder) = (work.clone(), recorder.clone());
            async move {
                // Every other stage decided: no attempt starts any more, so none is counted in.
                for _ in 0..1_000 {
                    let decided = recorder.events().iter().filter(|e| is_decided(e)).count();
                    if decided == others {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                until_zero(&work).await;
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap()
}

fn check_abandoning(events: &[StageEvent], report: &RunReport, width: usize) {
    let seen = check_with(events, 0);
    for index in 0..width {
        let blocking = format!("blocking{index}");
        // Times out at each attempt unless the machine is so loaded that the run's thread does
        // not see the 10 ms timeout before the 30 ms of work are over.
        assert!(
            matches!(
                report.status(&blocking),
                Some(StageStatus::TimedOut { attempts: 3 } | StageStatus::Succeeded { .. })
            ),
            "{report:?}"
        );
        let spawner = format!("spawner{index}");
        assert!(
            matches!(
                report.status(&spawner),
                Some(StageStatus::Succeeded { attempts: 3 })
            ),
            "{report:?}"
        );
        // The first report of each attempt, made while it was current, went out once.
        let firsts: Vec<_> = progress_of(&seen, &spawner)
            .into_iter()
            .filter(|(done, _)| *done == 0)
            .collect();
        assert_eq!(firsts, vec![(0, 1), (0, 2), (0, 3)], "{spawner}");
        let threaded = format!("threaded{index}");
        assert_eq!(progress_of(&seen, &threaded)[0], (0, 1), "{threaded}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ended_attempts_report_nothing_under_concurrency() {
    for _ in 0..3 {
        let outstanding = Arc::new(AtomicUsize::new(0));
        let recorder = Recorder::default();
        let pipeline = abandoning_pipeline(6, &outstanding, &recorder);
        let report = run_watched(&pipeline, options(recorder.sink())).await;
        assert_eq!(outstanding.load(Ordering::SeqCst), 0);
        check_abandoning(&recorder.events(), &report, 6);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn ended_attempts_report_nothing_on_a_current_thread_runtime() {
    let outstanding = Arc::new(AtomicUsize::new(0));
    let recorder = Recorder::default();
    let pipeline = abandoning_pipeline(4, &outstanding, &recorder);
    let report = run_watched(&pipeline, options(recorder.sink())).await;
    assert_eq!(outstanding.load(Ordering::SeqCst), 0);
    check_abandoning(&recorder.events(), &report, 4);
}

/// The condition's context is made for attempt 1 before the stage starts: kept by a thread, it
/// reports nothing once the stage was skipped (condition false) or finished (condition true).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_condition_context_reports_nothing_after_its_stage_is_decided() {
    let recorder = Recorder::default();
    let reported = Arc::new(AtomicUsize::new(2));
    let conditioned = |stage: &'static str, answer: bool| {
        let (recorder, reported) = (recorder.clone(), reported.clone());
        move |ctx: &StageContext| {
            let (late, recorder, reported) = (ctx.clone(), recorder.clone(), reported.clone());
            std::thread::spawn(move || {
                let _running = Running(reported); // counted in up front (2)
                assert!(recorder.wait_for(Duration::from_secs(10), decided(stage)));
                late.progress(9, 1);
            });
            answer
        }
    };
    let waiting = reported.clone();
    let pipeline = Pipeline::builder()
        .stage("skipped", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .when(conditioned("skipped", false))
        .stage("ran", |ctx: StageContext| async move {
            ctx.progress(0, attempt(&ctx));
            Ok::<_, StageError>(())
        })
        .when(conditioned("ran", true))
        .stage("hold", move |_: StageContext| {
            let waiting = waiting.clone();
            async move {
                until_zero(&waiting).await;
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap();
    let report = run_watched(&pipeline, options(recorder.sink())).await;
    assert!(report.is_success(), "{report:?}");
    let seen = check(&recorder.events());
    assert_eq!(progress_of(&seen, "ran"), vec![(0, 1)]);
}

// ---------------------------------------------------------------------------------------------
// 1. Callbacks that re-enter do not deadlock
// ---------------------------------------------------------------------------------------------

/// A callback still delivering a blocking attempt's report when the attempt times out reports
/// again through the same context, from its own thread and from a thread it joins: no deadlock
/// (were the run waiting for the delivery on the write lock, both reports would need the read lock
/// again), and nothing after `Finished`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_reporting_again_while_the_run_ends_the_attempt_does_not_deadlock() {
    let recorder = Recorder::default();
    let context: Arc<OnceLock<StageContext>> = Arc::default();
    let sink = {
        let (recorder, context) = (recorder.clone(), context.clone());
        EventSink::callback(move |event| {
            let first = matches!(event, StageEvent::Progress { done: 1, .. });
            recorder.push(event);
            if first {
                // Past the stage's timeout: the run wants the write lock now.
                std::thread::sleep(Duration::from_millis(300));
                let ctx = context.get().expect("set before reporting");
                ctx.progress(2, 1);
                let other = ctx.clone();
                std::thread::spawn(move || other.progress(3, 1))
                    .join()
                    .unwrap();
            }
        })
    };
    let kept = context.clone();
    let pipeline = Pipeline::builder()
        .stage("slow", move |ctx: StageContext| {
            let kept = kept.clone();
            async move {
                let _ = kept.set(ctx.clone());
                ctx.progress(1, 1);
                ctx.progress(4, 1);
                Ok::<_, StageError>(())
            }
        })
        .blocking()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let report = run_watched(&pipeline, options(sink)).await;
    assert!(
        matches!(report.status("slow"), Some(StageStatus::TimedOut { .. })),
        "{report:?}"
    );
    // The reports made from the callback, and the stage's `(4, 1)`, come after its timeout:
    // delivered before `Finished` (the run waited for the delivery under way) or dropped, never
    // after it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seen = check(&recorder.events());
    let progress = progress_of(&seen, "slow");
    assert_eq!(progress.first(), Some(&(1, 1)), "{progress:?}");
}

/// The same on the run's own thread: an inline stage's report whose callback reports again,
/// from a current-thread runtime.
#[tokio::test(flavor = "current_thread")]
async fn a_callback_reporting_again_on_the_runs_thread_does_not_deadlock() {
    let recorder = Recorder::default();
    let context: Arc<OnceLock<StageContext>> = Arc::default();
    let sink = {
        let (recorder, context) = (recorder.clone(), context.clone());
        EventSink::callback(move |event| {
            let first = matches!(event, StageEvent::Progress { done: 1, .. });
            recorder.push(event);
            if first {
                let ctx = context.get().expect("set before reporting");
                ctx.progress(2, attempt(ctx));
                let other = ctx.clone();
                std::thread::spawn(move || other.progress(3, attempt(&other)))
                    .join()
                    .unwrap();
            }
        })
    };
    let kept = context.clone();
    let pipeline = Pipeline::builder()
        .stage("inline", move |ctx: StageContext| {
            let kept = kept.clone();
            async move {
                let _ = kept.set(ctx.clone());
                ctx.progress(1, attempt(&ctx));
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap();
    let report = run_watched(&pipeline, options(sink)).await;
    assert!(report.is_success(), "{report:?}");
    let seen = check(&recorder.events());
    assert_eq!(progress_of(&seen, "inline"), vec![(1, 1), (2, 1), (3, 1)]);
}

/// A callback that cancels the run's token from an attempt's report (inline on the run's thread,
/// and from a blocking thread), with the attempt's work reporting on after it was cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_cancelling_the_run_from_an_attempts_report_does_not_deadlock() {
    for blocking in [false, true] {
        let recorder = Recorder::default();
        let cancel = CancellationToken::new();
        let sink = {
            let (recorder, cancel) = (recorder.clone(), cancel.clone());
            EventSink::callback(move |event| {
                let cancels = matches!(event, StageEvent::Progress { done: 1, .. });
                recorder.push(event);
                if cancels {
                    cancel.cancel();
                }
            })
        };
        let finished = Arc::new(AtomicUsize::new(0));
        let work = finished.clone();
        let stage = Pipeline::builder().stage("reporter", move |ctx: StageContext| {
            let running = Running::new(&work);
            async move {
                let late = ctx.clone();
                let report_on = move || {
                    let _running = running;
                    for done in 1..=50 {
                        late.progress(done, 1);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                };
                if blocking {
                    report_on();
                } else {
                    std::thread::spawn(report_on);
                    std::future::pending::<()>().await;
                }
                Ok::<_, StageError>(())
            }
        });
        let pipeline = if blocking { stage.blocking() } else { stage }
            .build()
            .unwrap();
        let report = run_watched(&pipeline, options(sink).with_cancel(cancel)).await;
        assert!(
            matches!(report.status("reporter"), Some(StageStatus::Cancelled)),
            "{report:?}"
        );
        until_zero(&finished).await;
        check_with(&recorder.events(), 0);
    }
}

/// A callback that aborts the task driving the run from an attempt's report: the run is dropped
/// mid-poll; work still holding the context reports into a closed sink.
#[tokio::test(flavor = "current_thread")]
async fn a_callback_aborting_the_runs_task_does_not_deadlock() {
    let recorder = Recorder::default();
    let abort: Arc<OnceLock<tokio::task::AbortHandle>> = Arc::default();
    let sink = {
        let (recorder, abort) = (recorder.clone(), abort.clone());
        EventSink::callback(move |event| {
            let aborts = matches!(event, StageEvent::Progress { done: 1, .. });
            recorder.push(event);
            if aborts {
                abort.get().expect("set before the run").abort();
            }
        })
    };
    let finished = Arc::new(AtomicUsize::new(0));
    let work = finished.clone();
    let pipeline = Pipeline::builder()
        .stage("reporter", move |ctx: StageContext| {
            let running = Running::new(&work);
            async move {
                let late = ctx.clone();
                std::thread::spawn(move || {
                    let _running = running;
                    for done in 2..=20 {
                        late.progress(done, 1);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
                ctx.progress(1, 1);
                std::future::pending::<()>().await;
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap();
    let run = tokio::spawn(async move { pipeline.run_with(options(sink)).await });
    let _ = abort.set(run.abort_handle());
    let joined = tokio::time::timeout(WATCHDOG, run).await.expect("watchdog");
    assert!(joined.unwrap_err().is_cancelled());
    until_zero(&finished).await;
    check(&recorder.events());
}

/// A stage runs a nested pipeline, inline, with the same sink: the nested run's events (one of
/// its stages abandoned at its timeout) and the outer stage's own reports, some made from inside
/// the callback of a nested event, interleave without deadlock or out-of-order events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_run_with_the_same_sink_does_not_deadlock() {
    let recorder = Recorder::default();
    let outer_context: Arc<OnceLock<StageContext>> = Arc::default();
    let sink = {
        let (recorder, outer_context) = (recorder.clone(), outer_context.clone());
        EventSink::callback(move |event| {
            let forward =
                matches!(&event, StageEvent::Progress { stage, .. } if stage.starts_with("inner"));
            recorder.push(event);
            if forward {
                if let Some(outer) = outer_context.get() {
                    outer.progress(100, attempt(outer));
                }
            }
        })
    };
    let finished = Arc::new(AtomicUsize::new(0));
    let work = finished.clone();
    let inner = Pipeline::builder()
        .stage("inner_async", |ctx: StageContext| async move {
            ctx.progress(0, attempt(&ctx));
            tokio::task::yield_now().await;
            ctx.progress(1, attempt(&ctx));
            Ok::<_, StageError>(())
        })
        .stage("inner_blocking", move |ctx: StageContext| {
            let running = Running::new(&work);
            async move {
                let _running = running;
                for done in 0..40 {
                    ctx.progress(done, attempt(&ctx));
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok::<_, StageError>(())
            }
        })
        .blocking()
        .timeout(Duration::from_millis(10))
        .retry(retry(2, Duration::ZERO))
        .build()
        .unwrap();
    let inner_sink = sink.clone();
    let kept = outer_context.clone();
    let pipeline = Pipeline::builder()
        .stage("outer", move |ctx: StageContext| {
            let (inner, inner_sink, kept) = (inner.clone(), inner_sink.clone(), kept.clone());
            async move {
                let _ = kept.set(ctx.clone());
                ctx.progress(0, attempt(&ctx));
                let report = inner.run_with(options(inner_sink)).await;
                ctx.progress(1, attempt(&ctx));
                Ok::<_, StageError>(report.is_success())
            }
        })
        .stage("after", |ctx: StageContext| async move {
            ctx.progress(0, attempt(&ctx));
            Ok::<_, StageError>(())
        })
        .after(["outer"])
        .build()
        .unwrap();
    let report = run_watched(&pipeline, options(sink)).await;
    assert!(report.is_success(), "{report:?}");
    until_zero(&finished).await;
    let seen = check_with(&recorder.events(), 0);
    let outer = progress_of(&seen, "outer");
    assert_eq!(outer.first(), Some(&(0, 1)));
    assert_eq!(outer.last(), Some(&(1, 1)));
    assert!(outer.contains(&(100, 1)), "{outer:?}");
    assert_eq!(progress_of(&seen, "inner_async"), vec![(0, 1), (1, 1)]);
}

// ---------------------------------------------------------------------------------------------
// Liveness a fix of the race below must keep: the run does not wait, on its own thread, without
// bound for an ended attempt's deliveries
// ---------------------------------------------------------------------------------------------

/// Four threads of an abandoned blocking attempt report in a loop into a sink that delivers one
/// event at a time and slowly (a `Mutex` and 200 µs: a terminal, a file, a blocking client). The
/// stage still ends at its 100 ms timeout.
///
/// Passes today only because the read guard is not held during the delivery (the race below). A
/// fix that merely keeps the guard across `self.sink.emit` (context.rs:88-93 as of 1a54da6)
/// fails it: three reporters always queue on the sink's mutex holding the read lock, and
/// `read_recursive` lets a reporter back in while another still holds the lock even though the
/// run waits for the write lock (parking_lot lets a recursive read past a waiting writer while
/// readers remain), so the reader count never drops to zero and `attempt_ended` (its `write()`
/// at context.rs:72, from `emit_decided`, run/complete.rs:296) blocks the run's thread until the
/// abandoned work stops (here its 3 s cap). A fix can let readers that arrive while the attempt
/// is ending drop their event instead
/// of joining (close the gate before waiting for deliveries under way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_attempts_reporters_do_not_hold_off_the_stages_end() {
    let decided = Arc::new(AtomicBool::new(false));
    let capped = Arc::new(AtomicBool::new(false));
    let serial = Arc::new(Mutex::new(()));
    let sink = {
        let decided = decided.clone();
        EventSink::callback(move |event| {
            if event.stage() == "busy" && is_decided(&event) {
                decided.store(true, Ordering::SeqCst);
            }
            if matches!(event, StageEvent::Progress { .. }) {
                let _one_at_a_time = serial.lock().unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let finished = Arc::new(AtomicUsize::new(0));
    let (stop, hit_cap, work) = (decided.clone(), capped.clone(), finished.clone());
    let pipeline = Pipeline::builder()
        .stage("busy", move |ctx: StageContext| {
            let (stop, hit_cap, running) = (stop.clone(), hit_cap.clone(), Running::new(&work));
            async move {
                let _running = running;
                let cap = Instant::now() + Duration::from_secs(3);
                std::thread::scope(|scope| {
                    for _ in 0..4 {
                        scope.spawn(|| {
                            while !stop.load(Ordering::SeqCst) {
                                if Instant::now() > cap {
                                    hit_cap.store(true, Ordering::SeqCst);
                                    return;
                                }
                                ctx.progress(1, 1);
                            }
                        });
                    }
                });
                Ok::<_, StageError>(())
            }
        })
        .blocking()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let report = run_watched(&pipeline, options(sink)).await;
    assert!(
        matches!(report.status("busy"), Some(StageStatus::TimedOut { .. })),
        "{report:?}"
    );
    until_zero(&finished).await;
    assert!(
        !capped.load(Ordering::SeqCst),
        "the stage's end waited until its abandoned reporters gave up"
    );
}

/// The cost of the guarantee, pinned: a callback that waits for another stage's report while it
/// delivers one, on a current-thread runtime. Stage `a` (blocking, 50 ms timeout) reports, and
/// its callback waits (at most 300 ms) until stage `b`, an independent inline stage, has
/// reported after a 100 ms sleep. At `a`'s timeout the run waits for the report under way before
/// it sends `a`'s `Finished`, on the runtime's only thread, so `b`'s timer cannot fire until the
/// callback gives up: the callback waits in vain, and `a`'s report still comes before its
/// `Finished`. (`EventSink::callback` says a callback must not wait for the run.)
#[tokio::test(flavor = "current_thread")]
async fn a_callback_waiting_for_the_run_is_waited_for() {
    let recorder = Recorder::default();
    let sink = {
        let recorder = recorder.clone();
        EventSink::callback(move |event| {
            let waits = event.stage() == "a" && matches!(event, StageEvent::Progress { .. });
            recorder.push(event);
            if waits {
                recorder.wait_for(Duration::from_millis(300), |event| {
                    event.stage() == "b" && matches!(event, StageEvent::Progress { .. })
                });
            }
        })
    };
    let pipeline = Pipeline::builder()
        .stage("a", |ctx: StageContext| async move {
            ctx.progress(1, 1);
            // Past the timeout, so that the run ends the attempt while its report is delivered
            // (unless the machine is so slow that the report's delivery is over by then).
            std::thread::sleep(Duration::from_millis(200));
            Ok::<_, StageError>(())
        })
        .blocking()
        .timeout(Duration::from_millis(50))
        .stage("b", |ctx: StageContext| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ctx.progress(1, 1);
            Ok::<_, StageError>(())
        })
        .build()
        .unwrap();
    let report = run_watched(&pipeline, options(sink)).await;
    assert!(
        report.status("b").is_some_and(StageStatus::is_success),
        "{report:?}"
    );
    // The run ended (the watchdog above), and `a`'s report, if it went out, came before `a`'s
    // `Finished`.
    check(&recorder.events());
}

// ---------------------------------------------------------------------------------------------
// The race: the gate is checked under the read lock, but the event is delivered after it
// ---------------------------------------------------------------------------------------------

/// `AttemptEvents::emit` (context.rs:88-93) reads
/// `let live = self.live.map(RwLock::read_recursive);`
/// `if live.is_none_or(|live| *live == self.attempt) { self.sink.emit(make()) }`.
/// `Option::is_none_or` takes the option by value: the read guard moves into the closure and is
/// dropped when the comparison returns, before `self.sink.emit` delivers the event. The write lock
/// in `attempt_ended` (context.rs:61-65, `set_live` at 71-73) therefore never waits for a delivery
/// under way, only for a comparison, and an attempt's event that passed the gate can reach the
/// sink after the stage's
/// `Retried`/`Finished`/`Cancelled`. Here the delivery of a blocking attempt's report takes
/// 300 ms (a slow sink, or a thread preempted between the check and the send); the stage times
/// out at 100 ms and its `Finished` is delivered first, then the report.
///
/// Expected: the report before `Finished` (the run waits for it, as `attempt_ended`'s doc says:
/// "Waits for one it is sending"). Actual: `Progress` after `Finished TimedOut`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_under_way_is_delivered_before_the_event_that_ends_its_attempt() {
    let recorder = Recorder::default();
    let sink = {
        let recorder = recorder.clone();
        EventSink::callback(move |event| {
            if matches!(event, StageEvent::Progress { .. }) {
                std::thread::sleep(Duration::from_millis(300));
            }
            recorder.push(event);
        })
    };
    let pipeline = Pipeline::builder()
        .stage("slow", |ctx: StageContext| async move {
            ctx.progress(1, 1);
            Ok::<_, StageError>(())
        })
        .blocking()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let report = run_watched(&pipeline, options(sink)).await;
    assert!(
        matches!(report.status("slow"), Some(StageStatus::TimedOut { .. })),
        "{report:?}"
    );
    check(&recorder.events());
}

/// The same race with an ordinary sink (`EventSink::channel`) and nothing slow: threads of a
/// blocking attempt report in a tight loop when the attempt times out. A report that passed the
/// gate just before the run took the write lock is sent after the run's `Finished` whenever its
/// thread is slower from the check to the send than the run's thread from the write lock to its
/// send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_racing_the_stages_end_never_arrive_after_it() {
    let pipeline = Pipeline::builder()
        .stage("spam", |ctx: StageContext| async move {
            let until = Instant::now() + Duration::from_millis(8);
            std::thread::scope(|scope| {
                for _ in 0..3 {
                    scope.spawn(|| {
                        while Instant::now() < until {
                            ctx.progress(1, 1);
                        }
                    });
                }
            });
            Ok::<_, StageError>(())
        })
        .blocking()
        .timeout(Duration::from_millis(3))
        .stage("hold", |_: StageContext| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, StageError>(())
        })
        .build()
        .unwrap();
    let mut late = 0;
    for _ in 0..200 {
        let (sink, mut receiver) = EventSink::channel();
        let _ = run_watched(&pipeline, options(sink)).await;
        let mut events = Vec::new();
        while let Some(event) = receiver.recv().await {
            events.push(event);
        }
        let end = events
            .iter()
            .position(|event| event.stage() == "spam" && is_decided(event))
            .expect("spam decided");
        late += events[end + 1..]
            .iter()
            .filter(|event| event.stage() == "spam")
            .count();
    }
    assert_eq!(late, 0, "reports of the ended attempt after its Finished");
}
