//! Every `BuildError`, and what a successful build resolves.

mod support;

use std::time::Duration;

use hivekit_swarm::{Backoff, BuildError, Pipeline, RetryPolicy};
use support::noop;

#[test]
fn empty_pipeline_is_rejected() {
    assert_eq!(Pipeline::builder().build().unwrap_err(), BuildError::Empty);
}

#[test]
fn a_stage_with_an_empty_name_is_rejected_with_its_position() {
    let error = Pipeline::builder()
        .stage("fetch", noop)
        .stage("", noop)
        .after(["fetch"])
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::EmptyStageName { position: 1 });
    assert_eq!(
        error.to_string(),
        "stage 1 (counting from 0 in declaration order) has an empty name"
    );
    // Two empty names are an empty name first, not a duplicate.
    let error = Pipeline::builder()
        .stage("", noop)
        .stage("", noop)
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::EmptyStageName { position: 0 });
}

#[test]
fn duplicate_stage_is_rejected() {
    let error = Pipeline::builder()
        .stage("parse", noop)
        .stage("parse", noop)
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::DuplicateStage("parse".into()));
    assert_eq!(error.to_string(), "stage `parse` is defined more than once");
}

#[test]
fn unknown_dependency_is_rejected() {
    let error = Pipeline::builder()
        .stage("fetch", noop)
        .stage("parse", noop)
        .after(["fetch", "fetch2"])
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::UnknownDependency {
            stage: "parse".into(),
            missing: "fetch2".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "stage `parse` depends on unknown stage `fetch2`"
    );
}

#[test]
fn self_dependency_is_a_cycle() {
    let error = Pipeline::builder()
        .stage("a", noop)
        .after(["a"])
        .build()
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::Cycle {
            path: vec!["a".into(), "a".into()]
        }
    );
}

#[test]
fn cycle_is_named_in_execution_order() {
    // root -> a -> b -> c -> a is a cycle a, b, c behind a valid root; d hangs off the cycle.
    let error = Pipeline::builder()
        .stage("root", noop)
        .stage("d", noop)
        .after(["c"])
        .stage("b", noop)
        .after(["a"])
        .stage("c", noop)
        .after(["b"])
        .stage("a", noop)
        .after(["root", "c"])
        .build()
        .unwrap_err();
    // The cycle starts at its first-declared stage, `b`, and follows execution order.
    let expected: Vec<String> = ["b", "c", "a", "b"].map(String::from).to_vec();
    assert_eq!(error, BuildError::Cycle { path: expected });
    assert_eq!(error.to_string(), "dependency cycle: b -> c -> a -> b");
}

#[test]
fn invalid_retry_policy_is_rejected() {
    let error = Pipeline::builder()
        .stage("a", noop)
        .retry(RetryPolicy::attempts(0))
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::InvalidRetryPolicy { ref stage, .. } if stage == "a"));
    let error = Pipeline::builder()
        .stage("a", noop)
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff {
            multiplier: 0.5,
            ..Backoff::default()
        }))
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::InvalidRetryPolicy { .. }));
}

#[test]
fn zero_timeout_is_rejected() {
    let error = Pipeline::builder()
        .stage("a", noop)
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::ZeroTimeout { stage: "a".into() });
}

#[test]
fn build_resolves_a_topological_order() {
    let pipeline = Pipeline::builder()
        .stage("report", noop)
        .after(["render", "parse", "render"])
        .stage("render", noop)
        .after(["parse", "parse"])
        .stage("parse", noop)
        .build()
        .unwrap();
    assert_eq!(pipeline.len(), 3);
    let order: Vec<&str> = pipeline.topological_order().collect();
    assert_eq!(order, ["parse", "render", "report"]);
    let dependencies: Vec<&str> = pipeline.dependencies("render").unwrap().collect();
    assert_eq!(
        dependencies,
        ["parse"],
        "a dependency named twice counts once"
    );
    let dependencies: Vec<&str> = pipeline.dependencies("report").unwrap().collect();
    assert_eq!(
        dependencies,
        ["render", "parse"],
        "and in the order first named"
    );
    assert!(pipeline.dependencies("nope").is_none());
}

