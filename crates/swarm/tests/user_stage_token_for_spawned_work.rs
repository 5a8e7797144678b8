//! `StageContext::cancellation`: "the run's own cancellation token, cancelled when the run stops
//! early (fail-fast, the deadline, or `RunOptions::cancel` being cancelled, which the run
//! watches); hand it to work the stage spawns itself." And `Pipeline::run`'s cancel safety:
//! "Dropping the future cancels the run".
//!
//! Work a stage hands the token to (a `tokio::spawn`ed task, a thread) must learn that the run
//! stopped, however it stopped; otherwise that work runs on forever after the run is gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::{
    CancellationToken, LoopPolicy, Pipeline, RunOptions, StageContext, StageError,
};

type Kept = Arc<Mutex<Vec<CancellationToken>>>;

/// A stage that hands its token to work of its own and then waits forever.
fn hanging_pipeline(kept: &Kept, spawned_stage: bool) -> Pipeline {
    let kept = kept.clone();
    let stage = Pipeline::builder().stage("hangs", move |ctx: StageContext| {
        kept.lock().unwrap().push(ctx.cancellation());
        async move {
            std::future::pending::<()>().await;
            Ok::<_, StageError>(())
        }
    });
    let stage = if spawned_stage { stage.spawn() } else { stage };
    stage.build().expect("valid")
}

fn taken(kept: &Kept) -> CancellationToken {
    kept.lock()
        .unwrap()
        .first()
        .cloned()
        .expect("the stage ran and took its token")
}

/// Polls `condition` for up to two seconds of real time.
async fn eventually(condition: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    condition()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_cancels_the_token_handed_to_spawned_work_before_the_report_returns() {
    for spawned_stage in [false, true] {
        let kept = Kept::default();
        let pipeline = hanging_pipeline(&kept, spawned_stage);
        let report = tokio::time::timeout(
            Duration::from_secs(5),
            pipeline.run_with(RunOptions::default().with_deadline(Duration::from_millis(20))),
        )
        .await
        .expect("the deadline ends the run");
        assert!(!report.is_success());
        assert!(
            taken(&kept).is_cancelled(),
            "spawned stage {spawned_stage}: the token is still live after the deadline"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_cancel_cancels_the_token_handed_to_spawned_work() {
    for spawned_stage in [false, true] {
        let kept = Kept::default();
        let pipeline = hanging_pipeline(&kept, spawned_stage);
        let cancel = CancellationToken::new();
        let run = pipeline.run_with(RunOptions::default().with_cancel(cancel.clone()));
        let watcher = {
            let kept = kept.clone();
            async move {
                assert!(eventually(|| !kept.lock().unwrap().is_empty()).await);
                cancel.cancel();
            }
        };
        let (report, ()) =
            tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(run, watcher) })
                .await
                .expect("the cancellation ends the run");
        assert!(!report.is_success());
        assert!(
            taken(&kept).is_cancelled(),
            "spawned stage {spawned_stage}: the token is still live after the run was cancelled"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_stage_doing_synchronous_work_sees_is_cancelled_at_the_deadline() {
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<bool>();
    let seen_tx = Mutex::new(seen_tx);
    let pipeline = Pipeline::builder()
        .stage("crunch", move |ctx: StageContext| {
            let seen_tx = seen_tx.lock().unwrap().clone();
            async move {
                // Long synchronous work that checks in now and then, bounded so the test ends.
                let give_up = std::time::Instant::now() + Duration::from_secs(3);
                let mut saw = false;
                while std::time::Instant::now() < give_up {
                    if ctx.is_cancelled() {
                        saw = true;
                        break;
                    }
                    std::hint::spin_loop();
                }
                let _ = seen_tx.send(saw);
                Ok::<_, StageError>(())
            }
        })
        .blocking()
        .build()
        .unwrap();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_with(RunOptions::default().with_deadline(Duration::from_millis(20))),
    )
    .await
    .expect("the deadline ends the run");
    assert!(!report.is_success());
    let saw = tokio::task::spawn_blocking(move || seen_rx.recv_timeout(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("the blocking thread reports back");
    assert!(saw, "the blocking stage never saw is_cancelled() turn true");
}

/// Runs a hanging pipeline, drops its future once the stage took its token, and says whether the
/// token was cancelled within two seconds.
async fn token_cancelled_after_dropping_the_run(spawned_stage: bool) -> bool {
    let kept = Kept::default();
    let pipeline = hanging_pipeline(&kept, spawned_stage);
    let run = pipeline.run();
    let started = {
        let kept = kept.clone();
        async move { eventually(|| !kept.lock().unwrap().is_empty()).await }
    };
    // The run never ends on its own: it is dropped once its stage took the token.
    tokio::select! {
        _ = run => panic!("a hanging run ended"),
        started = started => assert!(started, "the stage never started"),
    }
    let token = taken(&kept);
    eventually(|| token.is_cancelled()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_cancels_the_token_an_inline_stage_handed_out() {
    assert!(
        token_cancelled_after_dropping_the_run(false).await,
        "the run was dropped (cancelled), yet the token the inline stage handed to its own work \
         is still live: that work never learns the run is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_cancels_the_token_a_spawned_stage_handed_out() {
    assert!(
        token_cancelled_after_dropping_the_run(true).await,
        "the run was dropped (cancelled), yet the token the spawned stage handed to its own work \
         is still live: that work never learns the run is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_stage_timing_out_cancels_the_token_its_body_stage_handed_out() {
    // The loop stage's attempt times out: its body's run is dropped mid-iteration. Work the body
    // stage spawned with its run's token must learn that.
    let kept = Kept::default();
    let body = hanging_pipeline(&kept, false);
    let pipeline = Pipeline::builder()
        .repeat("loop", body, LoopPolicy::new(1))
        .timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("the loop stage's timeout ends the run");
    assert!(!report.is_success());
    let token = taken(&kept);
    assert!(
        eventually(|| token.is_cancelled()).await,
        "the body's run was dropped by the loop stage's timeout, yet its token is still live"
    );
}
