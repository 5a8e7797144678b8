//! Graph validation as dagrs's own suite checks it: cycles of every length behind valid stages,
//! a cycle of fifty thousand stages, a chain of fifty thousand stages built without
//! recursion, and one artifact read by many dependents.

use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{BuildError, Pipeline, PipelineBuilder, StageContext, StageError};

fn noop(_: StageContext) -> std::future::Ready<Result<(), StageError>> {
    std::future::ready(Ok(()))
}

/// Stage `c{i}` runs after `c{i-1}` and `c0` after `c{len-1}`, declared in a scrambled order,
/// behind a valid root and with a valid stage hanging off the cycle.
fn cycle_of(len: usize) -> PipelineBuilder {
    let mut builder = Pipeline::builder().stage("root", noop).into_builder();
    // Declared in a stride order (3 is coprime with every length not a multiple of 3; others in
    // plain order).
    let stride = if len % 3 == 0 { 1 } else { 3 };
    for step in 0..len {
        let i = (step * stride) % len;
        let previous = format!("c{}", (i + len - 1) % len);
        let after: Vec<String> = if i == 0 {
            vec![previous, "root".to_owned()]
        } else {
            vec![previous]
        };
        builder = builder
            .stage(format!("c{i}"), noop)
            .after(after)
            .into_builder();
    }
    builder.stage("tail", noop).after(["c0"]).into_builder()
}

#[test]
fn cycles_of_every_length_are_named_whole_in_execution_order() {
    for len in 1..=40 {
        let error = cycle_of(len).build().unwrap_err();
        let BuildError::Cycle { path } = &error else {
            panic!("length {len}: {error}");
        };
        assert_eq!(path.len(), len + 1, "length {len}: {error}");
        assert_eq!(path.first(), path.last(), "length {len}: {error}");
        // The cycle starts at its first-declared stage, `c0`, and follows execution order.
        let expected: Vec<String> = (0..=len).map(|i| format!("c{}", i % len)).collect();
        assert_eq!(path, &expected, "length {len}");
    }
}

#[test]
fn a_cycle_of_fifty_thousand_stages_is_found_without_recursion() {
    let len = 50_000;
    let error = cycle_of(len).build().unwrap_err();
    let BuildError::Cycle { path } = error else {
        panic!("not a cycle");
    };
    assert_eq!(path.len(), len + 1);
    assert_eq!(path[1], "c1");
    assert_eq!(path[len], "c0");
}

#[test]
fn a_chain_of_fifty_thousand_stages_builds_in_order() {
    let len = 50_000;
    let mut builder = Pipeline::builder().stage("s0", noop).into_builder();
    // Declared last to first: every dependency is resolved ahead of its declaration.
    for i in (1..len).rev() {
        builder = builder
            .stage(format!("s{i}"), noop)
            .after([format!("s{}", i - 1)])
            .into_builder();
    }
    let pipeline = builder.build().expect("a chain is valid");
    assert_eq!(pipeline.len(), len);
    let order: Vec<&str> = pipeline.topological_order().collect();
    assert_eq!(order.len(), len);
    assert_eq!(order[0], "s0");
    assert_eq!(order[len - 1], format!("s{}", len - 1));
}

#[tokio::test]
async fn one_artifact_read_by_a_thousand_dependents_is_the_same_allocation_for_each() {
    let mut builder = Pipeline::builder()
        .stage("source", |_: StageContext| async {
            Ok::<_, StageError>(vec![7_u8; 1 << 20])
        })
        .into_builder();
    for i in 0..1000 {
        builder = builder
            .stage(format!("reader{i}"), |ctx: StageContext| async move {
                let data = ctx.input::<Vec<u8>>("source")?;
                Ok::<_, StageError>(data.as_ptr() as usize)
            })
            .after(["source"])
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), pipeline.run())
        .await
        .expect("the run ended");
    assert!(report.is_success());
    let source: Arc<Vec<u8>> = report.artifact("source").unwrap();
    for i in 0..1000 {
        let seen = *report.artifact::<usize>(&format!("reader{i}")).unwrap();
        assert_eq!(seen, source.as_ptr() as usize, "reader{i} saw a copy");
    }
}

#[test]
fn an_unknown_dependency_is_named_even_inside_a_cycle() {
    let error = Pipeline::builder()
        .stage("a", noop)
        .after(["b", "ghost"])
        .stage("b", noop)
        .after(["a"])
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, BuildError::UnknownDependency { stage, missing }
            if stage == "a" && missing == "ghost"),
        "{error:?}"
    );
}
