//! Per-run input, and reading artifacts of ancestors declared with `reads`.

mod support;

use std::sync::Arc;

use hivekit_swarm::{
    ArtifactError, BuildError, Pipeline, RunInput, RunOptions, StageContext, StageError,
    StageStatus,
};
use support::noop;

#[derive(Debug, PartialEq, serde::Serialize)]
struct PullRequest {
    number: u32,
    files: Vec<String>,
}

fn review_pipeline() -> Pipeline {
    Pipeline::builder()
        .stage("fetch", |ctx: StageContext| async move {
            let pr = ctx.run_input::<PullRequest>()?;
            // Yield so that concurrent runs interleave.
            tokio::task::yield_now().await;
            Ok::<_, StageError>(pr.files.len())
        })
        .stage("title", |ctx: StageContext| async move {
            let pr = ctx.run_input::<PullRequest>()?;
            let files = ctx.input::<usize>("fetch")?;
            Ok::<_, StageError>(format!("#{}: {files} files", pr.number))
        })
        .after(["fetch"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn one_pipeline_runs_concurrently_with_different_inputs() {
    let pipeline = review_pipeline();
    let runs = (1..=8u32).map(|number| {
        let input = PullRequest {
            number,
            files: (0..number).map(|file| format!("f{file}.rs")).collect(),
        };
        pipeline.run_with(RunOptions::default().with_input(input))
    });
    let reports = futures::future::join_all(runs).await;
    for (number, report) in (1..=8u32).zip(&reports) {
        assert!(report.is_success(), "{report}");
        assert_eq!(
            *report.artifact::<String>("title").unwrap(),
            format!("#{number}: {number} files")
        );
    }
}

#[tokio::test]
async fn stages_share_the_input_without_copying() {
    let input = Arc::new(PullRequest {
        number: 7,
        files: vec![],
    });
    let pipeline = Pipeline::builder()
        .stage("a", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.run_input::<PullRequest>()?)
        })
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_run_input(RunInput::from_arc(input.clone())))
        .await;
    let artifact = report.artifact::<Arc<PullRequest>>("a").unwrap();
    assert!(Arc::ptr_eq(&*artifact, &input));
}

#[tokio::test]
async fn a_missing_or_mistyped_input_is_a_typed_error_that_is_not_retried() {
    let pipeline = Pipeline::builder()
        .stage("read", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.run_input::<PullRequest>()?.number)
        })
        .retry(hivekit_swarm::RetryPolicy::attempts(3))
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(
        report.status("read"),
        Some(&StageStatus::Failed {
            error: StageError::Input(ArtifactError::NoRunInput {
                stage: "read".into()
            }),
            attempts: 1
        })
    );
    let report = pipeline
        .run_with(RunOptions::default().with_input(5u8))
        .await;
    let Some(StageStatus::Failed {
        error: StageError::Input(ArtifactError::RunInputWrongType { stage, actual, .. }),
        ..
    }) = report.status("read")
    else {
        panic!("expected a wrong-type error: {report}");
    };
    assert_eq!((stage.as_str(), actual.as_str()), ("read", "u8"));
}

#[test]
fn a_serializable_input_can_be_written_as_json() {
    let input = RunInput::serializable(PullRequest {
        number: 3,
        files: vec!["a.rs".into()],
    });
    assert_eq!(
        input.to_json().unwrap().unwrap(),
        serde_json::json!({"number": 3, "files": ["a.rs"]})
    );
    assert!(RunInput::new(3u8).to_json().is_none());
}

#[tokio::test]
async fn a_stage_reads_a_declared_grandparent() {
    let pipeline = Pipeline::builder()
        .stage("fetch", |_: StageContext| async {
            Ok::<_, StageError>(40u32)
        })
        .stage("parse", noop)
        .after(["fetch"])
        .stage("lint", noop)
        .after(["parse"])
        .stage("sum", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("fetch")? + 2)
        })
        .after(["lint"])
        .reads(["fetch"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert_eq!(*report.artifact::<u32>("sum").unwrap(), 42);
}

#[tokio::test]
async fn an_undeclared_ancestor_read_is_still_refused_at_run_time() {
    let pipeline = Pipeline::builder()
        .stage("fetch", |_: StageContext| async {
            Ok::<_, StageError>(1u32)
        })
        .stage("parse", noop)
        .after(["fetch"])
        .stage("sum", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("fetch")?)
        })
        .after(["parse"])
        .build()
        .unwrap();
    let report = pipeline.run().await;
    assert!(matches!(
        report.status("sum"),
        Some(StageStatus::Failed {
            error: StageError::Input(ArtifactError::NotADependency { .. }),
            ..
        })
    ));
}

#[test]
fn a_misspelled_read_is_a_build_error_naming_both_stages() {
    let error = Pipeline::builder()
        .stage("fetch", noop)
        .stage("sum", noop)
        .after(["fetch"])
        .reads(["fecth"])
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::UnknownRead {
            stage: "sum".into(),
            read: "fecth".into()
        }
    );
    assert_eq!(error.to_string(), "stage `sum` reads unknown stage `fecth`");
}

#[test]
fn a_read_of_a_sibling_or_descendant_is_a_build_error() {
    let error = Pipeline::builder()
        .stage("root", noop)
        .stage("left", noop)
        .after(["root"])
        .stage("right", noop)
        .after(["root"])
        .reads(["left"])
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "stage `right` reads stage `left`, which is not one of its ancestors"
    );
    let error = Pipeline::builder()
        .stage("first", noop)
        .reads(["second"])
        .stage("second", noop)
        .after(["first"])
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::NotAnAncestor {
            stage: "first".into(),
            read: "second".into()
        }
    );
}
