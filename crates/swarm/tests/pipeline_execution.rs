//! Execution: ordering, concurrency bounds, artifacts, seeds, priorities, large pipelines.

mod support;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_swarm::{
    ArtifactError, Backoff, LatencyTier, Pipeline, Priority, ResourceCost, RetryPolicy, RunOptions,
    RunOutcome, SchedulingHint, StageContext, StageError, StageStatus,
};
use parking_lot::Mutex;
use proptest::prelude::*;
use support::{add, multi_thread, name, noop};

#[tokio::test]
async fn smoke() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(1u32) })
        .stage("b", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("a")? + 1)
        })
        .after(["a"])
        .build()
        .unwrap();
    for _ in 0..3 {
        let report = pipeline.run().await;
        assert_eq!(report.outcome(), RunOutcome::Succeeded);
        assert_eq!(*report.artifact::<u32>("b").unwrap(), 2);
        assert!(report.stage("b").unwrap().elapsed.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_outputs_read_as_unit_artifacts_however_their_stage_ran() {
    // A unit output is kept as a state of the artifact cell, not as a stored `Arc`: dependents,
    // the report and a second run must still read `()` from every way a stage can end.
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let sources = ["at-once", "waits", "spawned", "retried", "timed"];
    let pipeline = Pipeline::builder()
        .stage("at-once", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .stage("waits", |_: StageContext| async {
            tokio::task::yield_now().await;
            Ok::<_, StageError>(())
        })
        .stage("spawned", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .spawn()
        .stage("retried", move |_: StageContext| {
            let first = counted.fetch_add(1, Ordering::SeqCst) % 2 == 0;
            async move {
                if first {
                    return Err(StageError::msg("once"));
                }
                Ok::<_, StageError>(())
            }
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .stage("timed", |_: StageContext| async { Ok::<_, StageError>(()) })
        .timeout(std::time::Duration::from_secs(60))
        .stage("reader", move |ctx: StageContext| async move {
            for source in sources {
                let _: Arc<()> = ctx.input::<()>(source)?;
                assert!(matches!(
                    ctx.input::<u32>(source),
                    Err(ArtifactError::WrongType { .. })
                ));
            }
            Ok::<_, StageError>(())
        })
        .after(sources)
        .build()
        .unwrap();
    for _ in 0..2 {
        let report = pipeline.run().await;
        assert_eq!(report.outcome(), RunOutcome::Succeeded, "{report:?}");
        for stage in sources.into_iter().chain(["reader"]) {
            assert!(report.artifact::<()>(stage).is_ok(), "{stage}");
            assert!(report.artifact::<u32>(stage).is_err(), "{stage}");
        }
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn artifacts_are_shared_not_copied() {
    let pipeline = Pipeline::builder()
        .stage("big", |_: StageContext| async {
            Ok::<_, StageError>(vec![7u8; 1 << 16])
        })
        .stage("left", |ctx: StageContext| async move {
            Ok::<_, StageError>(Arc::as_ptr(&ctx.input::<Vec<u8>>("big")?) as usize)
        })
        .after(["big"])
        .stage("right", |ctx: StageContext| async move {
            Ok::<_, StageError>(Arc::as_ptr(&ctx.input::<Vec<u8>>("big")?) as usize)
        })
        .after(["big"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let big = report.artifact::<Vec<u8>>("big").unwrap();
    assert_eq!(
        *report.artifact::<usize>("left").unwrap(),
        Arc::as_ptr(&big) as usize
    );
    assert_eq!(
        *report.artifact::<usize>("right").unwrap(),
        Arc::as_ptr(&big) as usize
    );
}

#[tokio::test]
async fn input_errors_are_typed() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(1u32) })
        .stage("b", |_: StageContext| async { Ok::<_, StageError>(()) })
        .stage("c", |ctx: StageContext| async move {
            let wrong_type = ctx.input::<String>("a").unwrap_err();
            let not_a_dependency = ctx.input::<()>("b").unwrap_err();
            let unknown = ctx.input::<()>("zzz").unwrap_err();
            Ok::<_, StageError>((wrong_type, not_a_dependency, unknown))
        })
        .after(["a"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let errors = report
        .artifact::<(ArtifactError, ArtifactError, ArtifactError)>("c")
        .unwrap();
    assert!(
        matches!(&errors.0, ArtifactError::WrongType { stage, actual, .. } if stage == "a" && actual == "u32")
    );
    assert_eq!(
        errors.1,
        ArtifactError::NotADependency {
            reader: "c".into(),
            stage: "b".into()
        }
    );
    assert_eq!(
        errors.2,
        ArtifactError::UnknownStage {
            stage: "zzz".into()
        }
    );
    assert_eq!(
        errors.1.to_string(),
        "stage `c` neither depends on nor declares a read of stage `b`"
    );
    assert!(matches!(
        report.artifact::<u64>("a"),
        Err(ArtifactError::WrongType { .. })
    ));
    assert!(matches!(
        report.artifact::<u32>("nope"),
        Err(ArtifactError::UnknownStage { .. })
    ));
}

#[tokio::test]
async fn an_input_error_fails_the_stage_without_retry() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(1u32) })
        .stage("b", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.input::<String>("a")?.len())
        })
        .after(["a"])
        .retry(hivekit_swarm::RetryPolicy::attempts(5))
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(matches!(
        report.status("b"),
        Some(StageStatus::Failed {
            error: StageError::Input(_),
            attempts: 1
        })
    ));
}

/// A random DAG whose stages check, when they start, that every dependency already finished, and
/// track how many stages are in flight at once.
struct Checked {
    pipeline: Pipeline,
    violations: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
}

fn checked_dag(dag: &[Vec<usize>], yields: &[u8], spawn_every: usize) -> Checked {
    let finished: Arc<Vec<AtomicUsize>> =
        Arc::new((0..dag.len()).map(|_| AtomicUsize::new(0)).collect());
    let violations = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let mut builder = Pipeline::builder();
    for (stage, dependencies) in dag.iter().enumerate() {
        let after: Vec<String> = dependencies.iter().map(|&d| name(d)).collect();
        let dependencies = dependencies.clone();
        let (finished, violations, in_flight, peak, started) = (
            finished.clone(),
            violations.clone(),
            in_flight.clone(),
            peak.clone(),
            started.clone(),
        );
        let yields = yields[stage % yields.len()];
        let stage_builder = builder
            .stage(name(stage), move |_: StageContext| {
                let (finished, violations, in_flight, peak, started, dependencies) = (
                    finished.clone(),
                    violations.clone(),
                    in_flight.clone(),
                    peak.clone(),
                    started.clone(),
                    dependencies.clone(),
                );
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    if dependencies
                        .iter()
                        .any(|&d| finished[d].load(Ordering::SeqCst) == 0)
                    {
                        violations.fetch_add(1, Ordering::SeqCst);
                    }
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    finished[stage].store(1, Ordering::SeqCst);
                    Ok::<_, StageError>(())
                }
            })
            .after(after);
        builder = if spawn_every > 0 && stage % spawn_every == 0 {
            stage_builder.spawn().into_builder()
        } else {
            stage_builder.into_builder()
        };
    }
    Checked {
        pipeline: builder.build().unwrap(),
        violations,
        peak,
        started,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_dags_respect_dependencies_and_the_concurrency_bound(
        stages in 1usize..40,
        edge_probability in 0.0f64..0.4,
        dag_seed in any::<u64>(),
        limit in 0usize..6,
        yields in proptest::collection::vec(0u8..3, 1..5),
        spawn_every in 0usize..4,
        seed in proptest::option::of(any::<u64>()),
    ) {
        let dag = support::random_dag(stages, edge_probability, dag_seed);
        let checked = checked_dag(&dag, &yields, spawn_every);
        let runtime = multi_thread();
        // Limit 0: none (a seeded run's tasks then launch what they make ready together).
        let mut options = RunOptions::default();
        if let Some(limit) = NonZeroUsize::new(limit) {
            options = options.with_max_concurrency(limit);
        }
        if let Some(seed) = seed {
            options = options.with_seed(seed);
        }
        let report = runtime.block_on(checked.pipeline.run_with(options));
        prop_assert!(report.is_success());
        prop_assert_eq!(checked.violations.load(Ordering::SeqCst), 0);
        prop_assert!(limit == 0 || checked.peak.load(Ordering::SeqCst) <= limit);
        prop_assert_eq!(checked.started.load(Ordering::SeqCst), stages, "every stage runs exactly once");
        prop_assert_eq!(report.count(StageStatus::is_success), stages);
    }
}

#[test]
fn a_wide_fan_with_a_limit_never_exceeds_it_and_uses_it() {
    let dag: Vec<Vec<usize>> = std::iter::once(vec![])
        .chain((1..=200).map(|_| vec![0]))
        .chain(std::iter::once((1..=200).collect()))
        .collect();
    let checked = checked_dag(&dag, &[1, 2], 3);
    let report = multi_thread().block_on(
        checked
            .pipeline
            .run_with(RunOptions::default().with_max_concurrency(NonZeroUsize::new(8).unwrap())),
    );
    assert!(report.is_success());
    assert_eq!(checked.violations.load(Ordering::SeqCst), 0);
    assert_eq!(checked.started.load(Ordering::SeqCst), 202);
    let peak = checked.peak.load(Ordering::SeqCst);
    assert!(peak <= 8, "peak {peak}");
    assert!(peak >= 2, "stages that yield overlap: peak {peak}");
}

/// Records the order in which stages start.
fn recording_fan(
    width: usize,
    hints: impl Fn(usize) -> SchedulingHint,
) -> (Pipeline, Arc<Mutex<Vec<String>>>) {
    recording_fan_of(width, hints, false)
}

/// Records the order in which stages start; every stage on a task of its own if `spawn`.
fn recording_fan_of(
    width: usize,
    hints: impl Fn(usize) -> SchedulingHint,
    spawn: bool,
) -> (Pipeline, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let root = Pipeline::builder().stage("root", noop);
    let mut builder = if spawn { root.spawn() } else { root }.into_builder();
    for leaf in 0..width {
        let log = log.clone();
        let stage = builder
            .stage(name(leaf), move |ctx: StageContext| {
                log.lock().push(ctx.name().to_owned());
                async { Ok::<_, StageError>(()) }
            })
            .after(["root"])
            .priority(hints(leaf));
        builder = if spawn { stage.spawn() } else { stage.inline() }.into_builder();
    }
    (builder.build().unwrap(), log)
}

/// A seeded run of spawned stages (which the driver launches, their tasks reporting through
/// notes) launches what became ready together in the same seeded order as a run of inline
/// stages, on a multi-thread runtime too, run after run.
#[test]
fn a_seed_orders_spawned_stages_as_it_orders_inline_ones() {
    let runtime = multi_thread();
    let (inline, inline_log) = recording_fan_of(40, |_| SchedulingHint::default(), false);
    let (spawned, spawned_log) = recording_fan_of(40, |_| SchedulingHint::default(), true);
    let one = NonZeroUsize::new(1).unwrap();
    for seed in [3u64, 4, 3] {
        let options = || {
            RunOptions::default()
                .with_seed(seed)
                .with_max_concurrency(one)
        };
        inline_log.lock().clear();
        assert!(runtime.block_on(inline.run_with(options())).is_success());
        spawned_log.lock().clear();
        assert!(runtime.block_on(spawned.run_with(options())).is_success());
        let expected = inline_log.lock().clone();
        assert_eq!(expected.len(), 40);
        assert_eq!(*spawned_log.lock(), expected, "seed {seed}");
    }
}

/// A random DAG of stages that log their start, with mixed scheduling hints; every stage on a
/// task of its own if `spawn`.
fn recording_dag(dag: &[Vec<usize>], spawn: bool) -> (Pipeline, Arc<Mutex<Vec<String>>>) {
    recording_dag_hinted(dag, &[0, 1, 2], spawn)
}

/// A random DAG of stages that log their start; stage `i`'s priority is `Low`, `Normal` or `High`
/// as `hints[i % hints.len()]` is 0, 1 or 2; every stage on a task of its own if `spawn`.
fn recording_dag_hinted(
    dag: &[Vec<usize>],
    hints: &[u8],
    spawn: bool,
) -> (Pipeline, Arc<Mutex<Vec<String>>>) {
    let priorities = [Priority::Low, Priority::Normal, Priority::High];
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut builder = Pipeline::builder();
    for (stage, dependencies) in dag.iter().enumerate() {
        let log = log.clone();
        let added = builder
            .stage(name(stage), move |ctx: StageContext| {
                log.lock().push(ctx.name().to_owned());
                async { Ok::<_, StageError>(()) }
            })
            .after(dependencies.iter().map(|&dependency| name(dependency)))
            .priority(SchedulingHint::new(
                priorities[usize::from(hints[stage % hints.len()]) % 3],
                LatencyTier::Warm,
                ResourceCost::Light,
            ));
        builder = if spawn { added.spawn() } else { added.inline() }.into_builder();
    }
    (builder.build().unwrap(), log)
}

/// A seeded run of spawned stages whose tasks run a lone stage they made ready themselves (a
/// chain's next stage, while the driver holds nothing waiting) starts its stages in the same
/// order run after run: random DAGs, sparse enough to hold chains, with mixed hints, one slot.
/// (It is also the inline run's order: see `with_one_slot_a_seed_starts_spawned_stages_in_the_inline_order`.)
#[test]
fn a_seeded_run_of_spawned_stages_running_lone_ready_stages_repeats_its_order() {
    let runtime = multi_thread();
    let one = NonZeroUsize::new(1).unwrap();
    for dag_seed in 0..12u64 {
        let dag = support::random_dag(40, 0.06, dag_seed);
        let (spawned, log) = recording_dag(&dag, true);
        for seed in [5u64, 6] {
            let options = || {
                RunOptions::default()
                    .with_seed(seed)
                    .with_max_concurrency(one)
            };
            let mut first = None;
            for _ in 0..3 {
                log.lock().clear();
                assert!(runtime.block_on(spawned.run_with(options())).is_success());
                let order = log.lock().clone();
                assert_eq!(order.len(), 40);
                let first = first.get_or_insert_with(|| order.clone());
                assert_eq!(*first, order, "dag {dag_seed}, seed {seed}");
            }
        }
    }
}

/// The start order of a seeded run of `dag` with `limit` slots on `runtime`: its stages inline,
/// then spawned.
fn inline_and_spawned_orders(
    runtime: &tokio::runtime::Runtime,
    dag: &[Vec<usize>],
    hints: &[u8],
    seed: u64,
    limit: usize,
) -> (Vec<String>, Vec<String>) {
    let options = || {
        RunOptions::default()
            .with_seed(seed)
            .with_max_concurrency(NonZeroUsize::new(limit).unwrap())
    };
    let mut orders = [true, false].map(|spawn| {
        let (pipeline, log) = recording_dag_hinted(dag, hints, spawn);
        assert!(runtime.block_on(pipeline.run_with(options())).is_success());
        let order = log.lock().clone();
        assert_eq!(order.len(), dag.len());
        order
    });
    let [spawned, inline] = std::mem::take(&mut orders);
    (inline, spawned)
}

/// A fan: a root, then `width` stages after it.
fn fan_dag(width: usize) -> Vec<Vec<usize>> {
    std::iter::once(vec![])
        .chain((0..width).map(|_| vec![0]))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// A seed fixes the order stages start in whatever each one's placement: with one slot,
    /// spawned stages (on the fleet, on a multi-thread runtime) start in the order inline ones do,
    /// on random DAGs with mixed scheduling hints (stages made ready together by their hints, then
    /// the seeded order among equal hints).
    #[test]
    fn with_one_slot_a_seed_starts_spawned_stages_in_the_inline_order(
        stages in 1usize..40,
        edge_probability in 0.0f64..0.3,
        dag_seed in any::<u64>(),
        hints in proptest::collection::vec(0u8..3, 1..8),
        seed in any::<u64>(),
    ) {
        let dag = support::random_dag(stages, edge_probability, dag_seed);
        let runtime = multi_thread();
        let (inline, spawned) = inline_and_spawned_orders(&runtime, &dag, &hints, seed, 1);
        prop_assert_eq!(spawned, inline);
    }

    /// With more than one slot, the order is defined where stages wait for slots together (a
    /// fan wider than the limit: by hints, then the seeded order) and spawned stages start in
    /// the order they are launched (a current-thread runtime): it is the inline order.
    #[test]
    fn with_slots_a_seed_starts_a_spawned_fan_in_the_inline_order(
        width in 1usize..60,
        limit in 2usize..8,
        hints in proptest::collection::vec(0u8..3, 1..8),
        seed in any::<u64>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (inline, spawned) = inline_and_spawned_orders(&runtime, &fan_dag(width), &hints, seed, limit);
        prop_assert_eq!(spawned, inline);
    }

    /// Without a limit, a seeded run's tasks launch the stages they make ready together (in the
    /// seeded order): on a current-thread runtime the start order is the same run after run.
    #[test]
    fn without_a_limit_a_seed_repeats_the_start_order_of_spawned_stages(
        stages in 1usize..60,
        edge_probability in 0.0f64..0.3,
        dag_seed in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let dag = support::random_dag(stages, edge_probability, dag_seed);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (spawned, log) = recording_dag_hinted(&dag, &[1], true);
        let mut first = None;
        for _ in 0..3 {
            log.lock().clear();
            prop_assert!(runtime.block_on(spawned.run_with(RunOptions::default().with_seed(seed))).is_success());
            let order = log.lock().clone();
            prop_assert_eq!(order.len(), stages);
            let first = first.get_or_insert_with(|| order.clone());
            prop_assert_eq!(&*first, &order);
        }
    }
}

#[tokio::test]
async fn a_seed_makes_the_order_of_ready_stages_reproducible() {
    let (pipeline, log) = recording_fan(30, |_| SchedulingHint::default());
    let mut orders = HashMap::new();
    for seed in [1u64, 2, 1, 2] {
        log.lock().clear();
        let report = pipeline
            .run_with(
                RunOptions::default()
                    .with_seed(seed)
                    .with_max_concurrency(NonZeroUsize::new(1).unwrap()),
            )
            .await;
        assert!(report.is_success());
        let order = log.lock().clone();
        if let Some(previous) = orders.insert(seed, order.clone()) {
            assert_eq!(previous, order, "same seed, same order");
        }
    }
    assert_ne!(
        orders[&1], orders[&2],
        "different seeds shuffle differently"
    );
    // Without a seed: declaration order.
    log.lock().clear();
    let _report = pipeline.run().await;
    let expected: Vec<String> = (0..30).map(name).collect();
    assert_eq!(*log.lock(), expected);
}

#[tokio::test]
async fn hints_order_ready_stages_when_slots_are_scarce() {
    let priorities = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ];
    let (pipeline, log) = recording_fan(12, |leaf| {
        SchedulingHint::new(priorities[leaf % 4], LatencyTier::Warm, ResourceCost::Light)
    });
    let report = pipeline
        .run_with(
            RunOptions::default()
                .with_seed(9)
                .with_max_concurrency(NonZeroUsize::new(1).unwrap()),
        )
        .await;
    assert!(report.is_success());
    let started: Vec<usize> = log
        .lock()
        .iter()
        .map(|name| name[1..].parse::<usize>().unwrap() % 4)
        .collect();
    assert_eq!(started, [3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0]);
}

#[tokio::test]
async fn a_long_chain_runs_without_stack_overflow() {
    let pipeline = support::chain(10_000);
    let report = pipeline.run().await;
    assert!(report.is_success());
    assert_eq!(report.count(StageStatus::is_success), 10_000);
}

#[tokio::test]
async fn a_wide_fan_runs() {
    let mut builder = Pipeline::builder().stage("root", noop).into_builder();
    let leaves: Vec<String> = (0..10_000).map(name).collect();
    for leaf in &leaves {
        builder = add(builder, leaf, &["root".to_owned()], noop);
    }
    let pipeline = add(builder, "sink", &leaves, noop).build().unwrap();
    let report = pipeline.run().await;
    assert!(report.is_success());
    assert_eq!(report.count(StageStatus::is_success), 10_002);
}

#[test]
fn heavy_stages_run_on_both_workers_at_once() {
    // Two heavy stages each wait until both are running: inline polling would deadlock them, so the
    // run only completes if they really run in parallel on the two workers.
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let heavy = SchedulingHint::new(Priority::Normal, LatencyTier::Warm, ResourceCost::Heavy);
    let mut builder = Pipeline::builder();
    for stage in ["left", "right"] {
        let barrier = barrier.clone();
        builder = builder
            .stage(stage, move |_: StageContext| {
                let barrier = barrier.clone();
                async move {
                    barrier.wait();
                    Ok::<_, StageError>(())
                }
            })
            .priority(heavy)
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    let report = multi_thread().block_on(pipeline.run());
    assert!(report.is_success());
}

#[tokio::test]
async fn the_report_exports_json() {
    #[derive(serde::Serialize)]
    struct Summary {
        lines: usize,
    }
    let pipeline = Pipeline::builder()
        .stage("count", |_: StageContext| async {
            Ok::<_, StageError>(Summary { lines: 42 })
        })
        .export()
        .stage("private", |_: StageContext| async {
            Ok::<_, StageError>(7u8)
        })
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(
        report.artifact_json("count").unwrap(),
        serde_json::json!({ "lines": 42 })
    );
    assert_eq!(
        report.artifact_json("private").unwrap_err(),
        ArtifactError::NotExported {
            stage: "private".into()
        }
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["outcome"], "succeeded");
    assert_eq!(json["artifacts"]["count"]["lines"], 42);
    assert!(json["artifacts"].get("private").is_none());
    assert_eq!(json["stages"][0]["name"], "count");
    assert_eq!(json["stages"][0]["status"]["status"], "succeeded");
    assert_eq!(json["stages"][0]["status"]["attempts"], 1);
}

#[test]
fn runs_outside_tokio_on_the_global_runtime() {
    // A timeout, a retry with backoff and a spawned stage all need a runtime; none is current here.
    let pipeline =
        Pipeline::builder()
            .stage("flaky", |ctx: StageContext| async move {
                if ctx.attempt() == 1 {
                    return Err(StageError::msg("again"));
                }
                tokio::task::yield_now().await;
                Ok::<_, StageError>(ctx.attempt())
            })
            .retry(hivekit_swarm::RetryPolicy::attempts(2).with_backoff(
                hivekit_swarm::Backoff::fixed(std::time::Duration::from_millis(1)),
            ))
            .timeout(std::time::Duration::from_secs(30))
            .stage("spawned", |ctx: StageContext| async move {
                Ok::<_, StageError>(*ctx.input::<u32>("flaky")? + 1)
            })
            .after(["flaky"])
            .spawn()
            .build()
            .unwrap();
    let report = futures::executor::block_on(
        pipeline.run_with(RunOptions::default().with_deadline(std::time::Duration::from_secs(60))),
    );
    assert!(report.is_success(), "{report}");
    assert_eq!(*report.artifact::<u32>("spawned").unwrap(), 3);
}
