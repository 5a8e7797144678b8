//! A pipeline whose stage runs the same pipeline again (recursion through the public API), from
//! many tasks at once, with reports kept, dropped early, and dropped late. "One pipeline runs
//! concurrently with different inputs" and "a stage's output is its typed artifact": every nested
//! run must see its own input and produce its own artifacts, with a report of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hivekit_swarm::{Pipeline, RunOptions, RunReport, StageContext, StageError, StageStatus};

/// The depth below, and the report of the nested run (kept alive, or not).
type Nested = (u64, Option<RunReport>);

/// `depth` stage: the run's input `n`; `below` stage: runs the pipeline itself with `n - 1` and
/// returns `n + (the nested run's below)`, so the run of `n` returns n(n+1)/2.
fn recursive(spawned: bool, calls: Arc<AtomicU64>) -> Arc<OnceLock<Pipeline>> {
    let cell: Arc<OnceLock<Pipeline>> = Arc::new(OnceLock::new());
    let inner = cell.clone();
    let depth = Pipeline::builder().stage("depth", |ctx: StageContext| async move {
        Ok::<_, StageError>(*ctx.run_input::<u64>()?)
    });
    let depth = if spawned { depth.spawn() } else { depth };
    let below = depth
        .stage("below", move |ctx: StageContext| {
            calls.fetch_add(1, Ordering::SeqCst);
            let inner = inner.clone();
            async move {
                let n = *ctx.input::<u64>("depth")?;
                if n == 0 {
                    return Ok::<Nested, StageError>((0, None));
                }
                let pipeline = inner.get().expect("set before the first run").clone();
                let report = pipeline
                    .run_with(RunOptions::default().with_input(n - 1))
                    .await;
                if !report.is_success() {
                    return Err(StageError::permanent(format!(
                        "nested run of {}: {report}",
                        n - 1
                    )));
                }
                let nested = report.artifact::<Nested>("below")?.0;
                // Keep every other nested report alive inside the artifact; drop the others now.
                let keep = n % 2 == 0;
                Ok((n + nested, keep.then_some(report)))
            }
        })
        .after(["depth"]);
    let below = if spawned { below.spawn() } else { below };
    cell.set(below.build().expect("valid")).ok();
    cell
}

fn expected(n: u64) -> u64 {
    n * (n + 1) / 2
}

/// Checks a report of the run of `n`, and the nested reports it kept, all the way down.
fn check(report: &RunReport, n: u64) {
    assert!(report.is_success(), "run of {n}: {report}");
    assert_eq!(*report.artifact::<u64>("depth").unwrap(), n);
    let below = report.artifact::<Nested>("below").unwrap();
    assert_eq!(below.0, expected(n), "run of {n}");
    for stage in report.stages() {
        assert_eq!(
            stage.status,
            StageStatus::Succeeded { attempts: 1 },
            "run of {n}"
        );
        assert!(stage.started.is_some() && stage.elapsed.is_some());
        assert!(stage.failed_attempts.is_empty() && stage.fan_out.is_empty());
    }
    if let Some(nested) = &below.1 {
        check(nested, n - 1);
    }
}

async fn many_recursive_runs_at_once(spawned: bool) {
    const RUNS: u64 = 24;
    const DEPTH: u64 = 12;
    let calls = Arc::new(AtomicU64::new(0));
    let cell = recursive(spawned, calls.clone());
    let pipeline = cell.get().unwrap().clone();
    let mut tasks = Vec::new();
    for run in 0..RUNS {
        let pipeline = pipeline.clone();
        tasks.push(tokio::spawn(async move {
            let n = DEPTH - run % 5;
            let report = pipeline.run_with(RunOptions::default().with_input(n)).await;
            check(&report, n);
            // Run again while the first report is alive, then after it is dropped.
            let again = pipeline.run_with(RunOptions::default().with_input(n)).await;
            check(&again, n);
            drop(report);
            let third = pipeline.run_with(RunOptions::default().with_input(n)).await;
            check(&third, n);
            n
        }));
    }
    let mut stage_calls = 0;
    for task in tasks {
        let n = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("every run ends")
            .expect("no run panics");
        stage_calls += 3 * (n + 1);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        stage_calls,
        "each nested run's `below` stage runs exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipeline_running_itself_inline_from_many_tasks_keeps_every_runs_artifacts() {
    many_recursive_runs_at_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipeline_running_itself_on_spawned_stages_from_many_tasks_keeps_every_runs_artifacts() {
    many_recursive_runs_at_once(true).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_pipeline_running_itself_on_a_current_thread_runtime() {
    for spawned in [false, true] {
        let calls = Arc::new(AtomicU64::new(0));
        let cell = recursive(spawned, calls.clone());
        let pipeline = cell.get().unwrap().clone();
        let report = tokio::time::timeout(
            Duration::from_secs(10),
            pipeline.run_with(RunOptions::default().with_input(30u64)),
        )
        .await
        .expect("the run ends");
        check(&report, 30);
        assert_eq!(calls.load(Ordering::SeqCst), 31);
    }
}

#[test]
fn a_pipeline_running_itself_from_a_plain_thread_through_execute() {
    let calls = Arc::new(AtomicU64::new(0));
    let cell = recursive(true, calls.clone());
    let pipeline = cell.get().unwrap().clone();
    let threads: Vec<_> = (0..4u64)
        .map(|thread| {
            let pipeline = pipeline.clone();
            std::thread::spawn(move || {
                let n = 8 + thread;
                let report = hivekit_runtime::execute(
                    pipeline.run_with(RunOptions::default().with_input(n)),
                );
                check(&report, n);
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread panics");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 9 + 10 + 11 + 12);
}
