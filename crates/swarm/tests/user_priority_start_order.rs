//! When slots are scarce, ready stages start by their priority hints, inline or spawned, seeded or not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::{
    ConcurrencyLimit, Pipeline, Priority, RunOptions, SchedulingHint, StageContext, StageError,
};

type Log = Arc<Mutex<Vec<String>>>;

/// A root, then four dependents declared lowest priority first; optionally every stage spawned.
fn fan(log: &Log, spawned: bool) -> Pipeline {
    let stage = |name: &'static str, log: Log| {
        move |_: StageContext| {
            log.lock().unwrap().push(name.to_owned());
            async { Ok::<_, StageError>(()) }
        }
    };
    let mut root = Pipeline::builder().stage("root", stage("root", log.clone()));
    if spawned {
        root = root.spawn();
    }
    let mut builder: hivekit_swarm::PipelineBuilder = root.into();
    for (name, priority) in [
        ("low", Priority::Low),
        ("normal", Priority::Normal),
        ("high", Priority::High),
        ("critical", Priority::Critical),
    ] {
        let mut next = builder
            .stage(name, stage(name, log.clone()))
            .after(["root"])
            .priority(SchedulingHint::with_priority(priority));
        if spawned {
            next = next.spawn();
        }
        builder = next.into();
    }
    builder.build().expect("a valid pipeline")
}

async fn order(spawned: bool, seed: Option<u64>) -> Vec<String> {
    let log: Log = Arc::default();
    let pipeline = fan(&log, spawned);
    let mut options = RunOptions::default().with_max_concurrency(ConcurrencyLimit::new(1).unwrap());
    options.seed = seed;
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run_with(options))
        .await
        .expect("the run ends");
    assert!(report.is_success(), "{report}");
    let order = log.lock().unwrap().clone();
    order
}

const EXPECTED: [&str; 5] = ["root", "critical", "high", "normal", "low"];

#[tokio::test]
async fn inline_stages_waiting_for_one_slot_start_by_priority() {
    assert_eq!(order(false, None).await, EXPECTED);
    for seed in 0..20 {
        assert_eq!(order(false, Some(seed)).await, EXPECTED, "seed {seed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_stages_waiting_for_one_slot_start_by_priority() {
    for round in 0..20 {
        assert_eq!(order(true, None).await, EXPECTED, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_spawned_stages_waiting_for_one_slot_start_by_priority() {
    for seed in 0..20 {
        assert_eq!(order(true, Some(seed)).await, EXPECTED, "seed {seed}");
    }
}

#[tokio::test]
async fn spawned_stages_on_a_current_thread_runtime_start_by_priority() {
    for round in 0..5 {
        assert_eq!(order(true, None).await, EXPECTED, "round {round}");
    }
}
