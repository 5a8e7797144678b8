//! Controlling a run from outside the way users do: a token cancelled before the run starts, a
//! backoff of `Duration::MAX` bounded by the run's deadline (as `Backoff`'s docs advise), an event
//! receiver dropped before the run, a pipeline run inside another's stage, a hive round without
//! agents as a stage. Every wait is bounded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{Hive, State};
use hivekit_swarm::{
    hive_stage, Backoff, CancellationToken, EventSink, FailurePolicy, Pipeline, RetryPolicy,
    RunOptions, RunOutcome, SkipReason, StageContext, StageError, StageStatus,
};

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the run must not hang")
}

fn counted(
    started: &Arc<AtomicUsize>,
) -> impl Fn(StageContext) -> std::future::Ready<Result<(), StageError>> + Send + Sync + 'static {
    let started = started.clone();
    move |_: StageContext| {
        started.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_token_is_cancelled_before_it_starts_runs_no_stage() {
    let started = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .stage("a", counted(&started))
        .stage("b", counted(&started))
        .after(["a"])
        .stage("c", counted(&started))
        .spawn()
        .build()
        .expect("valid");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let report = bounded(pipeline.run_with(RunOptions::default().with_cancel(cancel))).await;
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    assert_eq!(
        started.load(Ordering::SeqCst),
        0,
        "no stage may start after cancellation"
    );
    for stage in ["a", "b", "c"] {
        assert_eq!(
            report.status(stage),
            Some(&StageStatus::Skipped {
                because: SkipReason::Cancelled
            }),
            "{stage}"
        );
    }
    assert_eq!(
        report.explain("b").as_deref(),
        Some("b skipped because the run was cancelled")
    );
}

#[tokio::test(start_paused = true)]
async fn a_backoff_of_duration_max_is_bounded_by_the_run_deadline() {
    let pipeline = Pipeline::builder()
        .stage("flaky", |_: StageContext| async {
            Err::<(), _>(StageError::msg("down"))
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::MAX)))
        .stage("independent", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .build()
        .expect("valid");
    let start = tokio::time::Instant::now();
    let report =
        bounded(pipeline.run_with(RunOptions::default().with_deadline(Duration::from_millis(50))))
            .await;
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    assert!(
        matches!(
            report.status("flaky"),
            Some(StageStatus::Cancelled | StageStatus::Failed { .. })
        ),
        "{:?}",
        report.status("flaky")
    );
    assert_eq!(
        report.status("independent"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
}

#[tokio::test(start_paused = true)]
async fn a_backoff_of_duration_max_is_ended_by_cancellation() {
    let pipeline = Pipeline::builder()
        .stage("flaky", |_: StageContext| async {
            Err::<(), _>(StageError::msg("down"))
        })
        .retry(RetryPolicy::attempts(u32::MAX).with_backoff(Backoff::fixed(Duration::MAX)))
        .build()
        .expect("valid");
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let stop = async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        canceller.cancel();
    };
    let (report, ()) = bounded(async {
        tokio::join!(
            pipeline.run_with(RunOptions::default().with_cancel(cancel)),
            stop
        )
    })
    .await;
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
}

#[tokio::test]
async fn a_run_whose_event_receiver_was_dropped_still_succeeds() {
    let (sink, receiver) = EventSink::channel();
    drop(receiver);
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(1u8) })
        .stage("b", |ctx: StageContext| async move {
            ctx.progress(1, 2);
            Ok::<_, StageError>(*ctx.input::<u8>("a")? + 1)
        })
        .after(["a"])
        .spawn()
        .build()
        .expect("valid");
    let report = bounded(pipeline.run_with(RunOptions::default().with_events(sink))).await;
    assert!(report.is_success());
    assert_eq!(*report.artifact::<u8>("b").expect("artifact"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_may_run_another_pipeline_and_return_its_artifact() {
    let inner = Pipeline::builder()
        .stage("x", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.run_input::<u32>()? * 10)
        })
        .spawn()
        .stage("y", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("x")? + 1)
        })
        .after(["x"])
        .build()
        .expect("valid inner");
    let outer = Pipeline::builder()
        .stage("seed", |_: StageContext| async {
            Ok::<_, StageError>(4u32)
        })
        .stage("nested", move |ctx: StageContext| {
            let inner = inner.clone();
            async move {
                let seed = *ctx.input::<u32>("seed")?;
                let report = inner.run_with(RunOptions::default().with_input(seed)).await;
                Ok::<_, StageError>(*report.artifact::<u32>("y")?)
            }
        })
        .after(["seed"])
        .build()
        .expect("valid outer");
    let report = bounded(outer.run()).await;
    assert_eq!(*report.artifact::<u32>("nested").expect("artifact"), 41);
}

#[derive(Clone, Default, Debug)]
struct Counter(u64);

impl State for Counter {
    type Key = &'static str;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

#[tokio::test]
async fn a_hive_stage_without_agents_fails_permanently_and_independent_stages_run() {
    let hive = Hive::builder(Counter::default()).build().expect("hive");
    let calls = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .stage("decide", hive_stage(hive))
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["decide"])
        .stage("independent", counted(&calls))
        .build()
        .expect("valid");
    let report = bounded(
        pipeline.run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)),
    )
    .await;
    let Some(StageStatus::Failed { error, attempts }) = report.status("decide") else {
        panic!("{:?}", report.status("decide"))
    };
    assert_eq!(*attempts, 1, "a hive without agents is not retried");
    assert!(matches!(error, StageError::Permanent(_)), "{error:?}");
    assert!(error.to_string().contains("no agents"), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(matches!(
        report.status("after"),
        Some(StageStatus::Skipped {
            because: SkipReason::Dependency { .. }
        })
    ));
}
