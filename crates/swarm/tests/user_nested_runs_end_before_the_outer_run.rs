//! Nested runs with spawned stages (a loop body, pipelines run by stages or fan-out items) that the
//! outer run drops (k-of-n met, cancellation, deadline, a `select!` in a stage): every stage of
//! theirs has been dropped by the time the outer run returns its report, as `Pipeline::run`'s
//! cancel safety says, at any depth of nesting, on the fleet or not.

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
        assert!(report.is_success(), "round {round}: {:?}", report.outcome());
        assert_eq!(
            still, 0,
            "round {round}: stages of nested runs the fan-out dropped still live when the run returned"
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
        assert_eq!(report.outcome(), RunOutcome::Cancelled, "round {round}");
        assert_eq!(
            report.status("loop"),
            Some(&StageStatus::Cancelled),
            "round {round}"
        );
        assert_eq!(
            still, 0,
            "round {round}: the loop body's spawned stage still live when the run returned"
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
        assert_eq!(
            still, 0,
            "round {round}: the loop body's spawned stage still live when the run returned"
        );
    }
}

/// `inner`, with a second stage under a condition: such a pipeline's spawned stages run as tasks
/// of their own, not on the fleet.
fn inner_off_the_fleet(live: &Arc<AtomicUsize>, started: &Arc<AtomicUsize>) -> Pipeline {
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
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["work"])
        .when(|_| true)
        .build()
        .unwrap()
}

/// A stage that runs `nested` until its spawned stage has started, then drops it and succeeds.
fn outer_dropping(nested: Pipeline, started: &Arc<AtomicUsize>) -> Pipeline {
    let started = started.clone();
    Pipeline::builder()
        .stage("select", move |_: StageContext| {
            let (nested, started) = (nested.clone(), started.clone());
            async move {
                let has_started = async {
                    while started.load(Ordering::SeqCst) < 1 {
                        tokio::task::yield_now().await;
                    }
                };
                tokio::select! {
                    _ = nested.run() => Err(StageError::msg("the nested run never ends")),
                    () = has_started => Ok::<_, StageError>(1_u32),
                }
            }
        })
        .build()
        .unwrap()
}

/// A run that succeeds after one of its stages dropped a nested run: the nested run's spawned
/// stage (on the fleet, or a task of its own) is gone when the report comes back.
async fn dropped_by_a_select(off_the_fleet: bool) {
    for round in 0..ROUNDS {
        let live = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let nested = if off_the_fleet {
            inner_off_the_fleet(&live, &started)
        } else {
            inner(&live, &started)
        };
        let report = tokio::time::timeout(
            Duration::from_secs(10),
            outer_dropping(nested, &started).run(),
        )
        .await
        .expect("the run ends");
        let still = live.load(Ordering::SeqCst);
        assert!(report.is_success(), "round {round}: {:?}", report.outcome());
        assert_eq!(
            still, 0,
            "round {round}: the dropped nested run's stage still live when the run returned"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_run_a_stage_drops_ends_before_the_outer_run_returns() {
    dropped_by_a_select(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_run_off_the_fleet_ends_before_the_outer_run_returns() {
    dropped_by_a_select(true).await;
}

#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_the_outer_run_waits_for_a_dropped_nested_run() {
    dropped_by_a_select(false).await;
    dropped_by_a_select(true).await;
}

/// Two levels: the outer run's stage runs a middle pipeline (inline), whose stage runs `inner`
/// (spawned, hanging). Cancelling the outer run drops the middle run at once; the inner run's
/// stage stops on a worker, and the outer run waits for it, though the middle run is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_nested_two_levels_down_ends_before_the_outer_run_returns() {
    for round in 0..ROUNDS {
        let live = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let innermost = inner(&live, &started);
        let middle = Pipeline::builder()
            .stage("middle", move |_: StageContext| {
                let innermost = innermost.clone();
                async move {
                    let report = innermost.run().await;
                    Ok::<_, StageError>(*report.artifact::<u32>("work")?)
                }
            })
            .build()
            .unwrap();
        let outer = Pipeline::builder()
            .stage("outer", move |_: StageContext| {
                let middle = middle.clone();
                async move {
                    let report = middle.run().await;
                    Ok::<_, StageError>(*report.artifact::<u32>("middle")?)
                }
            })
            .build()
            .unwrap();
        let cancel = CancellationToken::new();
        let options = RunOptions::default().with_cancel(cancel.clone());
        let run = tokio::spawn(async move { outer.run_with(options).await });
        tokio::time::timeout(Duration::from_secs(5), async {
            while started.load(Ordering::SeqCst) < 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the innermost stage started");
        cancel.cancel();
        let report = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the run ends")
            .unwrap();
        let still = live.load(Ordering::SeqCst);
        assert_eq!(report.outcome(), RunOutcome::Cancelled, "round {round}");
        assert_eq!(
            still, 0,
            "round {round}: the innermost stage still live when the outer run returned"
        );
    }
}

/// A run a stage hands to a task of its own is the stage's business, not nested: the outer run
/// returns without waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_spawned_on_a_task_of_its_own_is_not_waited_for() {
    let live = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let detached = inner(&live, &started);
    let handles = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let outer = Pipeline::builder()
        .stage("detach", {
            let handles = handles.clone();
            move |_: StageContext| {
                let (detached, handles) = (detached.clone(), handles.clone());
                async move {
                    handles
                        .lock()
                        .push(tokio::spawn(async move { detached.run().await }));
                    Ok::<_, StageError>(())
                }
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), outer.run())
        .await
        .expect("the outer run does not wait for a detached run");
    assert!(report.is_success());
    tokio::time::timeout(Duration::from_secs(5), async {
        while started.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the detached run's stage started");
    assert_eq!(live.load(Ordering::SeqCst), 1, "the detached run goes on");
    for handle in handles.lock().drain(..) {
        handle.abort();
    }
}
