//! Temporal's workflow-id tests, ported to run ids: one id runs once however many starters race
//! for it; an id in use is refused until its run is deleted; an id freed (deleted by hand or by
//! the retention policy when it succeeded) starts a fresh run that reads nothing of the old one,
//! not even its fan-out items or loop iterations.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use hivekit_swarm::checkpoint::{
    CheckpointError, CheckpointStore, Durable, MemoryStore, RedbStore, Retention,
};
use hivekit_swarm::{
    FanOut, Iteration, LoopPolicy, LoopReport, Pipeline, RunInput, RunOptions, StageContext,
    StageError,
};

/// items: a durable fan-out over three items scaled by the run's input; rounds: a two-iteration
/// loop whose body doubles the input; `item_runs`/`body_runs` count what really ran.
fn pipeline(item_runs: Arc<AtomicU32>, body_runs: Arc<AtomicU32>) -> Pipeline {
    let body = Pipeline::builder()
        .stage("step", move |ctx: StageContext| {
            let body_runs = body_runs.clone();
            async move {
                body_runs.fetch_add(1, Ordering::SeqCst);
                let iteration = ctx.run_input::<Iteration>()?;
                let scale = *iteration.parent().run_input::<u64>()?;
                Ok::<_, StageError>(scale * u64::from(iteration.number()))
            }
        })
        .durable()
        .build()
        .expect("a valid body");
    Pipeline::builder()
        .stage("items", move |ctx: StageContext| {
            let item_runs = item_runs.clone();
            async move {
                let scale = *ctx.run_input::<u64>()?;
                let items = ctx
                    .durable_fan_out([1_u64, 2, 3], FanOut::new(2), |item| {
                        let item_runs = item_runs.clone();
                        async move {
                            item_runs.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, StageError>(item * scale)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(items.into_successes().collect::<Vec<u64>>())
            }
        })
        .durable()
        .repeat("rounds", body, LoopPolicy::new(2))
        .build()
        .expect("a valid pipeline")
}

fn options(scale: u64) -> RunOptions {
    RunOptions::default().with_run_input(RunInput::serializable(scale))
}

fn steps(report: &hivekit_swarm::RunReport) -> Vec<u64> {
    report
        .artifact::<LoopReport>("rounds")
        .expect("looped")
        .iterations
        .iter()
        .map(|iteration| *iteration.artifact::<u64>("step").expect("stepped"))
        .collect()
}

async fn a_deleted_id_starts_afresh(store: impl CheckpointStore) {
    let (item_runs, body_runs) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let pipeline = pipeline(item_runs.clone(), body_runs.clone());
    let durable = Durable::new(store).with_input::<u64>();

    let first = durable
        .start(&pipeline, "order-7", options(1))
        .await
        .expect("the run starts")
        .into_report();
    assert!(first.is_success(), "{first:?}");
    assert_eq!(
        *first.artifact::<Vec<u64>>("items").expect("items"),
        [1, 2, 3]
    );
    assert_eq!(steps(&first), [1, 2]);

    // The id is taken while the run is stored, whatever state it is in.
    let again = durable.start(&pipeline, "order-7", options(10)).await;
    assert!(
        matches!(again, Err(CheckpointError::RunExists { .. })),
        "{again:?}"
    );
    assert_eq!(
        durable.inspect("order-7").expect("stored").input,
        Some(serde_json::json!(1)),
        "the refused start left the run as it was"
    );

    assert!(durable.delete("order-7").expect("deleted"));
    assert!(!durable
        .delete("order-7")
        .expect("a second delete finds nothing"));
    let unknown = durable
        .resume(&pipeline, "order-7", RunOptions::default())
        .await;
    assert!(
        matches!(unknown, Err(CheckpointError::UnknownRun { .. })),
        "{unknown:?}"
    );

    let fresh = durable
        .start(&pipeline, "order-7", options(10))
        .await
        .expect("the freed id starts")
        .into_report();
    assert!(fresh.is_success(), "{fresh:?}");
    assert!(fresh.stages().iter().all(|stage| !stage.resumed));
    assert_eq!(
        *fresh.artifact::<Vec<u64>>("items").expect("items"),
        [10, 20, 30],
        "no item of the deleted run was read back"
    );
    assert_eq!(
        steps(&fresh),
        [10, 20],
        "no iteration of the deleted run was read back"
    );
    assert_eq!(item_runs.load(Ordering::SeqCst), 6);
    assert_eq!(body_runs.load(Ordering::SeqCst), 4);
    assert_eq!(durable.runs().expect("listed").len(), 1);
}

#[tokio::test]
async fn a_deleted_run_id_starts_a_fresh_run_that_reads_nothing_of_the_old_one_in_memory() {
    a_deleted_id_starts_afresh(MemoryStore::new()).await;
}

#[tokio::test]
async fn a_deleted_run_id_starts_a_fresh_run_that_reads_nothing_of_the_old_one_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    a_deleted_id_starts_afresh(RedbStore::open(dir.path().join("runs.redb")).expect("opens")).await;
}

#[tokio::test]
async fn a_succeeded_run_deleted_by_retention_frees_its_id_and_a_failed_one_keeps_it() {
    let healthy = Arc::new(AtomicU32::new(1));
    let pipeline = {
        let healthy = healthy.clone();
        Pipeline::builder()
            .stage("job", move |_: StageContext| {
                let healthy = healthy.clone();
                async move {
                    match healthy.load(Ordering::SeqCst) {
                        0 => Err(StageError::msg("down")),
                        _ => Ok::<_, StageError>(()),
                    }
                }
            })
            .build()
            .expect("a valid pipeline")
    };
    let durable =
        Durable::new(MemoryStore::new()).with_retention(Retention::max_runs(16).delete_succeeded());
    for round in 0..3 {
        let report = durable
            .start(&pipeline, "nightly", RunOptions::default())
            .await
            .unwrap_or_else(|error| panic!("round {round}: the id is free again: {error}"))
            .into_report();
        assert!(report.is_success());
        assert!(durable.runs().expect("listed").is_empty(), "round {round}");
    }

    healthy.store(0, Ordering::SeqCst);
    let failed = durable
        .start(&pipeline, "nightly", RunOptions::default())
        .await
        .expect("starts")
        .into_report();
    assert!(!failed.is_success());
    let taken = durable
        .start(&pipeline, "nightly", RunOptions::default())
        .await;
    assert!(
        matches!(taken, Err(CheckpointError::RunExists { .. })),
        "a failed run keeps its id: {taken:?}"
    );
    healthy.store(1, Ordering::SeqCst);
    let resumed = durable
        .resume(&pipeline, "nightly", RunOptions::default())
        .await
        .expect("the failed run resumes")
        .into_report();
    assert!(resumed.is_success());
    assert!(
        durable.runs().expect("listed").is_empty(),
        "deleted once it succeeded on its resume"
    );
}

#[test]
fn one_run_id_raced_by_many_starters_on_two_handles_runs_its_stages_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    for round in 0..20 {
        let calls = Arc::new(AtomicU32::new(0));
        let pipeline = {
            let calls = calls.clone();
            Pipeline::builder()
                .stage("charge", move |_: StageContext| {
                    let calls = calls.clone();
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, StageError>(42_u32)
                    }
                })
                .durable()
                .build()
                .expect("a valid pipeline")
        };
        let store = MemoryStore::new();
        // Two workers: handles that do not see each other's runs in progress.
        let handles = [Durable::new(store.clone()), Durable::new(store.clone())];
        let outcomes: Vec<Result<bool, String>> = runtime.block_on(async {
            let starters: Vec<_> = (0..16)
                .map(|starter| {
                    let durable = handles[starter % 2].clone();
                    let pipeline = pipeline.clone();
                    tokio::spawn(async move {
                        match durable
                            .start(&pipeline, "payment", RunOptions::default())
                            .await
                        {
                            Ok(outcome) => Ok(outcome.report().is_success()),
                            Err(CheckpointError::RunExists { .. }) => Err("exists".to_owned()),
                            Err(other) => Err(other.to_string()),
                        }
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for starter in starters {
                outcomes.push(starter.await.expect("no starter panicked"));
            }
            outcomes
        });
        let started = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(started, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes.iter().all(|outcome| match outcome {
                Ok(success) => *success,
                Err(error) => error == "exists",
            }),
            "round {round}: {outcomes:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1, "round {round}");
    }
}
