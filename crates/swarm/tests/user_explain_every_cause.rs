//! `explain`, the `Skipped { because }` events and the JSON read-back name the right stage and cause for every way a stage does not run.

use std::time::Duration;

use hivekit_swarm::{
    Backoff, ConcurrencyLimit, EventSink, FailurePolicy, Pipeline, RetryPolicy, Route, RunOptions,
    RunOutcome, RunReport, SkipReason, StageContext, StageError, StageEvent, StageStatus,
};
use tokio_util::sync::CancellationToken;

fn ok(_: StageContext) -> std::future::Ready<Result<(), StageError>> {
    std::future::ready(Ok(()))
}

async fn forever(_: StageContext) -> Result<(), StageError> {
    std::future::pending::<()>().await;
    Ok(())
}

/// Runs with a channel sink; the report and the events.
async fn run(pipeline: &Pipeline, options: RunOptions) -> (RunReport, Vec<StageEvent>) {
    let (sink, mut receiver) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        pipeline.run_with(options.with_events(sink)),
    )
    .await
    .expect("the run ends");
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    (report, events)
}

/// Each explanation, on the live report and on its JSON read-back; each skipped stage's event
/// carries the report's reason.
fn check(report: &RunReport, events: &[StageEvent], expected: &[(&str, &str)]) {
    let back = RunReport::from_json(&report.to_json().unwrap()).unwrap();
    for (stage, text) in expected {
        assert_eq!(
            report.explain(stage).as_deref(),
            Some(*text),
            "live {stage}\n{report}"
        );
        assert_eq!(
            back.explain(stage).as_deref(),
            Some(*text),
            "read back {stage}"
        );
    }
    for stage in report.stages() {
        let decided: Vec<&StageEvent> = events
            .iter()
            .filter(|event| {
                event.stage() == &*stage.name
                    && matches!(
                        event,
                        StageEvent::Finished { .. }
                            | StageEvent::Skipped { .. }
                            | StageEvent::Cancelled { .. }
                    )
            })
            .collect();
        assert_eq!(decided.len(), 1, "{}: {decided:?}", stage.name);
        match (&stage.status, decided[0]) {
            (StageStatus::Skipped { because }, StageEvent::Skipped { because: said, .. }) => {
                assert_eq!(because, said, "{}", stage.name)
            }
            (StageStatus::Cancelled, StageEvent::Cancelled { .. }) => {}
            (status, StageEvent::Finished { status: said, .. }) => {
                assert_eq!(status, said, "{}", stage.name)
            }
            (status, event) => panic!("{}: {status:?} but {event:?}", stage.name),
        }
    }
    assert_eq!(report.explain("no such stage"), None);
}

#[tokio::test(start_paused = true)]
async fn a_chain_after_a_stage_timed_out_on_every_attempt() {
    let pipeline = Pipeline::builder()
        .stage("parse", forever)
        .timeout(Duration::from_millis(10))
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(5))))
        .stage("render", ok)
        .after(["parse"])
        .stage("report", ok)
        .after(["render"])
        .build()
        .unwrap();
    let (report, events) = run(&pipeline, RunOptions::default()).await;
    check(
        &report,
        &events,
        &[
            ("parse", "parse failed: timed out after 3 attempts"),
            ("render", "render skipped because parse failed: timed out after 3 attempts"),
            (
                "report",
                "report skipped because render was skipped because parse failed: timed out after 3 attempts",
            ),
        ],
    );
    let Some(StageStatus::Skipped {
        because: SkipReason::Dependency {
            dependency, root, ..
        },
    }) = report.status("report")
    else {
        panic!("{report}")
    };
    assert_eq!((dependency.as_str(), root.as_str()), ("render", "parse"));
    // Two retries announced, numbered 2 and 3, each after a timeout of 10 ms.
    let retried: Vec<u32> = events
        .iter()
        .filter_map(|event| match event {
            StageEvent::Retried {
                next_attempt,
                failure,
                delay,
                ..
            } => {
                assert_eq!(failure.to_string(), "timed out after 10ms");
                assert_eq!(*delay, Duration::from_millis(5));
                Some(*next_attempt)
            }
            _ => None,
        })
        .collect();
    assert_eq!(retried, [2, 3]);
    let records = &report.stage("parse").unwrap().failed_attempts;
    assert_eq!(
        records.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for pair in records.windows(2) {
        assert!(
            pair[0].started + pair[0].elapsed <= pair[1].started,
            "{records:?}"
        );
    }
    assert_eq!(records[2].backoff, Duration::ZERO);
}

