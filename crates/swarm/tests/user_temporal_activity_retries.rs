//! Temporal's activity retry tests, ported to durable runs: a retried activity waits its backoff
//! between attempts and the workflow's history keeps each failure; a non-retryable failure is not
//! retried whatever the policy; a completed activity is never run again on replay, however many
//! attempts it took.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, DurableOutcome, MemoryStore};
use hivekit_swarm::{
    AttemptFailure, Backoff, Pipeline, RetryPolicy, RunOptions, StageContext, StageError,
    StageStatus,
};

fn counter() -> Arc<AtomicU32> {
    Arc::new(AtomicU32::new(0))
}

/// charge: fails its first three attempts, then succeeds; notify: waits for an outside answer, so
/// the run stops after charge is recorded.
fn charge_then_notify(calls: Arc<AtomicU32>, backoff: Backoff) -> Pipeline {
    Pipeline::builder()
        .stage("charge", move |ctx: StageContext| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if ctx.attempt() < 4 {
                    return Err(StageError::msg(format!("card declined {}", ctx.attempt())));
                }
                Ok::<_, StageError>(format!("charged on attempt {}", ctx.attempt()))
            }
        })
        .retry(RetryPolicy::attempts(5).with_backoff(backoff))
        .durable()
        .stage("notify", |ctx: StageContext| async move {
            match ctx.resume_value::<String>()? {
                Some(channel) => {
                    Ok::<_, StageError>(format!("{} via {channel}", ctx.input::<String>("charge")?))
                }
                None => Err(ctx.interrupt("which channel?")),
            }
        })
        .after(["charge"])
        .durable()
        .build()
        .expect("a valid pipeline")
}

#[tokio::test(start_paused = true)]
async fn a_durable_stage_waits_its_exponential_backoff_and_its_record_keeps_every_failed_attempt() {
    let backoff = Backoff {
        initial: Duration::from_secs(1),
        multiplier: 2.0,
        max: Duration::from_secs(3),
        jitter: 0.0,
    };
    let calls = counter();
    let pipeline = charge_then_notify(calls.clone(), backoff);
    let durable = Durable::new(MemoryStore::new());

    let began = tokio::time::Instant::now();
    let first = durable
        .start(&pipeline, "order-1", RunOptions::default())
        .await
        .expect("the run starts");
    // 1 s, 2 s, then 4 s capped at 3 s: 6 s of backoff, nothing else takes time.
    assert_eq!(began.elapsed(), Duration::from_secs(6));
    assert_eq!(first.interrupted_stage(), Some("notify"));
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    let state = durable.inspect("order-1").expect("the run is stored");
    let charge = state.stage("charge").expect("charge is in the run");
    assert_eq!(charge.status, Some(StageStatus::Succeeded { attempts: 4 }));
    let recorded: Vec<(u32, Duration, String)> = charge
        .failed_attempts
        .iter()
        .map(|attempt| {
            (
                attempt.attempt,
                attempt.backoff,
                attempt
                    .failure
                    .error()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        recorded,
        [
            (1, Duration::from_secs(1), "card declined 1".to_owned()),
            (2, Duration::from_secs(2), "card declined 2".to_owned()),
            (3, Duration::from_secs(3), "card declined 3".to_owned()),
        ]
    );

    // Replay: the activity that took four attempts is not run again, nor its backoff waited.
    let resumed_at = tokio::time::Instant::now();
    let second = durable
        .resume_with(&pipeline, "order-1", "sms", RunOptions::default())
        .await
        .expect("the run resumes");
    assert_eq!(resumed_at.elapsed(), Duration::ZERO);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "charge ran again on replay"
    );
    let report = second.report();
    assert!(report.is_success(), "{report:?}");
    let charge = report.stage("charge").expect("charge is reported");
    assert!(charge.resumed);
    assert_eq!(charge.status, StageStatus::Succeeded { attempts: 4 });
    assert_eq!(charge.failed_attempts.len(), 3);
    assert_eq!(
        *report.artifact::<String>("notify").expect("notified"),
        "charged on attempt 4 via sms"
    );
}

/// An error type the retry predicate refuses, as Temporal's `non_retryable_error_types` does.
#[derive(Debug)]
struct InvalidAccount(&'static str);

impl std::fmt::Display for InvalidAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid account {}", self.0)
    }
}

impl std::error::Error for InvalidAccount {}

