//! Checkpoints finer than a stage: each item of a durable fan-out and each iteration of a loop stage
//! is recorded on its own, so a run that stops inside a stage resumes inside it. First with the
//! in-memory store (a failure stops the run), then with real processes SIGKILLed on the on-disk
//! store (this test binary re-executed as the child, as in `checkpoint_crash.rs`; see
//! `support::crash`).

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointStore, Durable, MemoryStore, RedbStore};
use hivekit_swarm::{
    FanOut, Iteration, LoopPolicy, LoopReport, Pipeline, RetryPolicy, RunOptions, RunOutcome,
    StageContext, StageError,
};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::crash::{
    child_role, current_thread as runtime, effect, effect_counts as effects, scratch,
};

/// Calls per item (or iteration), and which one fails while `broken` is set.
#[derive(Clone, Default)]
struct Calls {
    counts: Arc<Mutex<HashMap<u32, usize>>>,
    broken: Arc<AtomicBool>,
}

impl Calls {
    fn call(&self, item: u32) {
        *self.counts.lock().entry(item).or_default() += 1;
    }

    fn count(&self, item: u32) -> usize {
        self.counts.lock().get(&item).copied().unwrap_or(0)
    }
}

/// One stage fanning out over eight items, one at a time; item 5 fails while `broken`.
fn eight_items(calls: Calls, retry: RetryPolicy) -> Pipeline {
    Pipeline::builder()
        .stage("review", move |ctx: StageContext| {
            let calls = calls.clone();
            async move {
                let results = ctx
                    .durable_fan_out(0..8u32, FanOut::new(1), |item| {
                        let calls = calls.clone();
                        async move {
                            calls.call(item);
                            if item == 5 && calls.broken.load(Ordering::SeqCst) {
                                return Err(StageError::msg("the reviewer is down"));
                            }
                            Ok(format!("item {item} reviewed"))
                        }
                    })
                    .await?;
                Ok::<_, StageError>(results.into_successes().collect::<Vec<_>>())
            }
        })
        .durable()
        .retry(retry)
        .build()
        .expect("a valid pipeline")
}

fn expected_reviews() -> Vec<String> {
    (0..8).map(|item| format!("item {item} reviewed")).collect()
}

#[tokio::test]
async fn a_fan_out_stopped_after_five_of_eight_items_resumes_with_only_the_other_three() {
    let calls = Calls::default();
    calls.broken.store(true, Ordering::SeqCst);
    let pipeline = eight_items(calls.clone(), RetryPolicy::NONE);
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "pr", RunOptions::default())
        .await
        .expect("started");
    assert_eq!(first.report().outcome(), RunOutcome::Failed);
    assert_eq!(
        (0..8).map(|item| calls.count(item)).collect::<Vec<_>>(),
        [1, 1, 1, 1, 1, 1, 0, 0]
    );

    calls.broken.store(false, Ordering::SeqCst);
    let second = durable
        .resume(&pipeline, "pr", RunOptions::default())
        .await
        .expect("resumed");
    let report = second.report();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        (0..8).map(|item| calls.count(item)).collect::<Vec<_>>(),
        [1, 1, 1, 1, 1, 2, 1, 1],
        "items 0-4 were read back, not run again"
    );
    let summary = &report.stage("review").expect("a stage").fan_out[0];
    assert_eq!((summary.resumed, summary.succeeded), (5, 8));
    assert!(summary
        .to_string()
        .contains("5 read back from the checkpoint"));
    assert_eq!(
        *report.artifact::<Vec<String>>("review").expect("live"),
        expected_reviews()
    );
}

