//! The six-stage pipeline of the seed project, as a hivekit swarm:
//!
//! ```text
//! event_monitoring -> graph_extension -+-> validation ----------+-> code_generation -> quality_assurance
//!                                      +-> template_generation -+
//! ```
//!
//! Validation and template generation run in parallel; template generation is flaky (its first
//! attempt fails) and succeeds on a retry; quality assurance fans out one check per generated file
//! and needs most of them to pass. Every stage hands its typed output to its dependents without
//! copying; the report is printed as a table and as JSON.
//!
//! Run it with `cargo run -p hivekit-examples --example pipeline`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Backoff, EventSink, FanOut, Pipeline, RetryPolicy, RunOptions, StageContext, StageError,
    StageEvent,
};
use serde::Serialize;

/// Something that happened in the watched system.
#[derive(Debug, Clone, Serialize)]
struct Event {
    entity: String,
    relation: String,
    target: String,
}

/// The knowledge graph, as adjacency lists.
#[derive(Debug, Default, Serialize)]
struct Graph {
    edges: BTreeMap<String, Vec<(String, String)>>,
}

#[derive(Debug, Serialize)]
struct Validation {
    entities: usize,
    dangling: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Template {
    name: String,
    body: String,
}

#[derive(Debug, Serialize)]
struct GeneratedFile {
    path: String,
    contents: String,
}

#[derive(Debug, Serialize)]
struct QualityReport {
    files: usize,
    passed: usize,
}

async fn event_monitoring(_: StageContext) -> Result<Vec<Event>, StageError> {
    let event = |entity: &str, relation: &str, target: &str| Event {
        entity: entity.into(),
        relation: relation.into(),
        target: target.into(),
    };
    Ok(vec![
        event("Order", "has", "LineItem"),
        event("Order", "placedBy", "Customer"),
        event("LineItem", "refersTo", "Product"),
        event("Customer", "livesAt", "Address"),
    ])
}

async fn graph_extension(ctx: StageContext) -> Result<Graph, StageError> {
    let events = ctx.input::<Vec<Event>>("event_monitoring")?;
    let mut graph = Graph::default();
    for event in events.iter() {
        graph
            .edges
            .entry(event.entity.clone())
            .or_default()
            .push((event.relation.clone(), event.target.clone()));
    }
    Ok(graph)
}

async fn validation(ctx: StageContext) -> Result<Validation, StageError> {
    let graph = ctx.input::<Graph>("graph_extension")?;
    // Targets that are never described themselves are reported, not fatal.
    let dangling = graph
        .edges
        .values()
        .flatten()
        .map(|(_, target)| target.clone())
        .filter(|target| !graph.edges.contains_key(target))
        .collect();
    Ok(Validation {
        entities: graph.edges.len(),
        dangling,
    })
}

async fn template_generation(ctx: StageContext) -> Result<Vec<Template>, StageError> {
    // The template service drops the first request: the retry policy takes care of it.
    if ctx.attempt() == 1 {
        return Err(StageError::msg("template service unavailable"));
    }
    let graph = ctx.input::<Graph>("graph_extension")?;
    Ok(graph
        .edges
        .keys()
        .map(|entity| Template {
            name: format!("{entity}.rs.tmpl"),
            body: format!("pub struct {entity} {{ /* fields */ }}"),
        })
        .collect())
}

async fn code_generation(ctx: StageContext) -> Result<Vec<GeneratedFile>, StageError> {
    let validation = ctx.input::<Validation>("validation")?;
    let templates = ctx.input::<Vec<Template>>("template_generation")?;
    // Simulated rendering time, so the timings in the report are visible.
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(templates
        .iter()
        .map(|template| GeneratedFile {
            path: template.name.trim_end_matches(".tmpl").to_owned(),
            contents: format!(
                "// {} entities, {} dangling\n{}",
                validation.entities,
                validation.dangling.len(),
                template.body
            ),
        })
        .collect())
}

async fn quality_assurance(ctx: StageContext) -> Result<QualityReport, StageError> {
    let files = ctx.input::<Vec<GeneratedFile>>("code_generation")?;
    let required = files.len().saturating_sub(1).max(1);
    let checks = ctx
        .fan_out(
            files.iter(),
            FanOut::new(2).require(required).wait_all(),
            |file| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if file.contents.contains("pub struct") {
                    Ok(file.path.clone())
                } else {
                    Err(StageError::msg(format!("{} defines nothing", file.path)))
                }
            },
        )
        .await?;
    Ok(QualityReport {
        files: files.len(),
        passed: checks.succeeded,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let retry = RetryPolicy::attempts(3).with_backoff(Backoff {
        initial: Duration::from_millis(10),
        multiplier: 2.0,
        max: Duration::from_millis(100),
        jitter: 0.2,
    });
    let pipeline = Pipeline::builder()
        .stage("event_monitoring", event_monitoring)
        .export()
        .stage("graph_extension", graph_extension)
        .after(["event_monitoring"])
        .stage("validation", validation)
        .after(["graph_extension"])
        .export()
        .stage("template_generation", template_generation)
        .after(["graph_extension"])
        .retry(retry)
        .timeout(Duration::from_secs(1))
        .stage("code_generation", code_generation)
        .after(["validation", "template_generation"])
        .timeout(Duration::from_secs(1))
        .stage("quality_assurance", quality_assurance)
        .after(["code_generation"])
        .export()
        .build()?;

    let events = EventSink::callback(|event| match event {
        StageEvent::Started { stage } => println!("  started   {stage}"),
        StageEvent::Retried {
            stage,
            next_attempt,
            failure,
            delay,
        } => println!("  retrying  {stage} (attempt {next_attempt} in {delay:?}): {failure}"),
        StageEvent::Finished { stage, status, .. } => println!("  finished  {stage}: {status}"),
        other => println!("  {other:?}"),
    });
    println!("events:");
    let report = pipeline
        .run_with(RunOptions::default().with_events(events).with_seed(42))
        .await;

    println!("\nreport:\n{report}\n");
    let files = report.artifact::<Vec<GeneratedFile>>("code_generation")?;
    println!(
        "generated {} files, first:\n{}\n",
        files.len(),
        files[0].contents
    );
    println!("json:\n{}", report.to_json()?);

    let shared = Arc::strong_count(&files);
    assert!(
        shared >= 2,
        "the artifact is shared with the report, not copied"
    );
    if !report.is_success() {
        return Err(format!("pipeline failed: {:?}", report.outcome()).into());
    }
    Ok(())
}
