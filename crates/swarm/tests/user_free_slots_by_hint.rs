//! Review: with two slots, the dependents that start first when a stage ends are the highest-hinted ones, spawned or inline, seeded or not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::{
    ConcurrencyLimit, Pipeline, Priority, RunOptions, SchedulingHint, StageContext, StageError,
};

type Log = Arc<Mutex<Vec<String>>>;

/// A root, then three dependents declared normal, low, high; each dependent logs its start and
/// waits for the gate.
fn fan(log: &Log, gate: &tokio::sync::watch::Receiver<bool>, spawned: bool) -> Pipeline {
    let mut root =
        Pipeline::builder().stage("root", |_: StageContext| async { Ok::<_, StageError>(()) });
    if spawned {
        root = root.spawn();
    }
    let mut builder: hivekit_swarm::PipelineBuilder = root.into();
    for (name, priority) in [
        ("normal", Priority::Normal),
        ("low", Priority::Low),
        ("high", Priority::High),
    ] {
        let (log, gate) = (log.clone(), gate.clone());
        let mut next = builder
            .stage(name, move |_: StageContext| {
                log.lock().unwrap().push(name.to_owned());
                let mut gate = gate.clone();
                async move {
                    let _ = gate.wait_for(|open| *open).await;
                    Ok::<_, StageError>(())
                }
            })
            .after(["root"])
            .priority(SchedulingHint::with_priority(priority));
        if spawned {
            next = next.spawn();
        }
        builder = next.into();
    }
    builder.build().expect("a valid pipeline")
}

async fn first_two(spawned: bool, seed: Option<u64>) -> Vec<String> {
    let log: Log = Arc::default();
    let (open, gate) = tokio::sync::watch::channel(false);
    let pipeline = fan(&log, &gate, spawned);
    let mut options = RunOptions::default().with_max_concurrency(ConcurrencyLimit::new(2).unwrap());
    options.seed = seed;
    let run = tokio::spawn(async move { pipeline.run_with(options).await });
    tokio::time::timeout(Duration::from_secs(5), async {
        while log.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("two dependents started");
    let mut first: Vec<String> = log.lock().unwrap().clone();
    open.send_replace(true);
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run ends")
        .unwrap();
    assert!(report.is_success(), "{report}");
    first.truncate(2);
    first.sort();
    first
}

fn expected() -> Vec<String> {
    vec!["high".to_owned(), "normal".to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_unseeded() {
    for round in 0..10 {
        assert_eq!(first_two(false, None).await, expected(), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_seeded() {
    for seed in 0..10 {
        assert_eq!(
            first_two(false, Some(seed)).await,
            expected(),
            "seed {seed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_unseeded() {
    for round in 0..10 {
        assert_eq!(first_two(true, None).await, expected(), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_seeded() {
    for seed in 0..10 {
        assert_eq!(first_two(true, Some(seed)).await, expected(), "seed {seed}");
    }
}