#[tokio::test]
async fn a_retried_stage_keeps_the_durable_fan_out_items_its_first_attempt_finished() {
    let calls = Calls::default();
    calls.broken.store(true, Ordering::SeqCst);
    let pipeline = Pipeline::builder()
        .stage("review", {
            let calls = calls.clone();
            move |ctx: StageContext| {
                let calls = calls.clone();
                async move {
                    // The outage ends with the first attempt.
                    if ctx.attempt() == 2 {
                        calls.broken.store(false, Ordering::SeqCst);
                    }
                    let results = ctx
                        .durable_fan_out(0..8u32, FanOut::new(1), |item| {
                            let calls = calls.clone();
                            async move {
                                calls.call(item);
                                if item == 5 && calls.broken.load(Ordering::SeqCst) {
                                    return Err(StageError::msg("the reviewer is down"));
                                }
                                Ok(format!("item {item} reviewed"))
                            }
                        })
                        .await?;
                    Ok::<_, StageError>(results.into_successes().collect::<Vec<_>>())
                }
            }
        })
        .durable()
        .retry(RetryPolicy::attempts(2).with_backoff(hivekit_swarm::Backoff::NONE))
        .build()
        .expect("a valid pipeline");
    let outcome = Durable::new(MemoryStore::new())
        .start(&pipeline, "pr", RunOptions::default())
        .await
        .expect("started");
    assert!(outcome.report().is_success(), "{}", outcome.report());
    assert_eq!(
        (0..8).map(|item| calls.count(item)).collect::<Vec<_>>(),
        [1, 1, 1, 1, 1, 2, 1, 1]
    );
}

#[tokio::test]
async fn a_durable_fan_out_outside_a_durable_run_is_a_plain_fan_out() {
    let calls = Calls::default();
    let report = eight_items(calls.clone(), RetryPolicy::NONE).run().await;
    assert!(report.is_success());
    assert_eq!(
        report.stage("review").expect("a stage").fan_out[0].resumed,
        0
    );
}

#[tokio::test]
async fn a_checkpointed_item_that_no_longer_decodes_fails_the_stage_naming_run_stage_and_item() {
    let store = MemoryStore::new();
    let durable = Durable::new(store.clone());
    let calls = Calls::default();
    calls.broken.store(true, Ordering::SeqCst);
    let _ = durable
        .start(
            &eight_items(calls.clone(), RetryPolicy::NONE),
            "pr",
            RunOptions::default(),
        )
        .await
        .expect("started");
    let stored = store.load_run("pr").expect("read").expect("a run");
    let (key, _) = stored
        .records
        .iter()
        .find(|(key, _)| key.starts_with("i:") && key.ends_with(":2"))
        .expect("item 2 was checkpointed");
    store.put_record("pr", key, b"[1, 2").expect("written");
    calls.broken.store(false, Ordering::SeqCst);
    let report = durable
        .resume(
            &eight_items(calls, RetryPolicy::NONE),
            "pr",
            RunOptions::default(),
        )
        .await
        .expect("resumed")
        .into_report();
    let status = report.status("review").expect("a stage").to_string();
    assert!(
        status.contains("run `pr`") && status.contains("item 2 of stage `review`"),
        "{status}"
    );
}

/// A loop of `iterations` iterations whose body's one durable stage adds the iteration's number to
/// the previous iteration's total; the body fails in iteration 3 while `broken`.
fn counting_loop(calls: Calls, iterations: u32) -> Pipeline {
    let body = Pipeline::builder()
        .stage("step", move |ctx: StageContext| {
            let calls = calls.clone();
            async move {
                let iteration = ctx.run_input::<Iteration>()?;
                calls.call(iteration.number());
                if iteration.number() == 3 && calls.broken.load(Ordering::SeqCst) {
                    return Err(StageError::permanent("the model is down"));
                }
                let previous = match iteration.previous() {
                    // A restored iteration's report is live: its artifacts were read back.
                    Some(report) => *report.artifact::<u64>("step")?,
                    None => 0,
                };
                Ok::<_, StageError>(previous + u64::from(iteration.number()))
            }
        })
        .durable()
        .build()
        .expect("a valid body");
    Pipeline::builder()
        .repeat("refine", body, LoopPolicy::new(iterations))
        .build()
        .expect("a valid pipeline")
}

