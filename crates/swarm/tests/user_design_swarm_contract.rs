//! The `hivekit-swarm` contract of DESIGN.md, written from that document alone.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_swarm::{
    Backoff, BuildError, CancellationToken, ConcurrencyLimit, EventSink, FailurePolicy, FanOut,
    Pipeline, Priority, RetryPolicy, RunOptions, RunReport, SchedulingHint, SkipReason,
    StageContext, StageError, StageEvent, StageStatus,
};

fn no_backoff(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        backoff: Backoff::NONE,
    }
}

#[tokio::test]
async fn the_builder_chain_design_names_builds_and_runs() {
    let pipeline: Pipeline = Pipeline::builder()
        .stage("fetch", |_: StageContext| async {
            Ok::<_, StageError>(vec![1_u32, 2, 3])
        })
        .priority(SchedulingHint::with_priority(Priority::High))
        .stage("count", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.input::<Vec<u32>>("fetch")?.len())
        })
        .after(["fetch"])
        .timeout(Duration::from_secs(5))
        .retry(no_backoff(2))
        .priority(SchedulingHint::default())
        .build()
        .unwrap();
    let report: RunReport = pipeline.run().await;
    assert!(report.is_success());
    assert_eq!(*report.artifact::<usize>("count").unwrap(), 3);
    assert_eq!(
        report.status("count"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
}

#[test]
fn build_errors_name_what_is_wrong() {
    assert!(matches!(
        Pipeline::builder().build(),
        Err(BuildError::Empty)
    ));

    let duplicate = Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(()) })
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build();
    assert!(
        matches!(&duplicate, Err(BuildError::DuplicateStage(name)) if name == "a"),
        "{duplicate:?}"
    );

    let unknown = Pipeline::builder()
        .stage("report", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["fetch2"])
        .build();
    match unknown {
        Err(BuildError::UnknownDependency { stage, missing }) => {
            assert_eq!((stage.as_str(), missing.as_str()), ("report", "fetch2"));
        }
        other => panic!("expected UnknownDependency, got {other:?}"),
    }
}