#[test]
fn random_dags_build_with_every_stage_after_its_dependencies() {
    for seed in 0..20 {
        let dag = support::random_dag(60, 0.1, seed);
        let mut builder = Pipeline::builder();
        // Declared in reverse so that declaration order is not already topological.
        for stage in (0..dag.len()).rev() {
            let after: Vec<String> = dag[stage].iter().map(|&d| support::name(d)).collect();
            builder = support::add(builder, &support::name(stage), &after, noop);
        }
        let pipeline = builder.build().unwrap();
        let position: std::collections::HashMap<&str, usize> = pipeline
            .topological_order()
            .enumerate()
            .map(|(position, name)| (name, position))
            .collect();
        for (stage, dependencies) in dag.iter().enumerate() {
            for &dependency in dependencies {
                assert!(
                    position[support::name(dependency).as_str()]
                        < position[support::name(stage).as_str()]
                );
            }
        }
    }
}

#[test]
fn after_calls_accumulate() {
    let a = String::from("a");
    let pipeline = Pipeline::builder()
        .stage("a", noop)
        .stage(String::from("b"), noop)
        .stage("c", noop)
        .after([&a])
        .after(vec![String::from("b")])
        .build()
        .unwrap();
    let dependencies: Vec<&str> = pipeline.dependencies("c").unwrap().collect();
    assert_eq!(dependencies, ["a", "b"]);
    assert_eq!(pipeline.dependencies("a").unwrap().count(), 0);
}

#[test]
fn a_builder_with_capacity_builds_the_same_pipeline() {
    let mut builder = hivekit_swarm::PipelineBuilder::with_capacity(2);
    for (stage, after) in [("a", None), ("b", Some("a")), ("c", Some("b"))] {
        builder = builder.stage(stage, noop).after(after).into_builder();
    }
    let pipeline = builder.build().unwrap();
    assert_eq!(
        pipeline.topological_order().collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
}

/// `after` resolves names of stages already added at once and leaves the others to `build`: both
/// kinds, mixed and repeated in one stage, resolve to the same stages as if all were named at build.
#[test]
fn dependencies_on_earlier_and_later_stages_resolve_alike() {
    let pipeline = Pipeline::builder()
        .stage("early", noop)
        .stage("middle", noop)
        .after(["late", "early", "late", "early"])
        .stage("late", noop)
        .after(["early"])
        .build()
        .unwrap();
    let dependencies: Vec<&str> = pipeline.dependencies("middle").unwrap().collect();
    assert_eq!(dependencies, ["late", "early"]);
    assert_eq!(
        pipeline.topological_order().collect::<Vec<_>>(),
        ["early", "late", "middle"]
    );
}

/// A duplicate is reported in stage order among the option errors, even when a dependency already
/// resolved to the first stage of that name.
#[test]
fn a_duplicate_after_a_resolved_dependency_is_still_rejected_in_stage_order() {
    let error = Pipeline::builder()
        .stage("a", noop)
        .stage("b", noop)
        .after(["a"])
        .stage("a", noop)
        .stage("c", noop)
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::DuplicateStage("a".into()));
    let error = Pipeline::builder()
        .stage("a", noop)
        .timeout(Duration::ZERO)
        .stage("a", noop)
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::ZeroTimeout { stage: "a".into() });
}

/// Past the capacity given to `with_capacity`, the name table grows and keeps every name.
#[test]
fn a_builder_grows_past_its_capacity() {
    let mut builder = hivekit_swarm::PipelineBuilder::with_capacity(1);
    builder = builder.stage("s0", noop).into_builder();
    for stage in 1..1_000 {
        builder = builder
            .stage(format!("s{stage}"), noop)
            .after([format!("s{}", stage - 1), format!("s{}", stage / 2)])
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    for stage in 1..1_000 {
        let mut expected = vec![format!("s{}", stage - 1)];
        if stage / 2 != stage - 1 {
            expected.push(format!("s{}", stage / 2));
        }
        let dependencies: Vec<&str> = pipeline
            .dependencies(&format!("s{stage}"))
            .unwrap()
            .collect();
        assert_eq!(dependencies, expected);
    }
}
