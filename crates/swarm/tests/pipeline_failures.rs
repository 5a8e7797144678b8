//! Failures: retries, timeouts, deadlines, fail-fast, continue-independent, cancellation, panics.

mod support;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, CancellationToken, FailurePolicy, Pipeline, RetryPolicy, RunOptions, RunOutcome,
    SkipReason, StageContext, StageError, StageStatus,
};
use support::{noop, LiveGuard};

/// A stage that fails until attempt `succeed_on` (never if 0), counting its calls.
fn flaky(
    calls: &Arc<AtomicU32>,
    succeed_on: u32,
) -> impl Fn(StageContext) -> std::future::Ready<Result<u32, StageError>> + Send + Sync + 'static {
    let calls = calls.clone();
    move |ctx: StageContext| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if succeed_on != 0 && ctx.attempt() >= succeed_on {
            Ok(ctx.attempt())
        } else {
            Err(StageError::msg(format!("attempt {} failed", ctx.attempt())))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn retries_are_honoured_exactly() {
    for max_attempts in 1..=4u32 {
        for succeed_on in 0..=5u32 {
            let calls = Arc::new(AtomicU32::new(0));
            let pipeline = Pipeline::builder()
                .stage("flaky", flaky(&calls, succeed_on))
                .retry(RetryPolicy::attempts(max_attempts))
                .stage("after", noop)
                .after(["flaky"])
                .build()
                .unwrap();
            let report = pipeline.run().await;
            let succeeds = succeed_on != 0 && succeed_on <= max_attempts;
            let expected_calls = if succeeds { succeed_on } else { max_attempts };
            assert_eq!(calls.load(Ordering::SeqCst), expected_calls);
            if succeeds {
                assert_eq!(
                    report.status("flaky"),
                    Some(&StageStatus::Succeeded {
                        attempts: succeed_on
                    })
                );
                assert_eq!(*report.artifact::<u32>("flaky").unwrap(), succeed_on);
                assert!(
                    report.status("after").unwrap().is_success(),
                    "dependents of a retried success run"
                );
            } else {
                assert_eq!(
                    report.status("flaky"),
                    Some(&StageStatus::Failed {
                        error: StageError::msg(format!("attempt {max_attempts} failed")),
                        attempts: max_attempts
                    })
                );
                assert!(matches!(
                    report.status("after"),
                    Some(StageStatus::Skipped { .. })
                ));
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_between_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let backoff = Backoff {
        initial: Duration::from_secs(1),
        multiplier: 2.0,
        max: Duration::from_secs(3),
        jitter: 0.0,
    };
    let pipeline = Pipeline::builder()
        .stage("flaky", flaky(&calls, 4))
        .retry(RetryPolicy::attempts(4).with_backoff(backoff))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let report = pipeline.run().await;
    assert!(report.is_success());
    // 1 s + 2 s + 3 s (capped) of virtual time.
    assert_eq!(start.elapsed(), Duration::from_secs(6));
}

/// A wide fan whose stages all fail once and back off together: each is launched again once its
/// wait is over (some queue for a slot meanwhile), and each runs exactly twice; with a deadline
/// that falls inside the backoff, none runs a second time and none is left undecided.
#[tokio::test(start_paused = true)]
async fn a_wide_fan_backing_off_at_once_retries_every_stage_once() {
    const WIDTH: usize = 2_000;
    let limit = |slots| std::num::NonZeroUsize::new(slots).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let retry = RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_secs(1)));
    let mut builder = Pipeline::builder().stage("source", noop).into_builder();
    for stage in 0..WIDTH {
        builder = builder
            .stage(format!("flaky-{stage}"), flaky(&calls, 2))
            .after(["source"])
            .retry(retry)
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    for options in [
        RunOptions::default(),
        RunOptions::default().with_max_concurrency(limit(64)),
        RunOptions::default()
            .with_seed(3)
            .with_max_concurrency(limit(7)),
    ] {
        calls.store(0, Ordering::SeqCst);
        let report = pipeline.run_with(options).await;
        assert!(report.is_success(), "{:?}", report.outcome());
        assert_eq!(calls.load(Ordering::SeqCst), 2 * WIDTH as u32);
        for stage in 0..WIDTH {
            let status = report.status(&format!("flaky-{stage}"));
            assert_eq!(status, Some(&StageStatus::Succeeded { attempts: 2 }));
        }
    }

    calls.store(0, Ordering::SeqCst);
    let options = RunOptions::default()
        .with_max_concurrency(limit(64))
        .with_deadline(Duration::from_millis(500));
    let report = pipeline.run_with(options).await;
    assert!(!report.is_success());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        WIDTH as u32,
        "no second attempt"
    );
    for stage in 0..WIDTH {
        let status = report.status(&format!("flaky-{stage}")).unwrap();
        assert!(!status.is_success(), "flaky-{stage}: {status:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("strict", move |_: StageContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(StageError::permanent("bad schema")) }
        })
        .retry(RetryPolicy::attempts(5))
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(report.status("strict").unwrap().attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn timeouts_count_as_attempts_and_explain_the_skip_chain() {
    let pipeline = Pipeline::builder()
        .stage("parse", |_: StageContext| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_secs(1))
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(500))))
        .stage("render", noop)
        .after(["parse"])
        .stage("report", noop)
        .after(["render"])
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let report = pipeline.run().await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(4),
        "3 timeouts of 1 s and 2 waits of 0.5 s"
    );
    assert_eq!(
        report.status("parse"),
        Some(&StageStatus::TimedOut { attempts: 3 })
    );
    assert_eq!(
        report.status("render").unwrap().to_string(),
        "skipped because parse failed: timed out after 3 attempts"
    );
    assert_eq!(
        report.explain("report").unwrap(),
        "report skipped because render was skipped because parse failed: timed out after 3 attempts"
    );
    assert_eq!(report.outcome(), RunOutcome::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_stage_that_finishes_in_time_is_not_timed_out() {
    let pipeline = Pipeline::builder()
        .stage("slowish", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(pipeline.run().await.is_success());
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cancels_running_stages_and_skips_the_rest() {
    let live = Arc::new(AtomicUsize::new(0));
    let tracked = live.clone();
    let pipeline = Pipeline::builder()
        .stage("quick", noop)
        .stage("slow", move |_: StageContext| {
            let guard = LiveGuard::new(&tracked);
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, StageError>(())
            }
        })
        .after(["quick"])
        .stage("last", noop)
        .after(["slow"])
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let report = pipeline
        .run_with(RunOptions::default().with_deadline(Duration::from_secs(2)))
        .await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    assert!(report.status("quick").unwrap().is_success());
    assert_eq!(report.status("slow"), Some(&StageStatus::Cancelled));
    assert_eq!(
        report.status("last"),
        Some(&StageStatus::Skipped {
            because: SkipReason::DeadlineExceeded
        })
    );
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// root -> {bad, good}; bad -> bad_child; good -> good_child; plus a slow independent stage.
fn branching(slow_live: &Arc<AtomicUsize>) -> Pipeline {
    let tracked = slow_live.clone();
    Pipeline::builder()
        .stage("root", noop)
        .stage("bad", |_: StageContext| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<(), _>(StageError::msg("boom"))
        })
        .after(["root"])
        .stage("bad_child", noop)
        .after(["bad"])
        .stage("good", |_: StageContext| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, StageError>(())
        })
        .after(["root"])
        .stage("good_child", noop)
        .after(["good"])
        .stage("slow", move |_: StageContext| {
            let guard = LiveGuard::new(&tracked);
            async move {
                let _guard = guard;
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, StageError>(())
            }
        })
        .spawn()
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn fail_fast_cancels_running_stages() {
    let live = Arc::new(AtomicUsize::new(0));
    let report = branching(&live).run().await;
    assert_eq!(report.outcome(), RunOutcome::Failed);
    assert!(matches!(
        report.status("bad"),
        Some(StageStatus::Failed { .. })
    ));
    assert_eq!(report.status("good"), Some(&StageStatus::Cancelled));
    assert_eq!(report.status("slow"), Some(&StageStatus::Cancelled));
    assert_eq!(
        report.status("bad_child").unwrap().to_string(),
        "skipped because bad failed: boom (after 1 attempt)"
    );
    assert_eq!(
        report.status("good_child"),
        Some(&StageStatus::Skipped {
            because: SkipReason::FailFast {
                stage: "bad".into()
            }
        })
    );
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the spawned stage was aborted before the run returned"
    );
}

/// A seeded run launches a wide fan over many polls (a budget of launches each); a fail-fast run
/// takes in the failures of the stages launched so far before it launches more, instead of
/// launching the whole fan first. On a current-thread runtime the order is fixed: the first
/// poll launches a budget's worth, those stages run (and fail), and the next poll stops the run.
#[test]
fn fail_fast_stops_a_wide_seeded_fan_of_spawned_stages_before_launching_all_of_it() {
    const WIDTH: usize = 2_000;
    let called = Arc::new(AtomicUsize::new(0));
    let mut builder = Pipeline::builder().stage("root", noop).into_builder();
    for index in 0..WIDTH {
        let called = called.clone();
        builder = builder
            .stage(format!("s{index}"), move |_| {
                called.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(StageError::msg("down")) }
            })
            .spawn()
            .after(["root"])
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(pipeline.run_with(RunOptions::default().with_seed(3)));
    assert_eq!(report.outcome(), RunOutcome::Failed);
    let called = called.load(Ordering::SeqCst);
    let failed = report.count(|status| matches!(status, StageStatus::Failed { .. }));
    let cancelled = report.count(|status| matches!(status, StageStatus::Cancelled));
    let skipped = report.count(|status| {
        matches!(
            status,
            StageStatus::Skipped {
                because: SkipReason::FailFast { .. }
            }
        )
    });
    assert!(called >= 1, "a stage ran");
    assert_eq!(
        failed, called,
        "every stage that ran failed and is reported so"
    );
    // Launched: ran, or still queued on the runtime when the run stopped (aborted).
    let launched = called + cancelled;
    assert!(
        launched <= 256,
        "{launched} of {WIDTH} stages were launched before the run took in the first failures"
    );
    assert_eq!(skipped, WIDTH - launched, "the rest were never launched");
}

#[tokio::test(start_paused = true)]
async fn continue_independent_skips_only_dependents() {
    let live = Arc::new(AtomicUsize::new(0));
    let report = branching(&live)
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await;
    assert_eq!(report.outcome(), RunOutcome::Failed);
    assert!(matches!(
        report.status("bad"),
        Some(StageStatus::Failed { .. })
    ));
    assert!(matches!(
        report.status("bad_child"),
        Some(StageStatus::Skipped { .. })
    ));
    for stage in ["root", "good", "good_child", "slow"] {
        assert!(report.status(stage).unwrap().is_success(), "{stage}");
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_mid_run_leaves_no_task_running() {
    let live = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(tokio::sync::Barrier::new(9));
    let mut builder = Pipeline::builder();
    for stage in 0..8 {
        let (live, started) = (live.clone(), started.clone());
        let stage_builder = builder.stage(support::name(stage), move |_: StageContext| {
            let guard = LiveGuard::new(&live);
            let started = started.clone();
            async move {
                let _guard = guard;
                started.wait().await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, StageError>(())
            }
        });
        // Half inline, half on tasks of their own.
        builder = if stage % 2 == 0 {
            stage_builder.spawn().into_builder()
        } else {
            stage_builder.into_builder()
        };
    }
    let pipeline = builder
        .stage("after", noop)
        .after((0..8).map(support::name))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let pipeline = pipeline.clone();
        let cancel = cancel.clone();
        async move {
            pipeline
                .run_with(RunOptions::default().with_cancel(cancel))
                .await
        }
    });
    started.wait().await;
    assert_eq!(live.load(Ordering::SeqCst), 8);
    cancel.cancel();
    let report = run.await.unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 0);
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    assert_eq!(report.count(|status| *status == StageStatus::Cancelled), 8);
    assert_eq!(
        report.status("after"),
        Some(&StageStatus::Skipped {
            because: SkipReason::Cancelled
        })
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_run_aborts_spawned_stages() {
    let live = Arc::new(AtomicUsize::new(0));
    let tracked = live.clone();
    let pipeline = Pipeline::builder()
        .stage("forever", move |_: StageContext| {
            let guard = LiveGuard::new(&tracked);
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
                Ok::<_, StageError>(())
            }
        })
        .spawn()
        .build()
        .unwrap();
    let timed_out = tokio::time::timeout(Duration::from_secs(1), pipeline.run()).await;
    assert!(timed_out.is_err());
    // The abort is delivered when the runtime next polls the task.
    for _ in 0..10 {
        if live.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// A pipeline with spawned stages on a multi-thread runtime is driven from a task of its own:
/// dropping the run's future must still abort the stages it spawned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_driven_from_a_worker_aborts_its_spawned_stages() {
    let (started, started_here) = tokio::sync::oneshot::channel::<()>();
    let (held, dropped_here) = tokio::sync::oneshot::channel::<()>();
    let ends = Arc::new(parking_lot::Mutex::new(Some((started, held))));
    let pipeline = Pipeline::builder()
        .stage("first", noop)
        .spawn()
        .stage("forever", move |_: StageContext| {
            let ends = ends.lock().take();
            async move {
                // Kept until the stage's future is dropped.
                let _held = ends.map(|(started, held)| {
                    let _ = started.send(());
                    held
                });
                std::future::pending::<()>().await;
                Ok::<_, StageError>(())
            }
        })
        .after(["first"])
        .spawn()
        .build()
        .unwrap();
    let mut run = Box::pin(pipeline.run());
    tokio::select! {
        _ = &mut run => panic!("the run cannot end while a stage is pending"),
        started = started_here => started.expect("the second stage starts"),
    }
    drop(run);
    let dropped = tokio::time::timeout(Duration::from_secs(10), dropped_here).await;
    assert!(
        matches!(dropped, Ok(Err(_))),
        "the spawned stage was aborted and dropped"
    );
}

#[tokio::test]
async fn panicking_stages_are_failures() {
    let pipeline = Pipeline::builder()
        .stage("in_future", |_: StageContext| async {
            if true {
                panic!("kaboom");
            }
            Ok::<_, StageError>(())
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .stage(
            "in_call",
            |_: StageContext| -> std::future::Ready<Result<(), StageError>> {
                panic!("before the future")
            },
        )
        .stage("spawned", |_: StageContext| async {
            if true {
                panic!("{}", String::from("on a task"));
            }
            Ok::<_, StageError>(())
        })
        .spawn()
        .stage("fine", noop)
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await;
    assert_eq!(
        report.status("in_future"),
        Some(&StageStatus::Failed {
            error: StageError::Panicked("kaboom".into()),
            attempts: 2
        })
    );
    assert_eq!(
        report.status("in_call"),
        Some(&StageStatus::Failed {
            error: StageError::Panicked("before the future".into()),
            attempts: 1
        })
    );
    assert_eq!(
        report.status("spawned"),
        Some(&StageStatus::Failed {
            error: StageError::Panicked("on a task".into()),
            attempts: 1
        })
    );
    assert!(report.status("fine").unwrap().is_success());
}

#[tokio::test]
async fn a_failure_at_the_root_of_a_long_chain_skips_it_without_quadratic_work() {
    let mut builder = Pipeline::builder()
        .stage("s0", |_: StageContext| async {
            Err::<(), _>(StageError::msg("root failed"))
        })
        .into_builder();
    for stage in 1..10_000 {
        builder = support::add(
            builder,
            &support::name(stage),
            &[support::name(stage - 1)],
            noop,
        );
    }
    let report = builder.build().unwrap().run().await;
    assert_eq!(
        report.count(|status| matches!(status, StageStatus::Skipped { .. })),
        9_999
    );
    assert!(report
        .explain("s9999")
        .unwrap()
        .ends_with("s0 failed: root failed (after 1 attempt)"));
}

/// Regression: cancelling a run whose only running stages were inline and pending hung, because
/// stages replaced inside the `FuturesUnordered` were never polled again.
#[tokio::test(start_paused = true)]
async fn regression_cancelling_pending_inline_stages_does_not_hang() {
    let pipeline = Pipeline::builder()
        .stage("forever", |_: StageContext| async {
            std::future::pending::<()>().await;
            Ok::<_, StageError>(())
        })
        .inline()
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        canceller.cancel();
    });
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline.run_with(RunOptions::default().with_cancel(cancel)),
    )
    .await
    .expect("the cancelled run ends");
    assert_eq!(report.status("forever"), Some(&StageStatus::Cancelled));
}

#[tokio::test]
async fn a_single_attempt_stage_that_fails_at_once_is_recorded_like_one_that_waited_first() {
    // A stage with one attempt and no timeout starts without its state machine (and gets one
    // only if it waits): whichever way it ends, the report must read the same.
    let pipeline = Pipeline::builder()
        .stage("at_once", |_: StageContext| async {
            Err::<(), _>(StageError::msg("no"))
        })
        .stage("after_a_wait", |_: StageContext| async {
            tokio::task::yield_now().await;
            Err::<(), _>(StageError::msg("no"))
        })
        .stage("waits_then_succeeds", |_: StageContext| async {
            tokio::task::yield_now().await;
            Ok::<_, StageError>(7u32)
        })
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await;
    for name in ["at_once", "after_a_wait"] {
        assert_eq!(
            report.status(name),
            Some(&StageStatus::Failed {
                error: StageError::msg("no"),
                attempts: 1
            }),
            "{name}"
        );
        let stage = report.stage(name).unwrap();
        let [record] = &stage.failed_attempts[..] else {
            panic!("{name} has one failed attempt: {:?}", stage.failed_attempts);
        };
        assert_eq!(record.attempt, 1, "{name}");
        assert_eq!(Some(record.started), stage.started, "{name}");
        assert_eq!(Some(record.elapsed), stage.elapsed, "{name}");
        assert_eq!(record.backoff, Duration::ZERO, "{name}");
    }
    assert_eq!(
        report.status("waits_then_succeeds"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
    assert_eq!(*report.artifact::<u32>("waits_then_succeeds").unwrap(), 7);
}

/// The run's cancellation token is made only when a stage asks for it
/// (`hivekit_runtime::LazyCancel`): a token taken before a fail-fast stop is cancelled by it, and
/// one asked for afterwards (through a context kept past the stop) is cancelled already.
#[tokio::test]
async fn the_run_token_is_cancelled_by_a_fail_fast_stop_whenever_it_was_taken() {
    let taken = Arc::new(std::sync::Mutex::new(None::<CancellationToken>));
    let kept = Arc::new(std::sync::Mutex::new(None::<StageContext>));
    let (take, keep) = (taken.clone(), kept.clone());
    let pipeline = Pipeline::builder()
        .stage("takes", move |ctx: StageContext| {
            *take.lock().unwrap() = Some(ctx.cancellation());
            *keep.lock().unwrap() = Some(ctx.clone());
            async move {
                assert!(!ctx.is_cancelled());
                Ok::<_, StageError>(())
            }
        })
        .stage("fails", |_: StageContext| async {
            Err::<(), _>(StageError::permanent("no"))
        })
        .after(["takes"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(!report.is_success());
    let token = taken
        .lock()
        .unwrap()
        .take()
        .expect("the stage took the token");
    assert!(token.is_cancelled(), "taken before the stop");
    let context = kept
        .lock()
        .unwrap()
        .take()
        .expect("the stage kept its context");
    assert!(context.is_cancelled());
    assert!(context.cancellation().is_cancelled(), "made after the stop");

    // A run that ends without stopping early cancels nothing.
    let calm = Pipeline::builder()
        .stage("takes", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.cancellation())
        })
        .build()
        .unwrap();
    let report = calm.run().await;
    let token = report.artifact::<CancellationToken>("takes").unwrap();
    assert!(!token.is_cancelled());
}
