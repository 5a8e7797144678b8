//! LangGraph-style flows a user builds first: a router inside a loop that picks its branch from
//! the iteration and the run's input, state carried between iterations, and a report holding every
//! kind of status that reads back from JSON and explains every stage the same way.

use std::time::Duration;

use hivekit_swarm::{
    ArtifactError, FailurePolicy, Iteration, LoopPolicy, LoopStop, Pipeline, Route, RunOptions,
    RunOutcome, RunReport, SkipReason, StageContext, StageError, StageStatus,
};

/// Bounds a run so that a hang fails the test.
async fn bounded(run: impl std::future::Future<Output = RunReport>) -> RunReport {
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the run ended")
}

/// The loop body: `decide` routes to `revise` until the iteration reaches the run's target,
/// then to `publish`; `revise` appends to the previous iteration's draft.
fn agent_body() -> Pipeline {
    Pipeline::builder()
        .router("decide", |ctx: StageContext| async move {
            let iteration = ctx.run_input::<Iteration>()?;
            let target = iteration.parent().run_input::<u32>()?;
            Ok::<_, StageError>(if iteration.number() < *target {
                Route::to(["revise"])
            } else {
                Route::to(["publish"])
            })
        })
        .stage("revise", |ctx: StageContext| async move {
            let iteration = ctx.run_input::<Iteration>()?;
            let previous = match iteration.previous() {
                Some(report) => report
                    .artifact::<String>("revise")
                    .map(|draft| (*draft).clone())
                    .unwrap_or_default(),
                None => String::new(),
            };
            Ok::<_, StageError>(format!("{previous}r{}", iteration.number()))
        })
        .after(["decide"])
        .stage("publish", |ctx: StageContext| async move {
            let iteration = ctx.run_input::<Iteration>()?;
            Ok::<_, StageError>(iteration.number())
        })
        .after(["decide"])
        .build()
        .unwrap()
}

