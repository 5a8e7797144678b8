//! A model-based property test of whole pipeline runs: random small DAGs (1 to 12 stages) whose
//! stages succeed, fail, fail permanently, panic, fail a few times before succeeding, or overrun
//! their timeout, some conditional, some routers, inline or spawned, run under a random failure
//! policy, concurrency limit, seed, deadline or cancellation, on tokio's paused clock. Each report
//! is compared with a sequential reference model written from the docs: every stage's status,
//! attempts and error, why a skipped stage was skipped (and what its explanation ends with), and
//! the run's outcome. Without a concurrency limit the model also times the run on the virtual
//! clock, so a fail-fast stop, a deadline or a cancellation is checked stage by stage (finished,
//! cancelled while running, or skipped before starting). The stages themselves count what the
//! report cannot show: how many ran at once, how often each body ran, and which dependencies had
//! succeeded when a stage started.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use hivekit_swarm::{
    AttemptFailure, Backoff, CancellationToken, ConcurrencyLimit, EventSink, FailurePolicy, FanOut,
    Iteration, LatencyTier, LoopPolicy, LoopReport, Pipeline, PipelineBuilder, Priority,
    ResourceCost, RetryPolicy, Route, RunOptions, RunOutcome, RunReport, SchedulingHint,
    SkipReason, StageBuilder, StageContext, StageError, StageStatus,
};
use proptest::prelude::*;

/// How long a hanging attempt sleeps (always cut short by its stage's timeout).
const HANG: Duration = Duration::from_secs(10);
/// The virtual watchdog around each run: far beyond any run the generator can make.
const WATCHDOG: Duration = Duration::from_secs(24 * 60 * 60);
/// The mark of a recorded snapshot of finished dependencies (stages use bits 0 to 11).
const RECORDED: u64 = 1 << 63;
/// The real-time watchdog of a run on the real clock (a run takes milliseconds).
const REAL_WATCHDOG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The generated cases.

/// What each attempt of a stage does after its delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Ok,
    /// A retryable error (`StageError::msg`), on every attempt.
    Err,
    /// `StageError::permanent`: never retried.
    Permanent,
    /// A panic (retryable, as `StageError::Panicked`).
    Panic,
    /// Fails (retryably) on the first `n` attempts, then succeeds.
    Flaky(u32),
    /// Sleeps far past the stage's timeout.
    Hang,
    /// Fans out over `items` sub-tasks (two at a time) of which the first `failing` fail, and
    /// needs `required` of them to succeed.
    FanOut {
        items: usize,
        failing: usize,
        required: usize,
    },
    /// A loop stage: up to `iterations` iterations of a one-stage body, stopping after iteration
    /// `stop_at`; the body fails in iteration `fail_on`. Each iteration waits the stage's delay.
    Loop {
        iterations: u32,
        fail_on: Option<u32>,
        stop_at: Option<u32>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    None,
    Fixed(u64),
    /// Doubling from the first wait, capped at three times it, without jitter.
    Exponential(u64),
}

/// What a router returns when it succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RouteChoice {
    All,
    Nothing,
    /// The dependents whose position (among the router's dependents) has its bit set.
    Mask(u16),
    /// A target that is not a dependent: the router fails with `StageError::InvalidRoute`.
    Invalid,
}

#[derive(Clone, Debug)]
struct StageCase {
    /// Dependencies among the stages before this one (bit `d` for stage `d`).
    dep_bits: u16,
    body: Body,
    /// Virtual milliseconds each attempt waits before its body's outcome.
    delay: u64,
    max_attempts: u32,
    wait: Wait,
    /// Per-attempt timeout in milliseconds (always longer than `delay`).
    timeout: Option<u64>,
    condition: Option<bool>,
    router: Option<RouteChoice>,
    spawn: bool,
    /// A `retry_on` predicate that refuses to retry the `Err` body's errors.
    retry_on_refuses_boom: bool,
    /// Priority, latency and cost, each an index into its enum.
    hint: (u8, u8, u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    None,
    Deadline(u64),
    Cancel(u64),
}

#[derive(Clone, Debug)]
struct Case {
    stages: Vec<StageCase>,
    failure: FailurePolicy,
    limit: Option<usize>,
    seed: Option<u64>,
    stop: Stop,
    /// Whether the run has an event sink (which takes the run off its quiet paths).
    events: bool,
}

impl Case {
    fn deps(&self, stage: usize) -> Vec<usize> {
        (0..stage)
            .filter(|&d| self.stages[stage].dep_bits & (1 << d) != 0)
            .collect()
    }

    fn dependents(&self, stage: usize) -> Vec<usize> {
        (stage + 1..self.stages.len())
            .filter(|&j| self.stages[j].dep_bits & (1 << stage) != 0)
            .collect()
    }

    /// Whether router `router`, succeeding, takes its dependent `stage`.
    fn takes(&self, router: usize, stage: usize) -> bool {
        match self.stages[router].router {
            None | Some(RouteChoice::All) => true,
            Some(RouteChoice::Nothing | RouteChoice::Invalid) => false,
            Some(RouteChoice::Mask(mask)) => {
                let position = self.dependents(router).iter().position(|&j| j == stage);
                position.is_some_and(|p| mask & (1 << p) != 0)
            }
        }
    }

    fn route(&self, router: usize) -> Route {
        match self.stages[router].router {
            None | Some(RouteChoice::All) => Route::all(),
            Some(RouteChoice::Nothing) => Route::none(),
            Some(RouteChoice::Invalid) => Route::to(["nowhere"]),
            Some(RouteChoice::Mask(_)) => Route::to(
                self.dependents(router)
                    .into_iter()
                    .filter(|&j| self.takes(router, j))
                    .map(name),
            ),
        }
    }

