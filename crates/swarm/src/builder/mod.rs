//! Building a pipeline: stages, their options, and the one-time dependency resolution.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use hivekit_lockfree::SchedulingHint;
use serde::Serialize;

use crate::context::StageContext;
use crate::error::{BuildError, StageError};
use crate::looping::{LoopPolicy, LoopReport};
use crate::names::NameIndex;
use crate::pipeline::{Pipeline, PipelineInner, StageKind, StageSpec};
use crate::retry::RetryPolicy;
use crate::route::Route;
use crate::stage_fn::{StageFn, TypedStage};

mod resolve;
mod stage;

use resolve::{find_cycle, resolve_reads};
pub use stage::StageBuilder;

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
    /// Boxed: the builder moves by value through every `stage(..).after(..).into_builder()`, and
    /// moving a pointer instead of the whole state saved about 300 instructions per stage (several
    /// copies of some 330 bytes) in `pipeline_build/hivekit-build/stages_100k`.
    state: Box<BuilderState>,
}

/// What a [`PipelineBuilder`] has collected so far.
#[derive(Default)]
struct BuilderState {
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
    /// The positions of the loop stages whose body a durable run cannot restore wholly.
    unrestorable_loops: Vec<u32>,
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
                &self
                    .state
                    .drafts
                    .iter()
                    .map(|d| &*d.name)
                    .collect::<Vec<_>>(),
            )
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
            state: Box::new(BuilderState {
                drafts: Vec::with_capacity(stages),
                stage_name_ends: Vec::with_capacity(stages),
                index: NameIndex::with_capacity(stages),
                dependency_ends: Vec::with_capacity(stages),
                ..BuilderState::default()
            }),
        }
    }

    /// Declares the pipeline durable: [`build`](PipelineBuilder::build) then checks that every
    /// stage's artifact can be checkpointed (declared [`durable`](StageBuilder::durable), or `()`;
    /// a [loop](PipelineBuilder::repeat) stage, restored iteration by iteration, passes when every
    /// stage of its body does),
    /// so a [`checkpoint::Durable`](crate::checkpoint::Durable) run can restore every stage.
    pub fn durable(mut self) -> Self {
        self.state.durable = true;
        self
    }

    /// Names the pipeline: the name appears in tracing spans, Mermaid and DOT exports.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.state.name = Some(name.into());
        self
    }

    /// The retry policy of every stage that sets none of its own with
    /// [`retry`](StageBuilder::retry).
    pub fn default_retry(mut self, policy: RetryPolicy) -> Self {
        self.state.default_retry = Some(policy);
        self
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
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.state.default_timeout = Some(timeout);
        self
    }

    /// Adds a stage: `f` is called with a [`StageContext`] for every attempt and returns a future of
    /// the stage's output. The output becomes the stage's artifact, shared with dependents without
    /// copying.
    #[inline]
    pub fn stage<F, Fut, T>(self, name: impl Into<Arc<str>>, f: F) -> StageBuilder<T>
    where
        F: Fn(StageContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, StageError>> + Send + 'static,
        T: Send + Sync + 'static,
    {
        // A closure that captures nothing is zero-sized, and boxing it allocates nothing.
        self.push_stage(name.into(), Box::new(TypedStage(f)), StageKind::Plain)
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
        self.push_stage(name.into(), Box::new(TypedStage(f)), StageKind::Router)
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
        mut self,
        name: impl Into<Arc<str>>,
        body: Pipeline,
        policy: LoopPolicy,
    ) -> StageBuilder<LoopReport> {
        if !body.inner().restores_every_stage() {
            let position = self.state.drafts.len() as u32;
            self.state.unrestorable_loops.push(position);
        }
        let func = TypedStage(move |context: StageContext| {
            crate::looping::run_loop(context, body.clone(), policy.clone())
        });
        self.push_stage(name.into(), Box::new(func), StageKind::Loop)
    }

    fn push_stage<T>(
        mut self,
        name: Arc<str>,
        func: Box<dyn StageFn>,
        kind: StageKind,
    ) -> StageBuilder<T>
    where
        T: Send + Sync + 'static,
    {
        let position = self.state.drafts.len();
        let (names, ends) = (&self.state.stage_names, &self.state.stage_name_ends);
        let inserted = self.state.index.insert(&name, position as u32, |stage| {
            nth_name(names, ends, stage as usize)
        });
        if inserted.is_err() && self.state.first_duplicate.is_none() {
            self.state.first_duplicate = Some(position);
        }
        self.state.stage_names.push_str(&name);
        self.state
            .stage_name_ends
            .push(self.state.stage_names.len());
        self.state
            .dependency_ends
            .push(self.state.dependencies.len());
        self.state.drafts.push(StageSpec {
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
    /// [`BuildError::Empty`] without stages, [`BuildError::EmptyStageName`] for a stage named `""`,
    /// [`BuildError::DuplicateStage`] when two stages share a name, [`BuildError::UnknownDependency`]
    /// for a dependency that names no stage, [`BuildError::Cycle`] with the cycle's stages in order, [`BuildError::InvalidRetryPolicy`] and
    /// [`BuildError::ZeroTimeout`] for stage options no run could follow,
    /// [`BuildError::UnknownRead`] and [`BuildError::NotAnAncestor`] for a declared
    /// [`reads`](StageBuilder::reads) that names no stage or a stage that is not an ancestor.
    pub fn build(self) -> Result<Pipeline, BuildError> {
        let BuilderState {
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
            unrestorable_loops,
        } = *self.state;
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
        // A loop stage has no codec: a durable run restores it iteration by iteration, wholly
        // when its body restores every stage.
        let restorable =
            |position: usize| restorable(&drafts[position], position, &unrestorable_loops);
        for (position, draft) in drafts.iter().enumerate() {
            if draft.name.is_empty() {
                return Err(BuildError::EmptyStageName { position });
            }
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
            if durable && !restorable(position) {
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
        // The row each stage was last listed in as a dependency: a dependency named twice in one
        // row counts once, found in O(1) (a search of the row was quadratic in a wide fan-in).
        let mut listed_in = vec![u32::MAX; count];
        dependency_start.push(0u32);
        let mut row_begin = 0;
        for (stage, &row_end) in dependency_ends.iter().enumerate() {
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
                let listed = &mut listed_in[dependency as usize];
                if *listed != stage as u32 {
                    *listed = stage as u32;
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
        let spawning = drafts.iter().any(StageSpec::spawns);
        Ok(Pipeline::from_inner(PipelineInner {
            name: name.unwrap_or_else(|| Arc::from("pipeline")),
            routing,
            spawning,
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
            unrestorable_loops,
            spare_stages: crate::report::SpareStages::default(),
        }))
    }
}

pub(crate) fn export_as<T: Serialize + 'static>(
    artifact: &(dyn Any + Send + Sync),
) -> Option<Result<serde_json::Value, serde_json::Error>> {
    artifact.downcast_ref::<T>().map(serde_json::to_value)
}

/// Whether a durable run restores stage `spec` at `position`: it has a codec, or it is a loop
/// stage over a body that restores every stage (not among `unrestorable_loops`).
pub(crate) fn restorable(spec: &StageSpec, position: usize, unrestorable_loops: &[u32]) -> bool {
    spec.codec().is_some()
        || (spec.kind == StageKind::Loop && !unrestorable_loops.contains(&(position as u32)))
}
