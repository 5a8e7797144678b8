//! A run polled on a tokio runtime built without timers (no `enable_time`): tokio's own timers panic
//! there ("timers are disabled"), so a stage's timeout, the run's deadline and a retry's backoff
//! took the run down. They now borrow the global runtime's timer and behave as anywhere else.
//! (The fallback prints tokio's panic message, with a backtrace when RUST_BACKTRACE is set, which
//! can take longer than a short deadline: the run's stage may then be skipped instead of started.)

use std::future::pending;
use std::time::{Duration, Instant};

use hivekit_swarm::{
    Backoff, Pipeline, RetryPolicy, RunOptions, RunOutcome, RunReport, StageContext, StageError,
    StageStatus,
};

/// Runs `pipeline` on a current-thread runtime without timers, waiting at most 10 s for it.
fn run_without_timers(pipeline: Pipeline, options: RunOptions) -> RunReport {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime without timers");
        let _ = sender.send(runtime.block_on(pipeline.run_with(options)));
    });
    receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the run ended (it panicked or hung otherwise)")
}

#[test]
fn a_stage_timeout_times_the_stage_out() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async {
            pending::<()>().await;
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_millis(20))
        .build()
        .expect("valid");
    let started = Instant::now();
    let report = run_without_timers(pipeline, RunOptions::default());
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(
        report.status("a"),
        Some(&StageStatus::TimedOut { attempts: 1 })
    );
}

#[test]
fn a_run_deadline_stops_the_run() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async {
            pending::<()>().await;
            Ok::<_, StageError>(())
        })
        .build()
        .expect("valid");
    let started = Instant::now();
    let report = run_without_timers(
        pipeline,
        RunOptions::default().with_deadline(Duration::from_millis(20)),
    );
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    assert!(
        matches!(
            report.status("a"),
            Some(StageStatus::Cancelled | StageStatus::Skipped { .. })
        ),
        "{:?}",
        report.status("a")
    );
}

#[test]
fn a_retry_waits_its_backoff() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async {
            Err::<(), _>(StageError::Failed("always".into()))
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(5))))
        .build()
        .expect("valid");
    let started = Instant::now();
    let report = run_without_timers(pipeline, RunOptions::default());
    assert!(started.elapsed() >= Duration::from_millis(10));
    assert!(matches!(
        report.status("a"),
        Some(StageStatus::Failed { attempts: 3, .. })
    ));
}

#[test]
fn a_run_that_needs_no_timer_succeeds() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async {
            tokio::task::yield_now().await;
            Ok::<_, StageError>(1u8)
        })
        .build()
        .expect("valid");
    let report = run_without_timers(pipeline, RunOptions::default());
    assert_eq!(
        report.status("a"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
}
