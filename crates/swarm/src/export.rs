//! Pictures of a pipeline: Mermaid and Graphviz DOT, with each stage's status after a run, and a
//! run's timeline in the Chrome trace event format.

use std::fmt::Write;

use serde_json::json;

use crate::pipeline::Pipeline;
use crate::report::{RunReport, SkipReason, StageStatus};

/// The status class a stage is drawn with.
fn class(status: &StageStatus) -> &'static str {
    match status {
        StageStatus::Succeeded { .. } => "succeeded",
        StageStatus::Failed { .. } | StageStatus::TimedOut { .. } => "failed",
        StageStatus::Skipped { because } if because.is_pruned() => "pruned",
        StageStatus::Skipped { .. } => "skipped",
        StageStatus::Interrupted { .. } => "interrupted",
        _ => "cancelled",
    }
}

/// Fill and stroke colours per class, shared by both formats.
const CLASSES: [(&str, &str, &str); 6] = [
    ("succeeded", "#d4edda", "#28a745"),
    ("failed", "#f8d7da", "#dc3545"),
    ("skipped", "#fff3cd", "#ffc107"),
    ("pruned", "#e2e3e5", "#6c757d"),
    ("cancelled", "#d6d8d9", "#343a40"),
    ("interrupted", "#cce5ff", "#007bff"),
];

/// A short status label for a node.
fn label(status: &StageStatus) -> String {
    match status {
        StageStatus::Skipped {
            because: SkipReason::RouteNotTaken { .. },
        } => "route not taken".to_owned(),
        StageStatus::Skipped { because } if because.is_pruned() => "pruned".to_owned(),
        StageStatus::Skipped { .. } => "skipped".to_owned(),
        StageStatus::Succeeded { attempts } if *attempts > 1 => {
            format!("succeeded after {attempts} attempts")
        }
        StageStatus::Succeeded { .. } => "succeeded".to_owned(),
        StageStatus::Failed { .. } => "failed".to_owned(),
        StageStatus::TimedOut { .. } => "timed out".to_owned(),
        StageStatus::Interrupted { .. } => "waiting for input".to_owned(),
        _ => "cancelled".to_owned(),
    }
}

struct Graph<'a> {
    name: &'a str,
    names: Vec<&'a str>,
    edges: Vec<(usize, usize)>,
    statuses: Option<Vec<&'a StageStatus>>,
}

impl Graph<'_> {
    fn mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for (index, name) in self.names.iter().enumerate() {
            let text = match &self.statuses {
                Some(statuses) => format!("{name}<br/>{}", label(statuses[index])),
                None => (*name).to_owned(),
            };
            let _ = writeln!(out, "    s{index}[\"{}\"]", text.replace('"', "#quot;"));
        }
        for (from, to) in &self.edges {
            let _ = writeln!(out, "    s{from} --> s{to}");
        }
        if let Some(statuses) = &self.statuses {
            for (name, fill, stroke) in CLASSES {
                let _ = writeln!(out, "    classDef {name} fill:{fill},stroke:{stroke}");
            }
            for (index, status) in statuses.iter().enumerate() {
                let _ = writeln!(out, "    class s{index} {}", class(status));
            }
        }
        out
    }

    fn dot(&self) -> String {
        let quote = |text: &str| text.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = format!("digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\"];\n", quote(self.name));
        for (index, name) in self.names.iter().enumerate() {
            match &self.statuses {
                Some(statuses) => {
                    let class = class(statuses[index]);
                    let (_, fill, stroke) = CLASSES
                        .iter()
                        .find(|(name, ..)| *name == class)
                        .copied()
                        .unwrap_or(CLASSES[0]);
                    let _ = writeln!(
                        out,
                        "    s{index} [label=\"{}\\n{}\", fillcolor=\"{fill}\", color=\"{stroke}\"];",
                        quote(name),
                        quote(&label(statuses[index]))
                    );
                }
                None => {
                    let _ = writeln!(out, "    s{index} [label=\"{}\"];", quote(name));
                }
            }
        }
        for (from, to) in &self.edges {
            let _ = writeln!(out, "    s{from} -> s{to};");
        }
        out.push_str("}\n");
        out
    }
}

impl Pipeline {
    fn graph(&self) -> Graph<'_> {
        let inner = self.inner();
        Graph {
            name: &inner.name,
            names: inner.stages.iter().map(|stage| &*stage.name).collect(),
            edges: (0..inner.stages.len())
                .flat_map(|stage| {
                    inner
                        .dependencies(stage)
                        .iter()
                        .map(move |&dependency| (dependency as usize, stage))
                })
                .collect(),
            statuses: None,
        }
    }

    /// The pipeline as a Mermaid flowchart (paste it into a Markdown file on GitHub, or
    /// mermaid.live). [`RunReport::to_mermaid`] draws a run, with each stage's status.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{Pipeline, StageContext, StageError};
    ///
    /// # fn main() -> Result<(), hivekit_swarm::BuildError> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("fetch", |_: StageContext| async { Ok::<_, StageError>(()) })
    ///     .stage("parse", |_: StageContext| async { Ok::<_, StageError>(()) })
    ///     .after(["fetch"])
    ///     .build()?;
    /// assert_eq!(pipeline.to_mermaid(), "flowchart TD\n    s0[\"fetch\"]\n    s1[\"parse\"]\n    s0 --> s1\n");
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_mermaid(&self) -> String {
        self.graph().mermaid()
    }

    /// The pipeline as a Graphviz DOT digraph (`dot -Tsvg`). [`RunReport::to_dot`] draws a run.
    pub fn to_dot(&self) -> String {
        self.graph().dot()
    }
}