fn transfer(
    lookups: Arc<AtomicU32>,
    withdrawals: Arc<AtomicU32>,
    fixed: Arc<AtomicU32>,
    permanent: bool,
) -> Pipeline {
    Pipeline::builder()
        .stage("lookup", move |_: StageContext| {
            let lookups = lookups.clone();
            async move {
                lookups.fetch_add(1, Ordering::SeqCst);
                Ok::<_, StageError>(String::from("acct-9"))
            }
        })
        .durable()
        .stage("withdraw", move |ctx: StageContext| {
            let withdrawals = withdrawals.clone();
            let fixed = fixed.clone();
            async move {
                withdrawals.fetch_add(1, Ordering::SeqCst);
                if fixed.load(Ordering::SeqCst) == 0 {
                    if permanent {
                        return Err(StageError::permanent("account closed"));
                    }
                    return Err(InvalidAccount("acct-9").into());
                }
                Ok::<_, StageError>(format!("withdrew from {}", ctx.input::<String>("lookup")?))
            }
        })
        .after(["lookup"])
        .retry(RetryPolicy::attempts(5).with_backoff(Backoff::fixed(Duration::from_secs(1))))
        .retry_on(|failure| match failure {
            AttemptFailure::Error { error } => error.downcast_ref::<InvalidAccount>().is_none(),
            _ => true,
        })
        .durable()
        .stage("deposit", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!(
                "{} and deposited",
                ctx.input::<String>("withdraw")?
            ))
        })
        .after(["withdraw"])
        .durable()
        .build()
        .expect("a valid pipeline")
}

async fn non_retryable_is_recorded_failed_after_one_attempt(permanent: bool) {
    let (lookups, withdrawals, fixed) = (counter(), counter(), counter());
    let pipeline = transfer(
        lookups.clone(),
        withdrawals.clone(),
        fixed.clone(),
        permanent,
    );
    let durable = Durable::new(MemoryStore::new());
    let began = tokio::time::Instant::now();
    let outcome = durable
        .start(&pipeline, "transfer", RunOptions::default())
        .await
        .expect("the run starts");
    assert_eq!(
        began.elapsed(),
        Duration::ZERO,
        "a non-retryable failure waits no backoff"
    );
    let DurableOutcome::Finished(report) = outcome else {
        panic!("a failed run is finished, not interrupted");
    };
    assert!(!report.is_success());
    assert_eq!(withdrawals.load(Ordering::SeqCst), 1, "not retried");
    assert!(matches!(
        report.status("withdraw"),
        Some(StageStatus::Failed { attempts: 1, .. })
    ));
    assert!(matches!(
        report.status("deposit"),
        Some(StageStatus::Skipped { .. })
    ));

    let state = durable.inspect("transfer").expect("the run is stored");
    let withdraw = state.stage("withdraw").expect("withdraw is stored");
    let Some(StageStatus::Failed { error, attempts }) = &withdraw.status else {
        panic!("withdraw is recorded failed: {:?}", withdraw.status);
    };
    assert_eq!(*attempts, 1);
    let expected = match permanent {
        true => "account closed",
        false => "invalid account acct-9",
    };
    assert_eq!(error.to_string(), expected);
    assert!(!withdraw.is_restored_on_resume());
    assert!(state
        .stage("lookup")
        .expect("lookup")
        .is_restored_on_resume());
    assert!(!state
        .stage("deposit")
        .expect("deposit")
        .is_restored_on_resume());
    assert!(!state.is_complete());

    // The bug is fixed; the replay runs the failed activity (once) and what follows it.
    fixed.store(1, Ordering::SeqCst);
    let resumed = durable
        .resume(&pipeline, "transfer", RunOptions::default())
        .await
        .expect("the run resumes")
        .into_report();
    assert!(resumed.is_success(), "{resumed:?}");
    assert_eq!(lookups.load(Ordering::SeqCst), 1, "lookup ran again");
    assert_eq!(withdrawals.load(Ordering::SeqCst), 2);
    assert_eq!(
        *resumed.artifact::<String>("deposit").expect("deposited"),
        "withdrew from acct-9 and deposited"
    );
    assert!(durable.inspect("transfer").expect("stored").is_complete());
}

