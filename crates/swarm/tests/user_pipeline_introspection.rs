//! What a user reads off a built pipeline before running it: names, a topological order that puts
//! every stage after its dependencies (forward references and repeated dependencies included),
//! each stage's dependencies, and pictures that draw each edge once.

use std::collections::HashMap;

use hivekit_swarm::{Pipeline, StageContext, StageError};

fn noop(_: StageContext) -> std::future::Ready<Result<(), StageError>> {
    std::future::ready(Ok(()))
}

fn diamond() -> Pipeline {
    Pipeline::builder()
        .name("diamond")
        .stage("join", noop)
        .after(["left", "right", "left"])
        .stage("left", noop)
        .after(["root"])
        .stage("right", noop)
        .after(["root", "root"])
        .stage("root", noop)
        .stage("lonely", noop)
        .build()
        .expect("valid")
}

#[test]
fn names_and_sizes_follow_declaration_order() {
    let pipeline = diamond();
    assert_eq!(pipeline.name(), "diamond");
    assert_eq!(pipeline.len(), 5);
    assert!(!pipeline.is_empty());
    assert_eq!(
        pipeline.stage_names().collect::<Vec<_>>(),
        ["join", "left", "right", "root", "lonely"]
    );
}

#[test]
fn the_topological_order_puts_every_stage_after_its_dependencies_once() {
    let pipeline = diamond();
    let order: Vec<&str> = pipeline.topological_order().collect();
    assert_eq!(order.len(), 5);
    let position: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(index, name)| (*name, index))
        .collect();
    assert_eq!(position.len(), 5, "each stage once: {order:?}");
    for stage in pipeline.stage_names() {
        for dependency in pipeline.dependencies(stage).expect("known stage") {
            assert!(
                position[dependency] < position[stage],
                "{dependency} before {stage}"
            );
        }
    }
}

#[test]
fn dependencies_are_listed_once_each_and_unknown_stages_have_none() {
    let pipeline = diamond();
    let mut join: Vec<&str> = pipeline.dependencies("join").expect("known").collect();
    join.sort_unstable();
    assert_eq!(join, ["left", "right"]);
    assert_eq!(
        pipeline
            .dependencies("right")
            .expect("known")
            .collect::<Vec<_>>(),
        ["root"]
    );
    assert_eq!(pipeline.dependencies("root").expect("known").count(), 0);
    assert!(pipeline.dependencies("nope").is_none());
}

#[test]
fn the_pictures_draw_each_edge_once() {
    let pipeline = diamond();
    let mermaid = pipeline.to_mermaid();
    assert_eq!(mermaid.matches(" --> ").count(), 4, "{mermaid}");
    let dot = pipeline.to_dot();
    assert_eq!(dot.matches(" -> ").count(), 4, "{dot}");
}

#[test]
fn names_with_quotes_and_backslashes_are_escaped_in_the_pictures() {
    let pipeline = Pipeline::builder()
        .name("say \"hi\"")
        .stage("a \"quoted\" \\ name", noop)
        .build()
        .expect("valid");
    let dot = pipeline.to_dot();
    assert!(dot.contains("digraph \"say \\\"hi\\\"\""), "{dot}");
    assert!(dot.contains("a \\\"quoted\\\" \\\\ name"), "{dot}");
    let mermaid = pipeline.to_mermaid();
    assert!(!mermaid.contains("a \"quoted\""), "{mermaid}");
}
