//! A checkpoint resumed with a pipeline whose definition changed (LangGraph: a graph edited
//! between a crash and its resume): a typed error naming the stage when the change matters, and
//! a resume as before when the definition is the same graph written differently.

use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, MemoryStore};
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
async fn a_removed_dependency_an_added_stage_and_a_changed_artifact_type_are_named() {
    let durable = Durable::new(MemoryStore::new());
    failed_run(&durable, &join(["a", "b"], true)).await;

    let fewer = Pipeline::builder()
        .stage("a", number)
        .durable()
        .stage("b", number)
        .durable()
        .stage("join", number)
        .durable()
        .after(["a"])
        .build()
        .unwrap();
    let error = durable
        .resume(&fewer, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        error,
        CheckpointError::ShapeMismatch {
            run: "r".to_owned(),
            difference:
                "stage `join` runs after [a, b] in the checkpoint but after [a] in the pipeline"
                    .to_owned()
        }
    );

    let retyped = Pipeline::builder()
        .stage("a", number)
        .durable()
        .stage("b", |_: StageContext| async {
            Ok::<_, StageError>(String::new())
        })
        .durable()
        .stage("join", number)
        .durable()
        .after(["a", "b"])
        .build()
        .unwrap();
    let error = durable
        .resume(&retyped, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CheckpointError::ShapeMismatch { difference, .. }
            if difference.starts_with("stage `b` has artifact type `u32` in the checkpoint but `")),
        "{error}"
    );

    let removed = Pipeline::builder()
        .stage("a", number)
        .durable()
        .stage("b", number)
        .durable()
        .build()
        .unwrap();
    let error = durable
        .resume(&removed, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CheckpointError::ShapeMismatch { difference, .. }
            if difference.ends_with("(first missing: `join`)")),
        "{error}"
    );
    // The failed resumes changed nothing: the right pipeline still resumes.
    let resumed = bounded(durable.resume(&join(["a", "b"], false), "r", RunOptions::default()))
        .await
        .expect("resumed");
    assert!(resumed.report().is_success(), "{resumed:?}");
}

// Dependencies are a set in a checkpoint's shape (qa4's case: the resume failed ShapeMismatch
// "runs after [a, b] in the checkpoint but after [b, a]").
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
