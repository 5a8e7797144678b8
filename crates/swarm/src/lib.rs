//! Swarm pipelines: a DAG of async stages run as fast as their dependencies allow, bounded,
//! observable, and honest about failure.
//!
//! - [`Pipeline::builder`] collects stages: a name, an async function of a [`StageContext`], and
//!   options ([`after`](StageBuilder::after) dependencies, a [`timeout`](StageBuilder::timeout), a
//!   [`RetryPolicy`], a scheduling [`priority`](StageBuilder::priority)).
//!   [`build`](PipelineBuilder::build) resolves the dependencies once (indices, a topological order)
//!   and reports mistakes as a [`BuildError`]; a cycle is named stage by stage.
//! - [`Pipeline::run`] and [`Pipeline::run_with`] execute it: each stage starts the moment its
//!   dependencies succeed; [`RunOptions`] bound the concurrency (ready stages then wait in a priority
//!   queue ordered by their hints), choose a [`FailurePolicy`], set a deadline, carry a cancellation
//!   token and a seed (for a reproducible order and retry jitter), and an [`EventSink`].
//! - A stage's output is its typed artifact: dependents read it without copying through
//!   [`StageContext::input`], the [`RunReport`] through [`RunReport::artifact`], and artifacts of
//!   stages marked [`export`](StageBuilder::export) are written as JSON with the report.
//! - [`StageContext::fan_out`] launches sub-tasks decided at run time, with a bounded width and a
//!   k-of-n success rule ([`FanOut`]).
//!
//! - [`hive_stage`] runs a hive round (`Hive::decide`) as a stage whose artifact is the decision.
//!
//! # Build once, run many
//!
//! - **Per-run input:** [`RunOptions::with_input`] gives a run its input (a pull request, a
//!   document), shared as an `Arc`; stages read it with [`StageContext::run_input`]. One pipeline
//!   runs concurrently with different inputs.
//! - **Reads from any ancestor:** [`StageBuilder::reads`] declares what a stage reads beyond its
//!   direct dependencies; `build` checks that each read is an ancestor ([`BuildError::UnknownRead`],
//!   [`BuildError::NotAnAncestor`]).
//! - **Errors that keep their source:** `?` works on any `std::error::Error + Send + Sync` in a
//!   stage ([`StageError::Source`]); the report keeps the error whole, downcastable through its
//!   source chain ([`StageError::downcast_ref`]). [`StageBuilder::retry_on`] decides retries from
//!   the error; [`PipelineBuilder::default_retry`] and [`PipelineBuilder::default_timeout`] set
//!   pipeline-wide defaults that stages override.
//! - **Routing and loops:** a [`router`](PipelineBuilder::router) returns a [`Route`] choosing which
//!   successors run (the others are skipped, "route not taken", and the run still succeeds; a join
//!   runs after the parents that were taken); [`when`](StageBuilder::when) makes a stage
//!   conditional; [`repeat`](PipelineBuilder::repeat) runs a sub-pipeline as a bounded loop with a
//!   stop condition ([`LoopPolicy`]), each iteration's report kept.
//! - **Scheduling honesty:** a stage waiting out its retry backoff holds no concurrency slot;
//!   [`blocking`](StageBuilder::blocking) stages run on tokio's blocking pool; a long run of inline
//!   stages yields to the runtime every 128 stages, so it never starves other tasks.
//! - **Progress and tracing:** events carry `done`/`total`, fan-out items report their start and
//!   finish, [`StageContext::progress`] reports a stage's own progress; `info` spans name the
//!   pipeline ([`PipelineBuilder::name`]) and the stage, and a failed stage is a `warn!`.
//! - **A report you can read back:** [`RunReport`] and [`StageEvent`] serialize both ways
//!   ([`RunReport::to_json`], [`RunReport::from_json`]): whole microseconds, internally tagged
//!   enums, every failed attempt with its error, duration and backoff ([`AttemptRecord`]).
//!   [`FanOut::retry`] retries a fan-out item alone. [`RunReport::to_mermaid`], [`RunReport::to_dot`]
//!   and [`RunReport::to_chrome_trace`] (Perfetto) draw a run.
//! - **Durable runs:** [`checkpoint::Durable`] checkpoints each finished stage and resumes a crashed
//!   or interrupted run; [`checkpoint::Durable::inspect`] reads a stored run without its pipeline,
//!   and [`checkpoint::Durable::resume_with_values`] hands each interrupted stage its own value.
//!
//! ```
//! use hivekit_swarm::{Pipeline, Route, RunOptions, RunReport, StageContext, StageError, StageStatus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = Pipeline::builder()
//!     .name("triage")
//!     .stage("parse", |ctx: StageContext| async move {
//!         let count: u32 = ctx.run_input::<String>()?.trim().parse()?; // any error, kept whole
//!         Ok::<_, StageError>(count)
//!     })
//!     .router("route", |ctx: StageContext| async move {
//!         let count = *ctx.input::<u32>("parse")?;
//!         Ok::<_, StageError>(Route::to([if count > 0 { "report" } else { "skip" }]))
//!     })
//!     .after(["parse"])
//!     .stage("report", |ctx: StageContext| async move {
//!         Ok::<_, StageError>(format!("{} findings", ctx.input::<u32>("parse")?))
//!     })
//!     .after(["route"])
//!     .reads(["parse"])
//!     .export()
//!     .stage("skip", |_: StageContext| async { Ok::<_, StageError>(()) })
//!     .after(["route"])
//!     .build()?;
//!
//! // Built once, run with different inputs.
//! let found = pipeline.run_with(RunOptions::default().with_input(String::from("3"))).await;
//! assert_eq!(*found.artifact::<String>("report")?, "3 findings");
//! let clean = pipeline.run_with(RunOptions::default().with_input(String::from("0"))).await;
//! assert!(clean.is_success());
//! assert_eq!(clean.explain("report").unwrap(), "report skipped because route not taken by route");
//! let broken = pipeline.run_with(RunOptions::default().with_input(String::from("x"))).await;
//! let Some(StageStatus::Failed { error, .. }) = broken.status("parse") else { unreachable!() };
//! assert!(error.downcast_ref::<std::num::ParseIntError>().is_some());
//!
//! // The report, read back from JSON, still explains and draws the run.
//! let back = RunReport::from_json(&found.to_json()?)?;
//! assert_eq!(back.artifact_json("report")?, "3 findings");
//! assert!(back.to_mermaid().contains("skip<br/>route not taken"));
//! # Ok(())
//! # }
//! ```
//!
//! # Execution model
//!
//! The run is one future. Cheap stages are polled inline by it (no task, no channel per stage), which
//! keeps a no-op stage well under a microsecond; stages marked [`spawn`](StageBuilder::spawn), or
//! whose hint's cost is `Moderate` or `Heavy`, run on tasks of their own on the caller's tokio
//! runtime so CPU-bound stages use every worker. Timers and spawned stages use the caller's tokio
//! runtime (timers come from the global runtime if it was built without them, see
//! [`hivekit_runtime::sleep_until`]); polled anywhere else, a run uses `hivekit-runtime`'s global
//! runtime, so `hivekit_runtime::execute(pipeline.run())` works from synchronous code.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use hivekit_swarm::{Backoff, Pipeline, RetryPolicy, StageContext, StageError, StageStatus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = Pipeline::builder()
//!     .stage("load", |_: StageContext| async { Ok::<_, StageError>(vec![1u64, 2, 3]) })
//!     .stage("flaky", |ctx: StageContext| async move {
//!         if ctx.attempt() < 2 {
//!             return Err(StageError::msg("try again"));
//!         }
//!         Ok(ctx.input::<Vec<u64>>("load")?.iter().sum::<u64>())
//!     })
//!     .after(["load"])
//!     .retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
//!     .timeout(Duration::from_secs(5))
//!     .export()
//!     .build()?;
//!
//! let report = pipeline.run().await;
//! assert!(report.is_success());
//! assert_eq!(report.status("flaky"), Some(&StageStatus::Succeeded { attempts: 2 }));
//! assert_eq!(*report.artifact::<u64>("flaky")?, 6);
//! assert!(report.to_json()?.contains("\"flaky\": 6"));
//! # Ok(())
//! # }
//! ```

