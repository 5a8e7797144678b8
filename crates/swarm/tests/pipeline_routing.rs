//! Routers, conditional stages and bounded loops.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use hivekit_swarm::{
    FailurePolicy, Iteration, LoopPolicy, LoopReport, LoopStop, Pipeline, Route, RunOptions,
    SkipReason, StageContext, StageError, StageStatus,
};
use support::noop;

/// triage -> {post -> notify, approve}; join after post and approve.
fn triage_pipeline() -> Pipeline {
    Pipeline::builder()
        .router("triage", |ctx: StageContext| async move {
            let findings = *ctx.run_input::<u32>()?;
            Ok::<_, StageError>(if findings > 0 {
                Route::to(["post"])
            } else {
                Route::to(["approve"])
            })
        })
        .stage("post", |_: StageContext| async {
            Ok::<_, StageError>("posted")
        })
        .after(["triage"])
        .stage("notify", noop)
        .after(["post"])
        .stage("approve", |_: StageContext| async {
            Ok::<_, StageError>("approved")
        })
        .after(["triage"])
        .stage("join", |ctx: StageContext| async move {
            let post = ctx.input::<&str>("post").ok().map(|text| *text);
            let approve = ctx.input::<&str>("approve").ok().map(|text| *text);
            Ok::<_, StageError>(post.or(approve).unwrap_or("none"))
        })
        .after(["post", "approve"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_router_runs_only_the_successors_it_chooses() {
    let pipeline = triage_pipeline();
    let report = pipeline
        .run_with(RunOptions::default().with_input(0u32))
        .await;
    assert!(report.is_success(), "{report}");
    assert!(report.status("approve").unwrap().is_success());
    assert_eq!(
        report.status("post"),
        Some(&StageStatus::Skipped {
            because: SkipReason::RouteNotTaken {
                router: "triage".into()
            }
        })
    );
    assert_eq!(
        report.explain("post").unwrap(),
        "post skipped because route not taken by triage"
    );
    assert_eq!(
        report.explain("notify").unwrap(),
        "notify skipped because post was skipped because route not taken by triage"
    );
    // The join ran after the parent that was taken.
    assert_eq!(*report.artifact::<&str>("join").unwrap(), "approved");

    let report = pipeline
        .run_with(RunOptions::default().with_input(3u32))
        .await;
    assert!(report.is_success());
    assert!(report.status("notify").unwrap().is_success());
    assert_eq!(*report.artifact::<&str>("join").unwrap(), "posted");
}

#[tokio::test]
async fn a_route_to_nothing_prunes_the_join_too() {
    let pipeline = Pipeline::builder()
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::none())
        })
        .stage("a", noop)
        .after(["route"])
        .stage("b", noop)
        .after(["route"])
        .stage("join", noop)
        .after(["a", "b"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(report.is_success());
    assert_eq!(
        report.count(
            |status| matches!(status, StageStatus::Skipped { because } if because.is_pruned())
        ),
        3
    );
    assert!(matches!(
        report.status("join"),
        Some(StageStatus::Skipped {
            because: SkipReason::Pruned { .. }
        })
    ));
}

#[tokio::test]
async fn a_join_with_a_failed_taken_parent_is_skipped_as_a_failure() {
    let pipeline = Pipeline::builder()
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::all())
        })
        .stage("ok", noop)
        .after(["route"])
        .stage("bad", |_: StageContext| async {
            Err::<(), _>(StageError::msg("broken"))
        })
        .after(["route"])
        .stage("join", noop)
        .after(["ok", "bad"])
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await;
    assert!(!report.is_success());
    assert!(matches!(
        report.status("join"),
        Some(StageStatus::Skipped {
            because: SkipReason::Dependency { .. }
        })
    ));
}

