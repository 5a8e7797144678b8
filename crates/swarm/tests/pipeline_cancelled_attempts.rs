//! A stage the run stops (here its deadline) after some failed attempts keeps them in its report,
//! with their errors and backoffs, as a finished stage does: inline or on a task of its own while
//! it waits out a backoff, and inline in the middle of a hung attempt. (A stage on a task of its
//! own stopped in the middle of an attempt is aborted with its records: documented on
//! `StageReport::failed_attempts`.)

use std::time::Duration;

use hivekit_swarm::{
    Backoff, Pipeline, RetryPolicy, RunOptions, RunReport, StageContext, StageError, StageStatus,
};

async fn run(spawn: bool, hang_on_third: bool) -> RunReport {
    let builder = Pipeline::builder()
        .stage("flaky", move |ctx: StageContext| async move {
            if hang_on_third && ctx.attempt() == 3 {
                std::future::pending::<()>().await;
            }
            Err::<(), _>(StageError::msg(format!("down {}", ctx.attempt())))
        })
        .retry(RetryPolicy::attempts(5).with_backoff(Backoff::fixed(Duration::from_millis(100))));
    let builder = if spawn { builder.spawn() } else { builder };
    let pipeline = builder.build().expect("valid");
    tokio::time::timeout(
        Duration::from_secs(10),
        pipeline.run_with(RunOptions::default().with_deadline(Duration::from_millis(250))),
    )
    .await
    .expect("no hang")
}

#[tokio::test(start_paused = true)]
async fn a_stage_cancelled_in_its_backoff_keeps_its_failed_attempts() {
    for spawn in [false, true] {
        let report = run(spawn, false).await;
        let stage = report.stage("flaky").expect("known stage");
        assert_eq!(stage.status, StageStatus::Cancelled);
        // Attempts 1, 2 and 3 failed (at 0, 100 and 200 ms); the deadline came in the third wait.
        assert_eq!(stage.failed_attempts.len(), 3, "spawn: {spawn}");
        assert_eq!(stage.failed_attempts[0].attempt, 1);
        assert!(stage.failed_attempts[0]
            .failure
            .to_string()
            .contains("down 1"));
    }
}

#[tokio::test(start_paused = true)]
async fn an_inline_stage_cancelled_in_a_hung_attempt_keeps_its_earlier_failed_attempts() {
    let report = run(false, true).await;
    let stage = report.stage("flaky").expect("known stage");
    assert_eq!(stage.status, StageStatus::Cancelled);
    assert_eq!(
        stage
            .failed_attempts
            .iter()
            .map(|record| record.attempt)
            .collect::<Vec<_>>(),
        [1, 2]
    );
}
