//! Fail-fast, cancellation and deadlines racing stages that spawned tasks launch: a stage
//! whose body ran is never reported skipped, a stage reported succeeded ran exactly once per
//! attempt, nothing runs after the report, and the report agrees with what the bodies did.

mod support;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    CancellationToken, FailurePolicy, Pipeline, RunOptions, StageContext, StageError, StageStatus,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::{name, random_dag};

struct Built {
    pipeline: Pipeline,
    entered: Arc<Vec<AtomicUsize>>,
    returned: Arc<Vec<AtomicUsize>>,
}

fn build(stages: usize, seed: u64, all_spawned: bool, failing: Option<usize>) -> Built {
    let deps = random_dag(stages, 0.15, seed);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xfa11);
    let entered: Arc<Vec<AtomicUsize>> =
        Arc::new((0..stages).map(|_| AtomicUsize::new(0)).collect());
    let returned: Arc<Vec<AtomicUsize>> =
        Arc::new((0..stages).map(|_| AtomicUsize::new(0)).collect());
    let mut builder = Pipeline::builder();
    for stage in 0..stages {
        let spawn = all_spawned || rng.gen_bool(0.5);
        let sleep_us: u64 = if rng.gen_bool(0.6) {
            rng.gen_range(0..600)
        } else {
            0
        };
        let fail = failing == Some(stage);
        let entered = entered.clone();
        let returned = returned.clone();
        let mut sb = builder
            .stage(name(stage), move |_: StageContext| {
                let entered = entered.clone();
                let returned = returned.clone();
                async move {
                    entered[stage].fetch_add(1, Ordering::SeqCst);
                    if sleep_us > 0 {
                        tokio::time::sleep(Duration::from_micros(sleep_us)).await;
                    }
                    returned[stage].fetch_add(1, Ordering::SeqCst);
                    if fail {
                        return Err(StageError::msg("boom"));
                    }
                    Ok::<_, StageError>(stage)
                }
            })
            .after(deps[stage].iter().map(|&d| name(d)));
        if spawn {
            sb = sb.spawn();
        }
        builder = sb.into_builder();
    }
    Built {
        pipeline: builder.build().expect("valid"),
        entered,
        returned,
    }
}

fn verify(
    built: &Built,
    report: &hivekit_swarm::RunReport,
    stages: usize,
    label: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    for stage in 0..stages {
        let entered = built.entered[stage].load(Ordering::SeqCst);
        let returned = built.returned[stage].load(Ordering::SeqCst);
        let status = report.status(&name(stage));
        match status {
            Some(StageStatus::Succeeded { attempts: 1 }) | Some(StageStatus::Failed { .. }) => {
                if entered != 1 || returned != 1 {
                    problems.push(format!(
                        "{label}: {} {status:?} but entered {entered}, returned {returned}",
                        name(stage)
                    ));
                }
            }
            Some(StageStatus::Skipped { .. }) => {
                if entered != 0 {
                    problems.push(format!("{label}: {} {status:?} but its body ran ({entered} entered, {returned} returned)", name(stage)));
                }
            }
            Some(StageStatus::Cancelled) => {
                // Launched: its body may not have been polled yet (a task not yet run).
                if entered > 1 {
                    problems.push(format!(
                        "{label}: {} cancelled but entered {entered}",
                        name(stage)
                    ));
                }
            }
            other => problems.push(format!("{label}: {} unexpected {other:?}", name(stage))),
        }
    }
    problems
}

fn scenario(all_spawned: bool) {
    let runtime = support::multi_thread();
    let stages = 40;
    let mut problems = Vec::new();
    for seed in 0..40u64 {
        let failing = Some((seed as usize * 7) % stages);
        let built = build(stages, seed, all_spawned, failing);
        let mut options = RunOptions::default();
        match seed % 4 {
            0 => {}
            1 => options = options.with_max_concurrency(NonZeroUsize::new(2).unwrap()),
            2 => options = options.with_seed(seed),
            _ => {
                options = options
                    .with_seed(seed)
                    .with_max_concurrency(NonZeroUsize::new(3).unwrap())
            }
        }
        if seed % 5 == 4 {
            options = options.with_failure(FailurePolicy::ContinueIndependent);
        }
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        options = options.with_cancel(cancel);
        let report = runtime.block_on(async {
            if seed % 3 == 0 {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(seed * 100)).await;
                    canceller.cancel();
                });
            }
            let report = built.pipeline.run_with(options).await;
            // Give anything still running the chance to show itself.
            tokio::time::sleep(Duration::from_millis(3)).await;
            report
        });
        problems.extend(verify(&built, &report, stages, &format!("seed {seed}")));
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn fail_fast_and_cancel_agree_with_what_ran_all_spawned() {
    scenario(true);
}

#[test]
fn fail_fast_and_cancel_agree_with_what_ran_mixed() {
    scenario(false);
}
