//! Pipelines whose stages all run on tasks of their own (`.spawn()`): in a run without a seed,
//! checkpoints or routes such stages launch their ready dependents from their own tasks. These
//! tests count that every stage runs exactly once, after its dependencies, within the concurrency
//! bound, that stopping a run (cancellation, fail-fast, the deadline) reaches stages that other
//! stages spawned, and that a watched run's events keep their order.

mod support;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, FailurePolicy, Pipeline, RetryPolicy, RunOptions, RunOutcome, SkipReason,
    StageContext, StageError, StageStatus,
};
use support::{multi_thread, name, noop};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Counters one run's stages share.
#[derive(Default)]
struct Counts {
    runs: Vec<AtomicUsize>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    violations: AtomicUsize,
}

/// `dag` as a pipeline of spawned stages: each counts its runs and the stages running beside it,
/// checks its dependencies' artifacts (their indices, read across tasks), yields `yields(stage)`
/// times and returns its own index.
fn counted(dag: &[Vec<usize>], counts: &Arc<Counts>, yields: fn(usize) -> usize) -> Pipeline {
    let mut builder = Pipeline::builder();
    for (stage, dependencies) in dag.iter().enumerate() {
        let counts = counts.clone();
        let dependencies = dependencies.clone();
        let after: Vec<String> = dependencies.iter().map(|&d| name(d)).collect();
        builder = builder
            .stage(name(stage), move |ctx: StageContext| {
                let counts = counts.clone();
                let dependencies = dependencies.clone();
                async move {
                    counts.runs[stage].fetch_add(1, Ordering::SeqCst);
                    let now = counts.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    counts.peak.fetch_max(now, Ordering::SeqCst);
                    for &dependency in &dependencies {
                        let seen = ctx.input::<usize>(&name(dependency)).ok().map(|v| *v);
                        if seen != Some(dependency) {
                            counts.violations.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    for _ in 0..yields(stage) {
                        tokio::task::yield_now().await;
                    }
                    counts.in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, StageError>(stage)
                }
            })
            .after(after)
            .spawn()
            .into_builder();
    }
    builder.build().unwrap()
}

#[test]
fn every_spawned_stage_runs_exactly_once_after_its_dependencies_and_within_the_bound() {
    let runtime = multi_thread();
    for round in 0..48u64 {
        let stages = 1 + (round as usize * 37) % 150;
        let edge_probability = [0.0, 0.02, 0.1, 0.3][round as usize % 4];
        let dag = support::random_dag(stages, edge_probability, round);
        let limit = [1, 2, 3, 8, usize::MAX][round as usize % 5];
        let counts = Arc::new(Counts {
            runs: (0..stages).map(|_| AtomicUsize::new(0)).collect(),
            ..Counts::default()
        });
        let pipeline = counted(&dag, &counts, |stage| stage % 3);
        let options = match NonZeroUsize::new(limit).filter(|_| limit != usize::MAX) {
            Some(limit) => RunOptions::default().with_max_concurrency(limit),
            None => RunOptions::default(),
        };
        let report = runtime.block_on(pipeline.run_with(options));
        assert!(report.is_success(), "round {round}: {:?}", report.outcome());
        for (stage, runs) in counts.runs.iter().enumerate() {
            assert_eq!(
                runs.load(Ordering::SeqCst),
                1,
                "round {round}: stage {stage}"
            );
            let stage_report = &report.stages()[stage];
            assert!(stage_report.started.is_some() && stage_report.elapsed.is_some());
        }
        assert_eq!(counts.violations.load(Ordering::SeqCst), 0, "round {round}");
        let peak = counts.peak.load(Ordering::SeqCst);
        assert!(
            peak <= limit,
            "round {round}: peak {peak} over the limit {limit}"
        );
        assert_eq!(
            *report.artifact::<usize>(&name(stages - 1)).unwrap(),
            stages - 1
        );
    }
}

#[test]
fn a_long_chain_and_a_wide_fan_of_spawned_stages_each_run_every_stage_once() {
    let runtime = multi_thread();
    let chain: Vec<Vec<usize>> = (0..2_000)
        .map(|stage| if stage == 0 { vec![] } else { vec![stage - 1] })
        .collect();
    let fan: Vec<Vec<usize>> = std::iter::once(vec![])
        .chain((1..=2_000).map(|_| vec![0]))
        .chain(std::iter::once((1..=2_000).collect()))
        .collect();
    for (dag, limit) in [(&chain, 4), (&fan, 7), (&fan, usize::MAX)] {
        let counts = Arc::new(Counts {
            runs: (0..dag.len()).map(|_| AtomicUsize::new(0)).collect(),
            ..Counts::default()
        });
        let pipeline = counted(dag, &counts, |stage| stage % 2);
        let options = if limit == usize::MAX {
            RunOptions::default()
        } else {
            RunOptions::default().with_max_concurrency(NonZeroUsize::new(limit).unwrap())
        };
        let report = runtime.block_on(pipeline.run_with(options));
        assert!(report.is_success());
        assert!(counts
            .runs
            .iter()
            .all(|runs| runs.load(Ordering::SeqCst) == 1));
        assert_eq!(counts.violations.load(Ordering::SeqCst), 0);
        assert!(counts.peak.load(Ordering::SeqCst) <= limit);
    }
}

#[test]
fn fans_around_a_tasks_share_run_every_stage_once_on_either_runtime() {
    // Past a task's share (128 dependents) the rest of a fan is handed to a relay of helper
    // tasks, each keeping the next share: widths at and around the share's multiples, and one
    // many shares wide, on two workers and on one thread (where the relay's helpers queue behind
    // the stages spawned before them).
    let runtimes = [
        multi_thread(),
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    ];
    for runtime in &runtimes {
        for width in [1, 127, 128, 129, 255, 256, 257, 385, 1_000] {
            let fan: Vec<Vec<usize>> = std::iter::once(vec![])
                .chain((1..=width).map(|_| vec![0]))
                .chain(std::iter::once((1..=width).collect()))
                .collect();
            let counts = Arc::new(Counts {
                runs: (0..fan.len()).map(|_| AtomicUsize::new(0)).collect(),
                ..Counts::default()
            });
            let pipeline = counted(&fan, &counts, |stage| stage % 2);
            let report = runtime.block_on(pipeline.run());
            assert!(report.is_success(), "width {width}");
            assert!(
                counts
                    .runs
                    .iter()
                    .all(|runs| runs.load(Ordering::SeqCst) == 1),
                "width {width}"
            );
            assert_eq!(counts.violations.load(Ordering::SeqCst), 0, "width {width}");
            assert_eq!(
                *report.artifact::<usize>(&name(width + 1)).unwrap(),
                width + 1
            );
        }
    }
}

/// Counts the stage futures dropped, so a test sees that a cancelled stage stopped.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `root -> hang0..hang{width} -> sink`, all spawned: the hanging stages count their starts (and
/// notify `all_started` when the last starts), then wait forever, counting their drops.
fn hanging_fan(
    width: usize,
    started: &Arc<AtomicUsize>,
    dropped: &Arc<AtomicUsize>,
    all_started: &Arc<Notify>,
) -> hivekit_swarm::PipelineBuilder {
    let mut builder = Pipeline::builder()
        .stage("root", support::noop)
        .spawn()
        .into_builder();
    for hang in 0..width {
        let (started, dropped, all_started) =
            (started.clone(), dropped.clone(), all_started.clone());
        builder = builder
            .stage(format!("hang{hang}"), move |_: StageContext| {
                let guard = DropCount(dropped.clone());
                if started.fetch_add(1, Ordering::SeqCst) + 1 == width {
                    all_started.notify_one();
                }
                async move {
                    let _guard = guard;
                    std::future::pending::<Result<(), StageError>>().await
                }
            })
            .after(["root"])
            .spawn()
            .into_builder();
    }
    builder
        .stage("sink", support::noop)
        .after((0..width).map(|hang| format!("hang{hang}")))
        .spawn()
        .into_builder()
}

#[test]
fn cancelling_a_run_reaches_stages_spawned_by_other_stages() {
    cancelling_a_run_reaches_stages_spawned_by_other_stages_in(None);
}

#[test]
fn cancelling_a_run_reaches_stages_spawned_by_other_stages_in_a_seeded_run() {
    cancelling_a_run_reaches_stages_spawned_by_other_stages_in(Some(5));
}

fn cancelling_a_run_reaches_stages_spawned_by_other_stages_in(seed: Option<u64>) {
    let runtime = multi_thread();
    let (started, dropped, all_started) = Default::default();
    let pipeline = hanging_fan(50, &started, &dropped, &all_started)
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let report = runtime.block_on(async {
        let run = tokio::spawn({
            let cancel = cancel.clone();
            async move { pipeline.run_with(seeded(seed).with_cancel(cancel)).await }
        });
        all_started.notified().await;
        cancel.cancel();
        run.await.unwrap()
    });
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    assert!(report.status("root").unwrap().is_success());
    for hang in 0..50 {
        assert_eq!(
            report.status(&format!("hang{hang}")),
            Some(&StageStatus::Cancelled)
        );
    }
    assert!(matches!(
        report.status("sink"),
        Some(StageStatus::Skipped {
            because: SkipReason::Cancelled
        })
    ));
    assert_eq!(started.load(Ordering::SeqCst), 50);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        50,
        "every hanging stage was dropped"
    );
}

#[test]
fn failing_fast_aborts_stages_spawned_by_other_stages() {
    failing_fast_aborts_stages_spawned_by_other_stages_in(None);
}

#[test]
fn failing_fast_aborts_stages_spawned_by_other_stages_in_a_seeded_run() {
    failing_fast_aborts_stages_spawned_by_other_stages_in(Some(5));
}

fn failing_fast_aborts_stages_spawned_by_other_stages_in(seed: Option<u64>) {
    let runtime = multi_thread();
    let (started, dropped, all_started): (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<Notify>) =
        Default::default();
    let waiter = all_started.clone();
    let pipeline = hanging_fan(20, &started, &dropped, &all_started)
        .stage("fails", move |_: StageContext| {
            let waiter = waiter.clone();
            async move {
                waiter.notified().await;
                Err::<(), _>(StageError::permanent("broken"))
            }
        })
        .after(["root"])
        .spawn()
        .build()
        .unwrap();
    let report = runtime.block_on(pipeline.run_with(seeded(seed)));
    assert_eq!(report.outcome(), RunOutcome::Failed);
    assert!(matches!(
        report.status("fails"),
        Some(StageStatus::Failed { .. })
    ));
    for hang in 0..20 {
        assert_eq!(
            report.status(&format!("hang{hang}")),
            Some(&StageStatus::Cancelled)
        );
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 20);
}

#[test]
fn failing_fast_while_a_wide_fan_is_still_being_spawned_leaves_no_stage_running() {
    // A fan this wide is spawned by helper tasks besides the root's own task; a failure stops
    // them part-way: every fan stage ends cancelled (spawned) or skipped (not yet), and none is
    // still running, or started later, once the run has returned.
    let runtime = multi_thread();
    let width = 3_000;
    for _ in 0..5 {
        let (started, dropped, all_started): (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<Notify>) =
            Default::default();
        let pipeline = hanging_fan(width, &started, &dropped, &all_started)
            .stage("fails", |_: StageContext| async {
                Err::<(), _>(StageError::permanent("broken"))
            })
            .after(["root"])
            .spawn()
            .build()
            .unwrap();
        let report = runtime.block_on(pipeline.run());
        assert_eq!(report.outcome(), RunOutcome::Failed);
        assert!(matches!(
            report.status("fails"),
            Some(StageStatus::Failed { .. })
        ));
        for hang in 0..width {
            let status = report.status(&format!("hang{hang}"));
            assert!(
                matches!(
                    status,
                    Some(StageStatus::Cancelled | StageStatus::Skipped { .. })
                ),
                "hang{hang} ended {status:?}"
            );
        }
        let started_at_return = started.load(Ordering::SeqCst);
        assert_eq!(dropped.load(Ordering::SeqCst), started_at_return);
        drop(report);
        runtime.block_on(tokio::task::yield_now());
        assert_eq!(started.load(Ordering::SeqCst), started_at_return);
    }
}

#[test]
fn dropping_a_run_stops_the_waiting_stages_that_other_stages_spawned() {
    // Fleet tasks are detached: dropping the run wakes the tasks of the stages that wait, and
    // each drops its stage's future and ends without polling it again.
    let runtime = multi_thread();
    let (started, dropped, all_started): (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<Notify>) =
        Default::default();
    let pipeline = hanging_fan(40, &started, &dropped, &all_started)
        .build()
        .unwrap();
    runtime.block_on(async {
        let run = tokio::spawn(async move { pipeline.run().await });
        all_started.notified().await;
        run.abort();
        assert!(run.await.unwrap_err().is_cancelled());
        tokio::time::timeout(Duration::from_secs(10), async {
            while dropped.load(Ordering::SeqCst) < 40 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("every waiting stage's future is dropped once the run is");
    });
    assert_eq!(started.load(Ordering::SeqCst), 40);
    assert_eq!(dropped.load(Ordering::SeqCst), 40);
}

#[test]
fn a_deadline_reaches_stages_spawned_by_other_stages() {
    let runtime = multi_thread();
    let (started, dropped, all_started): (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<Notify>) =
        Default::default();
    let pipeline = hanging_fan(10, &started, &dropped, &all_started)
        .build()
        .unwrap();
    let report = runtime.block_on(
        pipeline.run_with(RunOptions::default().with_deadline(Duration::from_millis(50))),
    );
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    assert_eq!(report.count(|status| *status == StageStatus::Cancelled), 10);
    assert_eq!(dropped.load(Ordering::SeqCst), 10);
}

#[test]
fn a_spawned_stage_that_retries_after_a_backoff_releases_its_dependents_once() {
    let runtime = multi_thread();
    let calls = Arc::new(AtomicUsize::new(0));
    let after_runs = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .stage("first", support::noop)
        .spawn()
        .stage("flaky", {
            let calls = calls.clone();
            move |_: StageContext| {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if call < 2 {
                        Err(StageError::msg("not yet"))
                    } else {
                        Ok(call)
                    }
                }
            }
        })
        .after(["first"])
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(1))))
        .spawn()
        .stage("after", {
            let after_runs = after_runs.clone();
            move |ctx: StageContext| {
                after_runs.fetch_add(1, Ordering::SeqCst);
                let flaky = ctx.input::<usize>("flaky").map(|value| *value);
                async move { flaky.map_err(StageError::msg) }
            }
        })
        .after(["flaky"])
        .spawn()
        .build()
        .unwrap();
    // Unseeded, then seeded (the driver launches what becomes ready together).
    for (round, options) in [RunOptions::default(), RunOptions::default().with_seed(11)]
        .into_iter()
        .enumerate()
    {
        calls.store(0, Ordering::SeqCst);
        after_runs.store(0, Ordering::SeqCst);
        let report = runtime.block_on(pipeline.run_with(options));
        assert!(report.is_success(), "round {round}");
        assert_eq!(
            report.status("flaky"),
            Some(&StageStatus::Succeeded { attempts: 3 })
        );
        assert_eq!(report.stage("flaky").unwrap().failed_attempts.len(), 2);
        assert_eq!(after_runs.load(Ordering::SeqCst), 1);
        assert_eq!(*report.artifact::<usize>("after").unwrap(), 2);
    }
}

