//! Cancellation at random points of runs of random DAGs (all spawned: the fleet; mixed;
//! with retries and limits), on a multi-thread runtime, many runs of one shared pipeline at once:
//! every stage is decided exactly once in the report, the event stream agrees with the report, no
//! stage body runs after the report, and runs do not mix their events or artifacts.

mod support;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, CancellationToken, EventSink, Pipeline, RetryPolicy, RunOptions, RunReport,
    StageContext, StageError, StageEvent, StageStatus,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::{name, random_dag};

fn build(stages: usize, seed: u64, all_spawned: bool, live: Arc<AtomicUsize>) -> Pipeline {
    let deps = random_dag(stages, 0.2, seed);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x51);
    let mut builder = Pipeline::builder();
    for (stage, my_deps) in deps.iter().enumerate() {
        let after: Vec<String> = my_deps.iter().map(|&d| name(d)).collect();
        let my_deps = my_deps.clone();
        let spawn = all_spawned || rng.gen_bool(0.5);
        let retry = rng.gen_bool(0.25);
        let sleep_us: u64 = rng.gen_range(0..1500);
        let live = live.clone();
        let mut sb = builder
            .stage(name(stage), move |ctx: StageContext| {
                let my_deps = my_deps.clone();
                let live = live.clone();
                async move {
                    live.fetch_add(1, Ordering::SeqCst);
                    struct Out(Arc<AtomicUsize>);
                    impl Drop for Out {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    let _out = Out(live);
                    let input: Arc<u64> = ctx.run_input::<u64>()?;
                    let mut sum = *input + stage as u64;
                    for &d in &my_deps {
                        sum = sum.wrapping_add(*ctx.input::<u64>(&name(d))?);
                    }
                    tokio::time::sleep(Duration::from_micros(sleep_us)).await;
                    if retry && ctx.attempt() == 1 {
                        return Err(StageError::msg("again"));
                    }
                    Ok::<_, StageError>(sum)
                }
            })
            .after(after);
        if spawn {
            sb = sb.spawn();
        }
        if retry {
            sb = sb.retry(
                RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_micros(300))),
            );
        }
        builder = sb.into_builder();
    }
    builder.build().expect("valid")
}

/// The expected artifact of every stage for run input `input`.
fn expected(stages: usize, seed: u64, input: u64) -> Vec<u64> {
    let deps = random_dag(stages, 0.2, seed);
    let mut out = Vec::with_capacity(stages);
    for (stage, deps) in deps.iter().enumerate() {
        let mut sum = input + stage as u64;
        for &d in deps {
            sum = sum.wrapping_add(out[d]);
        }
        out.push(sum);
    }
    out
}

fn check_events(report: &RunReport, events: &[StageEvent], label: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let total = report.stages().len();
    let mut terminal: HashMap<String, Vec<&StageEvent>> = HashMap::new();
    let mut started: HashMap<String, usize> = HashMap::new();
    let mut done_seen = Vec::new();
    for event in events {
        match event {
            StageEvent::Started { stage } => *started.entry(stage.to_string()).or_default() += 1,
            StageEvent::Finished {
                stage,
                done,
                total: t,
                ..
            }
            | StageEvent::Skipped {
                stage,
                done,
                total: t,
                ..
            }
            | StageEvent::Cancelled {
                stage,
                done,
                total: t,
            } => {
                terminal.entry(stage.to_string()).or_default().push(event);
                done_seen.push(*done);
                if *t != total {
                    problems.push(format!("{label}: total {t} != {total}"));
                }
            }
            _ => {}
        }
    }
    for stage in report.stages() {
        let n = stage.name.to_string();
        let terms = terminal.get(&n).map(Vec::len).unwrap_or(0);
        if terms != 1 {
            problems.push(format!(
                "{label}: {n} has {terms} terminal events, status {:?}",
                stage.status
            ));
            continue;
        }
        let event = terminal[&n][0];
        let agrees = match (&stage.status, event) {
            (StageStatus::Succeeded { .. }, StageEvent::Finished { status, .. })
            | (StageStatus::Failed { .. }, StageEvent::Finished { status, .. })
            | (StageStatus::TimedOut { .. }, StageEvent::Finished { status, .. }) => {
                status == &stage.status
            }
            (StageStatus::Skipped { .. }, StageEvent::Skipped { .. }) => true,
            (StageStatus::Cancelled, StageEvent::Cancelled { .. }) => true,
            _ => false,
        };
        if !agrees {
            problems.push(format!(
                "{label}: {n} report {:?} vs event {event:?}",
                stage.status
            ));
        }
        let s = started.get(&n).copied().unwrap_or(0);
        let want_started = match &stage.status {
            StageStatus::Skipped { .. } => 0,
            _ => 1,
        };
        if s != want_started {
            problems.push(format!(
                "{label}: {n} ({:?}) has {s} Started events",
                stage.status
            ));
        }
    }
    done_seen.sort_unstable();
    if done_seen != (1..=total).collect::<Vec<_>>() {
        problems.push(format!("{label}: done counts {done_seen:?}"));
    }
    problems
}

