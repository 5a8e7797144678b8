//! Odd but legal inputs a user writes on day one: unicode and spaced names, a dependency listed
//! twice, a stage that reads itself, names differing only by case, artifacts asked for by the wrong
//! name or type, and inputs of the wrong type. Each gets the documented result or a typed error.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    ArtifactError, BuildError, ConcurrencyLimit, ConcurrencyLimitError, FailurePolicy, Pipeline,
    RunOptions, RunOutcome, StageContext, StageError, StageStatus,
};

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("the run must not hang")
}

#[tokio::test]
async fn unicode_and_spaced_stage_names_build_run_and_explain() {
    let pipeline = Pipeline::builder()
        .stage("récupérer 📥", |_: StageContext| async {
            Ok::<_, StageError>(String::from("données"))
        })
        .stage("解析 -> x", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.input::<String>("récupérer 📥")?.chars().count())
        })
        .after(["récupérer 📥"])
        .stage("  ", |_: StageContext| async {
            Err::<(), _>(StageError::msg("nope"))
        })
        .after(["解析 -> x"])
        .stage("fin", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["  "])
        .build()
        .expect("non-empty unicode names are valid");
    let report = bounded(pipeline.run()).await;
    assert_eq!(*report.artifact::<usize>("解析 -> x").expect("artifact"), 7);
    assert_eq!(
        report.explain("fin").as_deref(),
        Some("fin skipped because    failed: nope (after 1 attempt)")
    );
    let back = hivekit_swarm::RunReport::from_json(&report.to_json().expect("json")).expect("back");
    assert_eq!(
        back.status("解析 -> x"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
}

#[tokio::test]
async fn a_dependency_listed_twice_runs_the_dependent_once_after_it() {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(1u32) })
        .stage("b", move |ctx: StageContext| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, StageError>(*ctx.input::<u32>("a")? + 1) }
        })
        .after(["a", "a"])
        .after(["a"])
        .build()
        .expect("a repeated dependency is harmless");
    for _ in 0..3 {
        let report = bounded(pipeline.run()).await;
        assert!(report.is_success(), "{:?}", report.stages());
        assert_eq!(*report.artifact::<u32>("b").expect("artifact"), 2);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_dependency_listed_twice_before_its_stage_is_declared_runs_once_too() {
    let pipeline = Pipeline::builder()
        .stage("b", |ctx: StageContext| async move {
            Ok::<_, StageError>(*ctx.input::<u32>("a")? + 1)
        })
        .after(["a", "a"])
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(1u32) })
        .build()
        .expect("a repeated forward dependency is harmless");
    let report = bounded(pipeline.run()).await;
    assert!(report.is_success(), "{:?}", report.stages());
    assert_eq!(*report.artifact::<u32>("b").expect("artifact"), 2);
}

#[tokio::test]
async fn a_failed_dependency_listed_twice_skips_its_dependent_once() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async {
            Err::<u32, _>(StageError::msg("bad"))
        })
        .stage("b", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["a", "a"])
        .stage("c", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build()
        .expect("valid");
    let report = bounded(
        pipeline.run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)),
    )
    .await;
    assert_eq!(report.outcome(), RunOutcome::Failed);
    assert_eq!(
        report.explain("b").as_deref(),
        Some("b skipped because a failed: bad (after 1 attempt)")
    );
    assert_eq!(
        report.status("c"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
}

#[test]
fn names_differing_only_by_case_are_distinct_stages() {
    let error = Pipeline::builder()
        .stage("Fetch", |_: StageContext| async { Ok::<_, StageError>(()) })
        .stage("parse", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["fetch"])
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::UnknownDependency {
            stage: "parse".into(),
            missing: "fetch".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "stage `parse` depends on unknown stage `fetch`"
    );
}

#[test]
fn a_stage_that_reads_itself_is_rejected_naming_it() {
    let error = Pipeline::builder()
        .stage("loop", |_: StageContext| async { Ok::<_, StageError>(()) })
        .reads(["loop"])
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::NotAnAncestor {
            stage: "loop".into(),
            read: "loop".into()
        }
    );
}

#[test]
fn a_two_stage_cycle_is_named_and_closed() {
    let error = Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["b"])
        .stage("b", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["a"])
        .build()
        .unwrap_err();
    let BuildError::Cycle { path } = &error else {
        panic!("not a cycle: {error:?}")
    };
    assert_eq!(path.len(), 3, "{path:?}");
    assert_eq!(path.first(), path.last(), "the cycle is closed: {path:?}");
    assert!(path.contains(&"a".to_string()) && path.contains(&"b".to_string()));
}

#[test]
fn a_zero_concurrency_limit_is_a_typed_error() {
    assert_eq!(ConcurrencyLimit::new(0), Err(ConcurrencyLimitError::Zero));
}

#[tokio::test]
async fn reading_the_wrong_artifacts_gives_typed_errors_naming_the_stage() {
    let pipeline = Pipeline::builder()
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(5u32) })
        .stage("other", |_: StageContext| async { Ok::<_, StageError>(()) })
        .stage("b", |ctx: StageContext| async move {
            let wrong_type = ctx.input::<String>("a").unwrap_err();
            let not_dependency = ctx.input::<()>("other").unwrap_err();
            let unknown = ctx.input::<u32>("zzz").unwrap_err();
            let no_input = ctx.run_input::<String>().unwrap_err();
            Ok::<_, StageError>(vec![wrong_type, not_dependency, unknown, no_input])
        })
        .after(["a"])
        .build()
        .expect("valid");
    let report = bounded(pipeline.run()).await;
    let errors = report
        .artifact::<Vec<ArtifactError>>("b")
        .expect("artifact");
    assert!(matches!(&errors[0], ArtifactError::WrongType { stage, .. } if stage == "a"));
    assert!(
        matches!(&errors[1], ArtifactError::NotADependency { stage, .. } if stage == "other"),
        "{:?}",
        errors[1]
    );
    assert!(matches!(&errors[2], ArtifactError::UnknownStage { stage } if stage == "zzz"));
    assert!(matches!(&errors[3], ArtifactError::NoRunInput { .. }));
    assert!(matches!(
        report.artifact::<u32>("nope"),
        Err(ArtifactError::UnknownStage { .. })
    ));
    assert!(matches!(
        report.artifact::<u64>("a"),
        Err(ArtifactError::WrongType { .. })
    ));
    assert_eq!(report.status("nope"), None);
    assert_eq!(report.explain("nope"), None);
}

#[tokio::test]
async fn a_run_input_of_the_wrong_type_fails_the_stage_with_a_typed_error() {
    let pipeline = Pipeline::builder()
        .stage("parse", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.run_input::<String>()?.len())
        })
        .build()
        .expect("valid");
    let report = bounded(pipeline.run_with(RunOptions::default().with_input(7u32))).await;
    let Some(StageStatus::Failed { error, attempts: 1 }) = report.status("parse") else {
        panic!("{:?}", report.status("parse"))
    };
    assert!(
        matches!(
            error,
            StageError::Input(ArtifactError::RunInputWrongType { .. })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("u32"), "{error}");
}

#[tokio::test]
async fn a_stage_returning_unit_has_a_readable_unit_artifact() {
    let pipeline = Pipeline::builder()
        .stage("unit", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build()
        .expect("valid");
    let report = bounded(pipeline.run()).await;
    assert!(report.artifact::<()>("unit").is_ok());
}