fn loop_total(report: &hivekit_swarm::RunReport) -> u64 {
    let looped = report.artifact::<LoopReport>("refine").expect("live");
    *looped
        .last()
        .expect("an iteration")
        .artifact::<u64>("step")
        .expect("live")
}

#[tokio::test]
async fn a_loop_stopped_in_iteration_three_resumes_from_iteration_three() {
    let calls = Calls::default();
    calls.broken.store(true, Ordering::SeqCst);
    let pipeline = counting_loop(calls.clone(), 5);
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "loop", RunOptions::default())
        .await
        .expect("started");
    assert_eq!(first.report().outcome(), RunOutcome::Failed);
    assert_eq!(
        (1..=5).map(|n| calls.count(n)).collect::<Vec<_>>(),
        [1, 1, 1, 0, 0]
    );

    calls.broken.store(false, Ordering::SeqCst);
    let second = durable
        .resume(&pipeline, "loop", RunOptions::default())
        .await
        .expect("resumed");
    let report = second.report();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        (1..=5).map(|n| calls.count(n)).collect::<Vec<_>>(),
        [1, 1, 2, 1, 1],
        "iterations 1 and 2 were read back, not run again"
    );
    assert_eq!(loop_total(report), 15);
    let iterations = &report.stage("refine").expect("a stage").iterations;
    let resumed: Vec<bool> = iterations
        .iter()
        .map(|iteration| iteration.stage("step").expect("a stage").resumed)
        .collect();
    assert_eq!(resumed, [true, true, false, false, false]);
}

// ---- real processes, real crashes ----

const CHILD: &str = "HIVEKIT_GRANULARITY_CHILD";
const DIR: &str = "HIVEKIT_GRANULARITY_DIR";
const ITEMS: u32 = 40;
const ITERATIONS: u32 = 30;

