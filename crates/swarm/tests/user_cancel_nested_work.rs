//! Cancelling a run reaches work nested inside its stages: the items of a fan-out and the stages
//! of a loop's body, in inline and spawned stages alike, are dropped by the time the run returns;
//! cancelling twice, or after the run ended, changes nothing.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    EventSink, FanOut, LoopPolicy, Pipeline, RunOptions, RunOutcome, SkipReason, StageContext,
    StageError, StageEvent, StageStatus,
};
use support::LiveGuard;
use tokio_util::sync::CancellationToken;

/// `fan` fans out over four items that hang; `loop` runs a body whose stage hangs; `after` follows
/// both. Every hanging future holds a guard on `live`; `spawn` puts the two stages on tasks.
fn nested(live: &Arc<AtomicUsize>, spawn: bool) -> Pipeline {
    let (fan_live, body_live) = (live.clone(), live.clone());
    let body = Pipeline::builder()
        .stage("hang", move |_: StageContext| {
            let guard = LiveGuard::new(&body_live);
            async move {
                let _guard = guard;
                std::future::pending::<Result<(), StageError>>().await
            }
        })
        .build()
        .unwrap();
    let builder = Pipeline::builder().stage("fan", move |ctx: StageContext| {
        let live = fan_live.clone();
        async move {
            let report = ctx
                .fan_out(0..4_u32, FanOut::new(4), |_| {
                    let guard = LiveGuard::new(&live);
                    async move {
                        let _guard = guard;
                        std::future::pending::<Result<u32, StageError>>().await
                    }
                })
                .await?;
            Ok::<_, StageError>(report.into_successes().count())
        }
    });
    let builder = if spawn { builder.spawn() } else { builder };
    let builder = builder.repeat("loop", body, LoopPolicy::new(3));
    let builder = if spawn { builder.spawn() } else { builder };
    builder
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["fan", "loop"])
        .build()
        .unwrap()
}

async fn cancel_when_nested_work_runs(spawn: bool) {
    let live = Arc::new(AtomicUsize::new(0));
    let pipeline = nested(&live, spawn);
    let cancel = CancellationToken::new();
    let (sink, mut events) = EventSink::channel();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            pipeline
                .run_with(RunOptions::default().with_cancel(cancel).with_events(sink))
                .await
        }
    });
    // All four items have started, and the loop's first iteration has.
    let (mut items, mut body) = (0, false);
    while items < 4 || !body {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("an event in time")
            .expect("the run is live");
        match event {
            StageEvent::ItemStarted { .. } => items += 1,
            StageEvent::Started { stage } if &*stage == "loop" => body = true,
            _ => {}
        }
    }
    // The body's stage is polled right after the loop stage starts; let it be.
    tokio::time::timeout(Duration::from_secs(5), async {
        while live.load(Ordering::SeqCst) < 5 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the loop body started");
    cancel.cancel();
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run ended")
        .unwrap();
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "spawn {spawn}: nested futures outlived the run"
    );
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    assert_eq!(report.status("fan"), Some(&StageStatus::Cancelled));
    assert_eq!(report.status("loop"), Some(&StageStatus::Cancelled));
    assert_eq!(
        report.status("after"),
        Some(&StageStatus::Skipped {
            because: SkipReason::Cancelled
        })
    );
    // Cancelling after the end changes nothing.
    cancel.cancel();
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_drops_fan_out_items_and_loop_bodies_of_inline_stages() {
    cancel_when_nested_work_runs(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_drops_fan_out_items_and_loop_bodies_of_spawned_stages() {
    cancel_when_nested_work_runs(true).await;
}
