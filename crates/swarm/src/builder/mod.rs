//! Building a pipeline: stages, their options, and the one-time dependency resolution.

use std::any::{Any, TypeId};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use hivekit_lockfree::SchedulingHint;
use serde::Serialize;

use crate::context::StageContext;
use crate::error::{BuildError, StageError};
use crate::events::AttemptFailure;
use crate::looping::{LoopPolicy, LoopReport};
use crate::names::NameIndex;
use crate::pipeline::{Artifact, Pipeline, PipelineInner, StageFn, StageKind, StageSpec};
use crate::retry::RetryPolicy;
use crate::route::Route;

/// Collects the stages of a pipeline; [`build`](PipelineBuilder::build) checks and resolves them.
///
/// Stage options ([`after`](StageBuilder::after), [`timeout`](StageBuilder::timeout), ...) are set on
/// the [`StageBuilder`] that [`stage`](PipelineBuilder::stage) returns and apply to that stage. Mistakes
/// (unknown dependencies, cycles, duplicate names, invalid retry policies) are reported by `build`.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::{Pipeline, StageContext, StageError};
///
/// async fn step(_: StageContext) -> Result<(), StageError> {
///     Ok(())
/// }
///
/// // Stages may be added in a loop through `into_builder`.
/// let mut builder = Pipeline::builder().stage("step0", step).into_builder();
/// for index in 1..3 {
///     builder = builder
///         .stage(format!("step{index}"), step)
///         .after([format!("step{}", index - 1)])
///         .into_builder();
/// }
/// let pipeline = builder.build()?;
/// assert_eq!(pipeline.len(), 3);
/// # Ok::<(), hivekit_swarm::BuildError>(())
/// ```
///
/// # Cost
///
/// Names are resolved as early as possible: `stage` enters the stage's name in the name table at
/// once, so `after` turns the name of a stage added before into its index right away (no copy of
/// the name is kept), and only names of stages not added yet wait for `build`. Adding stages in
/// dependency order, as most pipelines are written, leaves `build` no name lookups at all: it
/// checks the options, deduplicates the indices and orders the stages, in time linear in stages
/// plus dependencies.
#[derive(Default)]
#[must_use = "a pipeline builder does nothing until `build` is called"]
pub struct PipelineBuilder {
    /// The pipeline's name (`pipeline` if unset).
    name: Option<Arc<str>>,
    /// Applied at `build` to stages that set no retry policy or timeout of their own.
    default_retry: Option<RetryPolicy>,
    default_timeout: Option<Duration>,
    /// Declared reads, by reader, resolved and checked by `build`.
    read_names: Vec<(u32, Box<str>)>,
    drafts: Vec<StageSpec>,
    /// Every stage name, back to back, and where each ends: resolving names against this dense copy
    /// touches far fewer cache lines than following each stage's own allocation.
    stage_names: String,
    stage_name_ends: Vec<usize>,
    /// The names of the stages added so far, to their indices.
    index: NameIndex,
    /// The first stage (in order of addition) whose name an earlier stage already has.
    first_duplicate: Option<usize>,
    /// Every stage's dependencies, back to back; stage `i`'s are
    /// `dependencies[dependency_ends[i - 1]..dependency_ends[i]]`.
    dependencies: Vec<Dependency>,
    dependency_ends: Vec<usize>,
    /// The names of dependencies not added yet when `after` named them, back to back, and where
    /// each ends; `build` resolves them.
    pending_names: String,
    pending_ends: Vec<usize>,
    /// Every stage must be checkpointable (see `PipelineBuilder::durable`).
    durable: bool,
}

/// One dependency as `after` recorded it: 8 bytes, as compact as the name it replaces (the list
/// holds one per dependency, 320k for the 100k-stage benchmark pipeline).
#[derive(Clone, Copy)]
enum Dependency {
    /// The index of a stage added before.
    Stage(u32),
    /// A name no stage had yet: the position of the name in the pending names (32 bits, like stage
    /// indices).
    Pending(u32),
}

