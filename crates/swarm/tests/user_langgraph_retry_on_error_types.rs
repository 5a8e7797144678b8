//! LangGraph's `RetryPolicy(retry_on=...)` (`test_should_retry_on_single_exception`,
//! `_sequence_of_exceptions`, `_subclass_of_exception`, `_callable`,
//! `test_graph_with_max_attempts_exceeded`, `test_set_node_defaults_retry_policy`), through
//! hivekit's `retry_on`: the predicate picks errors by type anywhere in the source chain (a
//! wrapper around a retryable cause is retried: LangGraph's subclass case), by any of several
//! types, works under a pipeline-wide default policy, and when the attempts run out the stage's
//! error is the last attempt's, every attempt's error listed in order.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use hivekit_swarm::{
    AttemptFailure, Backoff, Pipeline, RetryPolicy, StageContext, StageError, StageStatus,
};

/// An error that wraps its cause (as an HTTP client wraps an I/O error).
#[derive(Debug)]
struct Wrapped(io::Error);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request failed")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[derive(Debug)]
struct ValueError;

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad value")
    }
}

impl std::error::Error for ValueError {}

fn io_timed_out(failure: &AttemptFailure) -> bool {
    failure.error().is_some_and(|error| {
        error
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
    })
}

/// A stage failing with `error(attempt)` until attempt `succeed_at`, counting its calls.
fn flaky<E>(
    calls: &Arc<AtomicU32>,
    succeed_at: u32,
    error: fn(u32) -> E,
) -> impl Fn(StageContext) -> std::future::Ready<Result<u32, StageError>> + Send + Sync + 'static
where
    E: std::error::Error + Send + Sync + 'static,
{
    let calls = calls.clone();
    move |ctx: StageContext| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if ctx.attempt() >= succeed_at {
            Ok(ctx.attempt())
        } else {
            Err(StageError::from_error(error(ctx.attempt())))
        })
    }
}

#[tokio::test]
async fn retry_on_finds_the_error_type_anywhere_in_the_source_chain() {
    let calls = Arc::new(AtomicU32::new(0));
    let pipeline = Pipeline::builder()
        .stage(
            "fetch",
            flaky(&calls, 3, |_| {
                Wrapped(io::Error::new(io::ErrorKind::TimedOut, "slow server"))
            }),
        )
        .retry(RetryPolicy::attempts(5).with_backoff(Backoff::NONE))
        .retry_on(io_timed_out)
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(
        report.status("fetch"),
        Some(&StageStatus::Succeeded { attempts: 3 })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retry_on_refuses_an_error_of_another_type_after_one_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let pipeline = Pipeline::builder()
        .stage("fetch", flaky(&calls, 3, |_| ValueError))
        .retry(RetryPolicy::attempts(5).with_backoff(Backoff::NONE))
        .retry_on(io_timed_out)
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let Some(StageStatus::Failed { error, attempts }) = report.status("fetch") else {
        panic!("fetch fails: {report}");
    };
    assert_eq!(*attempts, 1);
    assert!(error.downcast_ref::<ValueError>().is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retry_on_accepting_any_of_several_types_retries_each_of_them() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("fetch", move |ctx: StageContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::future::ready(match ctx.attempt() {
                1 => Err(StageError::from_error(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "reset",
                ))),
                2 => Err(StageError::from_error(ValueError)),
                3 => Err(StageError::from_error(fmt::Error)),
                attempt => Ok(attempt),
            })
        })
        .retry(RetryPolicy::attempts(10).with_backoff(Backoff::NONE))
        .retry_on(|failure| {
            failure.error().is_some_and(|error| {
                error.downcast_ref::<io::Error>().is_some()
                    || error.downcast_ref::<ValueError>().is_some()
            })
        })
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let Some(StageStatus::Failed { error, attempts }) = report.status("fetch") else {
        panic!("the third error type is not retried: {report}");
    };
    assert_eq!(*attempts, 3);
    assert!(error.downcast_ref::<fmt::Error>().is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retry_on_applies_under_the_pipelines_default_policy_and_a_stages_own_policy_wins() {
    let (defaulted, own) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let pipeline = Pipeline::builder()
        .default_retry(RetryPolicy::attempts(4).with_backoff(Backoff::NONE))
        .stage(
            "defaulted",
            flaky(&defaulted, 100, |_| {
                io::Error::new(io::ErrorKind::TimedOut, "slow")
            }),
        )
        .retry_on(io_timed_out)
        .stage(
            "own",
            flaky(&own, 100, |_| {
                io::Error::new(io::ErrorKind::TimedOut, "slow")
            }),
        )
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .retry_on(io_timed_out)
        .build()
        .unwrap();
    let report = pipeline
        .run_with(
            hivekit_swarm::RunOptions::default()
                .with_failure(hivekit_swarm::FailurePolicy::ContinueIndependent),
        )
        .await;
    assert_eq!(report.status("defaulted").unwrap().attempts(), 4);
    assert_eq!(report.status("own").unwrap().attempts(), 2);
    assert_eq!(defaulted.load(Ordering::SeqCst), 4);
    assert_eq!(own.load(Ordering::SeqCst), 2);
}

#[derive(Debug)]
struct Numbered(u32);

impl fmt::Display for Numbered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt {} failed", self.0)
    }
}

impl std::error::Error for Numbered {}

#[tokio::test]
async fn when_attempts_run_out_the_stage_error_is_the_last_attempts_and_each_is_listed() {
    let calls = Arc::new(AtomicU32::new(0));
    let pipeline = Pipeline::builder()
        .stage("node", flaky(&calls, 100, Numbered))
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let Some(StageStatus::Failed { error, attempts }) = report.status("node") else {
        panic!("node fails: {report}");
    };
    assert_eq!(*attempts, 3);
    assert_eq!(error.downcast_ref::<Numbered>().map(|n| n.0), Some(3));
    let listed: Vec<String> = report
        .stage("node")
        .unwrap()
        .failed_attempts
        .iter()
        .map(|record| format!("{}:{}", record.attempt, record.failure))
        .collect();
    assert_eq!(
        listed,
        [
            "1:attempt 1 failed",
            "2:attempt 2 failed",
            "3:attempt 3 failed"
        ]
    );
    assert_eq!(
        report.explain("node").unwrap(),
        "node failed: attempt 3 failed (after 3 attempts)",
        "the explanation names the last error"
    );
}
