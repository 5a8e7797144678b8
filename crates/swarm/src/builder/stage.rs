//! One stage's options, set on the [`StageBuilder`] that [`PipelineBuilder::stage`] returns.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use hivekit_lockfree::SchedulingHint;
use serde::Serialize;

use crate::context::StageContext;
use crate::error::{BuildError, StageError};
use crate::events::AttemptFailure;
use crate::looping::{LoopPolicy, LoopReport};
use crate::pipeline::{Pipeline, StageSpec};
use crate::retry::RetryPolicy;
use crate::route::Route;

use super::{export_as, nth_name, Dependency, PipelineBuilder};

/// One stage being added to a pipeline; its methods set that stage's options. `T` is the stage's
/// output (its artifact) type.
///
/// It also has [`stage`](StageBuilder::stage) and [`build`](StageBuilder::build), so a pipeline reads
/// as one chain.
#[must_use = "a stage builder does nothing until the pipeline is built"]
pub struct StageBuilder<T> {
    pub(super) builder: PipelineBuilder,
    pub(super) _output: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for StageBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageBuilder")
            .field("stage", &self.builder.state.drafts.last().map(|d| &*d.name))
            .finish()
    }
}

impl<T> StageBuilder<T> {
    fn draft(&mut self) -> &mut StageSpec {
        self.builder
            .state
            .drafts
            .last_mut()
            .expect("a StageBuilder always holds the stage it was created for")
    }

    /// Runs this stage only after all of `dependencies` succeeded. Adds to earlier `after` calls.
    pub fn after<I>(mut self, dependencies: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let builder = &mut *self.builder.state;
        let (names, ends) = (&builder.stage_names, &builder.stage_name_ends);
        let name_of = |stage: u32| nth_name(names, ends, stage as usize);
        for dependency in dependencies {
            let name = dependency.as_ref();
            // A stage added before is resolved now, while its name is at hand; other names wait
            // for `build` (the stage may be added later).
            let dependency = match builder.index.get(name, name_of) {
                Some(stage) => Dependency::Stage(stage),
                None => {
                    builder.pending_names.push_str(name);
                    builder.pending_ends.push(builder.pending_names.len());
                    Dependency::Pending((builder.pending_ends.len() - 1) as u32)
                }
            };
            builder.dependencies.push(dependency);
        }
        // Only the newest stage adds dependencies, so its dependencies stay one range from its
        // creation on.
        if let Some(end) = builder.dependency_ends.last_mut() {
            *end = builder.dependencies.len();
        }
        self
    }

    /// Declares that this stage reads the artifacts of `stages` ([`StageContext::input`]), which
    /// need not be direct dependencies but must be ancestors (reached through `after`), so they
    /// have finished when this stage runs. [`build`](PipelineBuilder::build) checks each read:
    /// a misspelled name is [`BuildError::UnknownRead`], a stage that is not an ancestor
    /// [`BuildError::NotAnAncestor`], both naming the reader and the read.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{BuildError, Pipeline, StageContext, StageError};
    ///
    /// async fn text(_: StageContext) -> Result<String, StageError> { Ok("a b c".into()) }
    /// async fn count(ctx: StageContext) -> Result<usize, StageError> {
    ///     Ok(ctx.input::<String>("fetch")?.split(' ').count())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("fetch", text)
    ///     .stage("parse", text).after(["fetch"])
    ///     .stage("count", count).after(["parse"]).reads(["fetch"]) // a grandparent
    ///     .build()?;
    /// assert_eq!(*pipeline.run().await.artifact::<usize>("count")?, 3);
    ///
    /// let error = Pipeline::builder()
    ///     .stage("fetch", text)
    ///     .stage("count", count).reads(["fetch"]) // not an ancestor
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(error, BuildError::NotAnAncestor { stage: "count".into(), read: "fetch".into() });
    /// # Ok(())
    /// # }
    /// ```
    pub fn reads<I>(mut self, stages: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let reader = (self.builder.state.drafts.len() - 1) as u32;
        for stage in stages {
            self.builder
                .state
                .read_names
                .push((reader, stage.as_ref().into()));
        }
        self
    }