/// Name `stage` of `ends.len()` names stored back to back in `names`.
fn nth_name<'a>(names: &'a str, ends: &[usize], stage: usize) -> &'a str {
    let start = match stage {
        0 => 0,
        _ => ends[stage - 1],
    };
    &names[start..ends[stage]]
}

impl std::fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field(
                "stages",
                &self.drafts.iter().map(|d| &*d.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One stage being added to a pipeline; its methods set that stage's options. `T` is the stage's
/// output (its artifact) type.
///
/// It also has [`stage`](StageBuilder::stage) and [`build`](StageBuilder::build), so a pipeline reads
/// as one chain.
#[must_use = "a stage builder does nothing until the pipeline is built"]
pub struct StageBuilder<T> {
    builder: PipelineBuilder,
    _output: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for StageBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageBuilder")
            .field("stage", &self.builder.drafts.last().map(|d| &*d.name))
            .finish()
    }
}

impl PipelineBuilder {
    /// An empty builder (same as [`Pipeline::builder`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `stages` stages, so that adding them never reallocates (worth
    /// it from thousands of stages on).
    pub fn with_capacity(stages: usize) -> Self {
        Self {
            drafts: Vec::with_capacity(stages),
            stage_name_ends: Vec::with_capacity(stages),
            index: NameIndex::with_capacity(stages),
            dependency_ends: Vec::with_capacity(stages),
            ..Self::default()
        }
    }

    /// Declares the pipeline durable: [`build`](PipelineBuilder::build) then checks that every
    /// stage's artifact can be checkpointed (declared [`durable`](StageBuilder::durable), or `()`),
    /// so a [`checkpoint::Durable`](crate::checkpoint::Durable) run can restore every stage.
    pub fn durable(self) -> Self {
        Self {
            durable: true,
            ..self
        }
    }

    /// Names the pipeline: the name appears in tracing spans, Mermaid and DOT exports.
    pub fn name(self, name: impl Into<Arc<str>>) -> Self {
        Self {
            name: Some(name.into()),
            ..self
        }
    }

    /// The retry policy of every stage that sets none of its own with
    /// [`retry`](StageBuilder::retry).
    pub fn default_retry(self, policy: RetryPolicy) -> Self {
        Self {
            default_retry: Some(policy),
            ..self
        }
    }

    /// The per-attempt timeout of every stage that sets none of its own with
    /// [`timeout`](StageBuilder::timeout) (a stage opts out with [`no_timeout`](StageBuilder::no_timeout)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hivekit_swarm::{Backoff, Pipeline, RetryPolicy, StageContext, StageError, StageStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .default_retry(RetryPolicy::attempts(3).with_backoff(Backoff::NONE))
    ///     .default_timeout(Duration::from_secs(10))
    ///     .stage("flaky", |ctx: StageContext| async move {
    ///         if ctx.attempt() < 3 { Err(StageError::msg("busy")) } else { Ok(()) }
    ///     })
    ///     .stage("once", |_: StageContext| async { Err::<(), _>(StageError::msg("no")) })
    ///     .retry(RetryPolicy::NONE) // overrides the default
    ///     .build()?;
    /// let report = pipeline.run().await;
    /// assert_eq!(report.status("flaky"), Some(&StageStatus::Succeeded { attempts: 3 }));
    /// assert_eq!(report.status("once").map(|status| status.attempts()), Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn default_timeout(self, timeout: Duration) -> Self {
        Self {
            default_timeout: Some(timeout),
            ..self
        }
    }

    /// Adds a stage: `f` is called with a [`StageContext`] for every attempt and returns a future of
    /// the stage's output. The output becomes the stage's artifact, shared with dependents without
    /// copying.
    pub fn stage<F, Fut, T>(self, name: impl Into<Arc<str>>, f: F) -> StageBuilder<T>
    where
        F: Fn(StageContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, StageError>> + Send + 'static,
        T: Send + Sync + 'static,
    {
        // A closure that captures nothing is zero-sized, and boxing it allocates nothing.
        let func: Box<StageFn> = Box::new(move |context: StageContext| {
            f(context).map(|result| result.map(into_artifact)).boxed()
        });
        self.push_stage(name.into(), func, StageKind::Plain)
    }

    /// Adds a router: a stage whose output, a [`Route`], chooses which of its dependents run.
    /// Dependents it does not choose end [`Skipped`](crate::StageStatus::Skipped) with
    /// [`SkipReason::RouteNotTaken`](crate::SkipReason::RouteNotTaken), and so does everything
    /// below them whose every dependency was skipped that way; a join below a router runs when
    /// the dependencies that were taken succeeded. The run still succeeds. A route naming a stage
    /// that is not a dependent fails the router with [`StageError::InvalidRoute`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{Pipeline, Route, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .router("triage", |ctx: StageContext| async move {
    ///         let findings = *ctx.run_input::<usize>()?;
    ///         Ok::<_, StageError>(if findings > 0 { Route::to(["post"]) } else { Route::to(["approve"]) })
    ///     })
    ///     .stage("post", |_: StageContext| async { Ok::<_, StageError>("posted") })
    ///     .after(["triage"])
    ///     .stage("approve", |_: StageContext| async { Ok::<_, StageError>("approved") })
    ///     .after(["triage"])
    ///     .stage("done", |_: StageContext| async { Ok::<_, StageError>(()) })
    ///     .after(["post", "approve"]) // a join: runs after whichever was taken
    ///     .build()?;
    /// let report = pipeline.run_with(hivekit_swarm::RunOptions::default().with_input(0usize)).await;
    /// assert!(report.is_success());
    /// assert!(report.artifact::<&str>("post").is_err());
    /// assert_eq!(report.explain("post").unwrap(), "post skipped because route not taken by triage");
    /// assert!(report.status("done").unwrap().is_success());
    /// # Ok(())
    /// # }
    /// ```
    pub fn router<F, Fut>(self, name: impl Into<Arc<str>>, f: F) -> StageBuilder<Route>
    where
        F: Fn(StageContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Route, StageError>> + Send + 'static,
    {
        let func: Box<StageFn> = Box::new(move |context: StageContext| {
            f(context).map(|result| result.map(into_artifact)).boxed()
        });
        self.push_stage(name.into(), func, StageKind::Router)
    }

    /// Adds a loop: each attempt runs `body` (a whole pipeline) again and again, up to
    /// `policy.max_iterations` times, until `policy`'s stop condition holds for an iteration's
    /// report. Each iteration's run gets an [`Iteration`](crate::Iteration) as its input (its number, the previous
    /// iteration's report, and this stage's context for reading the outer run). The stage's artifact
    /// is a [`LoopReport`] and every iteration's report is listed in the stage's report
    /// ([`StageReport::iterations`](crate::StageReport::iterations)). An iteration that fails
    /// fails the stage with [`StageError::Iteration`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{Iteration, LoopPolicy, LoopReport, LoopStop, Pipeline, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Each iteration revises the previous draft; stop once it is long enough.
    /// let body = Pipeline::builder()
    ///     .stage("revise", |ctx: StageContext| async move {
    ///         let iteration = ctx.run_input::<Iteration>()?;
    ///         let previous = match iteration.previous() {
    ///             Some(report) => report.artifact::<String>("revise")?.to_string(),
    ///             None => iteration.parent().input::<String>("draft")?.to_string(),
    ///         };
    ///         Ok::<_, StageError>(previous + "!")
    ///     })
    ///     .build()?;
    /// let pipeline = Pipeline::builder()
    ///     .stage("draft", |_: StageContext| async { Ok::<_, StageError>(String::from("hi")) })
    ///     .repeat("polish", body, LoopPolicy::new(10).until(|report| {
    ///         report.artifact::<String>("revise").is_ok_and(|text| text.len() >= 5)
    ///     }))
    ///     .after(["draft"])
    ///     .build()?;
    /// let report = pipeline.run().await;
    /// let polished = report.artifact::<LoopReport>("polish")?;
    /// assert_eq!(polished.stopped, LoopStop::Condition);
    /// assert_eq!(polished.iterations.len(), 3);
    /// assert_eq!(*polished.last().unwrap().artifact::<String>("revise")?, "hi!!!");
    /// assert_eq!(report.stage("polish").unwrap().iterations.len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn repeat(
        self,
        name: impl Into<Arc<str>>,
        body: Pipeline,
        policy: LoopPolicy,
    ) -> StageBuilder<LoopReport> {
        let func: Box<StageFn> = Box::new(move |context: StageContext| {
            crate::looping::run_loop(context, body.clone(), policy.clone())
                .map(|result| result.map(into_artifact))
                .boxed()
        });
        self.push_stage(name.into(), func, StageKind::Loop)
    }

    fn push_stage<T>(
        mut self,
        name: Arc<str>,
        func: Box<StageFn>,
        kind: StageKind,
    ) -> StageBuilder<T>
    where
        T: Send + Sync + 'static,
    {
        let position = self.drafts.len();
        let (names, ends) = (&self.stage_names, &self.stage_name_ends);
        let inserted = self.index.insert(&name, position as u32, |stage| {
            nth_name(names, ends, stage as usize)
        });
        if inserted.is_err() && self.first_duplicate.is_none() {
            self.first_duplicate = Some(position);
        }
        self.stage_names.push_str(&name);
        self.stage_name_ends.push(self.stage_names.len());
        self.dependency_ends.push(self.dependencies.len());
        self.drafts.push(StageSpec {
            name,
            timeout: None,
            retry: RetryPolicy::NONE,
            hint: SchedulingHint::default(),
            spawn: None,
            kind,
            blocking: false,
            retry_set: false,
            timeout_set: false,
            func,
            output_type: std::any::type_name::<T>(),
            exporter: None,
            extras: None,
        });
        StageBuilder {
            builder: self,
            _output: PhantomData,
        }
    }

    /// Checks the stages and resolves their dependencies once: names become indices, the stages get a
    /// topological order, so a run does no string lookups.
    ///
    /// # Errors
    ///
    /// [`BuildError::Empty`] without stages, [`BuildError::DuplicateStage`] when two stages share a
    /// name, [`BuildError::UnknownDependency`] for a dependency that names no stage,
    /// [`BuildError::Cycle`] with the cycle's stages in order, [`BuildError::InvalidRetryPolicy`] and
    /// [`BuildError::ZeroTimeout`] for stage options no run could follow,
    /// [`BuildError::UnknownRead`] and [`BuildError::NotAnAncestor`] for a declared
    /// [`reads`](StageBuilder::reads) that names no stage or a stage that is not an ancestor.
    pub fn build(self) -> Result<Pipeline, BuildError> {
        let PipelineBuilder {
            name,
            default_retry,
            default_timeout,
            read_names,
            mut drafts,
            stage_names,
            stage_name_ends,
            index,
            first_duplicate,
            dependencies,
            dependency_ends,
            pending_names,
            pending_ends,
            durable,
        } = self;
        if drafts.is_empty() {
            return Err(BuildError::Empty);
        }
        let count = drafts.len();
        for draft in &mut drafts {
            if let (Some(retry), false) = (default_retry, draft.retry_set) {
                draft.retry = retry;
            }
            if let (Some(timeout), false) = (default_timeout, draft.timeout_set) {
                draft.timeout = Some(timeout);
            }
        }
        for (position, draft) in drafts.iter().enumerate() {
            if first_duplicate == Some(position) {
                return Err(BuildError::DuplicateStage(draft.name.to_string()));
            }
            if let Err(reason) = draft.retry.validate() {
                return Err(BuildError::InvalidRetryPolicy {
                    stage: draft.name.to_string(),
                    reason,
                });
            }
            if draft.timeout.is_some_and(|timeout| timeout.is_zero()) {
                return Err(BuildError::ZeroTimeout {
                    stage: draft.name.to_string(),
                });
            }
            if durable && draft.codec().is_none() {
                return Err(BuildError::NotDurable {
                    stage: draft.name.to_string(),
                    output_type: draft.output_type,
                });
            }
        }

        // Dependencies as compressed rows: dependency_list[dependency_start[i]..dependency_start[i + 1]].
        let name_of = |stage: u32| nth_name(&stage_names, &stage_name_ends, stage as usize);
        let mut dependency_start = Vec::with_capacity(count + 1);
        let mut dependency_list: Vec<u32> = Vec::with_capacity(dependencies.len());
        let mut dependent_count = vec![0u32; count];
        dependency_start.push(0u32);
        let mut row_begin = 0;
        for (stage, &row_end) in dependency_ends.iter().enumerate() {
            let row_start = dependency_list.len();
            for &dependency in &dependencies[row_begin..row_end] {
                let dependency = match dependency {
                    Dependency::Stage(dependency) => dependency,
                    Dependency::Pending(position) => {
                        let name = nth_name(&pending_names, &pending_ends, position as usize);
                        let Some(dependency) = index.get(name, name_of) else {
                            return Err(BuildError::UnknownDependency {
                                stage: drafts[stage].name.to_string(),
                                missing: name.to_owned(),
                            });
                        };
                        dependency
                    }
                };
                // A dependency named twice counts once.
                if !dependency_list[row_start..].contains(&dependency) {
                    dependency_list.push(dependency);
                    dependent_count[dependency as usize] += 1;
                }
            }
            row_begin = row_end;
            dependency_start.push(dependency_list.len() as u32);
        }

        // Dependents, the reverse edges, in stage order.
        let mut dependent_start = Vec::with_capacity(count + 1);
        dependent_start.push(0u32);
        let mut total = 0u32;
        for &dependents in &dependent_count {
            total += dependents;
            dependent_start.push(total);
        }
        let mut fill = dependent_start.clone();
        let mut dependent_list = vec![0u32; dependency_list.len()];
        for stage in 0..count {
            let row = dependency_start[stage] as usize..dependency_start[stage + 1] as usize;
            for &dependency in &dependency_list[row] {
                let slot = &mut fill[dependency as usize];
                dependent_list[*slot as usize] = stage as u32;
                *slot += 1;
            }
        }

        // Kahn's algorithm gives the topological order; what it cannot reach lies on or behind a cycle.
        let in_degree: Vec<u32> = (0..count)
            .map(|stage| dependency_start[stage + 1] - dependency_start[stage])
            .collect();
        let mut remaining = in_degree.clone();
        let mut order: Vec<u32> = (0..count as u32)
            .filter(|&stage| remaining[stage as usize] == 0)
            .collect();
        let roots = order.clone();
        let mut cursor = 0;
        while cursor < order.len() {
            let stage = order[cursor] as usize;
            cursor += 1;
            let row = dependent_start[stage] as usize..dependent_start[stage + 1] as usize;
            for &dependent in &dependent_list[row] {
                remaining[dependent as usize] -= 1;
                if remaining[dependent as usize] == 0 {
                    order.push(dependent);
                }
            }
        }
        if order.len() < count {
            let path = find_cycle(&remaining, &dependency_start, &dependency_list);
            return Err(BuildError::Cycle {
                path: path
                    .into_iter()
                    .map(|stage| drafts[stage as usize].name.to_string())
                    .collect(),
            });
        }

        resolve_reads(
            &mut drafts,
            read_names,
            |read| index.get(read, name_of),
            &dependency_start,
            &dependency_list,
        )?;
        let routing = drafts
            .iter()
            .any(|draft| draft.kind == StageKind::Router || draft.condition().is_some());
        Ok(Pipeline::from_inner(PipelineInner {
            name: name.unwrap_or_else(|| Arc::from("pipeline")),
            routing,
            stages: drafts,
            index,
            dependency_start,
            dependency_list,
            dependent_start,
            dependent_list,
            in_degree,
            roots,
            order,
            checkpoint_shape: std::sync::OnceLock::new(),
        }))
    }
}

/// Resolves declared reads to stage indices, checking that each names an ancestor of its reader
/// (a walk up the reader's dependencies, done only for stages that declare reads).
fn resolve_reads(
    drafts: &mut [StageSpec],
    read_names: Vec<(u32, Box<str>)>,
    lookup: impl Fn(&str) -> Option<u32>,
    dependency_start: &[u32],
    dependency_list: &[u32],
) -> Result<(), BuildError> {
    if read_names.is_empty() {
        return Ok(());
    }
    let mut seen = vec![u32::MAX; drafts.len()];
    let mut work = Vec::new();
    for (generation, (reader, read)) in read_names.into_iter().enumerate() {
        let generation = generation as u32;
        let reader_name = || drafts[reader as usize].name.to_string();
        let Some(target) = lookup(&read) else {
            return Err(BuildError::UnknownRead {
                stage: reader_name(),
                read: read.into(),
            });
        };
        work.clear();
        work.push(reader);
        let mut found = false;
        while let Some(stage) = work.pop() {
            let row = dependency_start[stage as usize] as usize
                ..dependency_start[stage as usize + 1] as usize;
            for &dependency in &dependency_list[row] {
                if dependency == target {
                    found = true;
                    break;
                }
                if seen[dependency as usize] != generation {
                    seen[dependency as usize] = generation;
                    work.push(dependency);
                }
            }
            if found {
                break;
            }
        }
        if !found {
            return Err(BuildError::NotAnAncestor {
                stage: reader_name(),
                read: read.into(),
            });
        }
        let extras = drafts[reader as usize]
            .extras
            .get_or_insert_with(Default::default);
        if !extras.reads.contains(&target) {
            extras.reads.push(target);
        }
    }
    Ok(())
}

/// A cycle among the stages Kahn's algorithm could not order (`remaining > 0`): every such stage has
/// an unordered dependency, so walking unordered dependencies must revisit a stage. Returns the cycle
/// in execution order, starting and ending at its lowest-index stage.
fn find_cycle(remaining: &[u32], dependency_start: &[u32], dependency_list: &[u32]) -> Vec<u32> {
    let unordered = |stage: usize| remaining[stage] > 0;
    let Some(start) = (0..remaining.len()).find(|&stage| unordered(stage)) else {
        return Vec::new();
    };
    let mut seen_at = vec![usize::MAX; remaining.len()];
    let mut walk: Vec<u32> = Vec::new();
    let mut stage = start;
    while seen_at[stage] == usize::MAX {
        seen_at[stage] = walk.len();
        walk.push(stage as u32);
        let row = dependency_start[stage] as usize..dependency_start[stage + 1] as usize;
        stage = dependency_list[row]
            .iter()
            .map(|&dependency| dependency as usize)
            .find(|&dependency| unordered(dependency))
            .unwrap_or(stage);
    }
    // The walk follows dependencies (backwards in execution order); reverse it.
    let mut cycle: Vec<u32> = walk[seen_at[stage]..].to_vec();
    cycle.reverse();
    let lowest = cycle
        .iter()
        .enumerate()
        .min_by_key(|&(_, &stage)| stage)
        .map_or(0, |(position, _)| position);
    cycle.rotate_left(lowest);
    if let Some(&first) = cycle.first() {
        cycle.push(first);
    }
    cycle
}

impl<T> StageBuilder<T> {
    fn draft(&mut self) -> &mut StageSpec {
        self.builder
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
        let builder = &mut self.builder;
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
        let reader = (self.builder.drafts.len() - 1) as u32;
        for stage in stages {
            self.builder
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
    /// permanent errors never are), so a stage does not retry what cannot succeed.
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
    /// itself, which costs no task and no channel.
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

/// Wraps a stage's output for sharing. Every `()` is the same value, so unit outputs (stages run
/// for their effects) share one allocation instead of making one per run.
fn into_artifact<T: Send + Sync + 'static>(value: T) -> Artifact {
    static UNIT: OnceLock<Artifact> = OnceLock::new();
    if TypeId::of::<T>() == TypeId::of::<()>() {
        return UNIT.get_or_init(|| Arc::new(())).clone();
    }
    Arc::new(value)
}

pub(crate) fn export_as<T: Serialize + 'static>(
    artifact: &(dyn Any + Send + Sync),
) -> Option<Result<serde_json::Value, serde_json::Error>> {
    artifact.downcast_ref::<T>().map(serde_json::to_value)
}
