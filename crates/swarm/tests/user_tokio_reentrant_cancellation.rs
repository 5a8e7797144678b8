//! Cancellation from inside the run's own callbacks and from unusual places (tokio's tests cancel
//! tokens from the tasks they watch): the run's token cancelled by its event callback while a
//! stage's end is being announced (inline, spawned, all-spawned), a stage stopping a nested run
//! through its own child token (the outer run goes on), and a run driven by `Handle::block_on`
//! inside `spawn_blocking`, cancelled from the async side. Counted with drop guards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    CancellationToken, EventSink, Pipeline, RunOptions, RunOutcome, RunReport, StageContext,
    StageError, StageEvent, StageStatus,
};
use parking_lot::Mutex;

async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the run ends within ten seconds")
}

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

#[derive(Clone, Copy, Debug)]
enum Shape {
    Inline,
    AllSpawned,
    Mixed,
}

/// A chain `s0 -> s1 -> ... -> s29`; each body counts itself entered and alive and yields twice.
fn chain(shape: Shape, alive: &Arc<AtomicUsize>, entered: &Arc<Mutex<Vec<u32>>>) -> Pipeline {
    let mut builder = Pipeline::builder();
    for i in 0..30usize {
        let (alive, entered) = (alive.clone(), entered.clone());
        let stage = builder.stage(format!("s{i}"), move |_: StageContext| {
            let (alive, entered) = (alive.clone(), entered.clone());
            async move {
                let _alive = Alive::enter(&alive);
                entered.lock()[i] += 1;
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                Ok::<_, StageError>(i)
            }
        });
        let stage = if i > 0 {
            stage.after([format!("s{}", i - 1)])
        } else {
            stage
        };
        let spawn = match shape {
            Shape::Inline => false,
            Shape::AllSpawned => true,
            Shape::Mixed => i % 2 == 1,
        };
        builder = if spawn { stage.spawn() } else { stage.inline() }.into_builder();
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_callback_cancelling_the_run_stops_it_where_it_is() {
    for shape in [Shape::Inline, Shape::AllSpawned, Shape::Mixed] {
        let alive = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(Mutex::new(vec![0u32; 30]));
        let pipeline = chain(shape, &alive, &entered);
        let token = CancellationToken::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = EventSink::callback({
            let (token, seen) = (token.clone(), seen.clone());
            move |event| {
                if let StageEvent::Finished { stage, .. } = &event {
                    if &**stage == "s5" {
                        token.cancel();
                    }
                }
                seen.lock().push(event);
            }
        });
        let report = bounded(
            pipeline.run_with(
                RunOptions::default()
                    .with_cancel(token.clone())
                    .with_events(sink),
            ),
        )
        .await;
        let label = format!("{shape:?}");
        assert_eq!(alive.load(Ordering::SeqCst), 0, "{label}");
        assert_eq!(report.outcome(), RunOutcome::Cancelled, "{label}");
        let entered = entered.lock().clone();
        for (i, stage) in report.stages().iter().enumerate() {
            assert!(
                entered[i] <= 1,
                "{label}: s{i} entered {} times",
                entered[i]
            );
            match &stage.status {
                StageStatus::Succeeded { attempts: 1 } => assert_eq!(entered[i], 1, "{label}"),
                StageStatus::Skipped { .. } => assert_eq!(entered[i], 0, "{label}: s{i}"),
                StageStatus::Cancelled => {}
                other => panic!("{label}: s{i} {other:?}"),
            }
            if i <= 5 {
                assert!(
                    stage.status.is_success(),
                    "{label}: s{i} {:?}",
                    stage.status
                );
            }
        }
        // The chain stops within a stage or two of the cancel, not at its end.
        let succeeded = report.count(StageStatus::is_success);
        assert!(succeeded < 30, "{label}: {succeeded} stages succeeded");
        // Every stage is decided by exactly one event, and none arrives after the report.
        let decided = seen
            .lock()
            .iter()
            .filter(|event| {
                matches!(
                    event,
                    StageEvent::Finished { .. }
                        | StageEvent::Skipped { .. }
                        | StageEvent::Cancelled { .. }
                )
            })
            .count();
        assert_eq!(decided, 30, "{label}");
    }
}

/// `StageContext::cancellation`: "A child of the run's own token: the stage may cancel it to stop
/// its own work, which stops neither the run nor other stages' work". Here that work is a nested
/// run holding the child token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_stopping_its_nested_run_through_its_own_token_leaves_the_outer_run_going() {
    let alive = Arc::new(AtomicUsize::new(0));
    let inner = Pipeline::builder()
        .stage("waits", {
            let alive = alive.clone();
            move |_: StageContext| {
                let alive = alive.clone();
                async move {
                    let _alive = Alive::enter(&alive);
                    std::future::pending::<Result<(), StageError>>().await
                }
            }
        })
        .spawn()
        .stage("never", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["waits"])
        .build()
        .unwrap();
    let outer = Pipeline::builder()
        .stage("supervise", {
            let alive = alive.clone();
            move |ctx: StageContext| {
                let (inner, alive) = (inner.clone(), alive.clone());
                async move {
                    let token = ctx.cancellation();
                    let nested = tokio::spawn({
                        let options = RunOptions::default().with_cancel(token.clone());
                        async move { inner.run_with(options).await }
                    });
                    while alive.load(Ordering::SeqCst) == 0 {
                        tokio::task::yield_now().await;
                    }
                    token.cancel();
                    let report: RunReport = nested.await.map_err(StageError::from_error)?;
                    Ok::<_, StageError>((
                        report.outcome(),
                        alive.load(Ordering::SeqCst),
                        ctx.is_cancelled(),
                    ))
                }
            }
        })
        .spawn()
        .stage("next", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.input::<(RunOutcome, usize, bool)>("supervise")?.0)
        })
        .after(["supervise"])
        .build()
        .unwrap();
    let caller = CancellationToken::new();
    let report = bounded(outer.run_with(RunOptions::default().with_cancel(caller.clone()))).await;
    assert!(report.is_success(), "{:?}", report.stages());
    assert_eq!(
        *report
            .artifact::<(RunOutcome, usize, bool)>("supervise")
            .unwrap(),
        (RunOutcome::Cancelled, 0, false),
        "the nested run was cancelled and dropped its stage; the outer run was not"
    );
    assert!(!caller.is_cancelled());
}

