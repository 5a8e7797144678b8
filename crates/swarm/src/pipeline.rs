//! A built pipeline: stages by index with their dependencies resolved, run any number of times.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use hivekit_lockfree::SchedulingHint;

use crate::builder::PipelineBuilder;
use crate::context::StageContext;
use crate::events::AttemptFailure;
use crate::names::NameIndex;
use crate::options::RunOptions;
use crate::report::RunReport;
use crate::retry::RetryPolicy;
use crate::stage_fn::StageFn;

/// A stage's output, shared with its dependents and the report without copying.
pub(crate) type Artifact = Arc<dyn Any + Send + Sync>;

/// Serializes an artifact of the stage's output type (`None` if it is another type).
pub(crate) type Exporter =
    fn(&(dyn Any + Send + Sync)) -> Option<Result<serde_json::Value, serde_json::Error>>;

/// Decides whether a failed attempt is retried (on top of
/// [`StageError::is_retryable`](crate::StageError::is_retryable)).
pub(crate) type RetryPredicate = dyn Fn(&AttemptFailure) -> bool + Send + Sync;

/// Decides, when a conditional stage becomes ready, whether it runs.
pub(crate) type Condition = dyn Fn(&StageContext) -> bool + Send + Sync;

/// What kind of stage this is, for the run's routing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum StageKind {
    /// Its dependents all run after it succeeds.
    Plain,
    /// Its artifact is a [`Route`](crate::Route): only the dependents it names run.
    Router,
    /// It runs a sub-pipeline repeatedly; its iterations' reports go into its stage report.
    Loop,
}

pub(crate) struct StageSpec {
    pub(crate) name: Arc<str>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    pub(crate) hint: SchedulingHint,
    /// `None`: decided by the hint's cost.
    pub(crate) spawn: Option<bool>,
    pub(crate) kind: StageKind,
    /// Each attempt runs on tokio's blocking pool.
    pub(crate) blocking: bool,
    /// Whether the stage set its own retry policy and timeout (the pipeline's defaults apply
    /// otherwise).
    pub(crate) retry_set: bool,
    pub(crate) timeout_set: bool,
    pub(crate) func: Box<dyn StageFn>,
    pub(crate) output_type: &'static str,
    pub(crate) exporter: Option<Exporter>,
    /// Options most stages do not use, out of line to keep the spec small.
    pub(crate) extras: Option<Box<StageExtras>>,
}

#[derive(Default)]
pub(crate) struct StageExtras {
    /// Ancestors (beyond the direct dependencies) whose artifacts the stage reads.
    pub(crate) reads: Vec<u32>,
    pub(crate) retry_on: Option<Arc<RetryPredicate>>,
    pub(crate) condition: Option<Arc<Condition>>,
    /// How a durable stage's artifact is checkpointed (see `StageBuilder::durable`).
    pub(crate) codec: Option<crate::hooks::Codec>,
}

impl StageSpec {
    /// Whether the stage runs on a task of its own.
    pub(crate) fn spawns(&self) -> bool {
        self.spawn
            .unwrap_or(self.hint.cost >= hivekit_lockfree::ResourceCost::Moderate)
    }

    pub(crate) fn reads(&self) -> &[u32] {
        self.extras.as_ref().map_or(&[], |extras| &extras.reads)
    }

    pub(crate) fn retry_on(&self) -> Option<&RetryPredicate> {
        self.extras.as_ref()?.retry_on.as_deref()
    }

    pub(crate) fn condition(&self) -> Option<&Condition> {
        self.extras.as_ref()?.condition.as_deref()
    }

    /// The artifact's codec: declared with `durable`, or implied by a `()` output.
    pub(crate) fn codec(&self) -> Option<crate::hooks::Codec> {
        match self.extras.as_ref().and_then(|extras| extras.codec) {
            Some(codec) => Some(codec),
            None => (self.output_type == std::any::type_name::<()>())
                .then(crate::hooks::Codec::of::<()>),
        }
    }
}

