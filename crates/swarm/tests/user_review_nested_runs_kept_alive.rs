//! Review of "a run first polled inside a stage of another run is nested: the outer run waits at
//! its end for it" (crates/swarm/src/run/nesting.rs, `Pipeline::run`'s cancel safety in
//! crates/swarm/src/pipeline.rs). The promise is about nested runs the outer run *drops*; these
//! tests check what happens to nested runs that are *not* dropped with their stage (kept in an
//! artifact, in a `Shared` future, in a static, moved to a task after their first poll), and to
//! runs nested near blocking stages and runtimes that shut down. An outer run must never wait
//! for something only its own report (or its caller, after it returns) can release.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use hivekit_swarm::{
    FanOut, Pipeline, RunOptions, RunOutcome, RunReport, StageContext, StageError, StageStatus,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A started nested run, kept as an artifact (`Mutex` makes it `Sync`).
type KeptRun = Mutex<Option<Pin<Box<dyn Future<Output = RunReport> + Send>>>>;
/// A nested run's output shared between stages.
type SharedRun = Shared<BoxFuture<'static, u32>>;

/// How long a run that should end promptly may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(3);

/// Counts live stage futures.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A pipeline of one stage (spawned when `spawn`) that says it started, then waits until `gate`
/// has a permit, and returns 7.
fn gated(gate: &Arc<Semaphore>, started: &Arc<AtomicUsize>, spawn: bool) -> Pipeline {
    let (gate, started) = (gate.clone(), started.clone());
    let builder = Pipeline::builder().stage("work", move |_: StageContext| {
        let (gate, started) = (gate.clone(), started.clone());
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            let _permit = gate.acquire().await.map_err(StageError::msg)?;
            Ok::<_, StageError>(7_u32)
        }
    });
    let builder = if spawn { builder.spawn() } else { builder };
    builder.build().unwrap()
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