#[test]
fn a_spawned_stage_that_times_out_skips_its_dependents_and_others_still_run() {
    let runtime = multi_thread();
    let pipeline = Pipeline::builder()
        .stage("root", support::noop)
        .spawn()
        .stage("slow", |_: StageContext| async {
            std::future::pending::<Result<(), StageError>>().await
        })
        .after(["root"])
        .timeout(Duration::from_millis(5))
        .spawn()
        .stage("behind", support::noop)
        .after(["slow"])
        .spawn()
        .stage("beside", support::noop)
        .after(["root"])
        .spawn()
        .build()
        .unwrap();
    let report = runtime.block_on(
        pipeline.run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)),
    );
    assert_eq!(report.outcome(), RunOutcome::Failed);
    assert!(matches!(
        report.status("slow"),
        Some(StageStatus::TimedOut { attempts: 1 })
    ));
    assert!(matches!(
        report.status("behind"),
        Some(StageStatus::Skipped {
            because: SkipReason::Dependency { .. }
        })
    ));
    assert!(report.status("beside").unwrap().is_success());
}

/// Counts its drops: an artifact that says when the last holder let it go.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn no_spawned_stage_task_outlives_the_run_so_artifacts_go_with_the_report() {
    // Fleet tasks drop their own handles as they end, and the run waits for them through a
    // count of live tasks: the count must fall only after a task let go of the run's state
    // (which holds every artifact), or an artifact would outlive the report.
    let runtime = multi_thread();
    let width = 300;
    for _ in 0..20 {
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut builder = Pipeline::builder()
            .stage("root", support::noop)
            .spawn()
            .into_builder();
        for stage in 0..width {
            let dropped = dropped.clone();
            builder = builder
                .stage(name(stage), move |_: StageContext| {
                    let dropped = dropped.clone();
                    async move { Ok::<_, StageError>(Dropped(dropped)) }
                })
                .after(["root"])
                .spawn()
                .into_builder();
        }
        let pipeline = builder
            .stage("join", support::noop)
            .after((0..width).map(name))
            .spawn()
            .build()
            .unwrap();
        let report = runtime.block_on(pipeline.run());
        assert!(report.is_success());
        // Every stage ran: the root's helpers (the fan is wider than a task's share) launched
        // theirs before the run ended.
        let succeeded = report.count(|status| matches!(status, StageStatus::Succeeded { .. }));
        assert_eq!(succeeded, width + 2);
        assert_eq!(dropped.load(Ordering::SeqCst), 0);
        drop(report);
        drop(pipeline);
        assert_eq!(dropped.load(Ordering::SeqCst), width);
    }
}