pub(crate) struct PipelineInner {
    /// The pipeline's name, in tracing spans and exports.
    pub(crate) name: Arc<str>,
    /// Whether any stage is a router or conditional (the run then counts pruned dependencies).
    pub(crate) routing: bool,
    /// Whether any stage runs on a task of its own ([`StageSpec::spawns`]): the run then drives
    /// itself from a runtime worker (see `run::execute_hooked`).
    pub(crate) spawning: bool,
    pub(crate) stages: Vec<StageSpec>,
    pub(crate) index: NameIndex,
    pub(crate) dependency_start: Vec<u32>,
    pub(crate) dependency_list: Vec<u32>,
    pub(crate) dependent_start: Vec<u32>,
    pub(crate) dependent_list: Vec<u32>,
    pub(crate) in_degree: Vec<u32>,
    pub(crate) roots: Vec<u32>,
    pub(crate) order: Vec<u32>,
    /// The pipeline's shape as a checkpoint records it, worked out by the first durable run.
    pub(crate) checkpoint_shape: std::sync::OnceLock<crate::checkpoint::ShapeCache>,
    /// The loop stages whose body a durable run cannot restore wholly (see
    /// `restores_every_stage`); empty in most pipelines, so building one costs nothing more.
    pub(crate) unrestorable_loops: Vec<u32>,
    /// A dropped report's stage list, for the next run (see `report/spare.rs`).
    pub(crate) spare_stages: crate::report::SpareStages,
}

impl PipelineInner {
    pub(crate) fn dependencies(&self, stage: usize) -> &[u32] {
        &self.dependency_list
            [self.dependency_start[stage] as usize..self.dependency_start[stage + 1] as usize]
    }

    pub(crate) fn dependents(&self, stage: usize) -> &[u32] {
        &self.dependent_list
            [self.dependent_start[stage] as usize..self.dependent_start[stage + 1] as usize]
    }

    /// Whether a durable run can restore every stage: each has a codec (declared durable, or
    /// `()`) or is a loop over a body of which this holds (its iterations are restored). Asked
    /// when the pipeline becomes a loop's body, not worked out for every build.
    pub(crate) fn restores_every_stage(&self) -> bool {
        self.stages.iter().enumerate().all(|(position, spec)| {
            crate::builder::restorable(spec, position, &self.unrestorable_loops)
        })
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<usize> {
        self.index
            .get(name, |stage| &self.stages[stage as usize].name)
            .map(|stage| stage as usize)
    }
}

/// A DAG of async stages, checked and resolved once by [`PipelineBuilder::build`], then run any number
/// of times (`run` takes `&self`; cloning is cheap and shares the stages).
///
/// A run starts each stage the moment all its dependencies have succeeded. Cheap stages are polled
/// inline by the run future itself (no task, no channel); stages marked
/// [`spawn`](crate::StageBuilder::spawn), or whose hint says they are expensive, run on tasks of their
/// own on the caller's tokio runtime, so CPU-heavy stages use every worker.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::{Pipeline, StageContext, StageError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pipeline = Pipeline::builder()
///     .stage("fetch", |_: StageContext| async { Ok::<_, StageError>(vec![3, 1, 2]) })
///     .stage("sort", |ctx: StageContext| async move {
///         let mut numbers = ctx.input::<Vec<i32>>("fetch")?.to_vec();
///         numbers.sort();
///         Ok::<_, StageError>(numbers)
///     })
///     .after(["fetch"])
///     .stage("sum", |ctx: StageContext| async move {
///         Ok::<_, StageError>(ctx.input::<Vec<i32>>("fetch")?.iter().sum::<i32>())
///     })
///     .after(["fetch"])
///     .build()?;
///
/// let report = pipeline.run().await;
/// assert!(report.is_success());
/// assert_eq!(*report.artifact::<Vec<i32>>("sort")?, [1, 2, 3]);
/// assert_eq!(*report.artifact::<i32>("sum")?, 6);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<PipelineInner>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stages", &self.inner.stages.len())
            .field("edges", &self.inner.dependency_list.len())
            .finish()
    }
}