    /// Without a limit (or one no run can reach) the model times the run exactly.
    fn timed_exactly(&self) -> bool {
        self.limit.is_none_or(|limit| limit >= self.stages.len())
    }
}

fn name(stage: usize) -> String {
    format!("s{stage}")
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn backoff(wait: Wait) -> Backoff {
    match wait {
        Wait::None => Backoff::NONE,
        Wait::Fixed(first) => Backoff::fixed(ms(first)),
        Wait::Exponential(first) => Backoff {
            initial: ms(first),
            multiplier: 2.0,
            max: ms(3 * first),
            jitter: 0.0,
        },
    }
}

/// The wait after failed attempt `failed` (1-based), as the `Backoff` docs define it.
fn wait_after(wait: Wait, failed: u32) -> u64 {
    match wait {
        Wait::None => 0,
        Wait::Fixed(first) => first,
        Wait::Exponential(first) => (first << (failed - 1).min(8)).min(3 * first),
    }
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        5 => Just(Body::Ok),
        1 => Just(Body::Err),
        1 => Just(Body::Permanent),
        1 => Just(Body::Panic),
        2 => (1u32..=4).prop_map(Body::Flaky),
        1 => Just(Body::Hang),
        1 => (1usize..=4, 0usize..=4, 1usize..=4).prop_map(|(items, failing, required)| {
            Body::FanOut { items, failing: failing.min(items), required: required.min(items) }
        }),
        1 => (1u32..=3, prop::option::of(1u32..=3), prop::option::of(1u32..=4)).prop_map(
            |(iterations, fail_on, stop_at)| Body::Loop { iterations, fail_on, stop_at }
        ),
    ]
}

fn route_choice() -> impl Strategy<Value = RouteChoice> {
    prop_oneof![
        1 => Just(RouteChoice::All),
        1 => Just(RouteChoice::Nothing),
        4 => any::<u16>().prop_map(RouteChoice::Mask),
        1 => Just(RouteChoice::Invalid),
    ]
}

fn stage_case() -> impl Strategy<Value = StageCase> {
    (
        (any::<u16>(), any::<u16>(), any::<bool>()),
        body(),
        prop_oneof![2 => Just(0u64), 3 => 1u64..=20],
        1u32..=4,
        prop_oneof![
            Just(Wait::None),
            (1u64..=10).prop_map(Wait::Fixed),
            (1u64..=10).prop_map(Wait::Exponential)
        ],
        prop::option::weighted(0.3, 25u64..=60),
        prop::option::weighted(0.2, any::<bool>()),
        prop::option::weighted(0.2, route_choice()),
        (
            any::<bool>(),
            prop::bool::weighted(0.2),
            (0u8..4, 0u8..3, 0u8..4),
        ),
    )
        .prop_map(
            |(
                (a, b, dense),
                body,
                delay,
                max_attempts,
                wait,
                timeout,
                condition,
                router,
                (spawn, retry_on_refuses_boom, hint),
            )| {
                let looping = matches!(body, Body::Loop { .. });
                StageCase {
                    // About a quarter of the possible edges, or three eighths of them.
                    dep_bits: if dense {
                        a & (b | b.rotate_left(5))
                    } else {
                        a & b
                    },
                    body,
                    delay,
                    max_attempts,
                    wait,
                    timeout: match body {
                        Body::Hang => Some(timeout.unwrap_or(30)),
                        // A loop's iterations add up past any timeout the generator draws.
                        Body::Loop { .. } => None,
                        _ => timeout,
                    },
                    condition,
                    // A loop stage is not a router.
                    router: router.filter(|_| !looping),
                    spawn,
                    retry_on_refuses_boom,
                    hint,
                }
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(stage_case(), 1..=12),
        prop_oneof![
            Just(FailurePolicy::FailFast),
            Just(FailurePolicy::ContinueIndependent)
        ],
        prop::option::of(1usize..=4),
        prop::option::of(any::<u64>()),
        prop_oneof![
            2 => Just(Stop::None),
            1 => (1u64..=150).prop_map(Stop::Deadline),
            1 => (1u64..=150).prop_map(Stop::Cancel),
        ],
        prop::bool::weighted(0.25),
        (0u8..=8, prop::collection::vec(0u8..8, 12), any::<bool>()),
    )
        .prop_map(
            |(mut stages, failure, limit, seed, stop, fleet, (calm, rolls, events))| {
                // Most stages of a calm case succeed at once, so that runs without a failure, and
                // failures late in a run, are common too.
                for (stage, roll) in stages.iter_mut().zip(rolls) {
                    if roll < calm {
                        stage.body = Body::Ok;
                    }
                }
                if fleet {
                    // Every stage spawned, no route, no condition: the run uses its fleet of tasks.
                    for stage in &mut stages {
                        stage.spawn = true;
                        stage.router = None;
                        stage.condition = None;
                    }
                }
                Case {
                    stages,
                    failure,
                    limit,
                    seed,
                    stop,
                    events,
                }
            },
        )
}

// ---------------------------------------------------------------------------------------------
// What the stages count while they run.

#[derive(Default)]
struct Probe {
    /// Body calls per stage (one per attempt).
    calls: Vec<AtomicU32>,
    /// Loop iterations run per stage (every attempt's).
    iterations: Vec<AtomicU32>,
    /// Condition evaluations per stage.
    conditions: Vec<AtomicU32>,
    /// The stages whose body had returned `Ok` when this stage's first attempt started (or its
    /// condition was evaluated), marked with `RECORDED`.
    seen_at_start: Vec<AtomicU64>,
    seen_at_condition: Vec<AtomicU64>,
    returned_ok: AtomicU64,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    violations: Mutex<Vec<String>>,
    /// On a multi-thread runtime with the real clock a stage's delay is that many yields instead
    /// of virtual milliseconds (so no timing decides a status), and only hanging stages have a
    /// short timeout.
    real_time: bool,
}

impl Probe {
    fn new(stages: usize, real_time: bool) -> Self {
        Self {
            real_time,
            calls: (0..stages).map(|_| AtomicU32::new(0)).collect(),
            iterations: (0..stages).map(|_| AtomicU32::new(0)).collect(),
            conditions: (0..stages).map(|_| AtomicU32::new(0)).collect(),
            seen_at_start: (0..stages).map(|_| AtomicU64::new(0)).collect(),
            seen_at_condition: (0..stages).map(|_| AtomicU64::new(0)).collect(),
            ..Self::default()
        }
    }

    /// A stage's delay: virtual milliseconds, or yields on the real clock.
    async fn wait(&self, delay: u64) {
        if self.real_time {
            for _ in 0..delay {
                tokio::task::yield_now().await;
            }
        } else if delay > 0 {
            tokio::time::sleep(ms(delay)).await;
        }
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }
}

/// One attempt in flight: counted from the body's start until its future ends or is dropped.
struct InFlight(Arc<Probe>);

impl InFlight {
    fn enter(probe: &Arc<Probe>) -> Self {
        let now = probe.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        probe.peak.fetch_max(now, Ordering::SeqCst);
        Self(probe.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn attempt(
    probe: Arc<Probe>,
    stage: usize,
    spec: StageCase,
    ctx: StageContext,
) -> Result<(), StageError> {
    let call = probe.calls[stage].fetch_add(1, Ordering::SeqCst) + 1;
    if call != ctx.attempt() {
        probe.violation(format!(
            "{}: body call {call} was told it is attempt {}",
            name(stage),
            ctx.attempt()
        ));
    }
    if call == 1 {
        let seen = probe.returned_ok.load(Ordering::SeqCst) | RECORDED;
        probe.seen_at_start[stage].store(seen, Ordering::SeqCst);
    }
    let _in_flight = InFlight::enter(&probe);
    probe.wait(spec.delay).await;
    match spec.body {
        Body::Ok => {}
        Body::Err => return Err(StageError::msg(format!("boom {stage}"))),
        Body::Permanent => return Err(StageError::permanent(format!("broken {stage}"))),
        Body::Panic => panic!("model panic {stage}"),
        Body::Flaky(failures) if call <= failures => {
            return Err(StageError::msg(format!("flaky {stage}")))
        }
        Body::Flaky(_) => {}
        Body::Hang => tokio::time::sleep(HANG).await,
        Body::FanOut {
            items,
            failing,
            required,
        } => {
            let policy = FanOut::new(2).require(required);
            ctx.fan_out(0..items, policy, |item| async move {
                if item < failing {
                    Err(StageError::msg(format!("item {item}")))
                } else {
                    Ok(item)
                }
            })
            .await?;
        }
        Body::Loop { .. } => unreachable!("a loop stage runs its body pipeline"),
    }
    probe.returned_ok.fetch_or(1 << stage, Ordering::SeqCst);
    Ok(())
}

fn configure<T>(
    stage: StageBuilder<T>,
    case: &Case,
    index: usize,
    probe: &Arc<Probe>,
) -> PipelineBuilder {
    let spec = &case.stages[index];
    let mut stage = stage
        .after(case.deps(index).into_iter().map(name))
        .retry(RetryPolicy {
            max_attempts: spec.max_attempts,
            backoff: backoff(spec.wait),
        });
    if let Some(timeout) = spec.timeout {
        let real_time_margin = probe.real_time && spec.body != Body::Hang;
        stage = stage.timeout(ms(if real_time_margin { 60_000 } else { timeout }));
    }
    if spec.retry_on_refuses_boom {
        stage = stage.retry_on(|failure| {
            !matches!(failure, AttemptFailure::Error { error: StageError::Failed(message) } if message.starts_with("boom"))
        });
    }
    let (priority, latency, cost) = spec.hint;
    stage = stage.priority(SchedulingHint::new(
        [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Critical,
        ][usize::from(priority)],
        [LatencyTier::Hot, LatencyTier::Warm, LatencyTier::Cold][usize::from(latency)],
        [
            ResourceCost::Minimal,
            ResourceCost::Light,
            ResourceCost::Moderate,
            ResourceCost::Heavy,
        ][usize::from(cost)],
    ));
    if let Some(holds) = spec.condition {
        let probe = probe.clone();
        stage = stage.when(move |_| {
            if probe.conditions[index].fetch_add(1, Ordering::SeqCst) == 0 {
                let seen = probe.returned_ok.load(Ordering::SeqCst) | RECORDED;
                probe.seen_at_condition[index].store(seen, Ordering::SeqCst);
            }
            holds
        });
    }
    stage = if spec.spawn {
        stage.spawn()
    } else {
        stage.inline()
    };
    stage.into_builder()
}

/// The body of loop stage `index`: one stage, `step`, whose artifact is the iteration's number.
/// The first iteration of each outer attempt counts as that attempt's body call.
fn loop_body(probe: &Arc<Probe>, index: usize, spec: &StageCase) -> Pipeline {
    let Body::Loop {
        iterations,
        fail_on,
        stop_at,
    } = spec.body
    else {
        unreachable!("only loop stages have a loop body")
    };
    let last = stop_at
        .filter(|&stop| stop <= iterations)
        .unwrap_or(iterations);
    let (probe, delay) = (probe.clone(), spec.delay);
    Pipeline::builder()
        .stage("step", move |ctx: StageContext| {
            let probe = probe.clone();
            async move {
                let iteration = ctx.run_input::<Iteration>()?;
                let number = iteration.number();
                if number == 1 {
                    let call = probe.calls[index].fetch_add(1, Ordering::SeqCst) + 1;
                    let outer = iteration.parent().attempt();
                    if call != outer {
                        probe.violation(format!(
                            "{}: loop started {call} times, in outer attempt {outer}",
                            name(index)
                        ));
                    }
                    if call == 1 {
                        let seen = probe.returned_ok.load(Ordering::SeqCst) | RECORDED;
                        probe.seen_at_start[index].store(seen, Ordering::SeqCst);
                    }
                }
                probe.iterations[index].fetch_add(1, Ordering::SeqCst);
                let _in_flight = InFlight::enter(&probe);
                probe.wait(delay).await;
                if Some(number) == fail_on {
                    return Err(StageError::msg(format!("loop {index}")));
                }
                if number == last {
                    probe.returned_ok.fetch_or(1 << index, Ordering::SeqCst);
                }
                Ok::<_, StageError>(number)
            }
        })
        .build()
        .expect("a loop body builds")
}

fn build(case: &Case, probe: &Arc<Probe>) -> Pipeline {
    let mut builder = Pipeline::builder();
    for (index, spec) in case.stages.iter().enumerate() {
        let probe_for_body = probe.clone();
        let spec_for_body = spec.clone();
        builder = if let Body::Loop {
            iterations,
            stop_at,
            ..
        } = spec.body
        {
            let body = loop_body(probe, index, spec);
            let policy = LoopPolicy::new(iterations).until(move |report| {
                report
                    .artifact::<u32>("step")
                    .is_ok_and(|number| Some(*number) == stop_at)
            });
            configure(
                builder.repeat(name(index), body, policy),
                case,
                index,
                probe,
            )
        } else if spec.router.is_some() {
            let route = case.route(index);
            let router = builder.router(name(index), move |ctx: StageContext| {
                let body = attempt(probe_for_body.clone(), index, spec_for_body.clone(), ctx);
                let route = route.clone();
                async move { body.await.map(|()| route) }
            });
            configure(router, case, index, probe)
        } else {
            let stage = builder.stage(name(index), move |ctx: StageContext| {
                let body = attempt(probe_for_body.clone(), index, spec_for_body.clone(), ctx);
                async move { body.await.map(|()| index) }
            });
            configure(stage, case, index, probe)
        };
    }
    builder.build().expect("a generated pipeline builds")
}

// ---------------------------------------------------------------------------------------------
// The sequential reference model.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Failure {
    Message(String),
    Permanent(String),
    Panicked(String),
    InvalidRoute,
    /// A fan-out with fewer successes than `required` of its `items`.
    FanOut {
        required: usize,
        items: usize,
    },
    /// A loop whose body failed in this iteration.
    Iteration(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expected {
    Succeeded(u32),
    Failed(Failure, u32),
    TimedOut(u32),
    /// Skipped because a dependency did not succeed.
    Dependency,
    ConditionFalse,
    /// Skipped because every dependency was pruned (or its route not taken).
    Pruned,
}

impl Expected {
    fn failed(&self) -> bool {
        matches!(self, Self::Failed(..) | Self::TimedOut(_))
    }
}

/// One stage as the model sees it in a run that neither stops early nor waits for slots.
#[derive(Clone, Debug)]
struct Modelled {
    expected: Expected,
    /// When its first attempt starts (virtual ms), if it runs.
    start: Option<u64>,
    /// When its status is decided.
    decided: u64,
    /// For `Dependency`: the failed ancestors the skip may trace back to, with their failure time.
    roots: Vec<(usize, u64)>,
    /// For `Pruned`: the reasons the last pruned dependency may give, with when it was pruned.
    causes: Vec<(SkipReason, u64)>,
    /// For `Pruned`: what its explanation may end with.
    origins: Vec<String>,
}

/// The iterations a loop runs when its body never fails.
fn loop_length(iterations: u32, stop_at: Option<u32>) -> u32 {
    stop_at
        .filter(|&stop| stop <= iterations)
        .unwrap_or(iterations)
}

fn run_stage(case: &Case, index: usize, start: u64) -> (Expected, u64) {
    let spec = &case.stages[index];
    let most = spec.max_attempts;
    let (attempts, failure) = match spec.body {
        Body::Ok => (1, None),
        Body::Err if spec.retry_on_refuses_boom => {
            (1, Some(Failure::Message(format!("boom {index}"))))
        }
        Body::Err => (most, Some(Failure::Message(format!("boom {index}")))),
        Body::FanOut {
            items,
            failing,
            required,
        } if items - failing < required => (most, Some(Failure::FanOut { required, items })),
        Body::FanOut { .. } => (1, None),
        Body::Loop {
            iterations,
            fail_on,
            stop_at,
        } => match fail_on {
            Some(fail) if fail <= loop_length(iterations, stop_at) => {
                (most, Some(Failure::Iteration(fail)))
            }
            _ => (1, None),
        },
        Body::Permanent => (1, Some(Failure::Permanent(format!("broken {index}")))),
        Body::Panic => (
            most,
            Some(Failure::Panicked(format!("model panic {index}"))),
        ),
        Body::Flaky(failures) if failures < most => (failures + 1, None),
        Body::Flaky(_) => (most, Some(Failure::Message(format!("flaky {index}")))),
        Body::Hang => (most, None),
    };
    let per_attempt = match spec.body {
        Body::Hang => spec.timeout.expect("a hanging stage has a timeout"),
        Body::Loop {
            iterations,
            fail_on,
            stop_at,
        } => {
            let length = loop_length(iterations, stop_at);
            spec.delay * u64::from(fail_on.filter(|&fail| fail <= length).unwrap_or(length))
        }
        _ => spec.delay,
    };
    let waits: u64 = (1..attempts)
        .map(|failed| wait_after(spec.wait, failed))
        .sum();
    let end = start + u64::from(attempts) * per_attempt + waits;
    let expected = match (spec.body, failure) {
        (Body::Hang, _) => Expected::TimedOut(attempts),
        (_, Some(failure)) => Expected::Failed(failure, attempts),
        (_, None) if spec.router == Some(RouteChoice::Invalid) => {
            Expected::Failed(Failure::InvalidRoute, attempts)
        }
        (_, None) => Expected::Succeeded(attempts),
    };
    (expected, end)
}

fn model(case: &Case) -> Vec<Modelled> {
    let mut model: Vec<Modelled> = Vec::new();
    for index in 0..case.stages.len() {
        let deps = case.deps(index);
        let failed: Vec<usize> = deps
            .iter()
            .copied()
            .filter(|&d| model[d].expected.failed() || model[d].expected == Expected::Dependency)
            .collect();
        if !failed.is_empty() {
            let mut roots: Vec<(usize, u64)> = Vec::new();
            for &d in &failed {
                if model[d].expected.failed() {
                    roots.push((d, model[d].decided));
                } else {
                    roots.extend(model[d].roots.iter().copied());
                }
            }
            roots.sort_unstable();
            roots.dedup();
            let decided = roots.iter().map(|&(_, at)| at).min().unwrap_or(0);
            model.push(Modelled {
                expected: Expected::Dependency,
                start: None,
                decided,
                roots,
                causes: Vec::new(),
                origins: Vec::new(),
            });
            continue;
        }
        let mut causes = Vec::new();
        let mut origins = Vec::new();
        for &d in &deps {
            let dependency = &model[d];
            match dependency.expected {
                Expected::ConditionFalse | Expected::Pruned => {
                    causes.push((
                        SkipReason::Pruned {
                            dependency: name(d),
                        },
                        dependency.decided,
                    ));
                    if dependency.expected == Expected::ConditionFalse {
                        origins.push(format!(
                            "{} was skipped because its condition was false",
                            name(d)
                        ));
                    } else {
                        origins.extend(dependency.origins.iter().cloned());
                    }
                }
                Expected::Succeeded(_) if !case.takes(d, index) => {
                    causes.push((
                        SkipReason::RouteNotTaken { router: name(d) },
                        dependency.decided,
                    ));
                    origins.push(format!("route not taken by {}", name(d)));
                }
                _ => {}
            }
        }
        let ready = deps.iter().map(|&d| model[d].decided).max().unwrap_or(0);
        if !deps.is_empty() && causes.len() == deps.len() {
            model.push(Modelled {
                expected: Expected::Pruned,
                start: None,
                decided: ready,
                roots: Vec::new(),
                causes,
                origins,
            });
            continue;
        }
        if case.stages[index].condition == Some(false) {
            model.push(Modelled {
                expected: Expected::ConditionFalse,
                start: None,
                decided: ready,
                roots: Vec::new(),
                causes: Vec::new(),
                origins: Vec::new(),
            });
            continue;
        }
        let (expected, end) = run_stage(case, index, ready);
        model.push(Modelled {
            expected,
            start: Some(ready),
            decided: end,
            roots: Vec::new(),
            causes: Vec::new(),
            origins: Vec::new(),
        });
    }
    model
}

// ---------------------------------------------------------------------------------------------
// Running a case and comparing.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopKind {
    FailFast,
    Deadline,
    Cancel,
}

fn stop_outcome(kind: StopKind) -> RunOutcome {
    match kind {
        StopKind::FailFast => RunOutcome::Failed,
        StopKind::Deadline => RunOutcome::DeadlineExceeded,
        StopKind::Cancel => RunOutcome::Cancelled,
    }
}

fn quiet_model_panics() {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("model panic") {
                previous(info);
            }
        }));
    });
}

