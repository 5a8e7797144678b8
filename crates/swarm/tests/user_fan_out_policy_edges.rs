//! Fan-out policies at their edges (k > n, k == 0 with and without wait_all, n == 0, retry policies a stage would refuse) and item retries with backoff under a paused clock, exact to the attempt, cut by the run's deadline.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::{
    Backoff, FanOut, FanOutSummary, Pipeline, RetryPolicy, RunOptions, RunOutcome, RunReport,
    StageContext, StageError, StageStatus, SubtaskOutcome,
};

/// Runs one stage fanning out over `items` with `policy`; items succeed with their value and count
/// their calls. The stage's artifact is (succeeded, not run) of the report it saw.
async fn fan(items: Vec<u32>, policy: FanOut) -> (RunReport, u32) {
    let calls = Arc::new(AtomicU32::new(0));
    let inside = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let (calls, items) = (inside.clone(), items.clone());
            async move {
                let report = ctx
                    .fan_out(items, policy, |item| {
                        let calls = calls.clone();
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, StageError>(item)
                        }
                    })
                    .await?;
                let not_run = report
                    .outcomes
                    .iter()
                    .filter(|outcome| matches!(outcome, SubtaskOutcome::NotRun))
                    .count();
                Ok::<_, StageError>((report.succeeded, not_run))
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("the run ends");
    (report, calls.load(Ordering::SeqCst))
}

fn invalid(report: &RunReport) -> Option<(usize, usize, usize)> {
    match report.status("fan") {
        Some(StageStatus::Failed {
            error:
                StageError::InvalidFanOut {
                    width,
                    required,
                    items,
                },
            attempts: 1,
        }) => Some((*width, *required, *items)),
        _ => None,
    }
}

