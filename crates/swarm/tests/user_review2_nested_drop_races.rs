//! Review of 053ef97 (crates/swarm/src/run/nesting.rs, `DropWatch` in run/mod.rs): a run first
//! polled inside a stage of another run and dropped before it ends takes a place in the outer
//! run's scope (and every scope above) until its driver, fleet and tasks are gone, and the outer
//! run waits for that at its end. `Pipeline::run`'s cancel safety (crates/swarm/src/pipeline.rs):
//! "A run that returns its report ... has no stage left running, nor any stage of a run nested in
//! it and dropped". Hard cases: ten levels of nesting, hundreds of nested runs dropped at once,
//! current-thread runtimes, runs on hivekit's global runtime from a plain thread, nested runs
//! dropped on other threads (while the outer run still runs, racing its end, and after it
//! returned), and `StageContext::cancellation` being a child token.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use hivekit_swarm::{FanOut, Pipeline, RunReport, StageContext, StageError};
use support::LiveGuard;

const PATIENCE: Duration = Duration::from_secs(10);

/// A started run kept somewhere (`Mutex` makes it `Sync`).
type Started = Pin<Box<dyn Future<Output = RunReport> + Send>>;
type Slot = Arc<Mutex<Option<Started>>>;

/// One spawned stage that holds a guard on `live`, says it started, and never ends.
fn hanging(live: &Arc<AtomicUsize>, started: &Arc<AtomicUsize>) -> Pipeline {
    let (live, started) = (live.clone(), started.clone());
    Pipeline::builder()
        .stage("hang", move |_: StageContext| {
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

/// A pipeline whose one spawned stage runs `inner` (one level of nesting more).
fn wrapping(inner: Pipeline) -> Pipeline {
    Pipeline::builder()
        .stage("wrap", move |_: StageContext| {
            let inner = inner.clone();
            async move {
                let report = inner.run().await;
                Ok::<_, StageError>(report.is_success())
            }
        })
        .spawn()
        .build()
        .unwrap()
}

/// The top pipeline: one stage that runs `nested` until `started` reaches `wanted`, then drops it
/// (a `select!`) and succeeds.
fn dropping_when_started(nested: Pipeline, started: &Arc<AtomicUsize>, wanted: usize) -> Pipeline {
    let started = started.clone();
    Pipeline::builder()
        .stage("select", move |_: StageContext| {
            let (nested, started) = (nested.clone(), started.clone());
            async move {
                let mut run = std::pin::pin!(nested.run().fuse());
                let mut ready = std::pin::pin!(async {
                    while started.load(Ordering::SeqCst) < wanted {
                        tokio::task::yield_now().await;
                    }
                }
                .fuse());
                futures::select! {
                    _ = run => return Err(StageError::msg("the nested run ended")),
                    () = ready => {}
                }
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap()
}

fn ten_levels(live: &Arc<AtomicUsize>, started: &Arc<AtomicUsize>) -> Pipeline {
    let mut pipeline = hanging(live, started);
    for _ in 0..9 {
        pipeline = wrapping(pipeline);
    }
    dropping_when_started(pipeline, started, 1)
}

/// Ten runs nested in each other (each in a spawned stage of the one above); the top stage drops
/// the outermost nested one once the innermost stage started: no stage of any level is left when
/// the top run returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_levels_of_nested_runs_dropped_by_a_select_have_stopped_when_the_run_returns() {
    for round in 0..20 {
        let (live, started) = (Arc::default(), Arc::default());
        let top = ten_levels(&live, &started);
        let report = tokio::time::timeout(PATIENCE, top.run())
            .await
            .expect("the run ends");
        let still = live.load(Ordering::SeqCst);
        assert!(report.is_success(), "round {round}: {:?}", report.outcome());
        assert_eq!(
            still, 0,
            "round {round}: the innermost stage outlived the run"
        );
    }
}

/// The same on a current-thread runtime.
#[tokio::test(flavor = "current_thread")]
async fn ten_levels_of_nested_runs_on_a_current_thread_runtime() {
    for round in 0..20 {
        let (live, started) = (Arc::default(), Arc::default());
        let top = ten_levels(&live, &started);
        let report = tokio::time::timeout(PATIENCE, top.run())
            .await
            .expect("the run ends");
        let still = live.load(Ordering::SeqCst);
        assert!(report.is_success(), "round {round}: {:?}", report.outcome());
        assert_eq!(
            still, 0,
            "round {round}: the innermost stage outlived the run"
        );
    }
}

/// The same on hivekit's global runtime, from a plain thread (another executor drives the run).
#[test]
fn ten_levels_of_nested_runs_on_the_global_runtime_from_a_plain_thread() {
    for round in 0..10 {
        let (live, started) = (Arc::default(), Arc::default());
        let top = ten_levels(&live, &started);
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let report = futures::executor::block_on(top.run());
            let _ = sender.send((report.is_success(), live.load(Ordering::SeqCst)));
        });
        let (success, still) = receiver.recv_timeout(PATIENCE).expect("the run ends");
        assert!(success, "round {round}");
        assert_eq!(
            still, 0,
            "round {round}: the innermost stage outlived the run"
        );
    }
}

/// 300 nested runs (one per fan-out item), of which the fan-out needs one item: the 299 others
/// are dropped with their items. None of their stages is left when the outer run returns.
async fn hundreds_of_nested_runs_dropped_by_a_met_quorum() {
    const ITEMS: u32 = 300;
    let (live, started): (Arc<AtomicUsize>, Arc<AtomicUsize>) = (Arc::default(), Arc::default());
    let nested = hanging(&live, &started);
    let outer = Pipeline::builder()
        .stage("fan", {
            let started = started.clone();
            move |ctx: StageContext| {
                let (nested, started) = (nested.clone(), started.clone());
                async move {
                    let options = FanOut::new(ITEMS as usize).require(1);
                    let report = ctx
                        .fan_out(0..ITEMS, options, |item| {
                            let (nested, started) = (nested.clone(), started.clone());
                            async move {
                                if item == 0 {
                                    while started.load(Ordering::SeqCst) < (ITEMS - 1) as usize {
                                        tokio::task::yield_now().await;
                                    }
                                    return Ok(0);
                                }
                                let report = nested.run().await;
                                Ok::<_, StageError>(*report.artifact::<u32>("hang")?)
                            }
                        })
                        .await?;
                    Ok::<_, StageError>(report.succeeded)
                }
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(PATIENCE, outer.run())
        .await
        .expect("the run ends");
    let still = live.load(Ordering::SeqCst);
    assert!(report.is_success(), "{:?}", report.outcome());
    assert_eq!(started.load(Ordering::SeqCst), (ITEMS - 1) as usize);
    assert_eq!(still, 0, "stages of dropped nested runs outlived the run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_nested_runs_dropped_at_once_on_a_multi_thread_runtime() {
    hundreds_of_nested_runs_dropped_by_a_met_quorum().await;
}

#[tokio::test(flavor = "current_thread")]
async fn hundreds_of_nested_runs_dropped_at_once_on_a_current_thread_runtime() {
    hundreds_of_nested_runs_dropped_by_a_met_quorum().await;
}

/// A stage starts a nested run (one poll) and hands it to a plain thread, which drops it when a
/// later stage of the outer run asks and says when it did. The nested run was dropped unfinished
/// while the outer run was still running: its stage has stopped when the outer run returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_run_dropped_on_another_thread_while_the_outer_run_runs_is_waited_for() {
    for round in 0..20 {
        let (live, started): (Arc<AtomicUsize>, Arc<AtomicUsize>) =
            (Arc::default(), Arc::default());
        let nested = hanging(&live, &started);
        let (order, orders) = mpsc::channel::<mpsc::Sender<()>>();
        let orders = Arc::new(Mutex::new(Some(orders)));
        let outer = Pipeline::builder()
            .stage("start", {
                let started = started.clone();
                move |_: StageContext| {
                    let (nested, started, orders) =
                        (nested.clone(), started.clone(), orders.clone());
                    async move {
                        let mut run: Started = Box::pin(async move { nested.run().await });
                        while started.load(Ordering::SeqCst) < 1 {
                            assert!(futures::poll!(run.as_mut()).is_pending());
                            tokio::task::yield_now().await;
                        }
                        let orders = orders.lock().unwrap().take().unwrap();
                        std::thread::spawn(move || {
                            let done = orders.recv().unwrap();
                            drop(run);
                            let _ = done.send(());
                        });
                        Ok::<_, StageError>(())
                    }
                }
            })
            .stage("drop", move |_: StageContext| {
                let order = order.clone();
                async move {
                    let (done, dropped) = mpsc::channel();
                    order.send(done).map_err(StageError::msg)?;
                    tokio::task::spawn_blocking(move || dropped.recv_timeout(PATIENCE))
                        .await
                        .map_err(StageError::msg)?
                        .map_err(StageError::msg)?;
                    Ok::<_, StageError>(())
                }
            })
            .after(["start"])
            .build()
            .unwrap();
        let report = tokio::time::timeout(PATIENCE, outer.run())
            .await
            .expect("the run ends");
        let still = live.load(Ordering::SeqCst);
        assert!(report.is_success(), "round {round}: {:?}", report.outcome());
        assert_eq!(
            still, 0,
            "round {round}: the nested run's stage outlived the outer run"
        );
    }
}

/// A started nested run kept in the outer run's artifact and dropped on other threads in a race
/// with the outer run's end, or after it returned: the outer run never hangs, nothing panics,
/// and the nested run's stage stops shortly after the drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_runs_dropped_racing_the_outer_runs_end_or_after_it_never_hang() {
    for round in 0..50 {
        let (live, started): (Arc<AtomicUsize>, Arc<AtomicUsize>) =
            (Arc::default(), Arc::default());
        let nested = hanging(&live, &started);
        let slot: Slot = Arc::default();
        let racing = round % 2 == 0;
        let outer = Pipeline::builder()
            .stage("start", {
                let (started, slot) = (started.clone(), slot.clone());
                move |_: StageContext| {
                    let (nested, started, slot) = (nested.clone(), started.clone(), slot.clone());
                    async move {
                        let mut run: Started = Box::pin(async move { nested.run().await });
                        while started.load(Ordering::SeqCst) < 1 {
                            assert!(futures::poll!(run.as_mut()).is_pending());
                            tokio::task::yield_now().await;
                        }
                        if racing {
                            // Dropped by another thread at about the time the outer run ends.
                            std::thread::spawn(move || drop(run));
                        } else {
                            *slot.lock().unwrap() = Some(run);
                        }
                        Ok::<_, StageError>(())
                    }
                }
            })
            .build()
            .unwrap();
        let report = tokio::time::timeout(PATIENCE, outer.run())
            .await
            .expect("the run ends");
        assert!(report.is_success(), "round {round}: {:?}", report.outcome());
        // After the outer run returned: dropped on a plain thread.
        let kept = slot.lock().unwrap().take();
        std::thread::spawn(move || drop(kept)).join().unwrap();
        let deadline = Instant::now() + PATIENCE;
        while live.load(Ordering::SeqCst) != 0 {
            assert!(
                Instant::now() < deadline,
                "round {round}: the dropped nested run's stage never stopped"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// `StageContext::cancellation`: "A child of the run's own token: the stage may cancel it to stop
/// its own work, which stops neither the run nor other stages' work (`is_cancelled` stays
/// false)". A stage cancels its own token; it, the run and a later stage's token go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_cancelling_its_token_stops_neither_itself_nor_later_stages() {
    let outer = Pipeline::builder()
        .stage("first", |ctx: StageContext| async move {
            let mine = ctx.cancellation();
            mine.cancel();
            if ctx.is_cancelled() {
                return Err(StageError::msg(
                    "is_cancelled says true after cancelling a child",
                ));
            }
            let fresh = ctx.cancellation();
            Ok::<_, StageError>(fresh.is_cancelled())
        })
        .stage("second", |ctx: StageContext| async move {
            let first = *ctx.input::<bool>("first")?;
            let token = ctx.cancellation();
            tokio::task::yield_now().await;
            Ok::<_, StageError>((first, token.is_cancelled(), ctx.is_cancelled()))
        })
        .after(["first"])
        .spawn()
        .build()
        .unwrap();
    let report = tokio::time::timeout(PATIENCE, outer.run())
        .await
        .expect("the run ends");
    assert!(report.is_success(), "{:?}", report.outcome());
    let seen = *report.artifact::<(bool, bool, bool)>("second").unwrap();
    assert_eq!(
        seen,
        (false, false, false),
        "(a fresh token of the stage that cancelled its own, a later stage's token, its \
         is_cancelled) must all be uncancelled"
    );
}
