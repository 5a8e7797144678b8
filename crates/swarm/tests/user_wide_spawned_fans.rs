//! Wide fans of spawned stages (past the fleet's 128-dependent share, so helper tasks hand
//! them out) with and without seeds and limits, with events and retries, many runs of one shared
//! pipeline at once: each stage runs once, the join sees every artifact, the limit holds and the
//! event stream agrees with the report.

mod support;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, EventSink, Pipeline, RetryPolicy, RunOptions, StageContext, StageError, StageEvent,
};

const WIDTH: usize = 300;

struct Counters {
    now: AtomicUsize,
    peak: AtomicUsize,
    runs: Vec<AtomicUsize>,
}

fn build(counters: Arc<Counters>) -> Pipeline {
    let mut builder = Pipeline::builder()
        .stage("root", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.run_input::<u64>()?)
        })
        .spawn()
        .into_builder();
    for i in 0..WIDTH {
        let counters = counters.clone();
        let mut sb = builder
            .stage(format!("w{i}"), move |ctx: StageContext| {
                let counters = counters.clone();
                async move {
                    let now = counters.now.fetch_add(1, Ordering::SeqCst) + 1;
                    counters.peak.fetch_max(now, Ordering::SeqCst);
                    counters.runs[i].fetch_add(1, Ordering::SeqCst);
                    if i % 7 == 0 {
                        tokio::time::sleep(Duration::from_micros(100)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                    counters.now.fetch_sub(1, Ordering::SeqCst);
                    if i % 50 == 3 && ctx.attempt() == 1 {
                        return Err(StageError::msg("once"));
                    }
                    Ok::<_, StageError>(*ctx.input::<u64>("root")? + i as u64)
                }
            })
            .after(["root"])
            .spawn();
        if i % 50 == 3 {
            sb = sb.retry(
                RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_micros(200))),
            );
        }
        builder = sb.into_builder();
    }
    let names: Vec<String> = (0..WIDTH).map(|i| format!("w{i}")).collect();
    let read = names.clone();
    builder
        .stage("join", move |ctx: StageContext| {
            let read = read.clone();
            async move {
                let mut sum = 0u64;
                for name in &read {
                    sum += *ctx.input::<u64>(name)?;
                }
                Ok::<_, StageError>(sum)
            }
        })
        .after(names)
        .spawn()
        .build()
        .expect("valid")
}

fn expected(input: u64) -> u64 {
    (0..WIDTH as u64).map(|i| input + i).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_spawned_fans_run_each_stage_once_with_consistent_events() {
    let mut problems = Vec::new();
    for variant in 0..8u64 {
        let counters = Arc::new(Counters {
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            runs: (0..WIDTH).map(|_| AtomicUsize::new(0)).collect(),
        });
        let pipeline = build(counters.clone());
        let total = WIDTH + 2;
        let limit = match variant % 4 {
            0 => None,
            1 => Some(total),
            2 => Some(total - 1),
            _ => Some(5),
        };
        let input = variant * 1000;
        let (sink, mut receiver) = EventSink::channel();
        let mut options = RunOptions::default().with_input(input).with_events(sink);
        if let Some(limit) = limit {
            options = options.with_max_concurrency(NonZeroUsize::new(limit).unwrap());
        }
        if variant >= 4 {
            options = options.with_seed(variant);
        }
        let report = tokio::time::timeout(Duration::from_secs(10), pipeline.run_with(options))
            .await
            .expect("ends");
        let label = format!("variant {variant} limit {limit:?}");
        if !report.is_success() {
            problems.push(format!("{label}: {:?}", report.outcome()));
        }
        match report.artifact::<u64>("join") {
            Ok(sum) if *sum == expected(input) => {}
            other => problems.push(format!("{label}: join {other:?}")),
        }
        for i in 0..WIDTH {
            let want = if i % 50 == 3 { 2 } else { 1 };
            let got = counters.runs[i].load(Ordering::SeqCst);
            if got != want {
                problems.push(format!("{label}: w{i} ran {got} times, want {want}"));
            }
        }
        let peak = counters.peak.load(Ordering::SeqCst);
        if let Some(limit) = limit {
            if peak > limit {
                problems.push(format!("{label}: peak {peak}"));
            }
        }
        let mut events = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            events.push(event);
        }
        let mut started: HashMap<String, usize> = HashMap::new();
        let mut finished: HashMap<String, usize> = HashMap::new();
        let mut dones = Vec::new();
        for event in &events {
            match event {
                StageEvent::Started { stage } => {
                    *started.entry(stage.to_string()).or_default() += 1
                }
                StageEvent::Finished { stage, done, .. } => {
                    *finished.entry(stage.to_string()).or_default() += 1;
                    dones.push(*done);
                }
                StageEvent::Skipped { .. } | StageEvent::Cancelled { .. } => {
                    problems.push(format!("{label}: unexpected {event:?}"))
                }
                _ => {}
            }
        }
        for stage in report.stages() {
            let n = stage.name.to_string();
            if started.get(&n) != Some(&1) || finished.get(&n) != Some(&1) {
                problems.push(format!(
                    "{label}: {n} started {:?} finished {:?}",
                    started.get(&n),
                    finished.get(&n)
                ));
            }
        }
        dones.sort_unstable();
        if dones != (1..=total).collect::<Vec<_>>() {
            problems.push(format!(
                "{label}: done counts not 1..={total} ({} events)",
                dones.len()
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
async fn many_runs_of_one_wide_pipeline_at_once_keep_their_artifacts() {
    let counters = Arc::new(Counters {
        now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        runs: (0..WIDTH).map(|_| AtomicUsize::new(0)).collect(),
    });
    let pipeline = build(counters.clone());
    let runs: Vec<_> = (0..6u64)
        .map(|run| {
            let pipeline = pipeline.clone();
            tokio::spawn(async move {
                let mut options = RunOptions::default().with_input(run * 1_000_000);
                if run % 2 == 0 {
                    options = options.with_seed(run);
                }
                let report = pipeline.run_with(options).await;
                (run, report)
            })
        })
        .collect();
    for handle in runs {
        let (run, report) = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("ends")
            .unwrap();
        assert!(report.is_success(), "run {run}");
        assert_eq!(
            *report.artifact::<u64>("join").unwrap(),
            expected(run * 1_000_000),
            "run {run}"
        );
    }
    for i in 0..WIDTH {
        let want = if i % 50 == 3 { 12 } else { 6 };
        assert_eq!(counters.runs[i].load(Ordering::SeqCst), want, "w{i}");
    }
}