/// Where a case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// A current-thread runtime with tokio's clock paused: the model times the run.
    Paused,
    /// A two-worker runtime on the real clock: only what no timing decides is compared.
    RealOnTwoWorkers,
}

fn run(case: &Case, clock: Clock) -> (RunReport, Arc<Probe>) {
    quiet_model_panics();
    let probe = Arc::new(Probe::new(
        case.stages.len(),
        clock == Clock::RealOnTwoWorkers,
    ));
    let pipeline = build(case, &probe);
    let runtime = match clock {
        Clock::Paused => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build(),
        Clock::RealOnTwoWorkers => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .expect("a tokio runtime");
    let watchdog = match clock {
        Clock::Paused => WATCHDOG,
        Clock::RealOnTwoWorkers => REAL_WATCHDOG,
    };
    let mut options = RunOptions::default()
        .with_failure(case.failure)
        .with_max_concurrency(ConcurrencyLimit::from(
            case.limit.and_then(NonZeroUsize::new),
        ));
    if let Some(seed) = case.seed {
        options = options.with_seed(seed);
    }
    if case.events {
        options = options.with_events(EventSink::callback(|_| {}));
    }
    let report = runtime.block_on(async {
        match case.stop {
            Stop::None => {}
            Stop::Deadline(after) => options = options.clone().with_deadline(ms(after)),
            Stop::Cancel(after) => {
                let token = CancellationToken::new();
                options = options.clone().with_cancel(token.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(ms(after)).await;
                    token.cancel();
                });
            }
        }
        tokio::time::timeout(watchdog, pipeline.run_with(options))
            .await
            .expect("the run ends before the virtual watchdog")
    });
    (report, probe)
}

