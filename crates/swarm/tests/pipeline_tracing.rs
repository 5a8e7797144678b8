//! What a run logs: spans naming the pipeline and stage, a retry at info level, a failure warned
//! (its own test binary: tracing's callsite interest is process-wide, so a subscriber set for one
//! test is only reliable when no other test in the process registers the same callsites at the
//! same time; in `pipeline_progress.rs` a test failing a stage with no subscriber once made this
//! one miss its "stage failed" line).

use std::sync::Arc;

use hivekit_swarm::{Backoff, Pipeline, RetryPolicy, StageContext, StageError};

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn spans_name_the_pipeline_and_stage_and_failures_are_warned() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let pipeline = Pipeline::builder()
        .name("review")
        .stage("lint", |ctx: StageContext| async move {
            if ctx.attempt() == 1 {
                return Err(StageError::msg("linter busy"));
            }
            Err::<(), _>(StageError::permanent("linter crashed"))
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .build()
        .unwrap();
    let _report = pipeline.run().await;
    let output = String::from_utf8(captured.0.lock().clone()).unwrap();
    let retry_line = output
        .lines()
        .find(|line| line.contains("attempt failed, retrying"))
        .unwrap_or_else(|| panic!("no retry line in {output}"));
    assert!(retry_line.contains(" INFO "), "{retry_line}");
    assert!(
        retry_line.contains(r#"pipeline_run{pipeline="review""#),
        "{retry_line}"
    );
    assert!(
        retry_line.contains(r#"stage{pipeline="review" stage="lint"}"#),
        "{retry_line}"
    );
    let failure_line = output
        .lines()
        .find(|line| line.contains("stage failed"))
        .unwrap_or_else(|| panic!("no failure line in {output}"));
    assert!(failure_line.contains(" WARN "), "{failure_line}");
    assert!(failure_line.contains("linter crashed"), "{failure_line}");
}
