//! Durable runs at the edges of their store (LangGraph's checkpointer tests): the store file
//! opened twice or damaged, a run deleted (by hand or by another handle's retention) while it
//! runs, an interrupted run cancelled before it is answered, and unknown run ids.

#[path = "support/gate.rs"]
mod gate;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{
    CheckpointError, CheckpointStore, Durable, DurableOutcome, MemoryStore, RedbStore, Retention,
    StoreError,
};
use hivekit_swarm::{
    Pipeline, RunOptions, RunOutcome, SkipReason, StageContext, StageError, StageStatus,
};
use tokio_util::sync::CancellationToken;

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("ended in time")
}

/// `first -> held -> last`, `held` waiting at the gate; each stage counts its runs.
fn held_chain(latch: gate::Latch, runs: Arc<[AtomicUsize; 3]>) -> Pipeline {
    let (r0, r1, r2) = (runs.clone(), runs.clone(), runs);
    Pipeline::builder()
        .stage("first", move |_: StageContext| {
            let runs = r0.clone();
            async move {
                runs[0].fetch_add(1, Ordering::SeqCst);
                Ok::<_, StageError>(1_u32)
            }
        })
        .durable()
        .stage("held", move |ctx: StageContext| {
            let (runs, latch) = (r1.clone(), latch.clone());
            async move {
                runs[1].fetch_add(1, Ordering::SeqCst);
                latch.pass("held").await;
                Ok::<_, StageError>(*ctx.input::<u32>("first")? + 1)
            }
        })
        .durable()
        .after(["first"])
        .stage("last", move |ctx: StageContext| {
            let runs = r2.clone();
            async move {
                runs[2].fetch_add(1, Ordering::SeqCst);
                Ok::<_, StageError>(*ctx.input::<u32>("held")? + 1)
            }
        })
        .durable()
        .after(["held"])
        .build()
        .unwrap()
}

fn counts(runs: &[AtomicUsize; 3]) -> [usize; 3] {
    [0, 1, 2].map(|at| runs[at].load(Ordering::SeqCst))
}

#[test]
fn a_redb_file_opened_twice_in_one_process_is_a_typed_error_and_reopens_once_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.redb");
    let first = RedbStore::open(&path).expect("opened");
    first.create_run("r", 1, b"header").unwrap();
    let second = RedbStore::open(&path);
    assert!(
        matches!(&second, Err(StoreError::Open { path: at, .. }) if at.ends_with("runs.redb")),
        "{second:?}"
    );
    // A clone shares the open database and sees the run.
    assert!(first.clone().load_run("r").unwrap().is_some());
    drop(first);
    let again = RedbStore::open(&path).expect("reopened once the first handle is gone");
    assert_eq!(again.load_run("r").unwrap().unwrap().header, b"header");
}

