//! What a stage sees while it runs: its inputs, its attempt, the run's cancellation.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::error::{ArtifactError, StageError};
use crate::events::EventSink;
use crate::fan_out::{self, FanOut, FanOutReport, FanOutSummary};
use crate::pipeline::{Artifact, PipelineInner};
use crate::report::downcast;
use crate::seed::{mix, stage_seed};

/// State one run shares with its stages (which may run on other threads).
pub(crate) struct RunShared {
    pub(crate) pipeline: Arc<PipelineInner>,
    pub(crate) artifacts: Box<[OnceLock<Artifact>]>,
    pub(crate) cancel: CancellationToken,
    pub(crate) events: Option<EventSink>,
    pub(crate) seed: u64,
    pub(crate) fan_outs: parking_lot::Mutex<Vec<(u32, FanOutSummary)>>,
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
    pub(crate) fn new(shared: Arc<RunShared>, stage: u32, attempt: u32) -> Self {
        Self {
            shared,
            stage,
            attempt,
        }
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

    /// The output of dependency `stage`, shared without copying.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::UnknownStage`] if no stage has that name, [`ArtifactError::NotADependency`]
    /// if this stage does not depend on it, [`ArtifactError::WrongType`] if its output is not a `T`.
    /// Converts into [`StageError::Input`], so `?` works in a stage.
    pub fn input<T: Send + Sync + 'static>(&self, stage: &str) -> Result<Arc<T>, ArtifactError> {
        let pipeline = &self.shared.pipeline;
        let dependency = pipeline
            .dependencies(self.stage as usize)
            .iter()
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

    /// The run's cancellation token (a child of [`RunOptions::cancel`](crate::RunOptions::cancel)),
    /// cancelled when the run stops early; hand it to work the stage spawns itself.
    pub fn cancellation(&self) -> CancellationToken {
        self.shared.cancel.clone()
    }

    /// Runs `f` on every item, at most `policy.width` at once, and succeeds when at least
    /// `policy.required` of them succeed (k-of-n). Sub-tasks are polled by this stage (no task each);
    /// a panicking sub-task counts as failed. Unless [`FanOut::wait_all`] is set, it stops as soon as
    /// the outcome is certain and drops the sub-tasks still running (reported as not run). The
    /// stage's report lists a [`FanOutSummary`] of every fan-out.
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
        F: FnMut(I::Item) -> Fut,
        Fut: Future<Output = Result<T, StageError>>,
    {
        let (result, summary) = fan_out::run(items, policy, self.attempt, f).await;
        self.shared.fan_outs.lock().push((self.stage, summary));
        result
    }
}
