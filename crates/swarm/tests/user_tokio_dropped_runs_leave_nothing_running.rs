//! tokio's `JoinSet`/abort suite seen through a run: a run dropped mid-way (its driving task
//! aborted, its future dropped on another thread, its runtime shut down under it) while stages
//! hang inline and spawned, wait out a retry backoff and wait for a concurrency slot. Counted with
//! drop guards: every stage body is dropped (soon, as `Pipeline::run`'s cancel safety promises), no
//! queued stage starts afterwards, the tokens stages handed out are cancelled and the caller's is not.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hivekit_swarm::{
    Backoff, CancellationToken, Pipeline, RetryPolicy, RunOptions, RunReport, StageContext,
    StageError,
};
use parking_lot::Mutex;

/// Counts itself out when dropped.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn enter(alive: &Arc<AtomicUsize>) -> Self {
        alive.fetch_add(1, Ordering::SeqCst);
        Self(alive.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Counters {
    /// Stage bodies alive (entered, not yet dropped).
    alive: Arc<AtomicUsize>,
    /// Stage bodies entered, attempts included.
    entered: AtomicUsize,
    /// Tokens the stages took with `StageContext::cancellation`.
    tokens: Mutex<Vec<CancellationToken>>,
}

/// With a limit of three slots: `hang_inline` and `hang_spawned` wait forever, `backoff` fails its
/// first attempt and waits an hour before its second (holding no slot), `slot` takes the third
/// slot and waits forever; `queued0..queued4` are ready but find no slot; `never` runs after
/// everything. Five bodies are entered before the run is stuck: two hanging, `backoff`'s first
/// attempt (ended), `slot`, and nothing else.
fn stuck(counters: &Arc<Counters>) -> Pipeline {
    let hang = |counters: Arc<Counters>| {
        move |ctx: StageContext| {
            let counters = counters.clone();
            async move {
                counters.entered.fetch_add(1, Ordering::SeqCst);
                let _alive = Alive::enter(&counters.alive);
                counters.tokens.lock().push(ctx.cancellation());
                std::future::pending::<Result<(), StageError>>().await
            }
        }
    };
    let mut builder = Pipeline::builder()
        .stage("hang_inline", hang(counters.clone()))
        .inline()
        .stage("hang_spawned", hang(counters.clone()))
        .spawn()
        .stage("backoff", {
            let counters = counters.clone();
            move |ctx: StageContext| {
                let counters = counters.clone();
                async move {
                    counters.entered.fetch_add(1, Ordering::SeqCst);
                    let _alive = Alive::enter(&counters.alive);
                    if ctx.attempt() == 1 {
                        return Err(StageError::msg("later"));
                    }
                    Ok(())
                }
            }
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_secs(3600))))
        .spawn()
        .stage("slot", hang(counters.clone()))
        .spawn()
        .into_builder();
    for i in 0..5 {
        builder = builder
            .stage(format!("queued{i}"), hang(counters.clone()))
            .spawn()
            .into_builder();
    }
    builder
        .stage("never", hang(counters.clone()))
        .after(["hang_inline", "hang_spawned", "backoff", "slot"])
        .build()
        .unwrap()
}

fn options(caller: &CancellationToken) -> RunOptions {
    RunOptions::default()
        .with_max_concurrency(std::num::NonZeroUsize::new(3).unwrap())
        .with_cancel(caller.clone())
}

/// Waits (yielding, at most five seconds of real time) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting until {what}"
        );
        tokio::task::yield_now().await;
    }
}

/// The same, from a plain thread.
fn until_blocking(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting until {what}"
        );
        std::thread::yield_now();
    }
}

/// The run is stuck: three bodies hang and `backoff` failed once.
fn is_stuck(counters: &Counters) -> bool {
    counters.alive.load(Ordering::SeqCst) == 3 && counters.entered.load(Ordering::SeqCst) == 4
}

fn check_stopped(counters: &Counters, caller: &CancellationToken, label: &str) {
    assert_eq!(counters.alive.load(Ordering::SeqCst), 0, "{label}");
    assert_eq!(
        counters.entered.load(Ordering::SeqCst),
        4,
        "{label}: no queued stage started, no retry ran"
    );
    let tokens = counters.tokens.lock();
    assert_eq!(tokens.len(), 3, "{label}");
    assert!(
        tokens.iter().all(CancellationToken::is_cancelled),
        "{label}: every token a stage handed out is cancelled"
    );
    assert!(!caller.is_cancelled(), "{label}: the caller's token is not");
}

