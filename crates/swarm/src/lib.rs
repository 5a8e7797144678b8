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
//! # Execution model
//!
//! The run is one future. Cheap stages are polled inline by it (no task, no channel per stage), which
//! keeps a no-op stage well under a microsecond; stages marked [`spawn`](StageBuilder::spawn), or
//! whose hint's cost is `Moderate` or `Heavy`, run on tasks of their own on the caller's tokio
//! runtime so CPU-bound stages use every worker. Timers and spawned stages use the caller's tokio
//! runtime (it needs timers enabled); polled anywhere else, a run uses `hivekit-runtime`'s global
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

mod builder;
mod context;
mod error;
mod events;
mod fan_out;
mod hive;
mod names;
mod options;
mod pipeline;
mod ready;
mod report;
mod retry;
mod run;
mod seed;
mod stage;

pub use builder::{PipelineBuilder, StageBuilder};
pub use context::StageContext;
pub use error::{ArtifactError, BuildError, StageError};
pub use events::{AttemptFailure, EventSink, StageEvent};
pub use fan_out::{FanOut, FanOutReport, FanOutSummary, SubtaskOutcome};
pub use hive::hive_stage;
pub use hivekit_runtime::{ConcurrencyLimit, ConcurrencyLimitError};
pub use options::{FailurePolicy, RunOptions};
pub use pipeline::Pipeline;
pub use report::{RunOutcome, RunReport, SkipReason, StageReport, StageStatus};
pub use retry::{Backoff, RetryPolicy};
pub use tokio_util::sync::CancellationToken;

pub use hivekit_lockfree::{LatencyTier, Priority, ResourceCost, SchedulingHint};
