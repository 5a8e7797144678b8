//! A `retry_on` predicate that panics fails only its stage (`Panicked`, not retried), inline or on
//! a task of its own, as a panicking `when` condition does; independent stages still run and the
//! run returns its report (before, an inline stage's predicate panic unwound through the run).

use std::time::Duration;

use hivekit_swarm::{
    Backoff, FailurePolicy, Pipeline, RetryPolicy, RunOptions, StageContext, StageError,
    StageStatus,
};

async fn run(spawn: bool) -> Result<(Option<StageStatus>, Option<StageStatus>), String> {
    let builder = Pipeline::builder()
        .stage("flaky", |_: StageContext| async {
            Err::<(), _>(StageError::msg("down"))
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .retry_on(|_| panic!("predicate bug"));
    let builder = if spawn { builder.spawn() } else { builder };
    let pipeline = builder
        .stage("other", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, StageError>(())
        })
        .build()
        .expect("valid");
    let handle = tokio::spawn(async move {
        let report = pipeline
            .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
            .await;
        (
            report.status("flaky").cloned(),
            report.status("other").cloned(),
        )
    });
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("no hang")
        .map_err(|error| error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_retry_predicate_fails_only_its_stage() {
    for spawn in [true, false] {
        let (flaky, other) = run(spawn)
            .await
            .unwrap_or_else(|panic| panic!("spawn: {spawn}: the run panicked: {panic}"));
        assert!(
            matches!(&flaky, Some(StageStatus::Failed { error: StageError::Panicked(message), attempts: 1 }) if message.contains("predicate bug")),
            "spawn: {spawn}: {flaky:?}"
        );
        assert_eq!(
            other,
            Some(StageStatus::Succeeded { attempts: 1 }),
            "spawn: {spawn}"
        );
    }
}