/// A run driven by `Handle::block_on` on tokio's blocking pool, cancelled from an async task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_driven_inside_spawn_blocking_is_cancelled_from_the_async_side() {
    for spawn in [false, true] {
        let alive = Arc::new(AtomicUsize::new(0));
        let stage = Pipeline::builder().stage("waits", {
            let alive = alive.clone();
            move |_: StageContext| {
                let alive = alive.clone();
                async move {
                    let _alive = Alive::enter(&alive);
                    std::future::pending::<Result<(), StageError>>().await
                }
            }
        });
        let pipeline = if spawn { stage.spawn() } else { stage.inline() }
            .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
            .after(["waits"])
            .build()
            .unwrap();
        let token = CancellationToken::new();
        let handle = tokio::runtime::Handle::current();
        let blocking = tokio::task::spawn_blocking({
            let (token, alive) = (token.clone(), alive.clone());
            move || {
                let report =
                    handle.block_on(pipeline.run_with(RunOptions::default().with_cancel(token)));
                (report, alive.load(Ordering::SeqCst))
            }
        });
        bounded(async {
            while alive.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        token.cancel();
        let (report, alive_at_return) = bounded(blocking).await.unwrap();
        assert_eq!(report.outcome(), RunOutcome::Cancelled, "spawn {spawn}");
        assert_eq!(report.status("waits"), Some(&StageStatus::Cancelled));
        assert_eq!(alive_at_return, 0, "spawn {spawn}");
    }
}
