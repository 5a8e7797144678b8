//! Boundary values of every pipeline option: stage timeouts, retry policies and backoffs, run
//! options and fan-out policies, drawn from their edges. Each case runs on a paused clock under a
//! virtual watchdog (so it can neither hang nor sleep), and ends in a typed error or the documented
//! behaviour.

mod support;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, BuildError, ConcurrencyLimit, FanOut, Pipeline, RetryPolicy, RunOptions, RunOutcome,
    RunReport, StageContext, StageError, StageStatus,
};
use proptest::prelude::*;

/// Longer than any wait a case means to finish within, on the paused clock.
const WATCHDOG: Duration = Duration::from_secs(24 * 60 * 60);

/// Runs `future` on a fresh current-thread runtime with a paused clock, under the watchdog: `None`
/// when the watchdog fired first.
fn paused<F: std::future::Future>(future: F) -> Option<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async { tokio::time::timeout(WATCHDOG, future).await.ok() })
}

/// A stage whose first attempt waits `first_wait` (virtual) and fails; later attempts succeed at
/// once. Counts its attempts.
fn fails_once(
    calls: &Arc<AtomicU32>,
    first_wait: Duration,
) -> impl Fn(StageContext) -> futures::future::BoxFuture<'static, Result<u32, StageError>>
       + Send
       + Sync
       + 'static {
    let calls = Arc::clone(calls);
    move |ctx: StageContext| {
        calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if ctx.attempt() == 1 {
                tokio::time::sleep(first_wait).await;
                Err(StageError::msg("first attempt fails"))
            } else {
                Ok(ctx.attempt())
            }
        })
    }
}

const NO_LIMITS: [Duration; 2] = [
    Duration::MAX,
    Duration::MAX.saturating_sub(Duration::from_nanos(1)),
];

#[test]
fn a_stage_timeout_of_duration_max_means_no_limit() {
    for limit in NO_LIMITS {
        for spawn in [false, true] {
            let builder = Pipeline::builder()
                .stage("slow", |_| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(7_u32)
                })
                .timeout(limit);
            let builder = if spawn {
                builder.spawn()
            } else {
                builder.inline()
            };
            let pipeline = builder.build().unwrap();
            let report = paused(pipeline.run()).expect("the run ends");
            assert_eq!(
                report.status("slow"),
                Some(&StageStatus::Succeeded { attempts: 1 }),
                "limit {limit:?}, spawn {spawn}"
            );
        }
    }
}

#[test]
fn a_spawned_stage_with_timeout_duration_max_honours_its_retry_policy() {
    for limit in NO_LIMITS {
        let calls = Arc::new(AtomicU32::new(0));
        let pipeline = Pipeline::builder()
            .stage("flaky", fails_once(&calls, Duration::from_millis(5)))
            .timeout(limit)
            .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
            .spawn()
            .build()
            .unwrap();
        let report = paused(pipeline.run()).expect("the run ends");
        assert_eq!(
            report.status("flaky"),
            Some(&StageStatus::Succeeded { attempts: 2 })
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

#[test]
fn a_run_deadline_of_duration_max_means_no_deadline() {
    for deadline in NO_LIMITS {
        let pipeline = Pipeline::builder()
            .stage("slow", |_| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .build()
            .unwrap();
        let report = paused(pipeline.run_with(RunOptions::default().with_deadline(deadline)))
            .expect("the run ends");
        assert_eq!(
            report.outcome(),
            RunOutcome::Succeeded,
            "deadline {deadline:?}"
        );
    }
}

#[test]
fn a_run_deadline_of_zero_cancels_what_has_not_finished() {
    let pipeline = Pipeline::builder()
        .stage("quick", support::noop)
        .stage("slow", |_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        })
        .stage("after_slow", support::noop)
        .after(["slow"])
        .build()
        .unwrap();
    let report = paused(pipeline.run_with(RunOptions::default().with_deadline(Duration::ZERO)))
        .expect("the run ends");
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    // Nothing waits past the deadline: whatever had not finished is cancelled or skipped.
    for stage in ["quick", "slow", "after_slow"] {
        let status = report.status(stage).unwrap();
        assert!(
            matches!(
                status,
                StageStatus::Cancelled
                    | StageStatus::Skipped { .. }
                    | StageStatus::Succeeded { .. }
            ),
            "{stage}: {status:?}"
        );
    }
    assert!(!report.status("slow").unwrap().is_success());
    assert!(!report.status("after_slow").unwrap().is_success());
}

fn duration_edge() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(1)),
        Just(Duration::MAX.saturating_sub(Duration::from_nanos(1))),
        Just(Duration::MAX),
    ]
}

fn float_edge() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(1.0),
        Just(0.5),
        Just(2.0),
        Just(-1.0),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(f64::MIN_POSITIVE / 2.0), // subnormal
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ]
}

fn attempts_edge() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(u32::MAX - 1),
        Just(u32::MAX)
    ]
}

fn backoff() -> impl Strategy<Value = Backoff> {
    (duration_edge(), float_edge(), duration_edge(), float_edge()).prop_map(
        |(initial, multiplier, max, jitter)| Backoff {
            initial,
            multiplier,
            max,
            jitter,
        },
    )
}