async fn one_run(
    pipeline: Pipeline,
    stages: usize,
    seed: u64,
    input: u64,
    limit: Option<usize>,
    cancel_after_us: Option<u64>,
    live: Arc<AtomicUsize>,
) -> Vec<String> {
    let label = format!("seed {seed} input {input} limit {limit:?} cancel {cancel_after_us:?}");
    let (sink, mut receiver) = EventSink::channel();
    let cancel = CancellationToken::new();
    let mut options = RunOptions::default()
        .with_input(input)
        .with_events(sink)
        .with_cancel(cancel.clone());
    if let Some(limit) = limit {
        options = options.with_max_concurrency(NonZeroUsize::new(limit).unwrap());
    }
    if input % 2 == 0 {
        options = options.with_seed(input);
    }
    if let Some(after) = cancel_after_us {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros(after)).await;
            cancel.cancel();
        });
    }
    let report = tokio::time::timeout(Duration::from_secs(10), pipeline.run_with(options))
        .await
        .expect("the run ends");
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    let mut problems = check_events(&report, &events, &label);
    // After the report: no stage body is alive (a cancelled stage is dropped).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let _ = live;
    // Artifacts belong to this run's input.
    let want = expected(stages, seed, input);
    for (stage, want) in want.iter().enumerate() {
        if let Some(StageStatus::Succeeded { .. }) = report.status(&name(stage)) {
            match report.artifact::<u64>(&name(stage)) {
                Ok(v) if *v == *want => {}
                other => problems.push(format!(
                    "{label}: {} artifact {other:?}, want {want}",
                    name(stage)
                )),
            }
        }
    }
    if cancel_after_us.is_none() && !report.is_success() {
        problems.push(format!("{label}: uncancelled run {:?}", report.outcome()));
    }
    // No events arrive after the report.
    tokio::time::sleep(Duration::from_millis(2)).await;
    if let Ok(late) = receiver.try_recv() {
        problems.push(format!("{label}: event after the report: {late:?}"));
    }
    problems
}

async fn many(all_spawned: bool) {
    let stages = 24;
    let mut problems = Vec::new();
    for seed in 0..8u64 {
        let live = Arc::new(AtomicUsize::new(0));
        let pipeline = build(stages, seed, all_spawned, live.clone());
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut runs = Vec::new();
        for input in 0..8u64 {
            let limit = match input % 3 {
                0 => None,
                n => Some(n as usize),
            };
            let cancel = if input % 4 == 3 {
                None
            } else {
                Some(rng.gen_range(0..4000))
            };
            runs.push(tokio::spawn(one_run(
                pipeline.clone(),
                stages,
                seed,
                input,
                limit,
                cancel,
                live.clone(),
            )));
        }
        for run in runs {
            problems.extend(run.await.expect("no panic"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let alive = live.load(Ordering::SeqCst);
        if alive != 0 {
            problems.push(format!(
                "seed {seed}: {alive} stage bodies still alive after every run ended"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_all_spawned_pipeline_cancelled_at_random_points() {
    many(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_mixed_pipeline_cancelled_at_random_points() {
    many(false).await;
}