mod artifact_cell;
mod attempt_gate;
mod builder;
pub mod checkpoint;
mod clock;
mod context;
mod error;
mod events;
mod export;
mod fan_out;
mod hive;
mod hooks;
mod input;
mod looping;
mod micros;
mod names;
mod options;
mod pipeline;
mod ready;
mod report;
mod retry;
mod route;
mod run;
mod seed;
mod source;
mod stage;
mod stage_fn;

pub use builder::{PipelineBuilder, StageBuilder};
pub use context::StageContext;
pub use error::{ArtifactError, BuildError, StageError};
pub use events::{AttemptFailure, EventSink, StageEvent};
pub use fan_out::{FanOut, FanOutReport, FanOutSummary, SubtaskOutcome};
pub use hive::hive_stage;
pub use hivekit_runtime::{ConcurrencyLimit, ConcurrencyLimitError, IntoConcurrencyLimit};
pub use input::RunInput;
pub use looping::{Iteration, LoopPolicy, LoopReport, LoopStop};
pub use options::{FailurePolicy, RunOptions};
pub use pipeline::Pipeline;
pub use report::{AttemptRecord, RunOutcome, RunReport, SkipReason, StageReport, StageStatus};
pub use retry::{Backoff, RetryPolicy};
pub use route::Route;
pub use source::{RecordedError, SourceError};
pub use tokio_util::sync::CancellationToken;

pub use hivekit_lockfree::{LatencyTier, Priority, ResourceCost, SchedulingHint};
