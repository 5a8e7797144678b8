//! The report read back: JSON both ways, failed attempts, per-item fan-out retries, Mermaid, DOT
//! and the Chrome trace.

mod support;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    ArtifactError, AttemptFailure, Backoff, EventSink, FailurePolicy, FanOut, LoopPolicy, Pipeline,
    RetryPolicy, Route, RunOptions, RunReport, StageContext, StageError, StageEvent, StageStatus,
};
use support::noop;

/// A pipeline with something of everything: a retried stage, a source error, a fan-out with
/// item retries, a router, a loop, a skipped stage and an exported artifact.
fn busy_pipeline() -> Pipeline {
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let item_calls = Arc::new(AtomicU32::new(0));
    let body = Pipeline::builder().stage("step", noop).build().unwrap();
    Pipeline::builder()
        .name("busy")
        .stage("flaky", move |_: StageContext| {
            let calls = flaky_calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(StageError::msg("busy, try again"));
                }
                Ok(7u32)
            }
        })
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(1))))
        .export()
        .stage("files", move |ctx: StageContext| {
            let calls = item_calls.clone();
            async move {
                let policy =
                    FanOut::new(2).retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE));
                let sizes = ctx
                    .fan_out(vec![1u32, 2, 3], policy, |item| {
                        let calls = calls.clone();
                        async move {
                            if item == 2 && calls.fetch_add(1, Ordering::SeqCst) == 0 {
                                return Err(StageError::msg("flaky file"));
                            }
                            Ok(item)
                        }
                    })
                    .await?;
                Ok::<_, StageError>(sizes.into_successes().sum::<u32>())
            }
        })
        .after(["flaky"])
        .export()
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["taken"]))
        })
        .after(["files"])
        .stage("taken", noop)
        .after(["route"])
        .stage("not_taken", noop)
        .after(["route"])
        .repeat("loop", body, LoopPolicy::new(2))
        .after(["taken"])
        .stage("broken", |_: StageContext| async {
            Err::<(), _>(io::Error::new(io::ErrorKind::NotFound, "no such file").into())
        })
        .stage("after_broken", noop)
        .after(["broken"])
        .build()
        .unwrap()
}

async fn busy_report() -> RunReport {
    busy_pipeline()
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await
}

#[tokio::test]
async fn a_report_round_trips_through_json() {
    let report = busy_report().await;
    let json = report.to_json().unwrap();
    let back = RunReport::from_json(&json).unwrap();
    assert_eq!(back.pipeline_name(), "busy");
    assert_eq!(back.outcome(), report.outcome());
    assert_eq!(back.elapsed().as_micros(), report.elapsed().as_micros());
    assert_eq!(back.stages().len(), report.stages().len());
    for (read, written) in back.stages().iter().zip(report.stages()) {
        assert_eq!(read.name, written.name);
        assert_eq!(read.status, written.status);
        // Times are kept to the microsecond.
        assert_eq!(
            serde_json::to_value(&read.failed_attempts).unwrap(),
            serde_json::to_value(&written.failed_attempts).unwrap()
        );
        assert_eq!(read.fan_out, written.fan_out);
        assert_eq!(read.iterations.len(), written.iterations.len());
        assert_eq!(
            read.started.map(|at| at.as_micros()),
            written.started.map(|at| at.as_micros())
        );
    }
    assert_eq!(back.edges(), report.edges());
    assert_eq!(back.explain("after_broken"), report.explain("after_broken"));
    // Exported artifacts come back as JSON; live ones are gone, and say so.
    assert_eq!(back.artifact_json("flaky").unwrap(), serde_json::json!(7));
    assert_eq!(
        back.artifact::<u32>("flaky").unwrap_err(),
        ArtifactError::NotLive {
            stage: "flaky".into()
        }
    );
    // Written again, it is the same text.
    assert_eq!(back.to_json().unwrap(), json);
}

#[tokio::test]
async fn the_json_has_integer_microseconds_and_tagged_enums() {
    let report = busy_report().await;
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert!(json["elapsed_us"].is_u64());
    let stages = json["stages"].as_array().unwrap();
    for stage in stages {
        assert!(
            stage["started_us"].is_u64() || stage["started_us"].is_null(),
            "{stage}"
        );
        assert!(stage["status"]["status"].is_string(), "{stage}");
    }
    let broken = stages
        .iter()
        .find(|stage| stage["name"] == "broken")
        .unwrap();
    assert_eq!(broken["status"]["status"], "failed");
    assert_eq!(broken["status"]["error"]["kind"], "source");
    assert_eq!(broken["status"]["error"]["message"], "no such file");
    let skipped = stages
        .iter()
        .find(|stage| stage["name"] == "not_taken")
        .unwrap();
    assert_eq!(skipped["status"]["because"]["reason"], "route_not_taken");
    assert_eq!(json["outcome"], "failed");
}