/// A watched run (an event sink) of spawned stages: the stages' tasks launch their dependents and
/// announce them, and every event the sink sees keeps the order a driver would give: each stage
/// that ran starts once, after the `Finished` of each of its dependencies and before its own
/// decision; the events that decide a stage count 1, 2, ... total in the order received. With
/// fail-fast too, where the stop cancels stages that other stages' tasks launched.
#[test]
fn a_watched_run_of_spawned_stages_keeps_its_events_in_order() {
    use hivekit_swarm::{EventSink, StageEvent};
    use std::collections::{HashMap, HashSet};

    const WIDTH: usize = 300;
    const CHAIN: usize = 50;
    // root -> WIDTH fan stages -> join -> a chain of CHAIN stages of 200 us each; fan stage 7
    // fails after its retry's 1 ms backoff (its dependent `after-7` is skipped; under fail-fast
    // the stop finds the chain running), fan stage 9 fails once and succeeds on its retry.
    let mut builder = Pipeline::builder()
        .stage("root", noop)
        .spawn()
        .into_builder();
    let fan: Vec<String> = (0..WIDTH).map(name).collect();
    for (index, stage) in fan.iter().enumerate() {
        builder = builder
            .stage(stage.as_str(), move |context: StageContext| async move {
                match index {
                    7 => Err(StageError::msg("down")),
                    9 if context.attempt() == 1 => Err(StageError::msg("once")),
                    _ => Ok(()),
                }
            })
            .spawn()
            .retry(RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_millis(1))))
            .after(["root"])
            .into_builder();
    }
    builder = builder
        .stage("after-7", noop)
        .spawn()
        .after(["s7"])
        .into_builder();
    let healthy: Vec<&str> = fan
        .iter()
        .map(String::as_str)
        .filter(|stage| *stage != "s7")
        .collect();
    builder = builder
        .stage("join", noop)
        .spawn()
        .after(healthy)
        .into_builder();
    let mut previous = String::from("join");
    for link in 0..CHAIN {
        let stage = format!("link{link}");
        builder = builder
            .stage(stage.as_str(), |_: StageContext| async {
                tokio::time::sleep(Duration::from_micros(200)).await;
                Ok(())
            })
            .spawn()
            .after([previous.as_str()])
            .into_builder();
        previous = stage;
    }
    let pipeline = builder.build().unwrap();
    let total = WIDTH + CHAIN + 3;

    let runtime = multi_thread();
    for (round, failure) in [FailurePolicy::ContinueIndependent, FailurePolicy::FailFast]
        .into_iter()
        .cycle()
        .take(8)
        .enumerate()
    {
        let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = EventSink::callback({
            let log = log.clone();
            move |event| log.lock().push((tokio::task::try_id(), event))
        });
        // The last rounds are seeded: the driver launches (and announces) the stages that become
        // ready together.
        let seeded = round >= 4;
        let options = RunOptions::default()
            .with_events(sink)
            .with_failure(failure);
        let options = if seeded {
            options.with_seed(round as u64)
        } else {
            options
        };
        let report = runtime.block_on(pipeline.run_with(options));
        assert_eq!(report.outcome(), RunOutcome::Failed);
        let events = log.lock().clone();

        let mut started: HashMap<&str, usize> = HashMap::new();
        let mut decided: HashMap<&str, usize> = HashMap::new();
        let mut announcers = HashSet::new();
        let mut fan_announcers = HashSet::new();
        let mut link_announcers = HashSet::new();
        let mut counted = 0;
        for (position, (task, event)) in events.iter().enumerate() {
            let stage = event.stage();
            match event {
                StageEvent::Started { .. } => {
                    assert!(
                        started.insert(stage, position).is_none(),
                        "{stage} started twice"
                    );
                    announcers.insert(*task);
                    if fan.iter().any(|member| member == stage) {
                        fan_announcers.insert(*task);
                    } else if stage.starts_with("link") {
                        link_announcers.insert(*task);
                    }
                }
                StageEvent::Finished {
                    done, total: of, ..
                }
                | StageEvent::Skipped {
                    done, total: of, ..
                }
                | StageEvent::Cancelled {
                    done, total: of, ..
                } => {
                    counted += 1;
                    assert_eq!((*done, *of), (counted, total), "the count at {stage}");
                    assert!(
                        decided.insert(stage, position).is_none(),
                        "{stage} decided twice"
                    );
                }
                StageEvent::Retried { .. } => assert!(["s7", "s9"].contains(&stage), "{stage}"),
                other => panic!("unexpected event {other:?}"),
            }
        }
        assert_eq!(counted, total, "every stage decided once");
        if failure == FailurePolicy::FailFast {
            let stopped = report.count(|status| {
                matches!(status, StageStatus::Cancelled | StageStatus::Skipped { .. })
            });
            assert!(stopped > 1, "round {round}: the stop cut the chain short");
        }
        for stage in report.stages() {
            let name = &*stage.name;
            let decision = decided[name];
            match &stage.status {
                StageStatus::Skipped { .. } => {
                    assert!(!started.contains_key(name), "a skipped stage never starts");
                }
                status => {
                    if failure == FailurePolicy::ContinueIndependent {
                        assert!(status.is_success() || name == "s7", "{name}: {status}");
                    }
                    let start = *started
                        .get(name)
                        .unwrap_or_else(|| panic!("{name} ({status}) never started"));
                    assert!(start < decision, "{name} decided before it started");
                    for dependency in pipeline.dependencies(name).unwrap() {
                        assert!(
                            decided[dependency] < start,
                            "{name} started before {dependency} was decided"
                        );
                    }
                }
            }
        }
        // Unseeded, the stages' own tasks announced the stages they launched (not the driver
        // alone). Seeded, the driver launched (and announced) the stages that became ready
        // together (the fan, in its seeded order); a stage made ready alone while nothing waits
        // (a link of the chain) ran next on the task of the stage before it.
        if seeded {
            assert_eq!(
                fan_announcers.len(),
                1,
                "round {round}: seeded, only the driver announces the fan"
            );
            if failure == FailurePolicy::ContinueIndependent {
                assert!(
                    link_announcers.is_disjoint(&fan_announcers),
                    "round {round}: seeded, the driver launched a link of the chain"
                );
            }
        } else {
            assert!(
                announcers.len() > 1,
                "round {round}: every stage was announced by one task"
            );
        }
    }
}

