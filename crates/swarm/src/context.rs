//! What a stage sees while it runs: its inputs, its attempt, the run's cancellation.

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::artifact_cell::ArtifactCell;
use crate::attempt_gate::AttemptGate;
use crate::clock::RunClock;
use crate::error::{ArtifactError, StageError};
use crate::events::{EventSink, StageEvent};
use crate::fan_out::{self, FanOut, FanOutReport, FanOutSummary};
use crate::input::RunInput;
use crate::pipeline::PipelineInner;
use crate::report::{downcast, RunReport};
use crate::seed::{mix, stage_seed};

/// State one run shares with its stages (which may run on other threads).
pub(crate) struct RunShared {
    pub(crate) pipeline: Arc<PipelineInner>,
    pub(crate) artifacts: Box<[ArtifactCell]>,
    pub(crate) cancel: hivekit_runtime::LazyCancel,
    pub(crate) events: Option<EventSink>,
    pub(crate) seed: u64,
    pub(crate) input: Option<RunInput>,
    /// The run's clock, started with the run: attempt records and stages are timed on it.
    pub(crate) clock: RunClock,
    pub(crate) fan_outs: parking_lot::Mutex<Vec<(u32, FanOutSummary)>>,
    /// Loop stages' iteration reports: stage, attempt, iteration.
    pub(crate) iterations: parking_lot::Mutex<Vec<(u32, u32, u32, RunReport)>>,
    /// Set for a durable run: records each finished stage, restores earlier ones.
    pub(crate) hooks: Option<Arc<dyn crate::hooks::RunHooks>>,
    /// The runs nested in this one's stages, and the run this one is nested in.
    pub(crate) nesting: crate::run::Scopes,
    /// With an event sink: per stage, the gate its attempts' own events go through.
    pub(crate) attempt_gates: Option<Box<[AttemptGate]>>,
}

impl RunShared {
    /// The per-stage attempt gates for a run of `stages` stages with or without an event sink.
    pub(crate) fn attempt_gates(stages: usize, events: bool) -> Option<Box<[AttemptGate]>> {
        events.then(|| (0..stages).map(|_| AttemptGate::new()).collect())
    }

    /// `attempt` of `stage` started: its events go out until it ends.
    #[inline]
    fn attempt_started(&self, stage: u32, attempt: u32) {
        if let Some(gates) = &self.attempt_gates {
            gates[stage as usize].open(attempt);
        }
    }

    /// The current attempt of `stage` ended (before its stage's `Retried`, `Finished` or
    /// `Cancelled` goes out): events it sends from now on are dropped, and those it is sending
    /// are delivered first.
    #[inline]
    pub(crate) fn attempt_ended(&self, stage: u32) {
        if let Some(gates) = &self.attempt_gates {
            gates[stage as usize].close();
        }
    }
}

/// Sends the events an attempt reports itself ([`StageEvent::Progress`], a fan-out's items, a
/// loop's iterations) through its stage's [`AttemptGate`], so that none comes after the event
/// that ended the attempt.
pub(crate) struct AttemptEvents<'a> {
    sink: &'a EventSink,
    gate: Option<&'a AttemptGate>,
    attempt: u32,
    /// The stage's name.
    pub(crate) stage: &'a Arc<str>,
}

impl AttemptEvents<'_> {
    pub(crate) fn emit(&self, make: impl FnOnce() -> StageEvent) {
        match self.gate {
            Some(gate) => gate.deliver(self.attempt, || self.sink.emit(make())),
            None => self.sink.emit(make()),
        }
    }
}

/// Handed to a stage's function on every attempt: read dependencies' artifacts, learn the attempt
/// number, watch for cancellation, fan out sub-tasks.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::{ArtifactError, Pipeline, StageContext, StageError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pipeline = Pipeline::builder()
///     .stage("parse", |_: StageContext| async { Ok::<_, StageError>(String::from("ast")) })
///     .stage("check", |ctx: StageContext| async move {
///         let ast = ctx.input::<String>("parse")?; // an Arc<String>, no copy
///         // Asking for the wrong type is a typed error, not a panic.
///         assert!(matches!(ctx.input::<u32>("parse"), Err(ArtifactError::WrongType { .. })));
///         Ok::<_, StageError>(ast.len())
///     })
///     .after(["parse"])
///     .build()?;
/// assert_eq!(*pipeline.run().await.artifact::<usize>("check")?, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StageContext {
    shared: Arc<RunShared>,
    stage: u32,
    attempt: u32,
}

