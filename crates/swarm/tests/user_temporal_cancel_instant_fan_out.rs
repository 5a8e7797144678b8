//! Temporal cancels a workflow's pending activities as soon as the workflow is cancelled. Here: a
//! run cancelled while a (durable) fan-out is under way stops that fan-out at once, even when its
//! items finish on their first poll (cached results, cheap CPU work), as a loop's iterations and a
//! fan-out's failing retries already do (each spends a unit of tokio's cooperative budget so the
//! run sees its cancellation).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    CancellationToken, FanOut, Pipeline, RunOptions, StageContext, StageError, StageStatus,
};

const ITEMS: usize = 10_000;
const CANCEL_AT: usize = 100;
/// Items a fan-out may still start after the cancellation: one cooperative budget (128 units)
/// and the width, with room to spare.
const SLACK: usize = 500;

fn pipeline(durable_items: bool, started: Arc<AtomicUsize>, cancel: CancellationToken) -> Pipeline {
    Pipeline::builder()
        .stage("score", move |ctx: StageContext| {
            let (started, cancel) = (started.clone(), cancel.clone());
            async move {
                let item = move |item: usize| {
                    let (started, cancel) = (started.clone(), cancel.clone());
                    async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        if item == CANCEL_AT {
                            cancel.cancel();
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, StageError>(item as u64)
                    }
                };
                let scores = match durable_items {
                    true => ctx.durable_fan_out(0..ITEMS, FanOut::new(8), item).await?,
                    false => ctx.fan_out(0..ITEMS, FanOut::new(8), item).await?,
                };
                Ok::<_, StageError>(scores.into_successes().sum::<u64>())
            }
        })
        .durable()
        .build()
        .expect("a valid pipeline")
}

async fn stops_soon_after_the_cancellation(durable_items: bool) {
    let started = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let pipeline = pipeline(durable_items, started.clone(), cancel.clone());
    let durable = Durable::new(MemoryStore::new());
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(
            &pipeline,
            "scores",
            RunOptions::default().with_cancel(cancel),
        ),
    )
    .await
    .expect("the run ends")
    .expect("starts")
    .into_report();
    assert_eq!(report.status("score"), Some(&StageStatus::Cancelled));
    let started = started.load(Ordering::SeqCst);
    assert!(
        started <= CANCEL_AT + 1 + SLACK,
        "the run was cancelled at item {CANCEL_AT}, yet {started} of {ITEMS} items ran"
    );
}

#[tokio::test]
async fn a_durable_fan_out_of_instant_items_stops_at_the_runs_cancellation() {
    stops_soon_after_the_cancellation(true).await;
}

#[tokio::test]
async fn a_plain_fan_out_of_instant_items_stops_at_the_runs_cancellation() {
    stops_soon_after_the_cancellation(false).await;
}
