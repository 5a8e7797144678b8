//! A router whose route names a stage it does not lead to fails: its report must then hold no artifact.

use std::time::Duration;

use hivekit_swarm::{
    ArtifactError, EventSink, FailurePolicy, Pipeline, Route, RunOptions, SkipReason, StageContext,
    StageError, StageEvent, StageStatus,
};

fn pipeline() -> Pipeline {
    Pipeline::builder()
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["nowhere"]))
        })
        .export()
        .stage("after", |_: StageContext| async {
            Ok::<_, StageError>(1u32)
        })
        .after(["route"])
        .stage("alone", |_: StageContext| async {
            Ok::<_, StageError>(2u32)
        })
        .build()
        .expect("a valid pipeline")
}

#[tokio::test]
async fn a_router_failed_by_an_invalid_route_has_no_artifact() {
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline().run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)),
    )
    .await
    .expect("the run ends");
    let Some(StageStatus::Failed { error, .. }) = report.status("route") else {
        panic!("the router fails: {report}");
    };
    assert!(
        matches!(error, StageError::InvalidRoute { .. }),
        "{error:?}"
    );
    assert_eq!(
        report.explain("after").unwrap(),
        format!("after skipped because route failed: {error} (after 1 attempt)")
    );
    // The doc of `RunReport::artifact`: `Missing` if the stage did not succeed.
    let artifact = report.artifact::<Route>("route");
    assert!(
        matches!(&artifact, Err(ArtifactError::Missing { stage }) if stage == "route"),
        "a failed stage has no artifact, got {artifact:?}"
    );
    // `export_artifacts`: stages that did not succeed are left out.
    let exported = report.export_artifacts().expect("exports");
    assert!(
        !exported.contains_key("route"),
        "a failed router's route is exported: {exported:?}"
    );
    assert_eq!(*report.artifact::<u32>("alone").unwrap(), 2);
}

#[tokio::test]
async fn a_router_failed_by_an_invalid_route_is_reported_failed_to_the_event_sink() {
    let (sink, mut events) = EventSink::channel();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline().run_with(
            RunOptions::default()
                .with_failure(FailurePolicy::ContinueIndependent)
                .with_events(sink),
        ),
    )
    .await
    .expect("the run ends");
    let mut finished = None;
    let mut skipped = None;
    while let Ok(event) = events.try_recv() {
        match event {
            StageEvent::Finished { stage, status, .. } if &*stage == "route" => {
                finished = Some(status)
            }
            StageEvent::Skipped { stage, because, .. } if &*stage == "after" => {
                skipped = Some(because)
            }
            _ => {}
        }
    }
    assert_eq!(finished.as_ref(), report.status("route"));
    assert!(matches!(
        skipped,
        Some(SkipReason::Dependency { ref dependency, ref root, .. }) if dependency == "route" && root == "route"
    ));
}

/// The same for the other way a stage that returned a value ends failed: a durable artifact that
/// cannot be recorded (a NaN, written as `null`) fails the stage, which then has no artifact.
#[tokio::test]
async fn a_durable_stage_failed_by_its_unrecordable_artifact_has_no_artifact() {
    use hivekit_swarm::checkpoint::{Durable, MemoryStore};
    let pipeline = Pipeline::builder()
        .stage("score", |_: StageContext| async {
            Ok::<_, StageError>(f64::NAN)
        })
        .durable()
        .export()
        .build()
        .expect("a valid pipeline");
    let durable = Durable::new(MemoryStore::new());
    let run = tokio::time::timeout(
        Duration::from_secs(5),
        durable.start(&pipeline, "nan", RunOptions::default()),
    )
    .await
    .expect("the run ends")
    .expect("the run starts");
    let report = run.report();
    assert!(
        matches!(report.status("score"), Some(StageStatus::Failed { .. })),
        "{report}"
    );
    let artifact = report.artifact::<f64>("score");
    assert!(
        matches!(&artifact, Err(ArtifactError::Missing { .. })),
        "a failed stage has no artifact, got {artifact:?}"
    );
    assert!(!report
        .export_artifacts()
        .expect("exports")
        .contains_key("score"));
}
