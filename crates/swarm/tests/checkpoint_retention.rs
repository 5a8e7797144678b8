//! Retention never deletes the run being started nor a run in progress on the same handle.
//!
//! `Durable::start` applies the retention after creating its run: the run it starts counts among
//! `max_runs` and is never the one deleted, even when it sorts first among runs created in the
//! same millisecond (`runs()` orders ties by id). `max_runs(0)` keeps the started run alone (as
//! 1 does) and the run succeeds. Runs in progress on the handle (or a clone) are skipped, at
//! start and by `prune`. Before, `start` then `prune` deleted the oldest `excess` runs, the new
//! one included: with `max_runs(1)`, `z` then `a` in one millisecond deleted `a`, whose first
//! stage failed ("checkpoint store has no run `a`"), and `max_runs(0)` failed every run.

use std::sync::Arc;

use hivekit_swarm::checkpoint::{CheckpointStore, Durable, MemoryStore, Retention};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};
use tokio::sync::Notify;

fn pipeline() -> Pipeline {
    Pipeline::builder()
        .stage("work", |_: StageContext| async {
            Ok::<_, StageError>(7u64)
        })
        .durable()
        .stage("next", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u64>("work")? + 1)
        })
        .after(["work"])
        .durable()
        .build()
        .expect("valid durable pipeline")
}

fn kept(durable: &Durable) -> Vec<String> {
    durable
        .runs()
        .expect("runs")
        .into_iter()
        .map(|entry| entry.run)
        .collect()
}

#[tokio::test]
async fn a_run_started_right_after_another_under_max_runs_one_is_kept_and_succeeds() {
    // `z` then `a`, almost always in the same millisecond: `a` sorts first among the two.
    let durable = Durable::new(MemoryStore::new()).with_retention(Retention::max_runs(1));
    let pipeline = pipeline();
    let first = durable
        .start(&pipeline, "z", RunOptions::default())
        .await
        .expect("started");
    assert!(first.report().is_success());
    let second = durable
        .start(&pipeline, "a", RunOptions::default())
        .await
        .expect("started");
    assert!(second.report().is_success(), "{}", second.report());
    assert_eq!(kept(&durable), ["a"]);
}

#[tokio::test]
async fn the_started_run_is_kept_even_when_it_sorts_first() {
    let store = MemoryStore::new();
    // `z` created in the far future: the new run is the oldest by creation time.
    store.create_run("z", u64::MAX, b"{}").expect("create");
    let durable = Durable::new(store).with_retention(Retention::max_runs(1));
    let outcome = durable
        .start(&pipeline(), "a", RunOptions::default())
        .await
        .expect("started");
    assert!(outcome.report().is_success(), "{}", outcome.report());
    assert_eq!(kept(&durable), ["a"]);
}

#[tokio::test]
async fn a_retention_of_zero_runs_keeps_the_run_being_started_alone() {
    let durable = Durable::new(MemoryStore::new()).with_retention(Retention::max_runs(0));
    for run in ["first", "second"] {
        let outcome = durable
            .start(&pipeline(), run, RunOptions::default())
            .await
            .expect("started");
        assert!(outcome.report().is_success(), "{}", outcome.report());
        assert_eq!(kept(&durable), [run]);
    }
    // On demand, zero means none (no run is in progress).
    assert_eq!(durable.prune().expect("prune"), 1);
    assert!(kept(&durable).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_progress_on_the_handle_is_not_deleted_by_another_start() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (entered_tx, release_rx) = (entered.clone(), release.clone());
    let slow = Pipeline::builder()
        .stage("wait", move |_: StageContext| {
            let (entered, release) = (entered_tx.clone(), release_rx.clone());
            async move {
                entered.notify_one();
                release.notified().await;
                Ok::<_, StageError>(1u64)
            }
        })
        .durable()
        .stage("after", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u64>("wait")? + 1)
        })
        .after(["wait"])
        .durable()
        .build()
        .expect("valid durable pipeline");
    let durable = Durable::new(MemoryStore::new()).with_retention(Retention::max_runs(1));
    let running = {
        let durable = durable.clone();
        tokio::spawn(async move {
            durable
                .start(&slow, "slow", RunOptions::default())
                .await
                .expect("started")
        })
    };
    entered.notified().await;
    let quick = durable
        .start(&pipeline(), "quick", RunOptions::default())
        .await
        .expect("started");
    assert!(quick.report().is_success(), "{}", quick.report());
    let mut both = kept(&durable);
    both.sort();
    assert_eq!(both, ["quick", "slow"], "both kept while `slow` runs");
    assert_eq!(durable.prune().expect("prune"), 1, "`quick` has ended");
    assert_eq!(kept(&durable), ["slow"]);
    release.notify_one();
    let slow = running.await.expect("no panic");
    assert!(slow.report().is_success(), "{}", slow.report());
    // Ended: a later start deletes it.
    let later = durable
        .start(&pipeline(), "later", RunOptions::default())
        .await
        .expect("started");
    assert!(later.report().is_success(), "{}", later.report());
    assert_eq!(kept(&durable), ["later"]);
    assert!(durable.store().load_run("slow").expect("load").is_none());
}
