//! Durable runs: retention on resume, retries around interrupts, the attempts of a restored
//! stage, an unserializable resume value, and pruning.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{CheckpointError, Durable, MemoryStore, Retention};
use hivekit_swarm::{Pipeline, RetryPolicy, RunOptions, StageContext, StageError, StageStatus};

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("no hang")
}

/// `Retention::delete_succeeded`: "a run that ends successfully is deleted at once" — also when
/// it ends successfully on a resume after an interrupt.
#[tokio::test]
async fn delete_succeeded_deletes_a_run_that_succeeds_on_its_resume() {
    let pipeline = Pipeline::builder()
        .stage("ask", |ctx: StageContext| async move {
            match ctx.resume_value::<u32>()? {
                Some(v) => Ok::<_, StageError>(v),
                None => Err(ctx.interrupt("need a number")),
            }
        })
        .durable()
        .build()
        .expect("valid");
    let durable =
        Durable::new(MemoryStore::new()).with_retention(Retention::max_runs(10).delete_succeeded());
    let first = bounded(durable.start(&pipeline, "job", RunOptions::default()))
        .await
        .expect("starts");
    assert_eq!(first.interrupted_stage(), Some("ask"));
    assert_eq!(
        durable.runs().unwrap().len(),
        1,
        "an interrupted run is kept"
    );
    let second = bounded(durable.resume_with(&pipeline, "job", 4u32, RunOptions::default()))
        .await
        .expect("resumes");
    assert!(second.report().is_success());
    assert!(durable.runs().unwrap().is_empty(), "succeeded run deleted");
}

/// `StageError::Interrupted` is "never retried": a stage with a retry policy that interrupts
/// runs once, and its report is Interrupted with one attempt.
#[tokio::test]
async fn an_interrupting_stage_with_retries_is_not_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("ask", move |ctx: StageContext| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                match ctx.resume_value::<u32>()? {
                    Some(v) => Ok::<_, StageError>(v),
                    None => Err(ctx.interrupt("need a number")),
                }
            }
        })
        .durable()
        .retry(
            RetryPolicy::attempts(3)
                .with_backoff(hivekit_swarm::Backoff::fixed(Duration::from_millis(1))),
        )
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let first = bounded(durable.start(&pipeline, "job", RunOptions::default()))
        .await
        .expect("starts");
    assert_eq!(first.interrupted_stage(), Some("ask"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "interrupt retried");
    let stage = first.report().stage("ask").unwrap();
    assert!(
        matches!(stage.status, StageStatus::Interrupted { attempts: 1, .. }),
        "{:?}",
        stage.status
    );
    assert!(
        stage.failed_attempts.is_empty(),
        "{:?}",
        stage.failed_attempts
    );
    let second = bounded(durable.resume_with(&pipeline, "job", 4u32, RunOptions::default()))
        .await
        .expect("resumes");
    assert_eq!(*second.report().artifact::<u32>("ask").unwrap(), 4);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A stage that succeeded on its second attempt, restored by a resume: its report keeps the
/// attempts and the failed attempt ("the report equals an uninterrupted run's").
#[tokio::test]
async fn a_restored_stage_keeps_its_attempts_and_failed_attempts() {
    let tries = Arc::new(AtomicUsize::new(0));
    let counter = tries.clone();
    let pipeline = Pipeline::builder()
        .stage("flaky", move |_: StageContext| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if n == 0 {
                Err(StageError::msg("first try fails"))
            } else {
                Ok::<_, StageError>(n as u64)
            })
        })
        .durable()
        .retry(
            RetryPolicy::attempts(3)
                .with_backoff(hivekit_swarm::Backoff::fixed(Duration::from_millis(1))),
        )
        .stage("ask", |ctx: StageContext| async move {
            match ctx.resume_value::<u32>()? {
                Some(v) => Ok::<_, StageError>(v),
                None => Err(ctx.interrupt("need a number")),
            }
        })
        .durable()
        .after(["flaky"])
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let first = bounded(durable.start(&pipeline, "job", RunOptions::default()))
        .await
        .expect("starts");
    let before = first.report().stage("flaky").unwrap().clone();
    assert_eq!(before.status, StageStatus::Succeeded { attempts: 2 });
    let second = bounded(durable.resume_with(&pipeline, "job", 4u32, RunOptions::default()))
        .await
        .expect("resumes");
    let after = second.report().stage("flaky").unwrap();
    assert!(after.resumed);
    assert_eq!(after.status, before.status);
    assert_eq!(after.failed_attempts.len(), before.failed_attempts.len());
    assert_eq!(tries.load(Ordering::SeqCst), 2);
}

/// A resume value that cannot be serialized is a typed error and leaves the run answerable.
#[tokio::test]
async fn an_unserializable_resume_value_is_typed_and_the_run_can_still_be_answered() {
    let pipeline = Pipeline::builder()
        .stage("ask", |ctx: StageContext| async move {
            match ctx.resume_value::<u32>()? {
                Some(v) => Ok::<_, StageError>(v),
                None => Err(ctx.interrupt("need a number")),
            }
        })
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let _ = bounded(durable.start(&pipeline, "job", RunOptions::default()))
        .await
        .expect("starts");
    let mut bad = std::collections::HashMap::new();
    bad.insert((1u8, 2u8), 3u8);
    let error = bounded(durable.resume_with(&pipeline, "job", bad, RunOptions::default()))
        .await
        .expect_err("a map with tuple keys has no JSON");
    assert!(
        matches!(&error, CheckpointError::ValueNotSerializable { run, .. } if run == "job"),
        "{error:?}"
    );
    let ok = bounded(durable.resume_with(&pipeline, "job", 9u32, RunOptions::default()))
        .await
        .expect("resumes");
    assert_eq!(*ok.report().artifact::<u32>("ask").unwrap(), 9);
}

/// `prune` deletes the oldest runs beyond `max_runs` and keeps the newest, in start order.
#[tokio::test]
async fn prune_keeps_the_newest_runs() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| {
            std::future::ready(Ok::<_, StageError>(1u8))
        })
        .durable()
        .build()
        .expect("valid");
    let store = MemoryStore::new();
    let wide = Durable::new(store.clone());
    for id in ["e", "d", "c", "b", "a"] {
        let _ = bounded(wide.start(&pipeline, id, RunOptions::default()))
            .await
            .expect("starts");
    }
    let narrow = Durable::new(store).with_retention(Retention::max_runs(2));
    assert_eq!(narrow.prune().unwrap(), 3);
    let left: Vec<String> = narrow.runs().unwrap().into_iter().map(|e| e.run).collect();
    assert_eq!(left, ["b", "a"]);
}
