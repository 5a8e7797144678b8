//! dagrs's `task_keep_going` / `task_failed_execute` graph (thirteen tasks reading a shared `base`
//! from the environment; C divides by zero, D returns an error; E, F, G depend on them; H..M are
//! independent) through hivekit, inline, spawned and blocking, unbounded and with two slots (dagrs
//! ran it on two tokio workers): continuing keeps exactly the eight results dagrs keeps, failing fast
//! still gives every stage one status, no body runs twice or after a failed dependency, the bound
//! is never exceeded, and the graph runs again with the same counts (dagrs needs `reset`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hivekit_swarm::{
    ConcurrencyLimit, FailurePolicy, Pipeline, RunOptions, RunOutcome, RunReport, SkipReason,
    StageContext, StageError, StageStatus,
};
use parking_lot::Mutex;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Inline,
    Spawned,
    Blocking,
}

#[derive(Default)]
struct Counts {
    entered: Mutex<HashMap<String, u32>>,
    running: AtomicUsize,
    most: AtomicUsize,
}

/// Counts a body in while it runs.
struct Running<'a>(&'a Counts);

impl<'a> Running<'a> {
    fn enter(counts: &'a Counts, name: &str) -> Self {
        *counts.entered.lock().entry(name.to_owned()).or_default() += 1;
        let now = counts.running.fetch_add(1, Ordering::SeqCst) + 1;
        counts.most.fetch_max(now, Ordering::SeqCst);
        Self(counts)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A few microseconds of work, so that stages overlap: yields when async, spins when blocking.
async fn work(mode: Mode) {
    if mode == Mode::Blocking {
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(300) {
            std::hint::spin_loop();
        }
    } else {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
    }
}

const TASKS: [(&str, usize, &[&str]); 13] = [
    ("A", 1, &[]),
    ("B", 2, &["A"]),
    ("C", 0, &["A"]),
    ("D", 1, &["A"]),
    ("E", 16, &["B", "C"]),
    ("F", 32, &["C", "D"]),
    ("G", 64, &["B", "E", "F"]),
    ("H", 64, &[]),
    ("I", 64, &[]),
    ("J", 64, &[]),
    ("K", 64, &[]),
    ("L", 64, &[]),
    ("M", 64, &[]),
];

fn graph(mode: Mode, counts: &Arc<Counts>) -> Pipeline {
    let mut builder = Pipeline::builder();
    for (name, own, after) in TASKS {
        let counts = counts.clone();
        let stage = builder
            .stage(name, move |ctx: StageContext| {
                let counts = counts.clone();
                async move {
                    let _running = Running::enter(&counts, ctx.name());
                    let base = *ctx.run_input::<usize>()?;
                    work(mode).await;
                    match ctx.name() {
                        // dagrs's FailedActionC: `base / 0` panics.
                        "C" => Ok(base / std::hint::black_box(own)),
                        "D" => Err(StageError::permanent("error")),
                        _ => {
                            let mut sum = own;
                            for dependency in after {
                                sum += *ctx.input::<usize>(dependency)? * base;
                            }
                            Ok(sum)
                        }
                    }
                }
            })
            .after(after.iter().copied());
        builder = match mode {
            Mode::Inline => stage.inline(),
            Mode::Spawned => stage.spawn(),
            Mode::Blocking => stage.blocking(),
        }
        .into_builder();
    }
    builder.build().unwrap()
}

fn options(failure: FailurePolicy, limit: ConcurrencyLimit) -> RunOptions {
    RunOptions::default()
        .with_input(2usize)
        .with_failure(failure)
        .with_max_concurrency(limit)
}

async fn run(pipeline: &Pipeline, options: RunOptions) -> RunReport {
    tokio::time::timeout(Duration::from_secs(10), pipeline.run_with(options))
        .await
        .expect("the run ends")
}

fn limits() -> [ConcurrencyLimit; 2] {
    [
        ConcurrencyLimit::Unbounded,
        ConcurrencyLimit::new(2).unwrap(),
    ]
}

fn check_failures(report: &RunReport, label: &str) {
    let Some(StageStatus::Failed { error, attempts: 1 }) = report.status("C") else {
        panic!("{label}: C {:?}", report.status("C"));
    };
    assert!(
        matches!(error, StageError::Panicked(message) if message.contains("divide by zero")),
        "{label}: C {error:?}"
    );
    let Some(StageStatus::Failed { error, attempts: 1 }) = report.status("D") else {
        panic!("{label}: D {:?}", report.status("D"));
    };
    assert_eq!(error.to_string(), "error", "{label}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuing_past_a_panic_and_an_error_keeps_exactly_dagrs_eight_results() {
    for mode in [Mode::Inline, Mode::Spawned, Mode::Blocking] {
        for limit in limits() {
            let label = format!("{mode:?}, {} slots", limit.slots());
            let counts = Arc::new(Counts::default());
            let pipeline = graph(mode, &counts);
            let report = run(
                &pipeline,
                options(FailurePolicy::ContinueIndependent, limit),
            )
            .await;
            assert_eq!(report.outcome(), RunOutcome::Failed, "{label}");
            assert_eq!(report.stages().len(), 13, "{label}");
            let results: HashMap<&str, usize> = TASKS
                .iter()
                .filter_map(|(name, ..)| {
                    report
                        .artifact::<usize>(name)
                        .ok()
                        .map(|value| (*name, *value))
                })
                .collect();
            let want: HashMap<&str, usize> = [
                ("A", 1),
                ("B", 4),
                ("H", 64),
                ("I", 64),
                ("J", 64),
                ("K", 64),
                ("L", 64),
                ("M", 64),
            ]
            .into_iter()
            .collect();
            assert_eq!(results, want, "{label}");
            check_failures(&report, &label);
            assert_eq!(
                report.explain("E").unwrap(),
                format!("E skipped because C {}", report.status("C").unwrap()),
                "{label}"
            );
            for stage in ["F", "G"] {
                let Some(StageStatus::Skipped {
                    because: SkipReason::Dependency { root, .. },
                }) = report.status(stage)
                else {
                    panic!("{label}: {stage} {:?}", report.status(stage));
                };
                assert!(
                    root == "C" || root == "D",
                    "{label}: {stage} rooted at {root}"
                );
            }
            let entered = counts.entered.lock().clone();
            for (name, ..) in TASKS {
                let want = u32::from(!["E", "F", "G"].contains(&name));
                assert_eq!(
                    entered.get(name).copied().unwrap_or(0),
                    want,
                    "{label}: {name}"
                );
            }
            assert!(
                counts.most.load(Ordering::SeqCst) <= limit.slots(),
                "{label}: {} at once",
                counts.most.load(Ordering::SeqCst)
            );
            assert_eq!(counts.running.load(Ordering::SeqCst), 0, "{label}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_fast_still_decides_every_stage_once_and_keeps_what_finished() {
    for mode in [Mode::Inline, Mode::Spawned, Mode::Blocking] {
        for limit in limits() {
            let label = format!("{mode:?}, {} slots", limit.slots());
            let counts = Arc::new(Counts::default());
            let pipeline = graph(mode, &counts);
            let report = run(&pipeline, options(FailurePolicy::FailFast, limit)).await;
            assert_eq!(report.outcome(), RunOutcome::Failed, "{label}");
            assert_eq!(report.stages().len(), 13, "{label}");
            let entered = counts.entered.lock().clone();
            let mut failed = 0;
            for stage in report.stages() {
                let name = &*stage.name;
                let times = entered.get(name).copied().unwrap_or(0);
                assert!(times <= 1, "{label}: {name} entered {times} times");
                match &stage.status {
                    StageStatus::Succeeded { attempts: 1 } => {
                        assert_eq!(times, 1, "{label}: {name}");
                        assert!(report.artifact::<usize>(name).is_ok(), "{label}: {name}");
                    }
                    StageStatus::Failed { .. } => {
                        failed += 1;
                        assert!(["C", "D"].contains(&name), "{label}: {name} failed");
                    }
                    StageStatus::Skipped { .. } => {
                        assert_eq!(times, 0, "{label}: {name} skipped but entered")
                    }
                    StageStatus::Cancelled => {
                        assert!(report.artifact::<usize>(name).is_err(), "{label}: {name}")
                    }
                    other => panic!("{label}: {name} {other:?}"),
                }
                assert!(report.explain(name).is_some(), "{label}: {name}");
            }
            assert!(failed >= 1, "{label}");
            for name in ["E", "F", "G"] {
                assert_eq!(entered.get(name), None, "{label}: {name} ran");
            }
            assert!(
                counts.most.load(Ordering::SeqCst) <= limit.slots(),
                "{label}"
            );
            // A blocking attempt cut short runs on to its end on its thread; the others are
            // dropped before the report returns.
            if mode != Mode::Blocking {
                assert_eq!(counts.running.load(Ordering::SeqCst), 0, "{label}");
            }
        }
    }
}

/// dagrs refuses to start a graph twice without `reset`; a hivekit pipeline runs any number of
/// times, one after another and at once, each run counted alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_failing_graph_runs_again_and_again_with_the_same_counts() {
    let counts = Arc::new(Counts::default());
    let pipeline = graph(Mode::Spawned, &counts);
    let limit = ConcurrencyLimit::new(2).unwrap();
    for _ in 0..10 {
        let report = run(
            &pipeline,
            options(FailurePolicy::ContinueIndependent, limit),
        )
        .await;
        assert_eq!(report.count(StageStatus::is_success), 8);
    }
    let at_once: Vec<_> = (0..10)
        .map(|_| {
            let pipeline = pipeline.clone();
            tokio::spawn(async move {
                run(
                    &pipeline,
                    options(
                        FailurePolicy::ContinueIndependent,
                        ConcurrencyLimit::Unbounded,
                    ),
                )
                .await
            })
        })
        .collect();
    for report in at_once {
        let report = report.await.unwrap();
        assert_eq!(report.count(StageStatus::is_success), 8);
        assert_eq!(*report.artifact::<usize>("B").unwrap(), 4);
    }
    let entered = counts.entered.lock().clone();
    for (name, ..) in TASKS {
        let want = if ["E", "F", "G"].contains(&name) {
            0
        } else {
            20
        };
        assert_eq!(entered.get(name).copied().unwrap_or(0), want, "{name}");
    }
    assert_eq!(counts.running.load(Ordering::SeqCst), 0);
}