fn valid_backoff(backoff: &Backoff) -> bool {
    backoff.multiplier.is_finite()
        && backoff.multiplier >= 1.0
        && (0.0..=1.0).contains(&backoff.jitter)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    /// `Backoff::delay` never panics and never exceeds `max`, whatever the fields and attempt.
    #[test]
    fn backoff_delays_stay_within_their_cap(backoff in backoff(), attempt in attempts_edge(), seed in any::<u64>()) {
        let delay = backoff.delay(attempt, seed);
        prop_assert!(delay <= backoff.max, "{delay:?} > {:?}", backoff.max);
    }

    /// Every combination of stage timeout, retry policy, backoff, deadline, concurrency and
    /// placement either fails to build with a typed error naming the stage, or runs to the outcome
    /// the options describe.
    #[test]
    fn stage_and_run_options_at_their_edges_give_a_typed_error_or_the_documented_run(
        timeout in prop::option::of(duration_edge()),
        max_attempts in attempts_edge(),
        backoff in backoff(),
        deadline in prop::option::of(duration_edge()),
        max_concurrency in prop_oneof![Just(1_usize), Just(2), Just(usize::MAX - 1), Just(usize::MAX)],
        spawn in any::<bool>(),
        seed in prop::option::of(any::<u64>()),
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let first_wait = Duration::from_millis(5);
        let mut builder = Pipeline::builder()
            .stage("edge", fails_once(&calls, first_wait))
            .retry(RetryPolicy { max_attempts, backoff });
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        builder = if spawn { builder.spawn() } else { builder.inline() };
        let built = builder.stage("after", support::noop).after(["edge"]).build();
        let retry_valid = max_attempts >= 1 && valid_backoff(&backoff);
        let timeout_valid = timeout != Some(Duration::ZERO);
        let pipeline = match built {
            Ok(pipeline) => {
                prop_assert!(retry_valid && timeout_valid);
                pipeline
            }
            Err(BuildError::InvalidRetryPolicy { stage, .. }) => {
                prop_assert!(!retry_valid);
                prop_assert_eq!(stage, "edge");
                return Ok(());
            }
            Err(BuildError::ZeroTimeout { stage }) => {
                prop_assert!(!timeout_valid);
                prop_assert_eq!(stage, "edge");
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        };
        let options = RunOptions {
            deadline,
            seed,
            max_concurrency: NonZeroUsize::new(max_concurrency).map_or(ConcurrencyLimit::Unbounded, ConcurrencyLimit::AtMost),
            ..RunOptions::default()
        };
        let Some(report) = paused(pipeline.run_with(options)) else {
            // Only a retry whose documented wait outlasts the watchdog may keep the run going.
            let shortest_wait = backoff.initial.min(backoff.max).as_secs_f64() * (1.0 - backoff.jitter);
            prop_assert!(max_attempts >= 2 && shortest_wait > 60.0, "hung: {backoff:?}");
            return Ok(());
        };
        check_report(&report, timeout, max_attempts, deadline, first_wait, calls.load(Ordering::SeqCst))?;
    }

    /// Fan-out widths and success counts at their edges: a typed error for the impossible ones,
    /// otherwise exactly the successes asked for.
    #[test]
    fn fan_out_policies_at_their_edges_give_a_typed_error_or_the_documented_result(
        width in prop_oneof![Just(0_usize), Just(1), Just(2), Just(usize::MAX - 1), Just(usize::MAX)],
        required in prop::option::of(prop_oneof![Just(0_usize), Just(1), Just(3), Just(4), Just(usize::MAX - 1), Just(usize::MAX)]),
        wait_all in any::<bool>(),
        items in 0_usize..4,
    ) {
        // `FanOut` is non-exhaustive: built from `new`, its public fields set.
        let mut policy = FanOut::new(width);
        policy.required = required;
        policy.wait_all = wait_all;
        let pipeline = Pipeline::builder()
            .stage("fan", move |ctx: StageContext| async move {
                let report = ctx
                    .fan_out(0..items, policy, |item| async move {
                        tokio::task::yield_now().await;
                        Ok::<usize, StageError>(item)
                    })
                    .await?;
                Ok(report.succeeded)
            })
            .build()
            .unwrap();
        let report = paused(pipeline.run()).expect("a fan-out of yields ends");
        let needed = required.unwrap_or(items);
        if width == 0 || needed > items {
            let Some(StageStatus::Failed { error, attempts: 1 }) = report.status("fan") else {
                return Err(TestCaseError::fail(format!("{:?}", report.status("fan"))));
            };
            prop_assert_eq!(error, &StageError::InvalidFanOut { width, required: needed, items });
        } else {
            let succeeded = *report.artifact::<usize>("fan").unwrap();
            prop_assert!(succeeded >= needed);
            if wait_all || required.is_none() {
                prop_assert_eq!(succeeded, items);
            }
        }
    }
}

/// What the `edge` stage of the options test must have done.
fn check_report(
    report: &RunReport,
    timeout: Option<Duration>,
    max_attempts: u32,
    deadline: Option<Duration>,
    first_wait: Duration,
    calls: u32,
) -> Result<(), TestCaseError> {
    let status = report.status("edge").unwrap();
    if report.outcome() == RunOutcome::DeadlineExceeded {
        // Only a deadline shorter than the first attempt's wait, or one the retry waits overran.
        prop_assert!(
            deadline.is_some_and(|deadline| deadline < WATCHDOG),
            "{status:?}"
        );
        return Ok(());
    }
    prop_assert!((1..=2).contains(&calls), "calls {calls}");
    let first_times_out = timeout.is_some_and(|limit| limit < first_wait);
    if max_attempts >= 2 {
        prop_assert_eq!(status, &StageStatus::Succeeded { attempts: 2 });
        prop_assert_eq!(report.outcome(), RunOutcome::Succeeded);
    } else if first_times_out {
        prop_assert_eq!(status, &StageStatus::TimedOut { attempts: 1 });
    } else {
        let StageStatus::Failed { attempts: 1, .. } = status else {
            return Err(TestCaseError::fail(format!("{status:?}")));
        };
    }
    Ok(())
}