impl std::fmt::Debug for StageContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageContext")
            .field("stage", &self.name())
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl StageContext {
    /// The context of a starting attempt (its events go out until it ends).
    #[inline]
    pub(crate) fn new(shared: Arc<RunShared>, stage: u32, attempt: u32) -> Self {
        shared.attempt_started(stage, attempt);
        Self {
            shared,
            stage,
            attempt,
        }
    }

    /// The run's hooks and this stage's index (for checkpoint interrupts).
    pub(crate) fn hooks(&self) -> (Option<&Arc<dyn crate::hooks::RunHooks>>, u32) {
        (self.shared.hooks.as_ref(), self.stage)
    }

    /// This stage's name.
    pub fn name(&self) -> &str {
        &self.shared.pipeline.stages[self.stage as usize].name
    }

    /// The attempt number, 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A seed for this stage's attempt, derived from the run's seed: use it for anything random in the
    /// stage to keep seeded runs reproducible.
    pub fn seed(&self) -> u64 {
        mix(stage_seed(self.shared.seed, self.stage) ^ u64::from(self.attempt))
    }

    /// The name of the pipeline this stage belongs to.
    pub fn pipeline_name(&self) -> &str {
        &self.shared.pipeline.name
    }

    /// The run's input ([`RunOptions::with_input`](crate::RunOptions::with_input)), shared without
    /// copying.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::NoRunInput`] if the run has none, [`ArtifactError::RunInputWrongType`] if
    /// it is not a `T`. Converts into [`StageError::Input`], so `?` works in a stage.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{ArtifactError, Pipeline, RunOptions, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("greet", |ctx: StageContext| async move {
    ///         assert!(matches!(ctx.run_input::<u32>(), Err(ArtifactError::RunInputWrongType { .. })));
    ///         Ok::<_, StageError>(format!("hello {}", ctx.run_input::<&str>()?))
    ///     })
    ///     .build()?;
    /// let report = pipeline.run_with(RunOptions::default().with_input("pr-42")).await;
    /// assert_eq!(*report.artifact::<String>("greet")?, "hello pr-42");
    /// assert!(!pipeline.run().await.is_success()); // no input: a typed error in the stage
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_input<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, ArtifactError> {
        let input = self
            .shared
            .input
            .as_ref()
            .ok_or_else(|| ArtifactError::NoRunInput {
                stage: self.name().to_owned(),
            })?;
        input
            .get::<T>()
            .ok_or_else(|| ArtifactError::RunInputWrongType {
                stage: self.name().to_owned(),
                expected: std::any::type_name::<T>().to_owned(),
                actual: input.type_name().to_owned(),
            })
    }

    /// The output of `stage`, shared without copying: a dependency, or an ancestor this stage
    /// declared with [`reads`](crate::StageBuilder::reads).
    ///
    /// # Errors
    ///
    /// [`ArtifactError::UnknownStage`] if no stage has that name, [`ArtifactError::NotADependency`]
    /// if this stage neither depends on it nor declared a read of it, [`ArtifactError::Missing`]
    /// if it produced nothing (a route not taken), [`ArtifactError::WrongType`] if its output is
    /// not a `T`. Converts into [`StageError::Input`], so `?` works in a stage.
    pub fn input<T: Send + Sync + 'static>(&self, stage: &str) -> Result<Arc<T>, ArtifactError> {
        let pipeline = &self.shared.pipeline;
        let spec = &pipeline.stages[self.stage as usize];
        let dependency = pipeline
            .dependencies(self.stage as usize)
            .iter()
            .chain(spec.reads())
            .map(|&dependency| dependency as usize)
            .find(|&dependency| &*pipeline.stages[dependency].name == stage);
        let Some(dependency) = dependency else {
            return Err(match pipeline.lookup(stage) {
                Some(_) => ArtifactError::NotADependency {
                    reader: self.name().to_owned(),
                    stage: stage.to_owned(),
                },
                None => ArtifactError::UnknownStage {
                    stage: stage.to_owned(),
                },
            });
        };
        downcast(
            pipeline,
            dependency,
            self.shared.artifacts[dependency].get(),
        )
    }

    /// Whether the run is being stopped (fail-fast, deadline or cancellation). A stage that is
    /// stopped is dropped at its next await anyway; this is for long synchronous work.
    pub fn is_cancelled(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// A token cancelled when the run stops early (fail-fast, the deadline,
    /// [`RunOptions::cancel`](crate::RunOptions::cancel) being cancelled, which the run watches,
    /// or the run's future being dropped); hand it to work the stage spawns itself.
    ///
    /// A child of the run's own token: the stage may cancel it to stop its own work, which stops
    /// neither the run nor other stages' work ([`is_cancelled`](Self::is_cancelled) stays false).
    pub fn cancellation(&self) -> CancellationToken {
        self.shared.cancel.token().child_token()
    }

    /// Reports this stage's own progress (`done` of `total` units of work) as a
    /// [`StageEvent::Progress`] to the run's event sink; free when the run has none.
    ///
    /// Only the stage's current attempt reports: once the attempt has ended (its stage's
    /// `Retried`, `Finished` or `Cancelled` went out), reports through this context, or a clone
    /// of it (a blocking attempt abandoned at its timeout runs on in its thread; a task the stage
    /// spawned), are dropped, so a watcher never sees progress after the event that ended the
    /// attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{EventSink, Pipeline, RunOptions, StageContext, StageError, StageEvent};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("download", |ctx: StageContext| async move {
    ///         for chunk in 1..=4 {
    ///             ctx.progress(chunk, 4);
    ///         }
    ///         Ok::<_, StageError>(())
    ///     })
    ///     .build()?;
    /// let (sink, mut events) = EventSink::channel();
    /// let _ = pipeline.run_with(RunOptions::default().with_events(sink)).await;
    /// let mut progress = Vec::new();
    /// while let Ok(event) = events.try_recv() {
    ///     if let StageEvent::Progress { done, total, .. } = event {
    ///         progress.push((done, total));
    ///     }
    /// }
    /// assert_eq!(progress, [(1, 4), (2, 4), (3, 4), (4, 4)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn progress(&self, done: u64, total: u64) {
        if let Some(events) = self.events() {
            events.emit(|| StageEvent::Progress {
                stage: events.stage.clone(),
                done,
                total,
            });
        }
    }

    /// This attempt's own events, if the run has an event sink.
    pub(crate) fn events(&self) -> Option<AttemptEvents<'_>> {
        let sink = self.shared.events.as_ref()?;
        Some(AttemptEvents {
            sink,
            gate: (self.shared.attempt_gates.as_ref()).map(|gates| &gates[self.stage as usize]),
            attempt: self.attempt,
            stage: &self.shared.pipeline.stages[self.stage as usize].name,
        })
    }

    pub(crate) fn record_iteration(&self, iteration: u32, report: &RunReport) {
        if let Some(events) = self.events() {
            events.emit(|| StageEvent::IterationFinished {
                stage: events.stage.clone(),
                iteration,
                outcome: report.outcome(),
            });
        }
        self.shared
            .iterations
            .lock()
            .push((self.stage, self.attempt, iteration, report.clone()));
    }

    /// Runs `f` on every item, at most `policy.width` at once, and succeeds when at least
    /// `policy.required` of them succeed (k-of-n). Sub-tasks are polled by this stage (no task each);
    /// a panicking sub-task counts as failed. Unless [`FanOut::wait_all`] is set, it stops as soon as
    /// the outcome is certain and drops the sub-tasks still running (reported as not run). The
    /// stage's report lists a [`FanOutSummary`] of every fan-out.
    ///
    /// With [`FanOut::retry`], a failed item is retried alone (a clone of the item, after the
    /// policy's backoff, during which it holds no place in the width); the stage's own retry
    /// would rerun every item. Each item's start and finish is a [`StageEvent::ItemStarted`] and
    /// [`StageEvent::ItemFinished`] to the run's event sink.
    ///
    /// # Errors
    ///
    /// [`StageError::InvalidFanOut`] for a zero width or more required successes than items;
    /// [`StageError::FanOut`] when fewer than `required` sub-tasks succeed.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_swarm::{FanOut, Pipeline, StageContext, StageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pipeline = Pipeline::builder()
    ///     .stage("ask", |ctx: StageContext| async move {
    ///         let answers = ctx
    ///             .fan_out(0..5u32, FanOut::new(2).require(3), |model| async move {
    ///                 if model == 1 { Err(StageError::msg("model 1 is down")) } else { Ok(model * 10) }
    ///             })
    ///             .await?;
    ///         Ok::<_, StageError>(answers.into_successes().collect::<Vec<_>>())
    ///     })
    ///     .build()?;
    /// let report = pipeline.run().await;
    /// assert_eq!(report.artifact::<Vec<u32>>("ask")?.len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fan_out<I, F, Fut, T>(
        &self,
        items: I,
        policy: FanOut,
        f: F,
    ) -> Result<FanOutReport<T>, StageError>
    where
        I: IntoIterator,
        I::Item: Clone,
        F: FnMut(I::Item) -> Fut,
        Fut: Future<Output = Result<T, StageError>>,
    {
        self.fan_out_with(items, policy, fan_out::volatile(), f)
            .await
    }

    /// A fan-out that restores and records items as `durability` says.
    pub(crate) async fn fan_out_with<I, F, Fut, T, R>(
        &self,
        items: I,
        policy: FanOut,
        durability: fan_out::Durability<T, R>,
        f: F,
    ) -> Result<FanOutReport<T>, StageError>
    where
        I: IntoIterator,
        I::Item: Clone,
        F: FnMut(I::Item) -> Fut,
        Fut: Future<Output = Result<T, StageError>>,
        R: FnMut(usize, &T) -> Result<(), StageError>,
    {
        let events = self.events();
        let (result, summary) = fan_out::run(
            items,
            policy,
            self.attempt,
            self.seed(),
            events,
            durability,
            Some(fan_out::Unfinished {
                fan_outs: &self.shared.fan_outs,
                stage: self.stage,
            }),
            f,
        )
        .await;
        self.shared.fan_outs.lock().push((self.stage, summary));
        result
    }
}