#[tokio::test]
async fn each_failed_attempt_is_kept_with_its_error_and_duration() {
    let report = busy_report().await;
    let flaky = report.stage("flaky").unwrap();
    assert_eq!(flaky.status, StageStatus::Succeeded { attempts: 3 });
    assert_eq!(flaky.failed_attempts.len(), 2);
    for (number, record) in (1..).zip(&flaky.failed_attempts) {
        assert_eq!(record.attempt, number);
        assert_eq!(
            record.failure,
            AttemptFailure::Error {
                error: StageError::msg("busy, try again")
            }
        );
        assert_eq!(record.backoff, Duration::from_millis(1));
    }
    assert!(
        flaky.failed_attempts[1].started
            >= flaky.failed_attempts[0].started + Duration::from_millis(1)
    );
    // A stage without retries still says why its one attempt failed.
    let broken = report.stage("broken").unwrap();
    assert_eq!(broken.failed_attempts.len(), 1);
    assert_eq!(broken.failed_attempts[0].backoff, Duration::ZERO);
}

#[tokio::test]
async fn a_fan_out_item_is_retried_alone() {
    let report = busy_report().await;
    assert_eq!(*report.artifact::<u32>("files").unwrap(), 6);
    let summary = &report.stage("files").unwrap().fan_out[0];
    assert_eq!(summary.retried, [(1, 2)]);
    assert_eq!(summary.succeeded, 3);
    assert_eq!(report.status("files").unwrap().attempts(), 1);
}

#[tokio::test]
async fn events_round_trip_through_json() {
    let (sink, mut events) = EventSink::channel();
    let _report = busy_pipeline()
        .run_with(
            RunOptions::default()
                .with_failure(FailurePolicy::ContinueIndependent)
                .with_events(sink),
        )
        .await;
    let mut seen = 0;
    while let Ok(event) = events.try_recv() {
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.starts_with("{\"event\":"), "{json}");
        let back: StageEvent = serde_json::from_str(&json).unwrap();
        match (&event, &back) {
            // Errors compare by their messages once read back.
            (StageEvent::Finished { status: a, .. }, StageEvent::Finished { status: b, .. }) => {
                assert_eq!(a.to_string(), b.to_string());
            }
            _ => assert_eq!(back, event),
        }
        seen += 1;
    }
    assert!(seen > 10);
}

#[tokio::test]
async fn mermaid_and_dot_show_the_statuses_after_a_run() {
    let report = busy_report().await;
    let mermaid = report.to_mermaid();
    assert!(mermaid.starts_with("flowchart TD\n"));
    assert!(mermaid.contains("[\"flaky<br/>succeeded after 3 attempts\"]"));
    assert!(mermaid.contains("[\"not_taken<br/>route not taken\"]"));
    assert!(mermaid.contains("[\"broken<br/>failed\"]"));
    assert_eq!(mermaid.matches(" --> ").count(), report.edges().len());
    // The same picture from the report read back.
    let back = RunReport::from_json(&report.to_json().unwrap()).unwrap();
    assert_eq!(back.to_mermaid(), mermaid);

    let dot = report.to_dot();
    assert!(dot.starts_with("digraph \"busy\" {"));
    assert!(dot.contains("label=\"after_broken\\nskipped\""));
    assert_eq!(dot.matches(" -> ").count(), report.edges().len());
    assert!(busy_pipeline().to_dot().contains("s0 [label=\"flaky\"];"));
}

