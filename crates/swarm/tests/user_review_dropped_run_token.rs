//! Review of "Dropping the future cancels the run: its token (`StageContext::cancellation`) is
//! cancelled" (crates/swarm/src/pipeline.rs, `Pipeline::run`'s cancel safety; `CancelOnDrop` in
//! crates/swarm/src/run/mod.rs), and of `StageContext::is_cancelled` now that
//! `LazyCancel::is_cancelled` also reads the token it handed out (crates/runtime/src/lazy_cancel.rs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::{Pipeline, RunOptions, RunOutcome, StageContext, StageError};
use tokio_util::sync::CancellationToken;

type Slot = Arc<Mutex<Option<CancellationToken>>>;

/// A pipeline whose stage (spawned when `spawn`) puts the run's token in `slot` and then hangs.
fn handing_out(slot: &Slot, spawn: bool) -> Pipeline {
    let slot = slot.clone();
    let builder = Pipeline::builder().stage("hand", move |ctx: StageContext| {
        let slot = slot.clone();
        async move {
            *slot.lock().unwrap() = Some(ctx.cancellation());
            std::future::pending::<Result<(), StageError>>().await
        }
    });
    let builder = if spawn { builder.spawn() } else { builder };
    builder.build().unwrap()
}

async fn token_handed_out(slot: &Slot) -> CancellationToken {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(token) = slot.lock().unwrap().clone() {
                return token;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the stage handed out the run's token")
}

async fn dropping_cancels_the_handed_out_token(spawn: bool) {
    let slot: Slot = Arc::default();
    let pipeline = handing_out(&slot, spawn);
    let callers = CancellationToken::new();
    let run = tokio::spawn({
        let callers = callers.clone();
        async move {
            pipeline
                .run_with(RunOptions::default().with_cancel(callers))
                .await
        }
    });
    let token = token_handed_out(&slot).await;
    assert!(!token.is_cancelled());
    run.abort();
    let _ = run.await;
    tokio::time::timeout(Duration::from_secs(5), token.cancelled())
        .await
        .expect("the dropped run's token was cancelled");
    assert!(
        !callers.is_cancelled(),
        "dropping a run cancelled the caller's own token (`RunOptions::with_cancel`)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_with_a_spawned_stage_cancels_its_token_but_not_the_callers() {
    dropping_cancels_the_handed_out_token(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_of_inline_stages_cancels_its_token_but_not_the_callers() {
    dropping_cancels_the_handed_out_token(false).await;
}

#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_a_dropped_run_cancels_its_token() {
    dropping_cancels_the_handed_out_token(true).await;
    dropping_cancels_the_handed_out_token(false).await;
}

/// A caller's token shared by two runs: dropping one run leaves the other running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_one_of_two_runs_sharing_a_callers_token_leaves_the_other_running() {
    let callers = CancellationToken::new();
    let (first, second): (Slot, Slot) = (Arc::default(), Arc::default());
    let run_first = tokio::spawn({
        let (pipeline, callers) = (handing_out(&first, true), callers.clone());
        async move {
            pipeline
                .run_with(RunOptions::default().with_cancel(callers))
                .await
        }
    });
    let run_second = tokio::spawn({
        let (pipeline, callers) = (handing_out(&second, true), callers.clone());
        async move {
            pipeline
                .run_with(RunOptions::default().with_cancel(callers))
                .await
        }
    });
    let first_token = token_handed_out(&first).await;
    let second_token = token_handed_out(&second).await;
    run_first.abort();
    let _ = run_first.await;
    tokio::time::timeout(Duration::from_secs(5), first_token.cancelled())
        .await
        .expect("the dropped run's token was cancelled");
    assert!(!second_token.is_cancelled(), "the other run was cancelled");
    assert!(!run_second.is_finished());
    callers.cancel();
    let report = tokio::time::timeout(Duration::from_secs(5), run_second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
}

/// "cancelled when the run stops early": a run that succeeds leaves the token a stage handed to
/// its own work alone (that work was not stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_succeeds_does_not_cancel_its_token() {
    let slot: Slot = Arc::default();
    let pipeline = {
        let slot = slot.clone();
        Pipeline::builder()
            .stage("hand", move |ctx: StageContext| {
                let slot = slot.clone();
                async move {
                    *slot.lock().unwrap() = Some(ctx.cancellation());
                    Ok::<_, StageError>(())
                }
            })
            .spawn()
            .build()
            .unwrap()
    };
    let report = pipeline.run().await;
    assert!(report.is_success());
    drop(report);
    let token = slot.lock().unwrap().clone().unwrap();
    assert!(!token.is_cancelled());
}

/// A stage cancels the run's token (to stop helpers it handed it to). `StageContext::is_cancelled`
/// says "Whether the run is being stopped (fail-fast, deadline or cancellation)": so either the run
/// stops (Cancelled), or a later stage is not told it is being stopped while the run goes on to
/// succeed. Since `LazyCancel::is_cancelled` reads the handed-out token, later stages see `true`
/// while the run succeeds. Debatable: see the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_cancelled_agrees_with_whether_the_run_stops_after_a_stage_cancels_the_token() {
    let seen = Arc::new(AtomicBool::new(false));
    let pipeline = {
        let seen = seen.clone();
        Pipeline::builder()
            .stage("stop_helpers", |ctx: StageContext| async move {
                ctx.cancellation().cancel();
                Ok::<_, StageError>(())
            })
            .stage("later", move |ctx: StageContext| {
                let seen = seen.clone();
                async move {
                    seen.store(ctx.is_cancelled(), Ordering::SeqCst);
                    Ok::<_, StageError>(())
                }
            })
            .after(["stop_helpers"])
            .build()
            .unwrap()
    };
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .unwrap();
    let later_told_stopping = seen.load(Ordering::SeqCst);
    assert!(
        !later_told_stopping || report.outcome() == RunOutcome::Cancelled,
        "a later stage was told the run is being stopped (is_cancelled() == true), but the run \
         went on and ended {:?}",
        report.outcome()
    );
}