#[tokio::test(start_paused = true)]
async fn an_error_type_the_retry_predicate_refuses_fails_the_durable_stage_after_one_attempt() {
    non_retryable_is_recorded_failed_after_one_attempt(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_fails_the_durable_stage_after_one_attempt_despite_its_retry_policy() {
    non_retryable_is_recorded_failed_after_one_attempt(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_stage_out_of_attempts_is_recorded_with_every_attempt_and_the_replay_runs_it_again() {
    let calls = counter();
    let healthy = counter();
    let pipeline = {
        let (calls, healthy) = (calls.clone(), healthy.clone());
        Pipeline::builder()
            .stage("ping", move |ctx: StageContext| {
                let (calls, healthy) = (calls.clone(), healthy.clone());
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    match healthy.load(Ordering::SeqCst) {
                        0 => Err(StageError::msg(format!("down {}", ctx.attempt()))),
                        _ => Ok::<_, StageError>(ctx.attempt()),
                    }
                }
            })
            .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_secs(2))))
            .durable()
            .build()
            .expect("a valid pipeline")
    };
    let durable = Durable::new(MemoryStore::new());
    let began = tokio::time::Instant::now();
    let report = durable
        .start(&pipeline, "ping", RunOptions::default())
        .await
        .expect("the run starts")
        .into_report();
    assert_eq!(began.elapsed(), Duration::from_secs(4), "two waits of 2 s");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let stage = report.stage("ping").expect("reported");
    assert!(matches!(
        stage.status,
        StageStatus::Failed { attempts: 3, .. }
    ));
    assert_eq!(
        stage.failed_attempts.len(),
        3,
        "every attempt, the last included"
    );

    let state = durable.inspect("ping").expect("stored");
    let recorded = state.stage("ping").expect("ping");
    assert!(matches!(
        recorded.status,
        Some(StageStatus::Failed { attempts: 3, .. })
    ));
    let errors: Vec<String> = recorded
        .failed_attempts
        .iter()
        .filter_map(|attempt| attempt.failure.error().map(ToString::to_string))
        .collect();
    assert_eq!(errors, ["down 1", "down 2", "down 3"]);

    healthy.store(1, Ordering::SeqCst);
    let resumed = durable
        .resume(&pipeline, "ping", RunOptions::default())
        .await
        .expect("the run resumes")
        .into_report();
    assert!(resumed.is_success(), "{resumed:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "the failed stage runs again"
    );
    assert!(!resumed.stage("ping").expect("reported").resumed);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_durable_stage_is_retried_and_its_panic_stays_in_the_recorded_attempts() {
    let calls = counter();
    let pipeline = {
        let calls = calls.clone();
        Pipeline::builder()
            .stage("parse", move |ctx: StageContext| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    if ctx.attempt() == 1 {
                        panic!("unexpected byte 0xff");
                    }
                    Ok::<_, StageError>(7_u32)
                }
            })
            .retry(RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_millis(10))))
            .durable()
            .stage("use", |ctx: StageContext| async move {
                match ctx.resume_value::<u32>()? {
                    Some(extra) => Ok::<_, StageError>(*ctx.input::<u32>("parse")? + extra),
                    None => Err(ctx.interrupt("how much more?")),
                }
            })
            .after(["parse"])
            .durable()
            .build()
            .expect("a valid pipeline")
    };
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline, "panics", RunOptions::default())
        .await
        .expect("the run starts");
    assert_eq!(first.interrupted_stage(), Some("use"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let state = durable.inspect("panics").expect("stored");
    let parse = state.stage("parse").expect("parse");
    assert_eq!(parse.status, Some(StageStatus::Succeeded { attempts: 2 }));
    assert_eq!(parse.failed_attempts.len(), 1);
    let error = parse.failed_attempts[0]
        .failure
        .error()
        .expect("the panic is an error");
    assert!(matches!(error, StageError::Panicked(_)), "{error:?}");
    assert!(
        error.to_string().contains("unexpected byte 0xff"),
        "{error}"
    );

    let second = durable
        .resume_with(&pipeline, "panics", 3_u32, RunOptions::default())
        .await
        .expect("the run resumes");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "parse ran again");
    let report = second.report();
    assert_eq!(*report.artifact::<u32>("use").expect("used"), 10);
    let parse = report.stage("parse").expect("reported");
    assert!(parse.resumed);
    assert!(matches!(
        parse.failed_attempts[0].failure.error(),
        Some(StageError::Panicked(message)) if message.contains("0xff")
    ));
}