impl RunReport {
    fn graph(&self) -> Graph<'_> {
        let edges = self
            .edges()
            .into_iter()
            .filter_map(|(from, to)| Some((self.index_of(from)?, self.index_of(to)?)))
            .collect();
        Graph {
            name: self.pipeline_name(),
            names: self.stages.iter().map(|stage| &*stage.name).collect(),
            edges,
            statuses: Some(self.stages.iter().map(|stage| &stage.status).collect()),
        }
    }

    /// The run as a Mermaid flowchart: the pipeline's stages, each labelled and coloured with its
    /// status (succeeded, failed, skipped, pruned by routing, cancelled). Works on a report read
    /// back from JSON too.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{Pipeline, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("fetch", |_: StageContext| async { Err::<(), _>(StageError::msg("offline")) })
    ///     .stage("parse", |_: StageContext| async { Ok::<_, StageError>(()) })
    ///     .after(["fetch"])
    ///     .build()?;
    /// let mermaid = pipeline.run().await.to_mermaid();
    /// assert!(mermaid.contains("s0[\"fetch<br/>failed\"]"));
    /// assert!(mermaid.contains("class s1 skipped"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_mermaid(&self) -> String {
        self.graph().mermaid()
    }

    /// The run as a Graphviz DOT digraph, each stage labelled and filled by its status.
    pub fn to_dot(&self) -> String {
        self.graph().dot()
    }

    /// The run's timeline in the Chrome trace event format (JSON): open it in Perfetto
    /// (ui.perfetto.dev) or `chrome://tracing`. One track per stage; each failed attempt, each
    /// backoff wait and the last attempt is a span, so where a slow run spent its time shows at a
    /// glance. Times are microseconds from the run's start.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{Pipeline, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("only", |_: StageContext| async { Ok::<_, StageError>(()) })
    ///     .build()?;
    /// let trace: serde_json::Value = serde_json::from_str(&pipeline.run().await.to_chrome_trace())?;
    /// let events = trace["traceEvents"].as_array().unwrap();
    /// assert!(events.iter().any(|event| event["ph"] == "X" && event["name"] == "only"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_chrome_trace(&self) -> String {
        let micros = crate::micros::micros;
        let mut events = vec![
            json!({"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
                   "args": {"name": self.pipeline_name()}}),
            json!({"name": "run", "cat": "run", "ph": "X", "pid": 1, "tid": 0, "ts": 0,
                   "dur": micros(self.elapsed()), "args": {"outcome": self.outcome()}}),
        ];
        for (index, stage) in self.stages.iter().enumerate() {
            let tid = index + 1;
            events.push(
                json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid,
                               "args": {"name": &*stage.name}}),
            );
            events.push(
                json!({"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": tid,
                               "args": {"sort_index": tid}}),
            );
            let (Some(started), Some(elapsed)) = (stage.started, stage.elapsed) else {
                continue;
            };
            let end = started + elapsed;
            let mut last_start = started;
            for record in &stage.failed_attempts {
                let attempt_end = record.started + record.elapsed;
                events.push(
                    json!({"name": format!("{} attempt {}", stage.name, record.attempt),
                    "cat": "attempt", "ph": "X", "pid": 1, "tid": tid,
                    "ts": micros(record.started), "dur": micros(record.elapsed),
                    "args": {"failure": record.failure.to_string()}}),
                );
                if !record.backoff.is_zero() {
                    events.push(
                        json!({"name": "backoff", "cat": "backoff", "ph": "X", "pid": 1,
                        "tid": tid, "ts": micros(attempt_end), "dur": micros(record.backoff)}),
                    );
                }
                last_start = attempt_end + record.backoff;
            }
            let failed_last = stage
                .failed_attempts
                .last()
                .is_some_and(|record| record.backoff.is_zero());
            if !failed_last {
                events.push(
                    json!({"name": &*stage.name, "cat": "attempt", "ph": "X", "pid": 1,
                    "tid": tid, "ts": micros(last_start),
                    "dur": micros(end.saturating_sub(last_start)),
                    "args": {"status": stage.status.to_string()}}),
                );
            }
        }
        json!({"traceEvents": events, "displayTimeUnit": "ms"}).to_string()
    }
}