fn failure_matches(error: &StageError, failure: &Failure, stage: usize) -> bool {
    match (error, failure) {
        (StageError::Failed(message), Failure::Message(expected)) => message == expected,
        (StageError::Permanent(message), Failure::Permanent(expected)) => message == expected,
        (StageError::Panicked(message), Failure::Panicked(expected)) => message.contains(expected),
        (StageError::InvalidRoute { router, target }, Failure::InvalidRoute) => {
            *router == name(stage) && target == "nowhere"
        }
        (
            StageError::FanOut {
                required,
                launched,
                succeeded,
            },
            Failure::FanOut {
                required: want,
                items,
            },
        ) => required == want && launched == items && succeeded < want,
        (
            StageError::Iteration {
                iteration,
                stage: failed_stage,
                status,
            },
            Failure::Iteration(want),
        ) => {
            iteration == want
                && failed_stage == "step"
                && *status == format!("failed: loop {stage} (after 1 attempt)")
        }
        _ => false,
    }
}

fn status_matches(status: &StageStatus, expected: &Expected, stage: usize) -> bool {
    match (status, expected) {
        (StageStatus::Succeeded { attempts }, Expected::Succeeded(want)) => attempts == want,
        (StageStatus::Failed { error, attempts }, Expected::Failed(failure, want)) => {
            attempts == want && failure_matches(error, failure, stage)
        }
        (StageStatus::TimedOut { attempts }, Expected::TimedOut(want)) => attempts == want,
        (StageStatus::Skipped { because }, Expected::Dependency) => {
            matches!(because, SkipReason::Dependency { .. })
        }
        (StageStatus::Skipped { because }, Expected::ConditionFalse) => {
            *because == SkipReason::ConditionFalse
        }
        (StageStatus::Skipped { because }, Expected::Pruned) => matches!(
            because,
            SkipReason::Pruned { .. } | SkipReason::RouteNotTaken { .. }
        ),
        _ => false,
    }
}