fn agent_pipeline() -> Pipeline {
    Pipeline::builder()
        .repeat(
            "agent",
            agent_body(),
            LoopPolicy::new(10).until(|report| {
                report
                    .status("publish")
                    .is_some_and(StageStatus::is_success)
            }),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_router_in_a_loop_branches_per_iteration_from_the_runs_input_and_stops_on_publish() {
    let pipeline = agent_pipeline();
    for target in [1_u32, 3] {
        let report = bounded(pipeline.run_with(RunOptions::default().with_input(target))).await;
        assert!(report.is_success(), "target {target}: {report:?}");
        let looped = report
            .artifact::<hivekit_swarm::LoopReport>("agent")
            .unwrap();
        assert_eq!(looped.stopped, LoopStop::Condition);
        assert_eq!(looped.iterations.len(), target as usize);
        for (index, iteration) in looped.iterations.iter().enumerate() {
            let last = index + 1 == target as usize;
            let (taken, not_taken) = if last {
                ("publish", "revise")
            } else {
                ("revise", "publish")
            };
            assert!(iteration.status(taken).unwrap().is_success());
            assert_eq!(
                iteration.status(not_taken),
                Some(&StageStatus::Skipped {
                    because: SkipReason::RouteNotTaken {
                        router: "decide".into()
                    }
                }),
                "iteration {}",
                index + 1
            );
        }
        let last = looped.last().unwrap();
        assert_eq!(*last.artifact::<u32>("publish").unwrap(), target);
        if target == 3 {
            let second = &looped.iterations[1];
            assert_eq!(*second.artifact::<String>("revise").unwrap(), "r1r2");
        }
    }
}

#[tokio::test]
async fn a_loop_body_asking_for_the_outer_input_directly_gets_a_typed_error_naming_both_types() {
    let body = Pipeline::builder()
        .stage("peek", |ctx: StageContext| async move {
            // The body's own run input is the Iteration; the outer input is behind `parent()`.
            let error = ctx.run_input::<u32>().unwrap_err();
            Ok::<_, StageError>(error)
        })
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .repeat("loop", body, LoopPolicy::new(1))
        .build()
        .unwrap();
    let report = bounded(pipeline.run_with(RunOptions::default().with_input(7_u32))).await;
    let looped = report
        .artifact::<hivekit_swarm::LoopReport>("loop")
        .unwrap();
    let error = looped
        .last()
        .unwrap()
        .artifact::<ArtifactError>("peek")
        .unwrap();
    match &*error {
        ArtifactError::RunInputWrongType {
            stage,
            expected,
            actual,
        } => {
            assert_eq!(stage, "peek");
            assert_eq!(expected, "u32");
            assert!(actual.ends_with("Iteration"), "{actual}");
        }
        other => panic!("expected RunInputWrongType, got {other}"),
    }
}

#[tokio::test]
async fn a_loop_whose_router_never_publishes_stops_at_max_iterations_with_every_report() {
    let pipeline = agent_pipeline();
    let report = bounded(pipeline.run_with(RunOptions::default().with_input(u32::MAX))).await;
    assert!(report.is_success(), "{report:?}");
    let looped = report
        .artifact::<hivekit_swarm::LoopReport>("agent")
        .unwrap();
    assert_eq!(looped.stopped, LoopStop::MaxIterations);
    assert_eq!(looped.iterations.len(), 10);
    assert_eq!(
        *looped.last().unwrap().artifact::<String>("revise").unwrap(),
        "r1r2r3r4r5r6r7r8r9r10"
    );
}

/// One stage of every kind of ending, run until the deadline with independent stages going on.
fn every_status_pipeline() -> Pipeline {
    Pipeline::builder()
        .name("every status")
        .stage("ok", |_: StageContext| async { Ok::<_, StageError>(1_u8) })
        .stage("broken", |_: StageContext| async {
            Err::<u8, _>(StageError::msg("disk on fire"))
        })
        .stage("after_broken", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["broken"])
        .stage("after_after", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["after_broken"])
        .stage("slowpoke", |_: StageContext| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, StageError>(())
        })
        .timeout(Duration::from_millis(5))
        .router("triage", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["taken"]))
        })
        .after(["ok"])
        .stage("taken", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["triage"])
        .stage("not_taken", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["triage"])
        .stage("below_not_taken", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["not_taken"])
        .stage("gated", |_: StageContext| async { Ok::<_, StageError>(()) })
        .when(|_: &StageContext| false)
        .stage("hanging", |_: StageContext| async {
            std::future::pending::<()>().await;
            Ok::<_, StageError>(())
        })
        .no_timeout()
        .stage("after_hanging", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["hanging"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_report_with_every_status_reads_back_from_json_and_explains_every_stage_the_same() {
    let report = bounded(
        every_status_pipeline().run_with(
            RunOptions::default()
                .with_failure(FailurePolicy::ContinueIndependent)
                .with_deadline(Duration::from_millis(200)),
        ),
    )
    .await;
    assert_eq!(report.outcome(), RunOutcome::DeadlineExceeded);
    let status = |name: &str| report.status(name).unwrap().clone();
    assert!(status("ok").is_success());
    assert!(matches!(
        status("broken"),
        StageStatus::Failed { attempts: 1, .. }
    ));
    assert!(matches!(
        status("slowpoke"),
        StageStatus::TimedOut { attempts: 1 }
    ));
    assert_eq!(status("hanging"), StageStatus::Cancelled);
    assert_eq!(
        status("not_taken"),
        StageStatus::Skipped {
            because: SkipReason::RouteNotTaken {
                router: "triage".into()
            }
        }
    );
    assert_eq!(
        status("below_not_taken"),
        StageStatus::Skipped {
            because: SkipReason::Pruned {
                dependency: "not_taken".into()
            }
        }
    );
    assert_eq!(
        status("gated"),
        StageStatus::Skipped {
            because: SkipReason::ConditionFalse
        }
    );
    match status("after_after") {
        StageStatus::Skipped {
            because: SkipReason::Dependency {
                dependency, root, ..
            },
        } => assert_eq!(
            (dependency.as_str(), root.as_str()),
            ("after_broken", "broken")
        ),
        other => panic!("after_after: {other:?}"),
    }
    assert!(matches!(
        status("after_hanging"),
        StageStatus::Skipped { .. }
    ));
    assert_eq!(
        report.explain("after_after").unwrap(),
        "after_after skipped because after_broken was skipped because broken failed: disk on fire \
         (after 1 attempt)"
    );

    let json = report.to_json().unwrap();
    let back = RunReport::from_json(&json).unwrap();
    assert_eq!(back.outcome(), report.outcome());
    for stage in report.stages() {
        assert_eq!(
            back.status(&stage.name),
            Some(&stage.status),
            "{}",
            stage.name
        );
        assert_eq!(back.explain(&stage.name), report.explain(&stage.name));
    }
    assert_eq!(back.to_json().unwrap(), json);
    assert_eq!(back.explain("nowhere"), None);
}
