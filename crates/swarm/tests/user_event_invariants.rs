//! What a dashboard built on stage events relies on, checked over runs that fail fast, continue
//! past a failure, retry, route, get cancelled and hit their deadline, with inline and spawned
//! stages: every stage gets exactly one terminal event (finished, skipped or cancelled) that agrees
//! with the report, `done` counts 1, 2, .. `total` once each, and a stage's `Started` comes first.

use std::collections::HashMap;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, CancellationToken, EventSink, FailurePolicy, Pipeline, RetryPolicy, Route, RunOptions,
    RunReport, StageContext, StageError, StageEvent, StageStatus,
};

/// A diamond with a flaky stage, a failing branch, a router and a slow spawned stage.
fn pipeline() -> Pipeline {
    Pipeline::builder()
        .stage("fetch", |_: StageContext| async {
            Ok::<_, StageError>(1u32)
        })
        .stage("flaky", |ctx: StageContext| async move {
            if ctx.attempt() < 2 {
                return Err(StageError::msg("once"));
            }
            Ok::<_, StageError>(())
        })
        .after(["fetch"])
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(1))))
        .stage("broken", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Err::<(), _>(StageError::msg("broken"))
        })
        .after(["fetch"])
        .stage("slow", |_: StageContext| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, StageError>(())
        })
        .after(["fetch"])
        .spawn()
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["left"]))
        })
        .after(["flaky"])
        .stage("left", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["route"])
        .stage("right", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["route"])
        .stage("after-broken", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["broken"])
        .stage("join", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["left", "slow", "after-broken"])
        .build()
        .expect("valid")
}

fn check(report: &RunReport, events: &[StageEvent], label: &str) {
    let total = report.stages().len();
    let mut terminal: HashMap<&str, usize> = HashMap::new();
    let mut started: HashMap<&str, usize> = HashMap::new();
    let mut done_seen = Vec::new();
    for (position, event) in events.iter().enumerate() {
        let stage = event.stage();
        match event {
            StageEvent::Started { .. } => {
                assert!(
                    started.insert(stage, position).is_none(),
                    "{label}: {stage} started twice"
                );
            }
            StageEvent::Finished {
                status,
                done,
                total: of,
                ..
            } => {
                assert_eq!(report.status(stage), Some(status), "{label}: {stage}");
                assert!(
                    started.contains_key(stage),
                    "{label}: {stage} finished before starting"
                );
                assert!(
                    terminal.insert(stage, position).is_none(),
                    "{label}: {stage} twice"
                );
                done_seen.push(*done);
                assert_eq!(*of, total);
            }
            StageEvent::Skipped {
                because,
                done,
                total: of,
                ..
            } => {
                assert_eq!(
                    report.status(stage),
                    Some(&StageStatus::Skipped {
                        because: because.clone()
                    }),
                    "{label}: {stage}"
                );
                assert!(
                    terminal.insert(stage, position).is_none(),
                    "{label}: {stage} twice"
                );
                done_seen.push(*done);
                assert_eq!(*of, total);
            }
            StageEvent::Cancelled {
                done, total: of, ..
            } => {
                assert_eq!(
                    report.status(stage),
                    Some(&StageStatus::Cancelled),
                    "{label}: {stage}"
                );
                assert!(
                    terminal.insert(stage, position).is_none(),
                    "{label}: {stage} twice"
                );
                done_seen.push(*done);
                assert_eq!(*of, total);
            }
            _ => {}
        }
    }
    for stage in report.stages() {
        assert!(
            terminal.contains_key(&*stage.name),
            "{label}: no terminal event for {} ({:?}); events: {events:#?}",
            stage.name,
            stage.status
        );
    }
    assert_eq!(
        done_seen,
        (1..=total).collect::<Vec<_>>(),
        "{label}: done counts"
    );
}

async fn run_with_events(options: RunOptions) -> (RunReport, Vec<StageEvent>) {
    let (sink, mut receiver) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline().run_with(options.with_events(sink)),
    )
    .await
    .expect("no hang");
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    (report, events)
}

#[tokio::test(start_paused = true)]
async fn events_agree_with_the_report_when_the_run_fails_fast() {
    let (report, events) = run_with_events(RunOptions::default()).await;
    check(&report, &events, "fail fast");
}

#[tokio::test(start_paused = true)]
async fn events_agree_with_the_report_when_the_run_continues_past_a_failure() {
    let (report, events) =
        run_with_events(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
            .await;
    assert_eq!(
        report.status("left"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
    check(&report, &events, "continue");
}

#[tokio::test(start_paused = true)]
async fn events_agree_with_the_report_at_the_deadline() {
    let (report, events) = run_with_events(
        RunOptions::default()
            .with_failure(FailurePolicy::ContinueIndependent)
            .with_deadline(Duration::from_millis(1)),
    )
    .await;
    check(&report, &events, "deadline");
}

#[tokio::test(start_paused = true)]
async fn events_agree_with_the_report_when_cancelled_mid_run() {
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let stop = async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        canceller.cancel();
    };
    let ((report, events), ()) = tokio::join!(
        run_with_events(
            RunOptions::default()
                .with_failure(FailurePolicy::ContinueIndependent)
                .with_cancel(cancel)
        ),
        stop
    );
    check(&report, &events, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_agree_with_the_report_for_many_seeds_and_limits() {
    for seed in 0..20u64 {
        let limit = hivekit_swarm::ConcurrencyLimit::new(1 + (seed as usize % 3)).expect("limit");
        let (report, events) = run_with_events(
            RunOptions::default()
                .with_failure(if seed % 2 == 0 {
                    FailurePolicy::ContinueIndependent
                } else {
                    FailurePolicy::FailFast
                })
                .with_seed(seed)
                .with_max_concurrency(limit),
        )
        .await;
        check(&report, &events, &format!("seed {seed}"));
    }
}