#[tokio::test]
async fn more_required_than_items_is_a_typed_error_naming_both() {
    let (report, calls) = fan(vec![1, 2, 3], FanOut::new(2).require(4)).await;
    assert_eq!(
        invalid(&report),
        Some((2, 4, 3)),
        "{:?}",
        report.status("fan")
    );
    assert_eq!(calls, 0);
    let (report, calls) = fan(Vec::new(), FanOut::new(2).require(1)).await;
    assert_eq!(
        invalid(&report),
        Some((2, 1, 0)),
        "{:?}",
        report.status("fan")
    );
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn zero_required_starts_nothing_unless_wait_all() {
    let (report, calls) = fan(vec![1, 2, 3, 4], FanOut::new(2).require(0)).await;
    assert_eq!(*report.artifact::<(usize, usize)>("fan").unwrap(), (0, 4));
    assert_eq!(calls, 0, "require(0) is met before anything runs");
    let (report, calls) = fan(vec![1, 2, 3, 4], FanOut::new(2).require(0).wait_all()).await;
    assert_eq!(*report.artifact::<(usize, usize)>("fan").unwrap(), (4, 0));
    assert_eq!(calls, 4);
    let (report, calls) = fan(Vec::new(), FanOut::new(1).require(0).wait_all()).await;
    assert_eq!(*report.artifact::<(usize, usize)>("fan").unwrap(), (0, 0));
    assert_eq!(calls, 0);
}

/// A retry policy that `build` refuses on a stage (`InvalidRetryPolicy`) is refused by a fan-out
/// too, as a typed error before any item runs, rather than followed with made-up waits.
#[tokio::test]
async fn a_retry_policy_a_stage_would_refuse_is_refused_by_a_fan_out() {
    let policies = [
        (
            "NaN multiplier",
            RetryPolicy::attempts(3).with_backoff(Backoff {
                multiplier: f64::NAN,
                ..Backoff::default()
            }),
        ),
        (
            "multiplier below 1",
            RetryPolicy::attempts(3).with_backoff(Backoff {
                multiplier: 0.25,
                ..Backoff::default()
            }),
        ),
        (
            "jitter above 1",
            RetryPolicy::attempts(3).with_backoff(Backoff {
                jitter: 7.0,
                ..Backoff::default()
            }),
        ),
        ("zero attempts", RetryPolicy::attempts(0)),
    ];
    let mut accepted = Vec::new();
    for (label, policy) in policies {
        // The same policy on a stage: a typed build error.
        let built = Pipeline::builder()
            .stage("s", |_: StageContext| async { Ok::<_, StageError>(()) })
            .retry(policy)
            .build();
        assert!(built.is_err(), "{label}: a stage accepts it");
        let (report, calls) = fan(vec![1, 2], FanOut::new(2).retry(policy)).await;
        if report.status("fan").is_some_and(StageStatus::is_success) || calls > 0 {
            accepted.push(format!(
                "{label}: fan-out ran {calls} item(s), stage {:?}",
                report.status("fan")
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "fan-outs silently accepted retry policies that build() rejects on a stage:\n{}",
        accepted.join("\n")
    );
}

/// Width 1, item 0 fails twice (backoff 1 s then 2 s), the others succeed at once: item 0 holds no
/// place while it waits, so items 1 and 2 run at 0 s, and item 0's attempts start at 0, 1 and 3 s.
#[tokio::test(start_paused = true)]
async fn item_retries_follow_the_backoff_exactly_and_free_the_width() {
    let start = tokio::time::Instant::now();
    let log: Arc<Mutex<Vec<(u32, u32, Duration)>>> = Arc::default();
    let inside = log.clone();
    let backoff = Backoff {
        initial: Duration::from_secs(1),
        multiplier: 2.0,
        max: Duration::from_secs(60),
        jitter: 0.0,
    };
    let pipeline = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let log = inside.clone();
            async move {
                let attempts = Arc::new(Mutex::new([0u32; 3]));
                let policy = FanOut::new(1).retry(RetryPolicy::attempts(5).with_backoff(backoff));
                let report = ctx
                    .fan_out(0..3u32, policy, |item| {
                        let (log, attempts) = (log.clone(), attempts.clone());
                        async move {
                            let attempt = {
                                let mut attempts = attempts.lock().unwrap();
                                attempts[item as usize] += 1;
                                attempts[item as usize]
                            };
                            log.lock().unwrap().push((item, attempt, start.elapsed()));
                            if item == 0 && attempt < 3 {
                                return Err(StageError::msg("flaky"));
                            }
                            Ok::<_, StageError>(item)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.into_successes().collect::<Vec<_>>())
            }
        })
        .build()
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(60), pipeline.run())
        .await
        .expect("the run ends");
    assert_eq!(*report.artifact::<Vec<u32>>("fan").unwrap(), [0, 1, 2]);
    let log = log.lock().unwrap().clone();
    let secs = |s: u64| Duration::from_secs(s);
    let mut sorted = log.clone();
    sorted.sort_by_key(|&(item, attempt, at)| (at, item, attempt));
    let ms = |d: Duration| d.as_millis();
    let rounded: Vec<(u32, u32, u128)> = sorted.iter().map(|&(i, a, at)| (i, a, ms(at))).collect();
    assert_eq!(
        rounded,
        [
            (0, 1, ms(secs(0))),
            (1, 1, ms(secs(0))),
            (2, 1, ms(secs(0))),
            (0, 2, ms(secs(1))),
            (0, 3, ms(secs(3))),
        ],
        "attempt start times"
    );
    let summary = &report.stage("fan").unwrap().fan_out[0];
    assert_eq!(summary.retried, [(0, 3)]);
}

/// An item failing forever with a fixed 1.5 s backoff under a 2 s run deadline: attempts at 0 and
/// 1.5 s, then the deadline stops the run during the second backoff. The report says the deadline
/// passed, the stage was cancelled, and its fan-out summary keeps the two attempts.
#[tokio::test(start_paused = true)]
async fn the_deadline_stops_an_item_backing_off_and_the_summary_keeps_its_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let inside = calls.clone();
    let pipeline = Pipeline::builder()
        .stage("fan", move |ctx: StageContext| {
            let calls = inside.clone();
            async move {
                let policy = FanOut::new(2).retry(
                    RetryPolicy::attempts(100)
                        .with_backoff(Backoff::fixed(Duration::from_millis(1500))),
                );
                let report = ctx
                    .fan_out([0u32, 1], policy, |item| {
                        let calls = calls.clone();
                        async move {
                            if item == 1 {
                                return Ok(item);
                            }
                            calls.fetch_add(1, Ordering::SeqCst);
                            Err::<u32, _>(StageError::msg("never"))
                        }
                    })
                    .await?;
                Ok::<_, StageError>(report.succeeded)
            }
        })
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["fan"])
        .build()
        .unwrap();
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        pipeline.run_with(RunOptions::default().with_deadline(Duration::from_secs(2))),
    )
    .await
    .expect("the run ends");
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    assert_eq!(report.status("fan"), Some(&StageStatus::Cancelled));
    assert!(
        matches!(report.status("after"), Some(StageStatus::Skipped { .. })),
        "{:?}",
        report.status("after")
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "attempts before the deadline"
    );
    let summaries: &[FanOutSummary] = &report.stage("fan").unwrap().fan_out;
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let summary = &summaries[0];
    assert_eq!(
        (
            summary.items,
            summary.succeeded,
            summary.failures.len(),
            summary.not_run
        ),
        (2, 1, 0, 1),
        "{summary}"
    );
    assert_eq!(summary.retried, [(0, 2)], "{summary}");
}
