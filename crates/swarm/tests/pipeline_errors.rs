//! Errors that keep their source, retry decisions that see them, pipeline-wide defaults.

mod support;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    AttemptFailure, Backoff, Pipeline, RetryPolicy, RunReport, StageContext, StageError,
    StageStatus,
};

/// An error with a source, as an HTTP client's would be.
#[derive(Debug, thiserror::Error)]
#[error("request to {url} failed")]
struct RequestError {
    url: String,
    #[source]
    source: io::Error,
}

fn failed_error<'a>(report: &'a RunReport, stage: &str) -> &'a StageError {
    match report.status(stage) {
        Some(StageStatus::Failed { error, .. }) => error,
        other => panic!("stage {stage} did not fail: {other:?}"),
    }
}

#[tokio::test]
async fn question_mark_keeps_any_error_with_its_source_chain() {
    let pipeline = Pipeline::builder()
        .stage("fetch", |_: StageContext| async {
            let body: Result<String, RequestError> = Err(RequestError {
                url: "https://example.test/pr/1".into(),
                source: io::Error::new(io::ErrorKind::ConnectionReset, "connection reset"),
            });
            let body = body?;
            let value: serde_json::Value = serde_json::from_str(&body)?;
            Ok::<_, StageError>(value)
        })
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let error = failed_error(&report, "fetch");
    assert_eq!(
        error.to_string(),
        "request to https://example.test/pr/1 failed"
    );
    let request = error.downcast_ref::<RequestError>().unwrap();
    assert_eq!(request.url, "https://example.test/pr/1");
    // The source is found through the chain, with its type.
    let io = error.downcast_ref::<io::Error>().unwrap();
    assert_eq!(io.kind(), io::ErrorKind::ConnectionReset);
    let source = error.source_error().unwrap();
    assert_eq!(source.source_messages(), ["connection reset"]);
    // And as a std error, the chain is still there.
    let boxed: Box<dyn std::error::Error + Send + Sync> = error.clone().into();
    assert_eq!(boxed.source().unwrap().to_string(), "connection reset");
}

#[tokio::test]
async fn a_json_error_converts_with_question_mark() {
    let pipeline = Pipeline::builder()
        .stage("parse", |_: StageContext| async {
            let value: serde_json::Value = serde_json::from_str("{not json")?;
            Ok::<_, StageError>(value)
        })
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(failed_error(&report, "parse")
        .downcast_ref::<serde_json::Error>()
        .is_some());
}

#[tokio::test]
async fn retry_on_sees_the_error_and_stops_on_permanent_ones() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("lint", move |_: StageContext| {
            let calls = counted.clone();
            async move {
                let kind = match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => io::ErrorKind::TimedOut,
                    _ => io::ErrorKind::PermissionDenied,
                };
                Err::<(), _>(io::Error::new(kind, "linter").into())
            }
        })
        .retry(RetryPolicy::attempts(10).with_backoff(Backoff::NONE))
        .retry_on(|failure| {
            failure
                .error()
                .and_then(|error| error.downcast_ref::<io::Error>())
                .is_some_and(|error| error.kind() == io::ErrorKind::TimedOut)
        })
        .build()
        .unwrap();
    let report = pipeline.run().await;
    // Two timeouts retried, the permission error not.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(report.status("lint").unwrap().attempts(), 3);
    let history = &report.stage("lint").unwrap().failed_attempts;
    assert_eq!(history.len(), 3);
    let kinds: Vec<_> = history
        .iter()
        .map(|record| {
            record
                .failure
                .error()
                .and_then(|error| error.downcast_ref::<io::Error>())
                .map(io::Error::kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            Some(io::ErrorKind::TimedOut),
            Some(io::ErrorKind::TimedOut),
            Some(io::ErrorKind::PermissionDenied)
        ]
    );
}

#[tokio::test]
async fn retry_on_never_retries_a_permanent_error() {
    let pipeline = Pipeline::builder()
        .stage("schema", |_: StageContext| async {
            Err::<(), _>(StageError::permanent("bad schema"))
        })
        .retry(RetryPolicy::attempts(4).with_backoff(Backoff::NONE))
        .retry_on(|_| true)
        .build()
        .unwrap();
    assert_eq!(pipeline.run().await.status("schema").unwrap().attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn pipeline_defaults_apply_unless_a_stage_overrides_them() {
    let pipeline = Pipeline::builder()
        .default_retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .default_timeout(Duration::from_millis(10))
        .stage("slow", |_: StageContext| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, StageError>(())
        })
        .stage("own_timeout", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_millis(100))
        .stage("no_timeout", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, StageError>(())
        })
        .no_timeout()
        .stage("own_retry", |_: StageContext| async {
            Err::<(), _>(StageError::msg("no"))
        })
        .retry(RetryPolicy::attempts(5).with_backoff(Backoff::NONE))
        .build()
        .unwrap();
    let report = pipeline
        .run_with(
            hivekit_swarm::RunOptions::default()
                .with_failure(hivekit_swarm::FailurePolicy::ContinueIndependent),
        )
        .await;
    assert_eq!(
        report.status("slow"),
        Some(&StageStatus::TimedOut { attempts: 2 })
    );
    let history = &report.stage("slow").unwrap().failed_attempts;
    assert!(history.iter().all(|record| matches!(
        record.failure,
        AttemptFailure::TimedOut { after } if after == Duration::from_millis(10)
    )));
    assert!(report.status("own_timeout").unwrap().is_success());
    assert!(report.status("no_timeout").unwrap().is_success());
    assert_eq!(report.status("own_retry").unwrap().attempts(), 5);
}