#[tokio::test]
async fn a_chain_after_a_stage_that_exhausted_its_retries() {
    let pipeline = Pipeline::builder()
        .stage("fetch", |ctx: StageContext| async move {
            Err::<(), _>(StageError::msg(format!("offline {}", ctx.attempt())))
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
        .stage("parse", ok)
        .after(["fetch"])
        .stage("other", ok)
        .build()
        .unwrap();
    let (report, events) = run(
        &pipeline,
        RunOptions::default().with_failure(FailurePolicy::ContinueIndependent),
    )
    .await;
    check(
        &report,
        &events,
        &[
            ("fetch", "fetch failed: offline 3 (after 3 attempts)"),
            (
                "parse",
                "parse skipped because fetch failed: offline 3 (after 3 attempts)",
            ),
            ("other", "other succeeded after 1 attempt"),
        ],
    );
    let errors: Vec<String> = report
        .stage("fetch")
        .unwrap()
        .failed_attempts
        .iter()
        .map(|record| record.failure.to_string())
        .collect();
    assert_eq!(errors, ["offline 1", "offline 2", "offline 3"]);
}

#[tokio::test]
async fn stages_waiting_for_a_slot_when_the_run_fails_fast() {
    let pipeline = Pipeline::builder()
        .stage("lint", |_: StageContext| async {
            Err::<(), _>(StageError::msg("bad"))
        })
        .stage("fix", ok)
        .after(["lint"])
        .stage("test", ok)
        .stage("ship", ok)
        .after(["test"])
        .build()
        .unwrap();
    let (report, events) = run(
        &pipeline,
        RunOptions::default().with_max_concurrency(ConcurrencyLimit::new(1).unwrap()),
    )
    .await;
    assert_eq!(report.outcome(), RunOutcome::Failed);
    check(
        &report,
        &events,
        &[
            (
                "fix",
                "fix skipped because lint failed: bad (after 1 attempt)",
            ),
            (
                "test",
                "test skipped because the run stopped after lint failed",
            ),
            (
                "ship",
                "ship skipped because the run stopped after lint failed",
            ),
        ],
    );
}

#[tokio::test]
async fn a_run_cancelled_while_a_stage_runs() {
    let (started, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let pipeline = Pipeline::builder()
        .stage("slow", move |_: StageContext| {
            let started = started.clone();
            async move {
                let _ = started.send(());
                std::future::pending::<()>().await;
                Ok::<_, StageError>(())
            }
        })
        .stage("later", ok)
        .after(["slow"])
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let watcher = tokio::spawn(async move {
        started_rx.recv().await;
        trigger.cancel();
    });
    let (report, events) = run(&pipeline, RunOptions::default().with_cancel(cancel)).await;
    watcher.await.unwrap();
    assert_eq!(report.outcome(), RunOutcome::Cancelled);
    check(
        &report,
        &events,
        &[
            ("slow", "slow was cancelled"),
            ("later", "later skipped because the run was cancelled"),
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_deadline() {
    let pipeline = Pipeline::builder()
        .stage("slow", forever)
        .stage("later", ok)
        .after(["slow"])
        .build()
        .unwrap();
    let (report, events) = run(
        &pipeline,
        RunOptions::default().with_deadline(Duration::from_secs(1)),
    )
    .await;
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    check(
        &report,
        &events,
        &[
            ("slow", "slow was cancelled"),
            ("later", "later skipped because the run's deadline passed"),
        ],
    );
}

#[tokio::test]
async fn routes_not_taken_false_conditions_and_what_follows_them() {
    let pipeline = Pipeline::builder()
        .router("triage", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["fast"]))
        })
        .stage("fast", ok)
        .after(["triage"])
        .stage("slow", ok)
        .after(["triage"])
        .stage("after_slow", ok)
        .after(["slow"])
        .stage("gated", ok)
        .after(["fast"])
        .when(|_| false)
        .stage("after_gated", ok)
        .after(["gated"])
        .stage("join", ok)
        .after(["fast", "slow"])
        .build()
        .unwrap();
    let (report, events) = run(&pipeline, RunOptions::default()).await;
    assert!(report.is_success(), "{report}");
    check(
        &report,
        &events,
        &[
            ("slow", "slow skipped because route not taken by triage"),
            (
                "after_slow",
                "after_slow skipped because slow was skipped because route not taken by triage",
            ),
            ("gated", "gated skipped because its condition was false"),
            (
                "after_gated",
                "after_gated skipped because gated was skipped because its condition was false",
            ),
            ("join", "join succeeded after 1 attempt"),
        ],
    );
}
