//! Dependencies are a set in a checkpoint's shape: `after(["b", "a"])` resumes a checkpoint of
//! `after(["a", "b"])`. Before, the resume failed `ShapeMismatch` ("runs after [a, b] in the
//! checkpoint but after [b, a]").

use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("ended in time")
}

fn number(_: StageContext) -> std::future::Ready<Result<u32, StageError>> {
    std::future::ready(Ok(1))
}

fn failing(_: StageContext) -> std::future::Ready<Result<u32, StageError>> {
    std::future::ready(Err(StageError::permanent("not yet")))
}

/// `a`, `b`, then `join` after both (listed in `order`), `join` failing on the first run.
fn join(order: [&str; 2], broken: bool) -> Pipeline {
    Pipeline::builder()
        .stage("a", number)
        .durable()
        .stage("b", number)
        .durable()
        .stage("join", if broken { failing } else { number })
        .durable()
        .after(order)
        .build()
        .unwrap()
}

async fn failed_run(durable: &Durable, pipeline: &Pipeline) {
    let first = bounded(durable.start(pipeline, "r", RunOptions::default()))
        .await
        .expect("started");
    assert!(!first.report().is_success());
}

#[tokio::test]
async fn listing_the_same_dependencies_in_another_order_is_the_same_pipeline() {
    let durable = Durable::new(MemoryStore::new());
    failed_run(&durable, &join(["a", "b"], true)).await;
    let resumed = bounded(durable.resume(&join(["b", "a"], false), "r", RunOptions::default()))
        .await
        .expect("the same graph resumes");
    assert!(resumed.report().is_success(), "{resumed:?}");
    assert!(resumed.report().stage("a").unwrap().resumed);
}