#[tokio::test]
async fn the_chrome_trace_has_a_track_per_stage_with_attempts_and_backoffs() {
    let report = busy_report().await;
    let trace: serde_json::Value = serde_json::from_str(&report.to_chrome_trace()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let track_names: Vec<&str> = events
        .iter()
        .filter(|event| event["name"] == "thread_name")
        .map(|event| event["args"]["name"].as_str().unwrap())
        .collect();
    let stage_names: Vec<&str> = report.stages().iter().map(|stage| &*stage.name).collect();
    assert_eq!(track_names, stage_names);
    let flaky_track = 1 + stage_names
        .iter()
        .position(|name| *name == "flaky")
        .unwrap();
    let spans: Vec<(&str, &str)> = events
        .iter()
        .filter(|event| event["ph"] == "X" && event["tid"] == flaky_track)
        .map(|event| {
            (
                event["cat"].as_str().unwrap(),
                event["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            ("attempt", "flaky attempt 1"),
            ("backoff", "backoff"),
            ("attempt", "flaky attempt 2"),
            ("backoff", "backoff"),
            ("attempt", "flaky")
        ]
    );
    assert!(events
        .iter()
        .filter(|event| event["ph"] == "X")
        .all(|event| event["ts"].is_u64() && event["dur"].is_u64()));
}

/// A run nobody watches takes a short path through a succeeded stage's end; a watched one (an
/// event sink) the general path. Both must record the same statuses, artifacts, start times and
/// durations, and run every stage of a chain exactly once, in order.
#[tokio::test]
async fn a_watched_and_an_unwatched_run_report_succeeded_stages_the_same_way() {
    let runs = Arc::new(AtomicU32::new(0));
    let mut builder = Pipeline::builder();
    for stage in 0..50u32 {
        let runs = runs.clone();
        let after: Vec<String> = stage
            .checked_sub(1)
            .map(|previous| format!("s{previous}"))
            .into_iter()
            .collect();
        builder = builder
            .stage(format!("s{stage}"), move |_: StageContext| {
                let order = runs.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, StageError>(order) }
            })
            .after(after)
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    let quiet = pipeline.run().await;
    let watched = pipeline
        .run_with(RunOptions::default().with_events(EventSink::callback(|_| {})))
        .await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        100,
        "every stage ran once per run"
    );
    for (run, report) in [(0u32, &quiet), (1, &watched)] {
        assert!(report.is_success());
        let mut previous_end = Duration::ZERO;
        for stage in 0..50u32 {
            let name = format!("s{stage}");
            assert_eq!(
                report.status(&name),
                Some(&StageStatus::Succeeded { attempts: 1 })
            );
            assert_eq!(
                *report.artifact::<u32>(&name).unwrap(),
                run * 50 + stage,
                "in chain order"
            );
            let stage_report = report.stage(&name).unwrap();
            let started = stage_report.started.expect("a stage that ran has a start");
            let elapsed = stage_report
                .elapsed
                .expect("a stage that ran has a duration");
            assert!(
                started >= previous_end,
                "{name} started before its dependency ended"
            );
            assert!(stage_report.failed_attempts.is_empty());
            previous_end = started + elapsed;
        }
        assert!(previous_end <= report.elapsed());
    }
}

/// Dropping a report hands its stage list back to the pipeline for the next run (see
/// `report/spare.rs`): the next run's report must start from a clean list all the same.
#[tokio::test]
async fn a_run_after_a_dropped_report_reports_only_what_it_did() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let body = Pipeline::builder().stage("step", noop).build().unwrap();
    let flaky = failing.clone();
    let pipeline = Pipeline::builder()
        .stage("flaky", move |_: StageContext| {
            let failing = flaky.load(Ordering::SeqCst);
            async move {
                if failing {
                    return Err(StageError::msg("down"));
                }
                Ok(())
            }
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .stage("after_flaky", noop)
        .after(["flaky"])
        .stage("fan", |ctx: StageContext| async move {
            ctx.fan_out(vec![1u32, 2], FanOut::new(2), |item| async move {
                Ok::<_, StageError>(item)
            })
            .await?;
            Ok::<_, StageError>(())
        })
        .repeat("loop", body, LoopPolicy::new(2))
        .build()
        .unwrap();
    let options = || RunOptions::default().with_failure(FailurePolicy::ContinueIndependent);

    let first = pipeline.run_with(options()).await;
    assert_eq!(first.stage("flaky").unwrap().failed_attempts.len(), 2);
    assert!(matches!(
        first.status("after_flaky"),
        Some(StageStatus::Skipped { .. })
    ));
    assert_eq!(first.stage("fan").unwrap().fan_out.len(), 1);
    assert_eq!(first.stage("loop").unwrap().iterations.len(), 2);
    drop(first);

    failing.store(false, Ordering::SeqCst);
    let second = pipeline.run_with(options()).await;
    assert!(second.is_success(), "{second}");
    let flaky = second.stage("flaky").unwrap();
    assert_eq!(flaky.status, StageStatus::Succeeded { attempts: 1 });
    assert!(
        flaky.failed_attempts.is_empty(),
        "{:?}",
        flaky.failed_attempts
    );
    assert!(second.stage("after_flaky").unwrap().started.is_some());
    assert_eq!(second.stage("fan").unwrap().fan_out.len(), 1);
    assert_eq!(second.stage("loop").unwrap().iterations.len(), 2);
    assert!(second.stages().iter().all(|stage| !stage.resumed));
    // A clone of the report is dropped too: the pipeline keeps one list, the other is freed.
    let copy = second.clone();
    drop(second);
    drop(copy);

    failing.store(true, Ordering::SeqCst);
    let third = pipeline.run_with(options()).await;
    let after = third.stage("after_flaky").unwrap();
    assert!(matches!(after.status, StageStatus::Skipped { .. }));
    assert_eq!((after.started, after.elapsed), (None, None));
    assert_eq!(third.stage("flaky").unwrap().failed_attempts.len(), 2);
    assert_eq!(third.stage("loop").unwrap().iterations.len(), 2);
}