fn stopped_before_start(status: &StageStatus, kinds: &[StopKind]) -> bool {
    let StageStatus::Skipped { because } = status else {
        return false;
    };
    match because {
        SkipReason::FailFast { .. } => kinds.contains(&StopKind::FailFast),
        SkipReason::DeadlineExceeded => kinds.contains(&StopKind::Deadline),
        SkipReason::Cancelled => kinds.contains(&StopKind::Cancel),
        _ => false,
    }
}

fn is_dependency_skip(status: &StageStatus) -> bool {
    matches!(
        status,
        StageStatus::Skipped {
            because: SkipReason::Dependency { .. }
        }
    )
}

fn failed(status: &StageStatus) -> bool {
    matches!(
        status,
        StageStatus::Failed { .. } | StageStatus::TimedOut { .. }
    )
}

/// One run under comparison: its case, report and counts, and the model's view of it.
struct Comparison<'a> {
    case: &'a Case,
    report: RunReport,
    probe: Arc<Probe>,
    model: Vec<Modelled>,
    /// Whether the model's virtual times hold (a paused clock, no slot to wait for).
    timed_exactly: bool,
}

impl Comparison<'_> {
    fn status(&self, stage: usize) -> &StageStatus {
        self.report
            .status(&name(stage))
            .expect("every stage is in the report")
    }

    fn model_outcome(&self) -> RunOutcome {
        if self.model.iter().any(|m| m.expected.failed()) {
            RunOutcome::Failed
        } else {
            RunOutcome::Succeeded
        }
    }

    /// The statuses and the outcome.
    fn statuses_and_outcome(&self) -> Vec<String> {
        let (case, report, model) = (self.case, &self.report, &self.model);
        let status = |stage: usize| self.status(stage);
        let mut problems = Vec::new();
        let model_outcome = self.model_outcome();
        let fail_fast = case.failure == FailurePolicy::FailFast;
        let timed_exactly = self.timed_exactly;
        let external = match case.stop {
            Stop::None => None,
            Stop::Deadline(at) => Some((at, StopKind::Deadline)),
            Stop::Cancel(at) => Some((at, StopKind::Cancel)),
        };
        if timed_exactly {
            let natural_end = model.iter().map(|m| m.decided).max().unwrap_or(0);
            let mut stops: Vec<(u64, StopKind)> = Vec::new();
            if fail_fast {
                if let Some(at) = model
                    .iter()
                    .filter(|m| m.expected.failed())
                    .map(|m| m.decided)
                    .min()
                {
                    stops.push((at, StopKind::FailFast));
                }
            }
            stops.extend(external.filter(|&(at, _)| at <= natural_end));
            let stop_at = stops.iter().map(|&(at, _)| at).min();
            let kinds: Vec<StopKind> = stops
                .iter()
                .filter(|&&(at, _)| Some(at) == stop_at)
                .map(|&(_, kind)| kind)
                .collect();
            for (stage, m) in model.iter().enumerate() {
                let actual = status(stage);
                let exact = status_matches(actual, &m.expected, stage);
                let ok = match stop_at {
                    None => exact,
                    Some(at) if m.decided < at => exact,
                    Some(at) if m.start.is_some_and(|s| s < at) && m.decided > at => {
                        *actual == StageStatus::Cancelled
                    }
                    Some(at) if m.decided > at && m.start.is_none_or(|s| s > at) => {
                        stopped_before_start(actual, &kinds)
                    }
                    // The stop and the stage's start or end fall on the same virtual instant.
                    Some(_) => {
                        exact
                            || *actual == StageStatus::Cancelled
                            || stopped_before_start(actual, &kinds)
                            || is_dependency_skip(actual)
                    }
                };
                if !ok {
                    problems.push(format!(
                        "{}: reported `{actual}`, the model says {:?} (start {:?}, decided at {} ms, \
                         the run stops at {stop_at:?} ms by {kinds:?})",
                        name(stage),
                        m.expected,
                        m.start,
                        m.decided
                    ));
                }
            }
            let mut outcomes: Vec<RunOutcome> =
                kinds.iter().map(|&kind| stop_outcome(kind)).collect();
            if stop_at.is_none() || stop_at == Some(natural_end) {
                outcomes.push(model_outcome);
            }
            if !outcomes.contains(&report.outcome()) {
                problems.push(format!(
                    "outcome {:?}, the model allows {outcomes:?} (stop at {stop_at:?} ms, natural end \
                     {natural_end} ms)",
                    report.outcome()
                ));
            }
        } else {
            let fail_fast_stops = fail_fast && model_outcome == RunOutcome::Failed;
            let mut kinds = Vec::new();
            if fail_fast_stops {
                kinds.push(StopKind::FailFast);
            }
            kinds.extend(external.map(|(_, kind)| kind));
            for (stage, m) in model.iter().enumerate() {
                let actual = status(stage);
                let ok = status_matches(actual, &m.expected, stage)
                    || (!kinds.is_empty()
                        && (*actual == StageStatus::Cancelled
                            || stopped_before_start(actual, &kinds)
                            || is_dependency_skip(actual)));
                if !ok {
                    problems.push(format!(
                        "{}: reported `{actual}`, the model says {:?} (stops possible: {kinds:?})",
                        name(stage),
                        m.expected
                    ));
                }
            }
            let mut outcomes: Vec<RunOutcome> =
                kinds.iter().map(|&kind| stop_outcome(kind)).collect();
            if !fail_fast_stops {
                outcomes.push(model_outcome);
            }
            if !outcomes.contains(&report.outcome()) {
                problems.push(format!(
                    "outcome {:?}, the model allows {outcomes:?}",
                    report.outcome()
                ));
            }
        }

        problems
    }

    /// Why each skipped stage was skipped, and how the report explains every stage.
    fn skip_reasons_and_explanations(&self) -> Vec<String> {
        let (case, report, model) = (self.case, &self.report, &self.model);
        let status = |stage: usize| self.status(stage);
        let mut problems = Vec::new();
        let fail_fast = case.failure == FailurePolicy::FailFast;
        let timed_exactly = self.timed_exactly;
        let mut fail_fast_named: Vec<String> = Vec::new();
        for (stage, m) in model.iter().enumerate() {
            let deps = case.deps(stage);
            let actual = status(stage);
            let explained = report.explain(&name(stage)).unwrap_or_default();
            let prefix = format!("{} skipped because ", name(stage));
            let mut explanation_ok = explained == format!("{} {actual}", name(stage));
            if let StageStatus::Skipped { because } = actual {
                match because {
                    SkipReason::Dependency {
                        dependency,
                        root,
                        root_status,
                    } => {
                        let root_index = report.stages().iter().position(|s| *s.name == **root);
                        let root_time = root_index
                            .and_then(|r| m.roots.iter().find(|&&(c, _)| c == r))
                            .map(|&(_, at)| at);
                        let earliest = m.roots.iter().map(|&(_, at)| at).min();
                        let direct = deps.iter().any(|&d| name(d) == *dependency);
                        let chained = dependency == root
                            || report.status(dependency).is_some_and(|s| {
                                matches!(s, StageStatus::Skipped { because: SkipReason::Dependency { root: r, .. } } if r == root)
                            });
                        let root_reported = report.status(root).filter(|s| failed(s));
                        let same_status =
                            root_reported.is_some_and(|s| s.to_string() == *root_status);
                        if !direct || !chained || root_time.is_none() || !same_status {
                            problems.push(format!(
                                "{}: skipped after {dependency} with root {root} ({root_status}), \
                                 which is not a failed ancestor reached through its dependencies \
                                 (model roots {:?})",
                                name(stage),
                                m.roots
                            ));
                        } else if timed_exactly && root_time != earliest {
                            problems.push(format!(
                                "{}: root {root} failed at {root_time:?} ms, but {:?} failed first",
                                name(stage),
                                m.roots
                            ));
                        }
                        explanation_ok = explained.starts_with(&prefix)
                            && explained.ends_with(&format!("{root} {root_status}"));
                    }
                    SkipReason::Pruned { .. } | SkipReason::RouteNotTaken { .. } => {
                        let reason_ok = m.causes.iter().any(|(cause, _)| cause == because);
                        let last = m.causes.iter().map(|&(_, at)| at).max();
                        let at = m
                            .causes
                            .iter()
                            .find(|(cause, _)| cause == because)
                            .map(|&(_, at)| at);
                        if !reason_ok {
                            problems.push(format!(
                                "{}: skipped because `{because}`, the model's causes are {:?}",
                                name(stage),
                                m.causes
                            ));
                        } else if timed_exactly && at != last {
                            problems.push(format!(
                                "{}: `{because}` was not the last dependency pruned ({:?})",
                                name(stage),
                                m.causes
                            ));
                        }
                        explanation_ok = match because {
                            SkipReason::RouteNotTaken { router } => {
                                explained == format!("{prefix}route not taken by {router}")
                            }
                            _ => {
                                explained.starts_with(&prefix)
                                    && m.origins.iter().any(|origin| explained.ends_with(origin))
                            }
                        };
                    }
                    SkipReason::ConditionFalse => {
                        explanation_ok = explained == format!("{prefix}its condition was false");
                    }
                    SkipReason::FailFast {
                        stage: failed_stage,
                    } => {
                        fail_fast_named.push(failed_stage.clone());
                        explanation_ok = explained
                            == format!("{prefix}the run stopped after {failed_stage} failed");
                    }
                    other => {
                        explanation_ok = explained == format!("{prefix}{other}");
                    }
                }
            }
            if !explanation_ok {
                problems.push(format!(
                    "{}: explained as {explained:?} for status `{actual}`",
                    name(stage)
                ));
            }
        }
        fail_fast_named.sort();
        fail_fast_named.dedup();
        if fail_fast_named.len() > 1
            || (!fail_fast && !fail_fast_named.is_empty())
            || fail_fast_named
                .iter()
                .any(|stage| !report.status(stage).is_some_and(failed))
        {
            problems.push(format!(
                "fail-fast skips name {fail_fast_named:?} (policy {:?})",
                case.failure
            ));
        }

        problems
    }

    /// What the stages counted.
    fn counts(&self) -> Vec<String> {
        let (case, report, probe) = (self.case, &self.report, &self.probe);
        let status = |stage: usize| self.status(stage);
        let mut problems = Vec::new();
        let n = case.stages.len();
        let peak = probe.peak.load(Ordering::SeqCst);
        if let Some(limit) = case.limit {
            if peak > limit {
                problems.push(format!("{peak} attempts in flight at once, limit {limit}"));
            }
        }
        for stage in 0..n {
            let spec = &case.stages[stage];
            let actual = status(stage);
            let calls = probe.calls[stage].load(Ordering::SeqCst);
            let calls_ok = match actual {
                StageStatus::Succeeded { attempts }
                | StageStatus::Failed { attempts, .. }
                | StageStatus::TimedOut { attempts } => calls == *attempts,
                StageStatus::Cancelled => calls <= spec.max_attempts,
                _ => calls == 0,
            };
            if !calls_ok || calls > spec.max_attempts {
                problems.push(format!(
                    "{}: body ran {calls} times (at most {}), reported `{actual}`",
                    name(stage),
                    spec.max_attempts
                ));
            }
            let evaluations = probe.conditions[stage].load(Ordering::SeqCst);
            let evaluated_ok = match spec.condition {
                None => evaluations == 0,
                Some(_)
                    if calls > 0
                        || *actual
                            == StageStatus::Skipped {
                                because: SkipReason::ConditionFalse,
                            } =>
                {
                    evaluations == 1
                }
                Some(_) => evaluations <= 1,
            };
            if !evaluated_ok {
                problems.push(format!(
                    "{}: condition evaluated {evaluations} times, body ran {calls} times, `{actual}`",
                    name(stage)
                ));
            }
            let deps = case.deps(stage);
            for (what, seen) in [
                ("started", probe.seen_at_start[stage].load(Ordering::SeqCst)),
                (
                    "evaluated its condition",
                    probe.seen_at_condition[stage].load(Ordering::SeqCst),
                ),
            ] {
                if seen & RECORDED == 0 {
                    continue;
                }
                let succeeded_before = |d: usize| seen & (1 << d) != 0 && status(d).is_success();
                let pruned = |d: usize| matches!(status(d), StageStatus::Skipped { because } if because.is_pruned());
                let each = deps.iter().all(|&d| succeeded_before(d) || pruned(d));
                let one_taken = deps.is_empty()
                    || deps
                        .iter()
                        .any(|&d| succeeded_before(d) && case.takes(d, stage));
                if !each || !one_taken {
                    problems.push(format!(
                        "{} {what} when its dependencies {deps:?} were {:?}",
                        name(stage),
                        deps.iter()
                            .map(|&d| (seen & (1 << d) != 0, status(d).to_string()))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            // A fan-out stage keeps one summary per attempt, a loop stage every iteration's report.
            let stage_report = report
                .stage(&name(stage))
                .expect("every stage is in the report");
            if actual.attempts() > 0 {
                let kept = match spec.body {
                    Body::FanOut { .. } => Some((stage_report.fan_out.len(), actual.attempts())),
                    Body::Loop { .. } => Some((
                        stage_report.iterations.len(),
                        probe.iterations[stage].load(Ordering::SeqCst),
                    )),
                    _ => None,
                };
                if let Some((kept, want)) = kept.map(|(kept, want)| (kept as u32, want)) {
                    if kept != want {
                        problems.push(format!(
                            "{}: the report keeps {kept} fan-out summaries or iterations, {want} ran",
                            name(stage)
                        ));
                    }
                }
            }
            // Artifacts exist exactly for the stages that succeeded.
            let artifact_ok = if let Body::Loop { .. } = spec.body {
                report.artifact::<LoopReport>(&name(stage)).is_ok() == actual.is_success()
            } else if spec.router.is_some() {
                report.artifact::<Route>(&name(stage)).is_ok() == actual.is_success()
            } else {
                match report.artifact::<usize>(&name(stage)) {
                    Ok(value) => actual.is_success() && *value == stage,
                    Err(_) => !actual.is_success(),
                }
            };
            if !artifact_ok {
                problems.push(format!(
                    "{}: artifact disagrees with `{actual}`",
                    name(stage)
                ));
            }
        }

        problems
    }
}

/// Compares one run's report and counts with the model; `Err` says what disagrees.
fn check(case: &Case, clock: Clock) -> Result<(), String> {
    let (report, probe) = run(case, clock);
    let comparison = Comparison {
        case,
        report,
        model: model(case),
        timed_exactly: clock == Clock::Paused && case.timed_exactly(),
        probe,
    };
    let mut problems: Vec<String> = comparison.probe.violations.lock().unwrap().clone();
    problems.extend(comparison.statuses_and_outcome());
    problems.extend(comparison.skip_reasons_and_explanations());
    problems.extend(comparison.counts());
    if problems.is_empty() {
        return Ok(());
    }
    let statuses: Vec<String> = (0..case.stages.len())
        .map(|stage| format!("{}: {}", name(stage), comparison.status(stage)))
        .collect();
    Err(format!(
        "{}\nreport ({:?}): {statuses:#?}",
        problems.join("\n"),
        comparison.report.outcome()
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random pipelines of every kind of stage behave as the docs' sequential model says: each
    /// stage's status, attempts, error and skip reason, each explanation, the run's outcome, the
    /// concurrency limit, the attempts each body ran and the dependencies each start saw.
    #[test]
    fn random_pipelines_agree_with_the_sequential_model(case in case()) {
        if let Err(problems) = check(&case, Clock::Paused) {
            prop_assert!(false, "{problems}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    /// The same pipelines on two worker threads and the real clock, spawned stages truly in
    /// parallel: the statuses, attempts, skip reasons and outcome no timing decides still agree
    /// with the model, and so do the counts.
    #[test]
    fn random_pipelines_on_two_workers_agree_with_the_sequential_model(case in case()) {
        if let Err(problems) = check(&case, Clock::RealOnTwoWorkers) {
            prop_assert!(false, "{problems}");
        }
    }
}

/// The model itself: a chain with a failure in the middle, run without a limit, is the easy
/// case the model must get right, with its virtual times and its explanation spelled out.
#[test]
fn a_chain_failing_in_its_middle_matches_the_model_and_explains_the_skip() {
    let stage = |dep_bits: u16, body: Body| StageCase {
        dep_bits,
        body,
        delay: 3,
        max_attempts: 2,
        wait: Wait::Fixed(5),
        timeout: None,
        condition: None,
        router: None,
        spawn: false,
        retry_on_refuses_boom: false,
        hint: (1, 0, 0),
    };
    let case = Case {
        stages: vec![stage(0, Body::Ok), stage(1, Body::Err), stage(2, Body::Ok)],
        failure: FailurePolicy::ContinueIndependent,
        limit: None,
        seed: None,
        stop: Stop::None,
        events: false,
    };
    assert_eq!(check(&case, Clock::Paused), Ok(()));
    let (report, _) = run(&case, Clock::Paused);
    assert_eq!(
        report.explain("s2").unwrap(),
        "s2 skipped because s1 failed: boom 1 (after 2 attempts)"
    );
    let model = model(&case);
    assert_eq!(model[1].decided, 3 + 3 + 3 + 5);
    assert_eq!(model[2].expected, Expected::Dependency);
}
