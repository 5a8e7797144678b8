//! Retries counted exactly under tokio's paused clock: attempts, Retried events, backoff delays and the attempt records agree.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    AttemptFailure, Backoff, EventSink, Pipeline, RetryPolicy, RunOptions, StageContext,
    StageError, StageEvent, StageStatus,
};

fn drain(events: &mut tokio::sync::mpsc::UnboundedReceiver<StageEvent>) -> Vec<StageEvent> {
    let mut all = Vec::new();
    while let Ok(event) = events.try_recv() {
        all.push(event);
    }
    all
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_is_waited_exactly_and_recorded_per_attempt() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let backoff = Backoff {
        initial: Duration::from_millis(10),
        multiplier: 3.0,
        max: Duration::from_millis(50),
        jitter: 0.0,
    };
    let pipeline = Pipeline::builder()
        .stage("flaky", move |ctx: StageContext| {
            let counter = counter.clone();
            async move {
                let call = counter.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(call, ctx.attempt(), "attempt numbers follow the calls");
                if call < 5 {
                    Err(StageError::msg(format!("fail {call}")))
                } else {
                    Ok(call)
                }
            }
        })
        .retry(RetryPolicy::attempts(6).with_backoff(backoff))
        .build()
        .unwrap();
    let (sink, mut events) = EventSink::channel();
    let started = tokio::time::Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        pipeline.run_with(RunOptions::default().with_events(sink)),
    )
    .await
    .expect("the run ends");
    let waited = started.elapsed();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(
        report.status("flaky"),
        Some(&StageStatus::Succeeded { attempts: 5 })
    );
    let expected = [10u64, 30, 50, 50].map(Duration::from_millis);
    // Under the paused clock the run waits exactly the backoffs (auto-advance).
    assert!(
        waited >= expected.iter().sum::<Duration>(),
        "waited {waited:?}"
    );
    let retried: Vec<(u32, Duration, String)> = drain(&mut events)
        .into_iter()
        .filter_map(|event| match event {
            StageEvent::Retried {
                next_attempt,
                failure,
                delay,
                ..
            } => Some((next_attempt, delay, failure.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(
        retried,
        (0..4)
            .map(|i| (i as u32 + 2, expected[i], format!("fail {}", i + 1)))
            .collect::<Vec<_>>()
    );
    let records = &report.stage("flaky").unwrap().failed_attempts;
    assert_eq!(records.len(), 4);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.attempt, i as u32 + 1);
        assert_eq!(record.backoff, expected[i]);
    }
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_retried_and_counted_and_a_predicate_can_refuse_them() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let hang = move |_: StageContext| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<Result<(), StageError>>()
    };
    let pipeline = Pipeline::builder()
        .stage("hang", hang.clone())
        .timeout(Duration::from_millis(10))
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(5))))
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["hang"])
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(60), pipeline.run())
        .await
        .expect("the run ends");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        report.status("hang"),
        Some(&StageStatus::TimedOut { attempts: 3 })
    );
    let records = &report.stage("hang").unwrap().failed_attempts;
    assert_eq!(records.len(), 3);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            record.failure,
            AttemptFailure::TimedOut {
                after: Duration::from_millis(10)
            }
        );
        let backoff = if i < 2 { 5 } else { 0 };
        assert_eq!(record.backoff, Duration::from_millis(backoff));
    }
    assert_eq!(
        report.explain("after").unwrap(),
        "after skipped because hang failed: timed out after 3 attempts"
    );

    calls.store(0, Ordering::SeqCst);
    let refusing = Pipeline::builder()
        .stage("hang", hang)
        .timeout(Duration::from_millis(10))
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .retry_on(|failure| !matches!(failure, AttemptFailure::TimedOut { .. }))
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(60), refusing.run())
        .await
        .expect("the run ends");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        report.status("hang"),
        Some(&StageStatus::TimedOut { attempts: 1 })
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_waits_stay_within_their_bounds_and_repeat_with_the_seed() {
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        multiplier: 2.0,
        max: Duration::from_millis(300),
        jitter: 0.5,
    };
    let pipeline = Pipeline::builder()
        .stage("always", |_: StageContext| async {
            Err::<(), _>(StageError::msg("no"))
        })
        .retry(RetryPolicy::attempts(5).with_backoff(backoff))
        .build()
        .unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let report = tokio::time::timeout(
            Duration::from_secs(60),
            pipeline.run_with(RunOptions::default().with_seed(42)),
        )
        .await
        .expect("the run ends");
        let waits: Vec<Duration> = report
            .stage("always")
            .unwrap()
            .failed_attempts
            .iter()
            .map(|record| record.backoff)
            .collect();
        assert_eq!(waits.len(), 5);
        for (i, wait) in waits.iter().enumerate().take(4) {
            let full = Duration::from_millis([100, 200, 300, 300][i]);
            assert!(*wait <= full && *wait >= full / 2, "wait {i}: {wait:?}");
        }
        assert_eq!(waits[4], Duration::ZERO);
        runs.push(waits);
    }
    assert_eq!(runs[0], runs[1]);
}