/// A stage starts a nested run (one poll, which launches its spawned stage) and returns the
/// started run as its artifact, for the caller to drive or drop. The outer run cannot wait for
/// that nested run to end: the nested run's future lives in the outer run's own artifacts, which
/// are released only with the report the outer run is waiting to return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outer_run_returns_when_a_stage_keeps_a_started_nested_run_in_its_artifact() {
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let nested = gated(&gate, &started, true);
    let outer = Pipeline::builder()
        .stage("start", move |_: StageContext| {
            let nested = nested.clone();
            async move {
                let mut run: Pin<Box<dyn Future<Output = RunReport> + Send>> =
                    Box::pin(async move { nested.run().await });
                // One poll: the nested run starts (and is first polled inside this stage).
                assert!(futures::poll!(run.as_mut()).is_pending());
                let kept: KeptRun = Mutex::new(Some(run));
                Ok::<_, StageError>(kept)
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(PATIENCE, outer.run()).await;
    gate.add_permits(1);
    let report = report.expect(
        "the outer run returned its report (it hangs waiting for a nested run kept alive in its \
         own artifact)",
    );
    assert!(report.is_success(), "{:?}", report.outcome());
    // The caller can still drive the kept run to its end.
    let kept = report.artifact::<KeptRun>("start").unwrap();
    let run = kept.lock().unwrap().take().unwrap();
    let nested_report = tokio::time::timeout(PATIENCE, run).await.unwrap();
    assert_eq!(
        nested_report
            .artifact::<u32>("work")
            .ok()
            .map(|value| *value),
        Some(7)
    );
}

/// Two stages share a nested run (`futures::future::Shared`, kept in the first stage's
/// artifact); the stage that awaits it first times out. Its attempt is dropped, but the shared
/// future (and the nested run in it) lives on in the artifact: the outer run must still end,
/// reporting the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_nested_run_left_behind_by_a_timed_out_stage_does_not_hang_the_outer_run() {
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let nested = gated(&gate, &started, true);
    let outer = Pipeline::builder()
        .stage("share", move |_: StageContext| {
            let nested = nested.clone();
            async move {
                let shared: SharedRun = async move {
                    let report = nested.run().await;
                    report
                        .artifact::<u32>("work")
                        .ok()
                        .map(|value| *value)
                        .unwrap_or(0)
                }
                .boxed()
                .shared();
                Ok::<_, StageError>(shared)
            }
        })
        .stage("wait", |ctx: StageContext| async move {
            let shared: SharedRun = (*ctx.input::<SharedRun>("share")?).clone();
            Ok::<_, StageError>(shared.await)
        })
        .after(["share"])
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let report = tokio::time::timeout(PATIENCE, outer.run()).await;
    gate.add_permits(1);
    let report = report.expect(
        "the outer run returned its report (it hangs waiting for the nested run kept alive in \
         the `Shared` future of its own artifact)",
    );
    assert!(
        matches!(report.status("wait"), Some(StageStatus::TimedOut { .. })),
        "{:?}",
        report.status("wait")
    );
}

/// A stage polls a nested run once and then hands it to a task of its own (a background job that
/// outlives the stage; it ends when the caller opens the gate, after the outer run returned).
/// Debatable: the doc says "a run a stage hands to a task of its own is not nested", but also
/// that nesting is decided by the *first* poll. Waiting makes the outer run hang here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_run_moved_to_a_detached_task_after_its_first_poll_does_not_hold_the_outer_run() {
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let nested = gated(&gate, &started, true);
    let handles = Arc::new(Mutex::new(Vec::new()));
    let outer = Pipeline::builder()
        .stage("detach", {
            let handles = handles.clone();
            move |_: StageContext| {
                let (nested, handles) = (nested.clone(), handles.clone());
                async move {
                    let mut run = Box::pin(async move { nested.run().await });
                    assert!(futures::poll!(run.as_mut()).is_pending());
                    handles.lock().unwrap().push(tokio::spawn(run));
                    Ok::<_, StageError>(())
                }
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(PATIENCE, outer.run()).await;
    gate.add_permits(1);
    let detached = handles.lock().unwrap().pop().unwrap();
    let nested_report = tokio::time::timeout(PATIENCE, detached)
        .await
        .expect("the detached nested run ends once the gate opens")
        .unwrap();
    assert!(nested_report.is_success());
    let report = report.expect(
        "the outer run returned without waiting for a nested run handed to a task of its own",
    );
    assert!(report.is_success());
}

static KEPT: Mutex<Option<Pin<Box<dyn Future<Output = RunReport> + Send>>>> = Mutex::new(None);

/// A stage starts a nested run and parks it in a static; a later stage takes it and drives it to
/// its end. The outer run ends normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_run_parked_in_a_static_and_driven_by_a_later_stage_lets_the_outer_run_end() {
    let gate = Arc::new(Semaphore::new(1));
    let started = Arc::new(AtomicUsize::new(0));
    let nested = gated(&gate, &started, true);
    let outer = Pipeline::builder()
        .stage("park", move |_: StageContext| {
            let nested = nested.clone();
            async move {
                let mut run: Pin<Box<dyn Future<Output = RunReport> + Send>> =
                    Box::pin(async move { nested.run().await });
                // On two workers the nested stage may end within this first poll (the gate is
                // open): a finished run is parked as its report, never polled again.
                if let std::task::Poll::Ready(report) = futures::poll!(run.as_mut()) {
                    run = Box::pin(std::future::ready(report));
                }
                *KEPT.lock().unwrap() = Some(run);
                Ok::<_, StageError>(())
            }
        })
        .stage("drive", |_: StageContext| async {
            let run = KEPT.lock().unwrap().take();
            let report = run.ok_or_else(|| StageError::msg("nothing parked"))?.await;
            Ok::<_, StageError>(*report.artifact::<u32>("work")?)
        })
        .after(["park"])
        .build()
        .unwrap();
    let report = tokio::time::timeout(PATIENCE, outer.run())
        .await
        .expect("the outer run ends");
    assert!(report.is_success(), "{:?}", report.outcome());
    assert_eq!(
        report.artifact::<u32>("drive").ok().map(|value| *value),
        Some(7)
    );
}

/// On a current-thread runtime, a nested run detached after its first poll that ends on its own:
/// the outer run (whichever way it decides about detached runs) must not deadlock the one thread.
#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_a_detached_nested_run_that_ends_on_its_own_does_not_deadlock()
{
    let gate = Arc::new(Semaphore::new(1));
    let started = Arc::new(AtomicUsize::new(0));
    let nested = gated(&gate, &started, true);
    let outer = Pipeline::builder()
        .stage("detach", move |_: StageContext| {
            let nested = nested.clone();
            async move {
                let mut run = Box::pin(async move { nested.run().await });
                let _ = futures::poll!(run.as_mut());
                drop(tokio::spawn(run));
                Ok::<_, StageError>(())
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(PATIENCE, outer.run())
        .await
        .expect("the outer run ends");
    assert!(report.is_success());
}

/// A nested run whose blocking stage is still running on the blocking pool when the outer run is
/// cancelled: the outer run abandons the thread (as for its own blocking stages) and returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_outer_run_does_not_wait_for_the_thread_of_a_nested_blocking_stage() {
    let release = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let nested = {
        let (release, started) = (release.clone(), started.clone());
        Pipeline::builder()
            .stage("spin", move |_: StageContext| {
                let (release, started) = (release.clone(), started.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
                        std::thread::yield_now();
                    }
                    Ok::<_, StageError>(1_u32)
                }
            })
            .blocking()
            .build()
            .unwrap()
    };
    let outer = Pipeline::builder()
        .stage("outer", move |_: StageContext| {
            let nested = nested.clone();
            async move {
                let report = nested.run().await;
                Ok::<_, StageError>(*report.artifact::<u32>("spin")?)
            }
        })
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let options = RunOptions::default().with_cancel(cancel.clone());
    let run = tokio::spawn(async move { outer.run_with(options).await });
    until("the blocking stage started", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    cancel.cancel();
    let report = tokio::time::timeout(PATIENCE, run).await;
    release.store(true, Ordering::SeqCst);
    let report = report
        .expect("the cancelled outer run returned without waiting for the blocking thread")
        .unwrap();
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
}

/// A run a blocking stage drives on its own thread is not nested (the doc says so): the
/// cancelled outer run returns while it still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_driven_inside_a_blocking_stage_is_not_waited_for_by_a_cancelled_outer_run() {
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let inner = gated(&gate, &started, true);
    let outer = Pipeline::builder()
        .stage("blocking", move |_: StageContext| {
            let inner = inner.clone();
            async move {
                let report = inner.run().await;
                Ok::<_, StageError>(*report.artifact::<u32>("work")?)
            }
        })
        .blocking()
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let options = RunOptions::default().with_cancel(cancel.clone());
    let run = tokio::spawn(async move { outer.run_with(options).await });
    until("the inner stage started", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    cancel.cancel();
    let report = tokio::time::timeout(PATIENCE, run).await;
    gate.add_permits(1);
    let report = report.expect("the outer run returned").unwrap();
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
}

/// The runtime running an outer run shuts down while a nested run's spawned stage hangs: the
/// shutdown completes promptly and drops every stage.
#[test]
fn a_runtime_shutting_down_under_an_outer_run_drops_the_nested_runs_stages() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let nested = {
        let live = live.clone();
        Pipeline::builder()
            .stage("hang", move |_: StageContext| {
                let guard = Live::new(&live);
                async move {
                    let _guard = guard;
                    std::future::pending::<Result<u32, StageError>>().await
                }
            })
            .spawn()
            .build()
            .unwrap()
    };
    let outer = Pipeline::builder()
        .stage("outer", move |_: StageContext| {
            let nested = nested.clone();
            async move {
                let report = nested.run().await;
                Ok::<_, StageError>(*report.artifact::<u32>("hang")?)
            }
        })
        .build()
        .unwrap();
    let run = runtime.spawn(async move { outer.run().await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while live.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the nested stage never started");
        std::thread::yield_now();
    }
    let began = Instant::now();
    runtime.shutdown_timeout(PATIENCE);
    assert!(
        began.elapsed() < PATIENCE,
        "the shutdown waited out its limit"
    );
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "a nested stage outlived its runtime"
    );
    drop(run);
}

/// Many nested runs at once (fan-out items, each a pipeline with a spawned stage), half of them
/// dropped by a met quorum: the places they take are all given back, so the outer run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_nested_runs_started_and_dropped_at_once_let_the_outer_run_end() {
    let live = Arc::new(AtomicUsize::new(0));
    let nested = {
        let live = live.clone();
        Pipeline::builder()
            .stage("item", move |ctx: StageContext| {
                let guard = Live::new(&live);
                async move {
                    let _guard = guard;
                    let item = *ctx.run_input::<u32>()?;
                    if item % 2 == 1 {
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, StageError>(item)
                }
            })
            .spawn()
            .build()
            .unwrap()
    };
    let outer = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let nested = nested.clone();
            async move {
                let report = ctx
                    .fan_out(0..400_u32, FanOut::new(400).require(200), |item| {
                        let nested = nested.clone();
                        async move {
                            let report = nested
                                .run_with(RunOptions::default().with_input(item))
                                .await;
                            Ok::<_, StageError>(*report.artifact::<u32>("item")?)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.succeeded)
            }
        })
        .build()
        .unwrap();
    for round in 0..5 {
        let report = tokio::time::timeout(Duration::from_secs(10), outer.run())
            .await
            .expect("the outer run ends");
        assert!(report.is_success(), "round {round}: {:?}", report.outcome());
        assert_eq!(live.load(Ordering::SeqCst), 0, "round {round}");
    }
}
