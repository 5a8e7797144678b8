//! The times a report keeps: a stage's `elapsed` runs "from its first attempt's start to its
//! end, backoff waits included"; each `AttemptRecord` keeps "the wait before the next attempt
//! (zero after the last)"; a stage that never started has no `started` and no `elapsed`; and the
//! report's times are real time, which a paused tokio clock does not stop or speed up.

use std::time::Duration;

use hivekit_swarm::{
    Backoff, FailurePolicy, Pipeline, RetryPolicy, Route, RunOptions, StageContext, StageError,
    StageStatus,
};

/// Report durations may be kept in whole microseconds: allow that much rounding per term.
const ROUNDING: Duration = Duration::from_micros(3);

#[tokio::test]
async fn a_retried_stage_spans_its_backoffs_and_each_record_its_wait() {
    const WAIT: Duration = Duration::from_millis(30);
    let pipeline = Pipeline::builder()
        .stage("flaky", |ctx: StageContext| async move {
            if ctx.attempt() < 3 {
                return Err(StageError::msg(format!("attempt {}", ctx.attempt())));
            }
            Ok::<_, StageError>(())
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(WAIT)))
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let stage = report.stage("flaky").unwrap();
    assert_eq!(stage.status, StageStatus::Succeeded { attempts: 3 });
    let records = &stage.failed_attempts;
    assert_eq!(
        records
            .iter()
            .map(|record| record.attempt)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    for record in records {
        assert_eq!(record.backoff, WAIT, "a fixed wait, no jitter: {record:?}");
        assert_eq!(
            record.failure.error().map(ToString::to_string),
            Some(format!("attempt {}", record.attempt))
        );
    }
    // Each attempt starts after the previous one and its wait.
    assert!(
        records[0].started + records[0].elapsed + records[0].backoff
            <= records[1].started + ROUNDING,
        "{records:?}"
    );
    let started = stage.started.expect("it started");
    let elapsed = stage.elapsed.expect("it ended");
    assert!(started <= records[0].started + ROUNDING);
    assert!(
        elapsed + ROUNDING >= 2 * WAIT,
        "elapsed {elapsed:?} must include both {WAIT:?} waits"
    );
    assert!(started + elapsed <= report.elapsed() + ROUNDING);
}

#[tokio::test]
async fn the_last_failed_attempt_of_an_exhausted_stage_waits_for_nothing() {
    let pipeline = Pipeline::builder()
        .stage("down", |_: StageContext| async {
            Err::<(), _>(StageError::msg("down"))
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(5))))
        .stage("slow", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Err::<(), _>(StageError::msg("slow"))
        })
        .timeout(Duration::from_secs(5))
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_millis(5))))
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await;
    for (name, attempts) in [("down", 3u32), ("slow", 2)] {
        let stage = report.stage(name).unwrap();
        assert_eq!(stage.status.attempts(), attempts, "{name}");
        let backoffs: Vec<Duration> = stage
            .failed_attempts
            .iter()
            .map(|record| record.backoff)
            .collect();
        let mut expected = vec![Duration::from_millis(5); attempts as usize - 1];
        expected.push(Duration::ZERO);
        assert_eq!(backoffs, expected, "{name}: zero after the last");
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_stopped_by_a_deadline_under_a_paused_clock_reports_the_time_it_really_took() {
    let pipeline = Pipeline::builder()
        .stage("waits", |_: StageContext| async {
            std::future::pending::<()>().await;
            Ok::<_, StageError>(())
        })
        .stage("backs_off", |_: StageContext| async {
            Err::<(), _>(StageError::msg("again"))
        })
        .retry(RetryPolicy::attempts(10).with_backoff(Backoff::fixed(Duration::from_secs(3600))))
        .build()
        .unwrap();
    let real = std::time::Instant::now();
    let report = pipeline
        .run_with(RunOptions::default().with_deadline(Duration::from_secs(5 * 3600)))
        .await;
    let really = real.elapsed();
    // Tokio's paused clock jumped five hours ahead: four waits of an hour, then the deadline.
    let backs_off = report.stage("backs_off").unwrap();
    assert_eq!(backs_off.failed_attempts.len(), 5, "{report}");
    assert!(
        backs_off
            .failed_attempts
            .iter()
            .all(|record| record.backoff == Duration::from_secs(3600)),
        "the recorded waits are the policy's"
    );
    // The report's own times did not.
    assert!(
        report.elapsed() <= really + ROUNDING,
        "the report says {:?}, the run really took {really:?}",
        report.elapsed()
    );
    for stage in report.stages() {
        let end = stage.started.unwrap() + stage.elapsed.unwrap();
        assert!(end <= really + ROUNDING, "{}: ends at {end:?}", stage.name);
    }
}

#[tokio::test]
async fn stages_that_never_started_have_no_start_and_no_elapsed_time() {
    let pipeline = Pipeline::builder()
        .stage("fails", |_: StageContext| async {
            Err::<(), _>(StageError::permanent("no"))
        })
        .stage("after_failure", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["fails"])
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::none())
        })
        .stage("not_taken", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["route"])
        .stage("false", |_: StageContext| async { Ok::<_, StageError>(()) })
        .when(|_| false)
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await;
    for name in ["after_failure", "not_taken", "false"] {
        let stage = report.stage(name).unwrap();
        assert!(
            matches!(stage.status, StageStatus::Skipped { .. }),
            "{name}: {:?}",
            stage.status
        );
        assert_eq!(stage.status.attempts(), 0, "{name}");
        assert_eq!((stage.started, stage.elapsed), (None, None), "{name}");
    }
    for name in ["fails", "route"] {
        let stage = report.stage(name).unwrap();
        assert!(stage.started.is_some() && stage.elapsed.is_some(), "{name}");
    }
}