    /// Gives each attempt at most `timeout`; an attempt that takes longer is dropped and counts as
    /// timed out (retried if the retry policy allows). Overrides the pipeline's
    /// [`default_timeout`](PipelineBuilder::default_timeout).
    ///
    /// Edges: zero is [`BuildError::ZeroTimeout`](crate::BuildError::ZeroTimeout) when built;
    /// `Duration::MAX`, or any limit the clock cannot represent from the attempt's start, means no
    /// limit; 1 ns is a real limit (an attempt that does not finish on its first poll times out).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        let draft = self.draft();
        draft.timeout = Some(timeout);
        draft.timeout_set = true;
        self
    }

    /// No timeout for this stage, whatever the pipeline's
    /// [`default_timeout`](PipelineBuilder::default_timeout).
    pub fn no_timeout(mut self) -> Self {
        let draft = self.draft();
        draft.timeout = None;
        draft.timeout_set = true;
        self
    }

    /// Retries failed and timed-out attempts according to `policy`. Overrides the pipeline's
    /// [`default_retry`](PipelineBuilder::default_retry).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        let draft = self.draft();
        draft.retry = policy;
        draft.retry_set = true;
        self
    }

    /// Retries a failed attempt only when `predicate` says so (and the error is retryable at all:
    /// permanent errors never are), so a stage does not retry what cannot succeed. A predicate that
    /// panics fails the stage with [`StageError::Panicked`](crate::StageError::Panicked), not
    /// retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use hivekit_swarm::{AttemptFailure, Backoff, Pipeline, RetryPolicy, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("lint", |_: StageContext| async {
    ///         Err::<(), _>(io::Error::new(io::ErrorKind::NotFound, "no linter").into())
    ///     })
    ///     .retry(RetryPolicy::attempts(5).with_backoff(Backoff::NONE))
    ///     .retry_on(|failure| match failure {
    ///         AttemptFailure::Error { error } => error
    ///             .downcast_ref::<io::Error>()
    ///             .is_some_and(|error| error.kind() == io::ErrorKind::TimedOut),
    ///         _ => true,
    ///     })
    ///     .build()?;
    /// let report = pipeline.run().await;
    /// assert_eq!(report.status("lint").unwrap().attempts(), 1); // not found: not retried
    /// # Ok(())
    /// # }
    /// ```
    pub fn retry_on(
        mut self,
        predicate: impl Fn(&AttemptFailure) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.draft()
            .extras
            .get_or_insert_with(Default::default)
            .retry_on = Some(Arc::new(predicate));
        self
    }

    /// Runs this stage only if `condition` holds when it becomes ready (it sees the stage's context:
    /// the run's input, the dependencies' artifacts). If not, the stage ends
    /// [`Skipped`](crate::StageStatus::Skipped) with [`SkipReason::ConditionFalse`](crate::SkipReason::ConditionFalse),
    /// what depends only on it is pruned too, and the run still succeeds.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("post", |_: StageContext| async { Ok::<_, StageError>(()) })
    ///     .when(|ctx| ctx.run_input::<bool>().is_ok_and(|post| *post))
    ///     .stage("notify", |_: StageContext| async { Ok::<_, StageError>(()) })
    ///     .after(["post"])
    ///     .build()?;
    /// let report = pipeline.run_with(RunOptions::default().with_input(false)).await;
    /// assert!(report.is_success());
    /// assert_eq!(report.explain("notify").unwrap(),
    ///     "notify skipped because post was skipped because its condition was false");
    /// # Ok(())
    /// # }
    /// ```
    pub fn when(
        mut self,
        condition: impl Fn(&StageContext) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.draft()
            .extras
            .get_or_insert_with(Default::default)
            .condition = Some(Arc::new(condition));
        self
    }

    /// Runs each attempt on tokio's blocking pool (`spawn_blocking`), for stages that do
    /// synchronous work (hashing, parsing, a blocking client) without holding up the run or other
    /// stages. A timed-out attempt is abandoned, but its thread runs on to its end (threads cannot
    /// be interrupted).
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{Pipeline, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("hash", |_: StageContext| async {
    ///         let sum: u64 = (0..1_000u64).map(|n| n.wrapping_mul(n)).sum(); // synchronous work
    ///         Ok::<_, StageError>(sum)
    ///     })
    ///     .blocking()
    ///     .build()?;
    /// assert!(pipeline.run().await.is_success());
    /// # Ok(())
    /// # }
    /// ```
    pub fn blocking(mut self) -> Self {
        self.draft().blocking = true;
        self
    }

    /// Orders this stage among ready stages waiting for a slot. A hint whose cost is
    /// [`ResourceCost::Moderate`](crate::ResourceCost::Moderate) or [`ResourceCost::Heavy`](crate::ResourceCost::Heavy) also makes the stage run on a task of its
    /// own (see [`spawn`](StageBuilder::spawn)).
    pub fn priority(mut self, hint: SchedulingHint) -> Self {
        self.draft().hint = hint;
        self
    }

    /// Runs this stage on a runtime task of its own, so that it runs in parallel with the pipeline's
    /// other stages on another worker thread. Without it, cheap stages are polled inline by the run
    /// itself, which costs no task and no channel. (A task whose stage has finished may run one of
    /// its dependents next, instead of spawning a task for it: never two stages at once.)
    pub fn spawn(mut self) -> Self {
        self.draft().spawn = Some(true);
        self
    }

    /// Polls this stage inline in the run even when its hint says it is expensive.
    pub fn inline(mut self) -> Self {
        self.draft().spawn = Some(false);
        self
    }

    /// Registers a serializer for this stage's artifact, so that
    /// [`RunReport::export_artifacts`](crate::RunReport::export_artifacts) and
    /// [`RunReport::to_json`](crate::RunReport::to_json) include it.
    pub fn export(mut self) -> Self
    where
        T: Serialize + 'static,
    {
        self.draft().exporter = Some(export_as::<T>);
        self
    }

    /// Declares this stage's artifact durable: a [`checkpoint::Durable`](crate::checkpoint::Durable)
    /// run writes it (as JSON) with the stage's status once the stage succeeds, and a resumed run
    /// reads it back instead of running the stage again. Stages returning `()` are durable without
    /// it; other stages of a durable run that do not declare it run again when the run resumes.
    ///
    /// An artifact whose JSON would not read back as itself (a non-finite float, which serde_json
    /// writes as `null`; a `Some(None)` or `Some(())`, written as `null` like a `None`) is not
    /// recorded: the stage fails with a [`StageError::Permanent`] naming
    /// the run, the stage and the reason, and a resume runs it again.
    pub fn durable(mut self) -> Self
    where
        T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        self.draft()
            .extras
            .get_or_insert_with(Default::default)
            .codec = Some(crate::hooks::Codec::of::<T>());
        self
    }

    /// Adds a router next (see [`PipelineBuilder::router`]).
    pub fn router<F, Fut>(self, name: impl Into<Arc<str>>, f: F) -> StageBuilder<Route>
    where
        F: Fn(StageContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Route, StageError>> + Send + 'static,
    {
        self.builder.router(name, f)
    }

    /// Adds a loop next (see [`PipelineBuilder::repeat`]).
    pub fn repeat(
        self,
        name: impl Into<Arc<str>>,
        body: Pipeline,
        policy: LoopPolicy,
    ) -> StageBuilder<LoopReport> {
        self.builder.repeat(name, body, policy)
    }

    /// Adds the next stage (see [`PipelineBuilder::stage`]).
    pub fn stage<F, Fut, U>(self, name: impl Into<Arc<str>>, f: F) -> StageBuilder<U>
    where
        F: Fn(StageContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, StageError>> + Send + 'static,
        U: Send + Sync + 'static,
    {
        self.builder.stage(name, f)
    }

    /// Builds the pipeline (see [`PipelineBuilder::build`]).
    ///
    /// # Errors
    ///
    /// As [`PipelineBuilder::build`].
    pub fn build(self) -> Result<Pipeline, BuildError> {
        self.builder.build()
    }

    /// Back to the pipeline builder, to add stages in a loop.
    pub fn into_builder(self) -> PipelineBuilder {
        self.builder
    }
}

impl<T> From<StageBuilder<T>> for PipelineBuilder {
    fn from(stage: StageBuilder<T>) -> Self {
        stage.builder
    }
}