#[test]
fn a_store_file_cut_to_a_few_bytes_is_refused_or_read_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.redb");
    drop(RedbStore::open(&path).unwrap());
    let whole = std::fs::read(&path).unwrap();
    for keep in [0, 1, 100] {
        let cut = dir.path().join(format!("cut-{keep}.redb"));
        std::fs::write(&cut, &whole[..keep]).unwrap();
        // Either a typed error at open, or a store whose reads give runs or typed errors.
        if let Ok(store) = RedbStore::open(&cut) {
            let _ = store.runs();
            let _ = store.load_run("r");
            let _ = store.create_run("new", 99, b"h");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_deleted_while_a_stage_runs_fails_that_stage_at_its_checkpoint_and_ends() {
    let (gate, latch) = gate::gate();
    let runs = Arc::new([0, 0, 0].map(AtomicUsize::new));
    let pipeline = held_chain(latch, runs.clone());
    let durable = Durable::new(MemoryStore::new());
    let run = tokio::spawn({
        let (durable, pipeline) = (durable.clone(), pipeline.clone());
        async move { durable.start(&pipeline, "r", RunOptions::default()).await }
    });
    assert_eq!(gate.reached().await, "held");
    assert!(durable.delete("r").unwrap(), "the run existed");
    gate.open(1);
    let outcome = bounded(run).await.unwrap().expect("started");
    let report = outcome.report();
    assert_eq!(report.outcome(), RunOutcome::Failed, "{report:?}");
    let Some(StageStatus::Failed { error, .. }) = report.status("held") else {
        panic!("held fails at its checkpoint: {report:?}");
    };
    assert!(
        error.to_string().contains("checkpoint write failed") && error.to_string().contains("`r`"),
        "{error}"
    );
    assert!(
        matches!(
            report.status("last"),
            Some(StageStatus::Skipped {
                because: SkipReason::Dependency { .. }
            })
        ),
        "{report:?}"
    );
    assert_eq!(counts(&runs), [1, 1, 0]);
    let resumed = durable
        .resume(&pipeline, "r", RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        resumed,
        CheckpointError::UnknownRun {
            run: "r".to_owned()
        }
    );
    // The id is free again: a new start runs everything.
    let again = bounded(async {
        let run = durable.start(&pipeline, "r", RunOptions::default());
        gate.open(1);
        run.await
    })
    .await
    .expect("started again");
    assert!(again.report().is_success(), "{again:?}");
    assert_eq!(*again.report().artifact::<u32>("last").unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_handles_retention_deleting_a_running_run_fails_it_at_its_next_checkpoint() {
    let (gate, latch) = gate::gate();
    let runs = Arc::new([0, 0, 0].map(AtomicUsize::new));
    let pipeline = held_chain(latch, runs.clone());
    let store = MemoryStore::new();
    let mine = Durable::new(store.clone());
    let theirs = Durable::new(store.clone()).with_retention(Retention::max_runs(1));
    let run = tokio::spawn({
        let (mine, pipeline) = (mine.clone(), pipeline.clone());
        async move { mine.start(&pipeline, "mine", RunOptions::default()).await }
    });
    assert_eq!(gate.reached().await, "held");
    let quick = Pipeline::builder()
        .stage("only", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build()
        .unwrap();
    let _ = bounded(theirs.start(&quick, "theirs", RunOptions::default()))
        .await
        .expect("started");
    let listed: Vec<String> = store
        .runs()
        .unwrap()
        .into_iter()
        .map(|entry| entry.run)
        .collect();
    assert_eq!(
        listed,
        ["theirs"],
        "the other handle cannot tell `mine` is running"
    );
    gate.open(1);
    let outcome = bounded(run).await.unwrap().expect("started");
    assert!(
        matches!(
            outcome.report().status("held"),
            Some(StageStatus::Failed { .. })
        ),
        "{outcome:?}"
    );
    assert_eq!(counts(&runs), [1, 1, 0]);
}

/// `ask` interrupts until it is handed a string; `side` runs beside it.
fn approval(asks: Arc<AtomicUsize>) -> Pipeline {
    Pipeline::builder()
        .stage("ask", move |ctx: StageContext| {
            let asks = asks.clone();
            async move {
                asks.fetch_add(1, Ordering::SeqCst);
                match ctx.resume_value::<String>()? {
                    Some(who) => Ok::<_, StageError>(format!("approved by {who}")),
                    None => Err(ctx.interrupt("approve?")),
                }
            }
        })
        .durable()
        .stage("publish", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!("published, {}", ctx.input::<String>("ask")?))
        })
        .durable()
        .after(["ask"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_interrupted_run_resumed_cancelled_still_takes_its_answer_afterwards() {
    let asks = Arc::new(AtomicUsize::new(0));
    let pipeline = approval(asks.clone());
    let durable = Durable::new(MemoryStore::new());
    let first = bounded(durable.start(&pipeline, "r", RunOptions::default()))
        .await
        .unwrap();
    assert_eq!(first.interrupted_stage(), Some("ask"));

    // A resume whose token is already cancelled runs nothing and reports the run cancelled.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let cancelled = bounded(durable.resume_with(
        &pipeline,
        "r",
        "ada",
        RunOptions::default().with_cancel(cancel),
    ))
    .await
    .expect("resumed");
    assert!(
        matches!(cancelled, DurableOutcome::Finished(_)),
        "{cancelled:?}"
    );
    assert_eq!(cancelled.report().outcome(), RunOutcome::Cancelled);
    assert_eq!(asks.load(Ordering::SeqCst), 1, "no stage ran");

    // The answer given with the cancelled resume was checkpointed: a plain resume uses it.
    let done = bounded(durable.resume(&pipeline, "r", RunOptions::default()))
        .await
        .expect("resumed");
    assert!(done.report().is_success(), "{done:?}");
    assert_eq!(
        *done.report().artifact::<String>("publish").unwrap(),
        "published, approved by ada"
    );
    assert_eq!(asks.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_run_cancelled_mid_stage_resumes_from_that_stage() {
    let (gate, latch) = gate::gate();
    let runs = Arc::new([0, 0, 0].map(AtomicUsize::new));
    let pipeline = held_chain(latch, runs.clone());
    let durable = Durable::new(MemoryStore::new());
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (durable, pipeline, cancel) = (durable.clone(), pipeline.clone(), cancel.clone());
        async move {
            durable
                .start(&pipeline, "r", RunOptions::default().with_cancel(cancel))
                .await
        }
    });
    assert_eq!(gate.reached().await, "held");
    cancel.cancel();
    let outcome = bounded(run).await.unwrap().expect("started");
    assert_eq!(outcome.report().outcome(), RunOutcome::Cancelled);
    assert_eq!(
        outcome.report().status("held"),
        Some(&StageStatus::Cancelled)
    );

    gate.open(1);
    let resumed = bounded(durable.resume(&pipeline, "r", RunOptions::default()))
        .await
        .expect("resumed");
    let report = resumed.report();
    assert!(report.is_success(), "{report:?}");
    assert!(report.stage("first").unwrap().resumed);
    assert!(!report.stage("held").unwrap().resumed);
    assert_eq!(*report.artifact::<u32>("last").unwrap(), 3);
    assert_eq!(
        counts(&runs),
        [1, 2, 1],
        "first ran once, held again, last once"
    );
}

#[tokio::test]
async fn unknown_run_ids_are_typed_errors_for_every_entry_point() {
    let asks = Arc::new(AtomicUsize::new(0));
    let pipeline = approval(asks.clone());
    let durable = Durable::new(MemoryStore::new());
    let unknown = CheckpointError::UnknownRun {
        run: "nope".to_owned(),
    };
    assert_eq!(
        durable
            .resume(&pipeline, "nope", RunOptions::default())
            .await
            .unwrap_err(),
        unknown
    );
    assert_eq!(
        durable
            .resume_with(&pipeline, "nope", "ada", RunOptions::default())
            .await
            .unwrap_err(),
        unknown
    );
    assert!(!durable.delete("nope").unwrap());
    assert!(durable.runs().unwrap().is_empty(), "nothing was created");
    assert_eq!(asks.load(Ordering::SeqCst), 0);
}
