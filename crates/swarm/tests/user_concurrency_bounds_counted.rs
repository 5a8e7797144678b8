//! The concurrency limit, counted inside the stages, on random DAGs of inline and spawned
//! stages with retries, on a multi-thread runtime; every stage runs once per attempt and its
//! dependents see its artifact.

mod support;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, Pipeline, RetryPolicy, RunOptions, StageContext, StageError, StageStatus,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::{multi_thread, name, random_dag};

#[derive(Clone, Default)]
struct Occupancy {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Occupancy {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    AllSpawned,
    AllInline,
    Mixed,
}

struct Built {
    pipeline: Pipeline,
    occupancy: Occupancy,
    attempts: Arc<Vec<AtomicUsize>>,
    bad_inputs: Arc<AtomicUsize>,
    retrying: Vec<bool>,
}

fn build(stages: usize, seed: u64, mode: Mode, retries: bool) -> Built {
    let deps = random_dag(stages, 0.25, seed);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x9e37);
    let occupancy = Occupancy::default();
    let attempts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..stages).map(|_| AtomicUsize::new(0)).collect());
    let bad_inputs = Arc::new(AtomicUsize::new(0));
    let mut retrying = Vec::new();
    let mut builder = Pipeline::builder();
    for stage in 0..stages {
        let spawn = match mode {
            Mode::AllSpawned => true,
            Mode::AllInline => false,
            Mode::Mixed => rng.gen_bool(0.5),
        };
        let retry = retries && rng.gen_bool(0.3);
        retrying.push(retry);
        let sleep_us: u64 = if rng.gen_bool(0.5) {
            rng.gen_range(0..800)
        } else {
            0
        };
        let my_deps = deps[stage].clone();
        let occupancy = occupancy.clone();
        let attempts = attempts.clone();
        let bad = bad_inputs.clone();
        let mut sb = builder
            .stage(name(stage), move |ctx: StageContext| {
                let occupancy = occupancy.clone();
                let attempts = attempts.clone();
                let bad = bad.clone();
                let my_deps = my_deps.clone();
                async move {
                    occupancy.enter();
                    attempts[stage].fetch_add(1, Ordering::SeqCst);
                    for &d in &my_deps {
                        match ctx.input::<u64>(&name(d)) {
                            Ok(v) if *v == d as u64 * 1000 => {}
                            _ => {
                                bad.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    if sleep_us > 0 {
                        tokio::time::sleep(Duration::from_micros(sleep_us)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                    occupancy.leave();
                    if retry && ctx.attempt() == 1 {
                        return Err(StageError::msg("again"));
                    }
                    Ok::<_, StageError>(stage as u64 * 1000)
                }
            })
            .after(deps[stage].iter().map(|&d| name(d)));
        if spawn {
            sb = sb.spawn();
        } else {
            sb = sb.inline();
        }
        if retry {
            sb = sb.retry(
                RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_millis(1))),
            );
        }
        builder = sb.into_builder();
    }
    Built {
        pipeline: builder.build().expect("valid"),
        occupancy,
        attempts,
        bad_inputs,
        retrying,
    }
}

fn check(mode: Mode, retries: bool, seeded: bool) {
    let runtime = multi_thread();
    let mut failures = Vec::new();
    for round in 0..24u64 {
        let limit = (round % 3 + 1) as usize;
        let stages = 30;
        let built = build(stages, round * 7 + 1, mode, retries);
        let mut options =
            RunOptions::default().with_max_concurrency(NonZeroUsize::new(limit).unwrap());
        if seeded {
            options = options.with_seed(round);
        }
        let report = runtime.block_on(built.pipeline.run_with(options));
        let peak = built.occupancy.peak.load(Ordering::SeqCst);
        if !report.is_success() {
            failures.push(format!(
                "round {round}: run not a success: {:?}",
                report.outcome()
            ));
        }
        if peak > limit {
            failures.push(format!("round {round}: limit {limit}, peak {peak}"));
        }
        for stage in 0..stages {
            let want = if built.retrying[stage] { 2 } else { 1 };
            let got = built.attempts[stage].load(Ordering::SeqCst);
            if got != want {
                failures.push(format!(
                    "round {round}: {} ran {got} times, want {want}",
                    name(stage)
                ));
            }
            if report.status(&name(stage))
                != Some(&StageStatus::Succeeded {
                    attempts: want as u32,
                })
            {
                failures.push(format!(
                    "round {round}: {} status {:?}",
                    name(stage),
                    report.status(&name(stage))
                ));
            }
        }
        let bad = built.bad_inputs.load(Ordering::SeqCst);
        if bad > 0 {
            failures.push(format!(
                "round {round}: {bad} dependency inputs wrong or missing"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn all_spawned_stages_respect_the_limit() {
    check(Mode::AllSpawned, false, false);
}

#[test]
fn all_spawned_seeded_stages_respect_the_limit() {
    check(Mode::AllSpawned, false, true);
}

#[test]
fn all_spawned_retrying_stages_respect_the_limit() {
    check(Mode::AllSpawned, true, false);
}

#[test]
fn all_spawned_seeded_retrying_stages_respect_the_limit() {
    check(Mode::AllSpawned, true, true);
}

#[test]
fn mixed_stages_respect_the_limit() {
    check(Mode::Mixed, false, false);
}

#[test]
fn mixed_retrying_seeded_stages_respect_the_limit() {
    check(Mode::Mixed, true, true);
}

#[test]
fn inline_retrying_stages_respect_the_limit() {
    check(Mode::AllInline, true, false);
}

/// From synchronous code through `hivekit_runtime::execute`, many threads at once, each its own
/// run of one shared pipeline with its own limit: each run's own count stays within its limit.
#[test]
fn runs_from_execute_on_many_threads_each_keep_their_limit() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut problems = Vec::new();
                for round in 0..6u64 {
                    let limit = (round % 2 + 1) as usize;
                    let built = build(20, 100 + t * 13 + round, Mode::Mixed, true);
                    let options = RunOptions::default()
                        .with_max_concurrency(NonZeroUsize::new(limit).unwrap());
                    let report = hivekit_runtime::execute(built.pipeline.run_with(options));
                    let peak = built.occupancy.peak.load(Ordering::SeqCst);
                    if peak > limit || !report.is_success() {
                        problems.push(format!(
                            "thread {t} round {round}: limit {limit}, peak {peak}, {:?}",
                            report.outcome()
                        ));
                    }
                }
                problems
            })
        })
        .collect();
    let problems: Vec<String> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