async fn abort_the_driving_task(label: &str) {
    let counters = Arc::new(Counters::default());
    let pipeline = stuck(&counters);
    let caller = CancellationToken::new();
    let options = options(&caller);
    let run = tokio::spawn(async move { pipeline.run_with(options).await });
    until("the run is stuck", || is_stuck(&counters)).await;
    run.abort();
    let joined = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("an aborted task ends");
    assert!(joined.unwrap_err().is_cancelled(), "{label}");
    until("every stage body is dropped", || {
        counters.alive.load(Ordering::SeqCst) == 0
    })
    .await;
    // Give anything wrongly left running the chance to start a queued stage.
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    check_stopped(&counters, &caller, label);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_the_task_driving_a_run_drops_every_stage_on_a_multi_thread_runtime() {
    abort_the_driving_task("multi-thread").await;
}

#[tokio::test(flavor = "current_thread")]
async fn aborting_the_task_driving_a_run_drops_every_stage_on_a_current_thread_runtime() {
    abort_the_driving_task("current-thread").await;
}

type RunFuture<'a> = Pin<Box<dyn Future<Output = RunReport> + Send + 'a>>;

/// Polls `run` on `runtime` until the run is stuck, and hands it back unfinished.
fn poll_until_stuck<'a>(
    runtime: &tokio::runtime::Runtime,
    mut run: RunFuture<'a>,
    counters: &Counters,
) -> RunFuture<'a> {
    runtime.block_on(async {
        let start = Instant::now();
        while !is_stuck(counters) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the run got stuck"
            );
            let polled = std::future::poll_fn(|cx: &mut Context<'_>| {
                Poll::Ready(run.as_mut().poll(cx).is_ready())
            })
            .await;
            assert!(!polled, "the run cannot end");
            tokio::task::yield_now().await;
        }
    });
    run
}

/// tokio's "abort from another thread" (#3662): the run's future, polled on a runtime, is dropped
/// on a plain thread outside any runtime.
fn drop_on_another_thread(runtime: tokio::runtime::Runtime, label: &str) {
    let counters = Arc::new(Counters::default());
    let pipeline = stuck(&counters);
    let caller = CancellationToken::new();
    let run: RunFuture<'_> = Box::pin(pipeline.run_with(options(&caller)));
    let run = poll_until_stuck(&runtime, run, &counters);
    std::thread::scope(|scope| {
        scope
            .spawn(move || drop(run))
            .join()
            .expect("dropping a run outside a runtime does not panic");
    });
    runtime.block_on(until("every stage body is dropped", || {
        counters.alive.load(Ordering::SeqCst) == 0
    }));
    runtime.block_on(async {
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
    });
    check_stopped(&counters, &caller, label);
}

#[test]
fn a_run_dropped_on_a_plain_thread_stops_its_stages_on_a_current_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    drop_on_another_thread(runtime, "current-thread");
}

#[test]
fn a_run_dropped_on_a_plain_thread_stops_its_stages_on_a_multi_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    drop_on_another_thread(runtime, "multi-thread");
}

/// tokio's `runtime_gone`: the runtime a run was started on shuts down under it. Every stage body,
/// spawned or inline, is dropped with the runtime's tasks.
fn runtime_shut_down_under_the_run(runtime: tokio::runtime::Runtime, label: &str) {
    let counters = Arc::new(Counters::default());
    let pipeline = stuck(&counters);
    let caller = CancellationToken::new();
    let options = options(&caller);
    let run = runtime.spawn(async move { pipeline.run_with(options).await });
    runtime.block_on(until("the run is stuck", || is_stuck(&counters)));
    drop(runtime);
    until_blocking("every stage body is dropped", || {
        counters.alive.load(Ordering::SeqCst) == 0
    });
    check_stopped(&counters, &caller, label);
    let joined = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(run);
    assert!(joined.unwrap_err().is_cancelled(), "{label}");
}

#[test]
fn a_current_thread_runtime_shut_down_under_a_run_drops_every_stage() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime_shut_down_under_the_run(runtime, "current-thread");
}

#[test]
fn a_multi_thread_runtime_shut_down_under_a_run_drops_every_stage() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime_shut_down_under_the_run(runtime, "multi-thread");
}

/// tokio's `test_abort_on_drop` for a run: many runs of one pipeline at once, all dropped while
/// their stages hang, then the pipeline runs again to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_runs_dropped_at_once_drop_every_stage_and_the_pipeline_runs_again() {
    let counters = Arc::new(Counters::default());
    let pipeline = stuck(&counters);
    let caller = CancellationToken::new();
    let runs: Vec<_> = (0..16)
        .map(|_| {
            let pipeline = pipeline.clone();
            let options = options(&caller);
            tokio::spawn(async move { pipeline.run_with(options).await })
        })
        .collect();
    until("every run is stuck", || {
        counters.alive.load(Ordering::SeqCst) == 16 * 3
            && counters.entered.load(Ordering::SeqCst) == 16 * 4
    })
    .await;
    for run in &runs {
        run.abort();
    }
    for run in runs {
        assert!(run.await.unwrap_err().is_cancelled());
    }
    until("every stage body is dropped", || {
        counters.alive.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(counters.entered.load(Ordering::SeqCst), 16 * 4);
    assert!(!caller.is_cancelled());
    assert_eq!(counters.tokens.lock().len(), 16 * 3);
    assert!(counters
        .tokens
        .lock()
        .iter()
        .all(CancellationToken::is_cancelled));

    // The same pipeline, cancelled cleanly this time, returns a report naming the stuck stages.
    let token = CancellationToken::new();
    let run = tokio::spawn({
        let pipeline = pipeline.clone();
        let options = options(&token);
        async move { pipeline.run_with(options).await }
    });
    until("the new run is stuck", || {
        counters.alive.load(Ordering::SeqCst) == 3
            && counters.entered.load(Ordering::SeqCst) == 16 * 4 + 4
    })
    .await;
    token.cancel();
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(counters.alive.load(Ordering::SeqCst), 0);
    assert_eq!(
        report.count(|status| *status == hivekit_swarm::StageStatus::Cancelled),
        4,
        "hang_inline, hang_spawned, slot, and backoff waiting out its backoff: {:?}",
        report.stages()
    );
}