#[tokio::test]
async fn a_route_to_a_stage_that_is_not_a_successor_fails_the_router() {
    let pipeline = Pipeline::builder()
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["pots"]))
        })
        .stage("post", noop)
        .after(["route"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(
        report.status("route"),
        Some(&StageStatus::Failed {
            error: StageError::InvalidRoute {
                router: "route".into(),
                target: "pots".into()
            },
            attempts: 1
        })
    );
    assert!(!report.status("post").unwrap().is_success());
}

#[tokio::test]
async fn a_false_condition_prunes_what_follows_and_the_run_succeeds() {
    let pipeline = Pipeline::builder()
        .stage("findings", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.run_input::<u32>()?)
        })
        .stage("post", noop)
        .after(["findings"])
        .when(|ctx| ctx.input::<u32>("findings").is_ok_and(|found| *found > 0))
        .stage("notify", noop)
        .after(["post"])
        .stage("archive", noop)
        .after(["findings"])
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_input(0u32))
        .await;
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.status("post"),
        Some(&StageStatus::Skipped {
            because: SkipReason::ConditionFalse
        })
    );
    assert_eq!(
        report.explain("notify").unwrap(),
        "notify skipped because post was skipped because its condition was false"
    );
    assert!(report.status("archive").unwrap().is_success());

    let report = pipeline
        .run_with(RunOptions::default().with_input(2u32))
        .await;
    assert_eq!(report.count(StageStatus::is_success), 4);
}

#[tokio::test]
async fn a_panicking_condition_fails_the_stage() {
    let pipeline = Pipeline::builder()
        .stage("post", noop)
        .when(|_| panic!("condition exploded"))
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(matches!(
        report.status("post"),
        Some(StageStatus::Failed { error: StageError::Panicked(message), .. }) if message == "condition exploded"
    ));
}

/// A body that appends to the previous iteration's text; approved at `approve_at` characters.
fn critique_body() -> Pipeline {
    Pipeline::builder()
        .stage("revise", |ctx: StageContext| async move {
            let iteration = ctx.run_input::<Iteration>()?;
            let text = match iteration.previous() {
                Some(previous) => previous.artifact::<String>("revise")?.to_string(),
                None => iteration.parent().input::<String>("draft")?.to_string(),
            };
            Ok::<_, StageError>(format!("{text}+"))
        })
        .stage("critique", |ctx: StageContext| async move {
            let approve_at = *ctx
                .run_input::<Iteration>()?
                .parent()
                .run_input::<usize>()?;
            Ok::<_, StageError>(ctx.input::<String>("revise")?.len() >= approve_at)
        })
        .after(["revise"])
        .build()
        .unwrap()
}

fn critique_pipeline(max_iterations: u32) -> Pipeline {
    Pipeline::builder()
        .stage("draft", |_: StageContext| async {
            Ok::<_, StageError>(String::from("d"))
        })
        .repeat(
            "refine",
            critique_body(),
            LoopPolicy::new(max_iterations)
                .until(|report| report.artifact::<bool>("critique").is_ok_and(|ok| *ok)),
        )
        .after(["draft"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_loop_stops_when_its_condition_holds() {
    let report = critique_pipeline(10)
        .run_with(RunOptions::default().with_input(4usize))
        .await;
    assert!(report.is_success(), "{report}");
    let refined = report.artifact::<LoopReport>("refine").unwrap();
    assert_eq!(refined.stopped, LoopStop::Condition);
    assert_eq!(refined.iterations.len(), 3);
    let texts: Vec<String> = refined
        .iterations
        .iter()
        .map(|iteration| iteration.artifact::<String>("revise").unwrap().to_string())
        .collect();
    assert_eq!(texts, ["d+", "d++", "d+++"]);
    // Each iteration's report is in the stage report, and so in the JSON.
    let stage = report.stage("refine").unwrap();
    assert_eq!(stage.iterations.len(), 3);
    assert!(stage
        .iterations
        .iter()
        .all(|iteration| iteration.is_success()));
}

#[tokio::test]
async fn a_loop_stops_at_its_maximum_iterations() {
    let report = critique_pipeline(2)
        .run_with(RunOptions::default().with_input(100usize))
        .await;
    assert!(report.is_success());
    let refined = report.artifact::<LoopReport>("refine").unwrap();
    assert_eq!(refined.stopped, LoopStop::MaxIterations);
    assert_eq!(refined.iterations.len(), 2);
}

#[tokio::test]
async fn a_failing_iteration_fails_the_loop_and_keeps_its_report() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let body = Pipeline::builder()
        .stage("work", move |_: StageContext| {
            let calls = counted.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 1 {
                    return Err(StageError::permanent("second iteration breaks"));
                }
                Ok(())
            }
        })
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .repeat("loop", body, LoopPolicy::new(5))
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(
        report.status("loop"),
        Some(&StageStatus::Failed {
            error: StageError::Iteration {
                iteration: 2,
                stage: "work".into(),
                status: "failed: second iteration breaks (after 1 attempt)".into()
            },
            attempts: 1
        })
    );
    assert_eq!(report.stage("loop").unwrap().iterations.len(), 2);
}