impl Pipeline {
    /// A builder for a new pipeline.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::new()
    }

    pub(crate) fn inner(&self) -> &PipelineInner {
        &self.inner
    }

    pub(crate) fn shared_inner(&self) -> &Arc<PipelineInner> {
        &self.inner
    }

    pub(crate) fn from_inner(inner: PipelineInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The pipeline's name (set with [`PipelineBuilder::name`]; `pipeline` by default).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The number of stages.
    pub fn len(&self) -> usize {
        self.inner.stages.len()
    }

    /// Always false: a pipeline has at least one stage.
    pub fn is_empty(&self) -> bool {
        self.inner.stages.is_empty()
    }

    /// Stage names in declaration order.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner.stages.iter().map(|stage| &*stage.name)
    }

    /// Stage names in a topological order: every stage after all its dependencies.
    pub fn topological_order(&self) -> impl Iterator<Item = &str> + '_ {
        self.inner
            .order
            .iter()
            .map(|&stage| &*self.inner.stages[stage as usize].name)
    }

    /// The dependencies of a stage, or `None` if there is no such stage.
    pub fn dependencies(&self, stage: &str) -> Option<impl Iterator<Item = &str> + '_> {
        let stage = self.inner.lookup(stage)?;
        Some(
            self.inner
                .dependencies(stage)
                .iter()
                .map(|&dependency| &*self.inner.stages[dependency as usize].name),
        )
    }

    /// Runs the pipeline with [`RunOptions::default`]: no concurrency limit, fail fast.
    ///
    /// Timers and spawned stages run on the caller's tokio runtime (any flavour; timers come from
    /// the global runtime if it has none);
    /// polled outside one, the run enters `hivekit-runtime`'s global runtime instead, so
    /// `hivekit_runtime::execute(pipeline.run())` works from synchronous code. If neither exists
    /// (the global runtime cannot be built), every stage is skipped with [`SkipReason::NoRuntime`].
    ///
    /// [`SkipReason::NoRuntime`]: crate::SkipReason::NoRuntime
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the run: its token ([`StageContext::cancellation`]) is
    /// cancelled, inline stages are dropped with it and spawned stages are stopped, each dropped on
    /// the runtime's workers shortly after (not before the drop returns).
    ///
    /// A run that returns its report (after success, failure, its cancellation token, its
    /// deadline or fail-fast) has no stage left running, nor any stage of a run nested in it and
    /// dropped: a run first polled inside one of its stages (a loop's body, a pipeline a stage or
    /// a fan-out item runs, at any depth) and dropped before it ended, with that stage or by it (a
    /// `select!`, a fan-out whose quorum is met), has stopped its stages too. A nested run kept
    /// alive beyond its stage (in an artifact, a task it was moved to, an agent's state) and a
    /// run first polled on a task of its own (one the stage spawned, or a hive's heavy agent's
    /// call) are their holder's to wait for.
    ///
    /// [`StageContext::cancellation`]: crate::StageContext::cancellation
    #[must_use = "a run's report says whether it failed"]
    pub async fn run(&self) -> RunReport {
        // Not `run_with(RunOptions::default())`: that would make a cancellation token nobody holds.
        crate::run::execute(&self.inner, crate::options::RunSettings::default()).await
    }

    /// Runs the pipeline with `options`: a concurrency limit, a failure policy, a deadline, a
    /// cancellation token, a seed for the order of ready stages and for retry jitter, and an event sink.
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Pipeline::run). Cancelling `options.cancel` instead ends the run cleanly and returns
    /// a report naming the cancelled stages.
    #[must_use = "a run's report says whether it failed"]
    pub async fn run_with(&self, options: RunOptions) -> RunReport {
        crate::run::execute(&self.inner, options.into()).await
    }
}
