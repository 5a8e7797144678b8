//! Nested runs with spawned stages (a loop body, pipelines run by fan-out items) that the outer run
//! stops early (k-of-n met, cancellation, deadline): their stages stop, shortly after the outer
//! run returns (as `Pipeline::run`'s cancel safety says: a dropped run's spawned stages are
//! dropped on the runtime's workers, not before the drop returns), and none is leaked.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    FanOut, LoopPolicy, Pipeline, RunOptions, RunOutcome, StageContext, StageError, StageStatus,
};
use support::LiveGuard;
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 40;

/// Whether every guard is dropped within 2 s (a late drop, not a leak).
async fn dropped_later(live: &Arc<AtomicUsize>) -> bool {
    tokio::time::timeout(Duration::from_secs(2), async {
        while live.load(Ordering::SeqCst) != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .is_ok()
}

/// A pipeline of one spawned stage that holds a guard on `live` and hangs when `hang`.
fn inner(live: &Arc<AtomicUsize>, started: &Arc<AtomicUsize>) -> Pipeline {
    let (live, started) = (live.clone(), started.clone());
    Pipeline::builder()
        .stage("work", move |_: StageContext| {
            let guard = LiveGuard::new(&live);
            started.fetch_add(1, Ordering::SeqCst);
            async move {
                let _guard = guard;
                std::future::pending::<Result<u32, StageError>>().await
            }
        })
        .spawn()
        .build()
        .unwrap()
}

/// Fan-out over 3 items, 1 required: item 0 succeeds once the two others have started their
/// nested runs (whose spawned stage hangs); the fan-out then drops those two nested runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_runs_dropped_by_a_met_quorum_stop() {
    for round in 0..ROUNDS {
        let live = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let nested = inner(&live, &started);
        let pipeline = Pipeline::builder()
            .stage("fan", move |ctx: StageContext| {
                let (nested, started) = (nested.clone(), started.clone());
                async move {
                    let report = ctx
                        .fan_out(0..3_u32, FanOut::new(3).require(1), |item| {
                            let (nested, started) = (nested.clone(), started.clone());
                            async move {
                                if item == 0 {
                                    while started.load(Ordering::SeqCst) < 2 {
                                        tokio::task::yield_now().await;
                                    }
                                    return Ok(0);
                                }
                                let report = nested.run().await;
                                Ok::<_, StageError>(*report.artifact::<u32>("work")?)
                            }
                        })
                        .await?;
                    Ok::<_, StageError>(report.succeeded)
                }
            })
            .build()
            .unwrap();
        let report = tokio::time::timeout(Duration::from_secs(10), pipeline.run())
            .await
            .expect("the run ends");
        let still = live.load(Ordering::SeqCst);
        let later = dropped_later(&live).await;
        assert!(report.is_success(), "round {round}: {:?}", report.outcome());
        assert!(
            later,
            "round {round}: {still} stage(s) of nested runs the fan-out dropped never dropped ({still} live when the run returned)"
        );
    }
}

/// A loop whose body's stage is spawned and hangs; the outer run is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_loop_stops_its_spawned_body_stage() {
    for round in 0..ROUNDS {
        let live = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let pipeline = Pipeline::builder()
            .repeat("loop", inner(&live, &started), LoopPolicy::new(3))
            .build()
            .unwrap();
        let cancel = CancellationToken::new();
        let run = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                pipeline
                    .run_with(RunOptions::default().with_cancel(cancel))
                    .await
            }
        });
        tokio::time::timeout(Duration::from_secs(5), async {
            while started.load(Ordering::SeqCst) < 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the body's stage started");
        cancel.cancel();
        let report = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the run ends")
            .unwrap();
        let still = live.load(Ordering::SeqCst);
        let later = dropped_later(&live).await;
        assert_eq!(report.outcome(), RunOutcome::Cancelled, "round {round}");
        assert_eq!(
            report.status("loop"),
            Some(&StageStatus::Cancelled),
            "round {round}"
        );
        assert!(
            later,
            "round {round}: the loop body's spawned stage is never dropped ({still} live when the run returned)"
        );
    }
}

/// The same with the run's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_stopped_by_the_deadline_stops_its_spawned_body_stage() {
    for round in 0..ROUNDS {
        let live = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let pipeline = Pipeline::builder()
            .repeat("loop", inner(&live, &started), LoopPolicy::new(3))
            .build()
            .unwrap();
        let report = tokio::time::timeout(
            Duration::from_secs(10),
            pipeline.run_with(RunOptions::default().with_deadline(Duration::from_millis(20))),
        )
        .await
        .expect("the run ends");
        let still = live.load(Ordering::SeqCst);
        let later = dropped_later(&live).await;
        assert_eq!(
            report.outcome(),
            RunOutcome::DeadlineExceeded,
            "round {round}"
        );
        assert_eq!(
            report.status("loop"),
            Some(&StageStatus::Cancelled),
            "round {round}"
        );
        assert!(
            later,
            "round {round}: the loop body's spawned stage is never dropped ({still} live when the run returned)"
        );
    }
}