/// One stage fanning out over 40 items, one at a time, each logging its side effect.
fn item_pipeline(log: PathBuf) -> Pipeline {
    Pipeline::builder()
        .stage("items", move |ctx: StageContext| {
            let log = log.clone();
            async move {
                let values = ctx
                    .durable_fan_out(0..ITEMS, FanOut::new(1), |item| {
                        let log = log.clone();
                        async move {
                            effect(&log, &format!("item{item}"));
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            Ok(u64::from(item) * 3)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(values.into_successes().sum::<u64>())
            }
        })
        .durable()
        .build()
        .expect("a valid pipeline")
}

/// A loop of 30 iterations whose body logs its side effect and sums the iteration numbers.
fn loop_pipeline(log: PathBuf) -> Pipeline {
    let body = Pipeline::builder()
        .stage("step", move |ctx: StageContext| {
            let log = log.clone();
            async move {
                let iteration = ctx.run_input::<Iteration>()?;
                effect(&log, &format!("iteration{}", iteration.number()));
                tokio::time::sleep(Duration::from_millis(1)).await;
                let previous = match iteration.previous() {
                    Some(report) => *report.artifact::<u64>("step")?,
                    None => 0,
                };
                Ok::<_, StageError>(previous + u64::from(iteration.number()))
            }
        })
        .durable()
        .build()
        .expect("a valid body");
    Pipeline::builder()
        .repeat("refine", body, LoopPolicy::new(ITERATIONS))
        .build()
        .expect("a valid pipeline")
}

/// What the child processes do; a no-op in the normal test run.
#[test]
fn child_process_entry_point() {
    let Some((mode, dir)) = child_role(CHILD, DIR) else {
        return;
    };
    let store = RedbStore::open(dir.join("runs.redb")).expect("the store opens");
    let pipeline = match mode.as_str() {
        "items" => item_pipeline(dir.join("effects.log")),
        "loop" => loop_pipeline(dir.join("effects.log")),
        other => panic!("unknown child mode {other}"),
    };
    let outcome =
        runtime().block_on(Durable::new(store).start(&pipeline, "run", RunOptions::default()));
    assert!(outcome.expect("started").report().is_success());
}

/// Kills a child running `mode` at random points and resumes each run, checking that every unit
/// (item or iteration) ran and that only the one in flight at the kill ran twice.
fn kill_and_resume(
    mode: &str,
    units: std::ops::RangeInclusive<u32>,
    unit: &str,
    check: impl Fn(&hivekit_swarm::RunReport),
) {
    let mut resumed_mid_stage = 0;
    for seed in 0..8u64 {
        let dir = scratch();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut process = support::crash::child(CHILD, mode, DIR, dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("the child starts");
        // Kill once a seeded number of units have run (watching the effect log, not the clock,
        // so that a slow start under load does not move the kill before the stage).
        let count = units.clone().count();
        let kill_after = rng.gen_range(1..count / 2);
        let started = std::time::Instant::now();
        while effects(&dir.path().join("effects.log"))
            .values()
            .sum::<usize>()
            < kill_after
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "seed {seed}: the child never got going"
            );
            if process
                .try_wait()
                .expect("the child can be waited on")
                .is_some()
            {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // SIGKILL on Unix.
        process.kill().expect("the child is killed");
        process.wait().expect("the child is reaped");
        let before = effects(&dir.path().join("effects.log"));

        let store = RedbStore::open(dir.path().join("runs.redb")).expect("the store is readable");
        let durable = Durable::new(store.clone());
        let pipeline = match mode {
            "items" => item_pipeline(dir.path().join("effects.log")),
            _ => loop_pipeline(dir.path().join("effects.log")),
        };
        let report = runtime()
            .block_on(async {
                match store.load_run("run").expect("the store reads") {
                    Some(_) => {
                        durable
                            .resume(&pipeline, "run", RunOptions::default())
                            .await
                    }
                    None => durable.start(&pipeline, "run", RunOptions::default()).await,
                }
            })
            .expect("the run resumes")
            .into_report();
        assert!(report.is_success(), "seed {seed}: {report}");
        check(&report);
        let after = effects(&dir.path().join("effects.log"));
        let mut repeated = 0;
        for number in units.clone() {
            let name = format!("{unit}{number}");
            let (ran_before, total) = (
                before.get(&name).copied().unwrap_or(0),
                after.get(&name).copied().unwrap_or(0),
            );
            assert!(total >= 1, "seed {seed}: {name} never ran");
            assert!(
                ran_before <= 1,
                "seed {seed}: {name} ran twice before the kill"
            );
            repeated += total - 1;
        }
        assert!(
            repeated <= 1,
            "seed {seed}: only the {unit} in flight at the kill runs again, {repeated} did"
        );
        let ran_before = before.len();
        eprintln!("seed {seed}: {ran_before} of {count} {unit}s had run before the kill");
        if (2..count).contains(&ran_before) {
            resumed_mid_stage += 1;
        }
    }
    assert!(
        resumed_mid_stage > 0,
        "no kill landed in the middle of the stage"
    );
}

#[test]
fn a_fan_out_sigkilled_mid_way_resumes_without_rerunning_the_items_that_had_finished() {
    kill_and_resume("items", 0..=ITEMS - 1, "item", |report| {
        assert_eq!(
            *report.artifact::<u64>("items").expect("live"),
            (0..u64::from(ITEMS)).map(|item| item * 3).sum::<u64>()
        );
    });
}

#[test]
fn a_loop_sigkilled_mid_way_resumes_from_the_iteration_it_was_in() {
    kill_and_resume("loop", 1..=ITERATIONS, "iteration", |report| {
        assert_eq!(
            loop_total(report),
            u64::from(ITERATIONS * (ITERATIONS + 1) / 2)
        );
    });
}
