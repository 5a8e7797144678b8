//! "`Permanent`, `Input`, `InvalidFanOut`, `InvalidFanOutRetry` and `InvalidRoute` are never
//! retried; everything else is, when the stage's `RetryPolicy` allows another attempt" (the docs of
//! `StageError`). Each error is raised by a real stage under a five-attempt policy, and the stage's
//! calls are counted.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    AttemptFailure, Backoff, FanOut, LoopPolicy, Pipeline, RetryPolicy, Route, StageContext,
    StageError, StageStatus,
};

const ATTEMPTS: u32 = 5;

fn policy() -> RetryPolicy {
    RetryPolicy::attempts(ATTEMPTS).with_backoff(Backoff::NONE)
}

/// Runs a one-stage pipeline (plus a successor for routers) and returns the calls and the status.
async fn calls_of(kind: &str) -> (u32, StageStatus) {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let builder = Pipeline::builder();
    let pipeline = match kind {
        "invalid_route" => builder
            .router("stage", move |_: StageContext| {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, StageError>(Route::to(["not_a_successor"])) }
            })
            .retry(policy())
            .stage("next", |_: StageContext| async { Ok::<_, StageError>(()) })
            .after(["stage"])
            .build(),
        "iteration" => {
            let body = Pipeline::builder()
                .stage("body", move |_: StageContext| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async { Err::<(), _>(StageError::permanent("body fails")) }
                })
                .build()
                .unwrap();
            builder
                .repeat("stage", body, LoopPolicy::new(3))
                .retry(policy())
                .build()
        }
        _ => {
            let kind = kind.to_owned();
            builder
                .stage("stage", move |ctx: StageContext| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let kind = kind.clone();
                    async move {
                        match kind.as_str() {
                            "permanent" => Err(StageError::permanent("bad schema")),
                            "input" => ctx.run_input::<u32>().map(|_| ()).map_err(Into::into),
                            "invalid_fan_out" => ctx
                                .fan_out(0..3u32, FanOut::new(0), |_| async { Ok(()) })
                                .await
                                .map(|_| ()),
                            "invalid_fan_out_retry" => ctx
                                .fan_out(
                                    0..3u32,
                                    FanOut::new(1).retry(RetryPolicy::attempts(0)),
                                    |_| async { Ok(()) },
                                )
                                .await
                                .map(|_| ()),
                            "failed" => Err(StageError::msg("try again")),
                            "source" => Err(std::io::Error::other("io").into()),
                            "panicked" => panic!("boom"),
                            "fan_out" => ctx
                                .fan_out(0..3u32, FanOut::new(3), |_| async {
                                    Err::<(), _>(StageError::permanent("item fails"))
                                })
                                .await
                                .map(|_| ()),
                            other => unreachable!("{other}"),
                        }
                    }
                })
                .retry(policy())
                .build()
        }
    }
    .expect("a valid pipeline");
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("the run ends");
    (
        calls.load(Ordering::SeqCst),
        report.status("stage").cloned().unwrap(),
    )
}

#[tokio::test]
async fn errors_documented_as_never_retried_are_attempted_once() {
    let mut wrong = Vec::new();
    for kind in [
        "permanent",
        "input",
        "invalid_fan_out",
        "invalid_fan_out_retry",
        "invalid_route",
    ] {
        let (calls, status) = calls_of(kind).await;
        let failed_once = matches!(status, StageStatus::Failed { attempts: 1, .. });
        if calls != 1 || !failed_once {
            wrong.push(format!("{kind}: {calls} calls, {status:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "retried although never retryable: {wrong:#?}"
    );
}

#[tokio::test]
async fn every_other_error_is_retried_up_to_the_policy() {
    let mut wrong = Vec::new();
    for kind in ["failed", "source", "panicked", "fan_out", "iteration"] {
        let (calls, status) = calls_of(kind).await;
        // Each attempt of the loop stage runs its body once (the body's permanent error ends the
        // iteration), so every kind makes one call per attempt.
        let exhausted =
            matches!(status, StageStatus::Failed { attempts, .. } if attempts == ATTEMPTS);
        if calls != ATTEMPTS || !exhausted {
            wrong.push(format!("{kind}: {calls} calls, {status:?}"));
        }
    }
    assert!(wrong.is_empty(), "not retried as documented: {wrong:#?}");
}

#[test]
fn is_retryable_agrees_with_the_documented_list() {
    let never = [
        StageError::permanent("p"),
        StageError::InvalidFanOut {
            width: 0,
            required: 1,
            items: 1,
        },
        StageError::InvalidFanOutRetry {
            reason: "zero attempts".into(),
        },
        StageError::InvalidRoute {
            router: "r".into(),
            target: "t".into(),
        },
    ];
    for error in never {
        assert!(!error.is_retryable(), "{error:?}");
        let failure = AttemptFailure::Error { error };
        assert!(!failure.is_retryable(), "{failure:?}");
    }
    let always = [
        StageError::msg("m"),
        StageError::Panicked("p".into()),
        StageError::FanOut {
            required: 2,
            launched: 2,
            succeeded: 1,
        },
        StageError::from_error(std::io::Error::other("io")),
    ];
    for error in always {
        assert!(error.is_retryable(), "{error:?}");
        let failure = AttemptFailure::Error { error };
        assert!(failure.is_retryable(), "{failure:?}");
    }
    // "timeouts may"
    assert!(AttemptFailure::TimedOut {
        after: Duration::from_millis(1)
    }
    .is_retryable());
}