/// A watched seeded run without a limit, whose stages make small batches ready together (which
/// their tasks launch, in the seeded order, and announce): every stage starts once, after the
/// `Finished` of each of its dependencies and before its own, and the decisions count 1, 2, ...
/// total, run after run.
#[test]
fn a_watched_seeded_run_whose_tasks_launch_small_batches_keeps_its_events_in_order() {
    use hivekit_swarm::{EventSink, StageEvent};
    use std::collections::HashMap;

    // root -> 3 x (a fan of 20 -> a join), each join before the next fan: batches of 20.
    let mut builder = Pipeline::builder()
        .stage("root", noop)
        .spawn()
        .into_builder();
    let mut previous = String::from("root");
    for level in 0..3 {
        let fan: Vec<String> = (0..20).map(|leaf| format!("f{level}-{leaf}")).collect();
        for stage in &fan {
            builder = builder
                .stage(stage.as_str(), noop)
                .spawn()
                .after([previous.as_str()])
                .into_builder();
        }
        previous = format!("join{level}");
        builder = builder
            .stage(previous.as_str(), noop)
            .spawn()
            .after(fan.iter().map(String::as_str))
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    let total = 1 + 3 * 21;
    let runtime = multi_thread();
    for round in 0..20u64 {
        let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = EventSink::callback({
            let log = log.clone();
            move |event| log.lock().push(event)
        });
        let options = RunOptions::default().with_events(sink).with_seed(round);
        assert!(runtime.block_on(pipeline.run_with(options)).is_success());
        let events = log.lock().clone();
        let mut started = HashMap::new();
        let mut finished = HashMap::new();
        for (position, event) in events.iter().enumerate() {
            match event {
                StageEvent::Started { stage } => {
                    assert!(
                        started.insert(stage.clone(), position).is_none(),
                        "{stage} started twice"
                    );
                }
                StageEvent::Finished {
                    stage,
                    done,
                    total: of,
                    ..
                } => {
                    assert_eq!(
                        (*done, *of),
                        (finished.len() + 1, total),
                        "the count at {stage}"
                    );
                    assert!(
                        finished.insert(stage.clone(), position).is_none(),
                        "{stage} finished twice"
                    );
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        assert_eq!(finished.len(), total, "round {round}");
        for stage in pipeline.stage_names() {
            let start = started[stage];
            assert!(
                start < finished[stage],
                "round {round}: {stage} finished before it started"
            );
            for dependency in pipeline.dependencies(stage).unwrap() {
                assert!(
                    finished[dependency] < start,
                    "round {round}: {stage} started before {dependency} finished"
                );
            }
        }
    }
}

/// Default options, seeded with `seed` if it is one (a seeded run's driver launches what becomes
/// ready together).
fn seeded(seed: Option<u64>) -> RunOptions {
    match seed {
        Some(seed) => RunOptions::default().with_seed(seed),
        None => RunOptions::default(),
    }
}
