//! Exporting a report: an artifact whose `Serialize` fails is a typed error naming the stage (from
//! `export_artifacts`, `artifact_json` and `to_json` alike, never a panic), and stages that did not
//! succeed are left out of the exported artifacts.

use hivekit_swarm::{
    ArtifactError, FailurePolicy, Pipeline, RunOptions, RunReport, StageContext, StageError,
};
use serde::{Serialize, Serializer};

/// An artifact whose serialization always fails, as a type holding a non-string map key would.
#[derive(Debug)]
struct Unwritable;

impl Serialize for Unwritable {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("unwritable on purpose"))
    }
}

fn pipeline_with_an_unwritable_export() -> Pipeline {
    Pipeline::builder()
        .stage("fine", |_: StageContext| async {
            Ok::<_, StageError>(7u32)
        })
        .export()
        .stage("broken", |_: StageContext| async {
            Ok::<_, StageError>(Unwritable)
        })
        .export()
        .build()
        .expect("a valid pipeline")
}

#[tokio::test]
async fn an_artifact_that_fails_to_serialize_is_a_typed_error_naming_its_stage() {
    let report = pipeline_with_an_unwritable_export().run().await;
    assert!(report.is_success(), "{report}");
    // The artifact itself is still there, live.
    assert!(report.artifact::<Unwritable>("broken").is_ok());

    match report.artifact_json("broken") {
        Err(ArtifactError::Serialize { stage, message }) => {
            assert_eq!(stage, "broken");
            assert!(message.contains("unwritable on purpose"), "{message}");
        }
        other => panic!("artifact_json of an unwritable artifact: {other:?}"),
    }
    // The other export still reads.
    assert_eq!(report.artifact_json("fine").unwrap(), serde_json::json!(7));

    match report.export_artifacts() {
        Err(ArtifactError::Serialize { stage, .. }) => assert_eq!(stage, "broken"),
        other => panic!("export_artifacts with an unwritable artifact: {other:?}"),
    }
    let error = report
        .to_json()
        .expect_err("to_json must fail when an exported artifact fails to serialize");
    assert!(
        error.to_string().contains("unwritable on purpose"),
        "to_json's error should carry the artifact's message: {error}"
    );
}

#[tokio::test]
async fn an_unwritable_artifact_of_a_stage_that_did_not_succeed_does_not_fail_the_export() {
    // The stage producing the unwritable type fails, so it has no artifact: nothing to serialize.
    let pipeline = Pipeline::builder()
        .stage("fine", |_: StageContext| async {
            Ok::<_, StageError>(7u32)
        })
        .export()
        .stage("broken", |_: StageContext| async {
            Err::<Unwritable, _>(StageError::permanent("no"))
        })
        .export()
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await;
    let exported = report
        .export_artifacts()
        .expect("nothing unwritable exists");
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert!(report.to_json().is_ok());
}

#[tokio::test]
async fn stages_that_did_not_succeed_are_left_out_of_the_exported_artifacts() {
    let pipeline = Pipeline::builder()
        .stage("ok", |_: StageContext| async { Ok::<_, StageError>(1u32) })
        .export()
        .stage("fails", |_: StageContext| async {
            Err::<u32, _>(StageError::permanent("down"))
        })
        .export()
        .stage("skipped", |_: StageContext| async {
            Ok::<_, StageError>(3u32)
        })
        .after(["fails"])
        .export()
        .stage("not_exported", |_: StageContext| async {
            Ok::<_, StageError>(4u32)
        })
        .build()
        .unwrap();
    let report = pipeline
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await;
    let exported = report.export_artifacts().unwrap();
    let keys: Vec<&str> = exported.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["ok"],
        "only the succeeded exported stage: {exported:?}"
    );

    assert!(matches!(
        report.artifact_json("fails"),
        Err(ArtifactError::Missing { stage }) if stage == "fails"
    ));
    assert!(matches!(
        report.artifact_json("skipped"),
        Err(ArtifactError::Missing { stage }) if stage == "skipped"
    ));
    assert!(matches!(
        report.artifact_json("not_exported"),
        Err(ArtifactError::NotExported { stage }) if stage == "not_exported"
    ));
    assert!(matches!(
        report.artifact_json("nowhere"),
        Err(ArtifactError::UnknownStage { stage }) if stage == "nowhere"
    ));

    // Read back, the report keeps exactly the same exported artifacts.
    let back = RunReport::from_json(&report.to_json().unwrap()).unwrap();
    assert_eq!(back.export_artifacts().unwrap(), exported);
    assert!(matches!(
        back.artifact("ok").map(|_: std::sync::Arc<u32>| ()),
        Err(ArtifactError::NotLive { .. })
    ));
    assert!(matches!(
        back.artifact_json("nowhere"),
        Err(ArtifactError::UnknownStage { .. })
    ));
}