#[test]
fn a_cycle_is_reported_with_its_stages_in_order() {
    // a runs after c, b after a, c after b: the cycle a -> b -> c -> a in execution order,
    // whatever stage the report starts from.
    let cycle = Pipeline::builder()
        .stage("entry", |_: StageContext| async { Ok::<_, StageError>(()) })
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["c", "entry"])
        .stage("b", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["a"])
        .stage("c", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["b"])
        .build();
    let path = match cycle {
        Err(BuildError::Cycle { path }) => path,
        other => panic!("expected a cycle, got {other:?}"),
    };
    assert_eq!(path.first(), path.last(), "the path closes: {path:?}");
    assert_eq!(path.len(), 4, "{path:?}");
    let start = path.iter().position(|stage| stage == "a").unwrap();
    let rotated: Vec<&str> = (0..3).map(|i| path[(start + i) % 3].as_str()).collect();
    assert_eq!(rotated, ["a", "b", "c"], "execution order: {path:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stage_that_succeeds_on_a_retry_is_succeeded_and_its_dependents_run() {
    let calls = Arc::new(AtomicU32::new(0));
    let flaky_calls = Arc::clone(&calls);
    let pipeline = Pipeline::builder()
        .stage("flaky", move |_: StageContext| {
            let calls = Arc::clone(&flaky_calls);
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(StageError::msg("not yet"))
                } else {
                    Ok(7_u32)
                }
            }
        })
        .retry(RetryPolicy::attempts(3))
        .stage("after", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("flaky")? + 1)
        })
        .after(["flaky"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(
        report.status("flaky"),
        Some(&StageStatus::Succeeded { attempts: 3 })
    );
    assert_eq!(*report.artifact::<u32>("after").unwrap(), 8);
    assert!(report.is_success());
}

fn parse_then_report() -> Pipeline {
    Pipeline::builder()
        .stage("parse", |_: StageContext| async {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_millis(10))
        .retry(no_backoff(3))
        .stage("report", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["parse"])
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_skipped_stage_says_which_dependency_failed_and_how() {
    let options = RunOptions {
        failure: FailurePolicy::ContinueIndependent,
        ..RunOptions::default()
    };
    let report = parse_then_report().run_with(options).await;
    assert_eq!(
        report.status("parse"),
        Some(&StageStatus::TimedOut { attempts: 3 })
    );
    assert_eq!(
        report.explain("report").as_deref(),
        Some("report skipped because parse failed: timed out after 3 attempts")
    );
    match report.status("report") {
        Some(StageStatus::Skipped {
            because: SkipReason::Dependency { dependency, .. },
        }) => assert_eq!(dependency, "parse"),
        other => panic!("expected a dependency skip, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn with_default_options_a_skipped_dependent_still_says_why() {
    // DESIGN.md's example chain, under `pipeline.run()` (fail fast by default): `report` never
    // started, and its status names the failure that stopped it.
    let report = parse_then_report().run().await;
    let explained = report.explain("report").unwrap();
    assert!(
        explained.starts_with("report skipped because ") && explained.contains("parse"),
        "{explained}"
    );
}

#[tokio::test]
async fn independent_stages_never_exceed_max_concurrency() {
    const STAGES: usize = 24;
    const LIMIT: usize = 3;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut builder = Pipeline::builder();
    for index in 0..STAGES {
        let running = Arc::clone(&running);
        let peak = Arc::clone(&peak);
        builder = builder
            .stage(format!("s{index}"), move |_: StageContext| {
                let running = Arc::clone(&running);
                let peak = Arc::clone(&peak);
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    for _ in 0..5 {
                        tokio::task::yield_now().await;
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, StageError>(index)
                }
            })
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    let options = RunOptions {
        max_concurrency: ConcurrencyLimit::new(LIMIT).unwrap(),
        ..RunOptions::default()
    };
    let report = tokio::time::timeout(Duration::from_secs(10), pipeline.run_with(options))
        .await
        .expect("the run ends");
    assert!(report.is_success());
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= LIMIT, "{peak} stages ran at once, limit {LIMIT}");
    assert!(
        peak >= 2,
        "independent stages should run in parallel (peak {peak})"
    );
}

#[tokio::test]
async fn when_slots_are_scarce_ready_stages_start_in_hint_order() {
    let started = Arc::new(Mutex::new(Vec::new()));
    let stage = |name: &'static str| {
        let started = Arc::clone(&started);
        move |_: StageContext| {
            let started = Arc::clone(&started);
            async move {
                started.lock().unwrap().push(name);
                Ok::<_, StageError>(())
            }
        }
    };
    let pipeline = Pipeline::builder()
        .stage("low", stage("low"))
        .priority(SchedulingHint::with_priority(Priority::Low))
        .stage("normal", stage("normal"))
        .priority(SchedulingHint::with_priority(Priority::Normal))
        .stage("critical", stage("critical"))
        .priority(SchedulingHint::with_priority(Priority::Critical))
        .stage("high", stage("high"))
        .priority(SchedulingHint::with_priority(Priority::High))
        .build()
        .unwrap();
    let options = RunOptions::default().with_max_concurrency(ConcurrencyLimit::new(1).unwrap());
    assert!(pipeline.run_with(options).await.is_success());
    assert_eq!(
        *started.lock().unwrap(),
        ["critical", "high", "normal", "low"]
    );
}

#[tokio::test]
async fn dependents_read_the_same_artifact_without_copying() {
    type Shared = Arc<Vec<u64>>;
    let pipeline = Pipeline::builder()
        .stage("fetch", |_: StageContext| async {
            Ok::<_, StageError>(vec![5_u64; 1_000])
        })
        .stage("left", |ctx: StageContext| async move {
            let input: Shared = ctx.input::<Vec<u64>>("fetch")?;
            Ok::<_, StageError>(Arc::as_ptr(&input) as usize)
        })
        .after(["fetch"])
        .stage("right", |ctx: StageContext| async move {
            let input: Shared = ctx.input::<Vec<u64>>("fetch")?;
            Ok::<_, StageError>(Arc::as_ptr(&input) as usize)
        })
        .after(["fetch"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let fetched = report.artifact::<Vec<u64>>("fetch").unwrap();
    let address = Arc::as_ptr(&fetched) as usize;
    assert_eq!(*report.artifact::<usize>("left").unwrap(), address);
    assert_eq!(*report.artifact::<usize>("right").unwrap(), address);
    assert!(report.artifact::<String>("fetch").is_err(), "wrong type");
    assert!(report.artifact::<u64>("nope").is_err(), "unknown stage");
}

#[tokio::test]
async fn serializable_artifacts_export_to_json_and_the_report_reads_back() {
    let pipeline = Pipeline::builder()
        .stage("summary", |_: StageContext| async {
            Ok::<_, StageError>(vec![("files".to_owned(), 3_u32)])
        })
        .export()
        .stage("private", |_: StageContext| async {
            Ok::<_, StageError>(1_u8)
        })
        .build()
        .unwrap();
    let report = pipeline.run().await;
    let exported = report.export_artifacts().unwrap();
    assert_eq!(exported["summary"], serde_json::json!([["files", 3]]));
    assert!(!exported.contains_key("private"));
    let json = report.to_json().unwrap();
    let back = RunReport::from_json(&json).unwrap();
    assert_eq!(back.status("summary"), report.status("summary"));
    assert_eq!(back.export_artifacts().unwrap(), exported);
}

#[tokio::test]
async fn a_dynamic_fan_out_is_bounded_in_width_and_succeeds_with_k_of_n() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (stage_running, stage_peak) = (Arc::clone(&running), Arc::clone(&peak));
    let pipeline = Pipeline::builder()
        .stage("ask", move |ctx: StageContext| {
            let running = Arc::clone(&stage_running);
            let peak = Arc::clone(&stage_peak);
            async move {
                // The number of sub-tasks is decided at run time.
                let models: Vec<u32> = (0..10).collect();
                let answers = ctx
                    .fan_out(models, FanOut::new(3).require(6).wait_all(), |model| {
                        let running = Arc::clone(&running);
                        let peak = Arc::clone(&peak);
                        async move {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            running.fetch_sub(1, Ordering::SeqCst);
                            if model % 3 == 0 {
                                Err(StageError::permanent(format!("model {model} is down")))
                            } else {
                                Ok(model)
                            }
                        }
                    })
                    .await?;
                Ok::<_, StageError>((answers.succeeded, answers.failed))
            }
        })
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(report.is_success(), "{:?}", report.status("ask"));
    assert_eq!(*report.artifact::<(usize, usize)>("ask").unwrap(), (6, 4));
    assert!(peak.load(Ordering::SeqCst) <= 3);

    // Eight of ten cannot be met when four fail: the stage fails.
    let failing = Pipeline::builder()
        .stage("ask", |ctx: StageContext| async move {
            let answers = ctx
                .fan_out(0..10_u32, FanOut::new(4).require(8), |model| async move {
                    if model % 3 == 0 {
                        Err(StageError::permanent("down"))
                    } else {
                        Ok(model)
                    }
                })
                .await?;
            Ok::<_, StageError>(answers.succeeded)
        })
        .build()
        .unwrap();
    let report = failing.run().await;
    assert!(matches!(
        report.status("ask"),
        Some(StageStatus::Failed { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn events_report_started_retried_finished_and_skipped() {
    let (sink, mut events) = EventSink::channel();
    let calls = Arc::new(AtomicU32::new(0));
    let flaky_calls = Arc::clone(&calls);
    let pipeline = Pipeline::builder()
        .stage("flaky", move |_: StageContext| {
            let calls = Arc::clone(&flaky_calls);
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(StageError::msg("once"))
                } else {
                    Ok(())
                }
            }
        })
        .retry(no_backoff(2))
        .stage("broken", |_: StageContext| async {
            Err::<(), _>(StageError::permanent("broken"))
        })
        .stage("after_broken", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["broken"])
        .build()
        .unwrap();
    let options = RunOptions {
        failure: FailurePolicy::ContinueIndependent,
        events: Some(sink),
        ..RunOptions::default()
    };
    let report = pipeline.run_with(options).await;
    assert!(!report.is_success());
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let has = |wanted: &dyn Fn(&StageEvent) -> bool| seen.iter().any(wanted);
    assert!(has(
        &|event| matches!(event, StageEvent::Started { stage } if &**stage == "flaky")
    ));
    assert!(has(&|event| matches!(
        event,
        StageEvent::Retried { stage, next_attempt: 2, .. } if &**stage == "flaky"
    )));
    assert!(has(&|event| matches!(
        event,
        StageEvent::Finished { stage, status: StageStatus::Succeeded { attempts: 2 }, .. }
            if &**stage == "flaky"
    )));
    assert!(has(&|event| matches!(
        event,
        StageEvent::Skipped { stage, .. } if &**stage == "after_broken"
    )));

    // Through a callback too.
    let counted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&counted);
    let options = RunOptions {
        events: Some(EventSink::callback(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })),
        ..RunOptions::default()
    };
    calls.store(1, Ordering::SeqCst);
    let _ = pipeline.run_with(options).await;
    assert!(counted.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn cancelling_a_run_marks_running_stages_cancelled_and_unstarted_ones_skipped() {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let pipeline = Pipeline::builder()
        .stage("long", move |_: StageContext| {
            let trigger = trigger.clone();
            async move {
                trigger.cancel();
                std::future::pending::<()>().await;
                Ok::<_, StageError>(())
            }
        })
        .stage("after", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["long"])
        .build()
        .unwrap();
    let options = RunOptions {
        cancel,
        ..RunOptions::default()
    };
    let report = tokio::time::timeout(Duration::from_secs(5), pipeline.run_with(options))
        .await
        .expect("a cancelled run ends");
    assert_eq!(report.status("long"), Some(&StageStatus::Cancelled));
    assert!(matches!(
        report.status("after"),
        Some(StageStatus::Skipped {
            because: SkipReason::Cancelled
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_run_deadline_stops_the_run() {
    let pipeline = Pipeline::builder()
        .stage("slow", |_: StageContext| async {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            Ok::<_, StageError>(())
        })
        .no_timeout()
        .build()
        .unwrap();
    let options = RunOptions {
        deadline: Some(Duration::from_secs(1)),
        seed: Some(7),
        ..RunOptions::default()
    };
    let report = pipeline.run_with(options).await;
    assert!(!report.is_success());
    assert!(report.elapsed() < Duration::from_secs(3_600));
    assert_eq!(report.status("slow"), Some(&StageStatus::Cancelled));
}

#[test]
fn backoff_is_exponential_with_a_cap_and_seeded_jitter() {
    let plain = Backoff {
        initial: Duration::from_millis(100),
        multiplier: 2.0,
        max: Duration::from_secs(1),
        jitter: 0.0,
    };
    let delays: Vec<Duration> = (1..=6).map(|failed| plain.delay(failed, 0)).collect();
    let millis: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
    assert_eq!(millis, [100, 200, 400, 800, 1_000, 1_000]);

    let jittered = Backoff {
        jitter: 0.5,
        ..plain
    };
    for failed in 1..=6 {
        let capped = delays[failed as usize - 1];
        let first = jittered.delay(failed, 42);
        assert_eq!(
            first,
            jittered.delay(failed, 42),
            "the same seed, the same wait"
        );
        assert!(
            first <= capped && first >= capped / 2,
            "{first:?} vs {capped:?}"
        );
    }
    let spread: std::collections::HashSet<Duration> =
        (0..32).map(|seed| jittered.delay(3, seed)).collect();
    assert!(spread.len() > 1, "other seeds draw other waits");
}

#[tokio::test]
async fn a_stage_reads_an_ancestors_artifact_it_declares_and_gets_a_typed_error_otherwise() {
    use hivekit_swarm::ArtifactError;
    let pipeline = Pipeline::builder()
        .stage("fetch", |_: StageContext| async {
            Ok::<_, StageError>(21_u32)
        })
        .stage("parse", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("fetch")?)
        })
        .after(["fetch"])
        .stage("declared", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("fetch")? * 2)
        })
        .after(["parse"])
        .reads(["fetch"])
        .stage("undeclared", |ctx: StageContext| async move {
            match ctx.input::<u32>("fetch") {
                Err(ArtifactError::NotADependency { reader, stage }) => {
                    Ok::<_, StageError>(format!("{reader} may not read {stage}"))
                }
                other => Err(StageError::permanent(format!("{other:?}"))),
            }
        })
        .after(["parse"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(report.is_success(), "{:?}", report.stages());
    assert_eq!(*report.artifact::<u32>("declared").unwrap(), 42);
    assert_eq!(
        *report.artifact::<String>("undeclared").unwrap(),
        "undeclared may not read fetch"
    );
}
