//! A stage's function with its output type erased, and the two ways the run starts an attempt:
//! boxed (an attempt that may be retried or timed), or built and polled once in the run's spare
//! heap block (a stage's single attempt, which most often finishes on that poll and then costs no
//! allocation).

use std::any::TypeId;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use hivekit_runtime::{start_in_spare, First, Spare};

use crate::context::StageContext;
use crate::error::StageError;
use crate::pipeline::Artifact;

/// What an attempt of a stage ends with, its output type erased.
pub(crate) type AttemptResult = Result<Output, StageError>;

/// What a successful attempt produced, its type erased.
pub(crate) enum Output {
    /// `()`: every unit output is the one shared artifact of [`unit_artifact`], so a stage run
    /// for its effects hands over nothing (no clone of that `Arc` now and no drop later: two
    /// atomic read-modify-writes per stage, a tenth of a no-op stage's time).
    Unit,
    /// Any other output, wrapped for sharing.
    Value(Artifact),
}

impl Output {
    /// Wraps a stage's output. Every `()` is the same value: see [`Output::Unit`].
    #[inline]
    pub(crate) fn of<T: Send + Sync + 'static>(value: T) -> Self {
        if TypeId::of::<T>() == TypeId::of::<()>() {
            return Self::Unit;
        }
        Self::Value(Arc::new(value))
    }

    /// The output as an artifact (for a unit output, a clone of the shared one).
    pub(crate) fn into_artifact(self) -> Artifact {
        match self {
            Self::Unit => unit_artifact().clone(),
            Self::Value(artifact) => artifact,
        }
    }
}

/// A stage's function with its output type erased: the object-safe face of the closure a user
/// hands to `stage`, `router` or `repeat`.
pub(crate) trait StageFn: Send + Sync {
    /// Starts an attempt: its future, boxed. A panic in the user's function propagates (the
    /// caller catches it).
    fn call(&self, context: StageContext) -> BoxFuture<'static, AttemptResult>;

    /// Starts an attempt in `spare`'s block and polls it once (see [`start_in_spare`]).
    ///
    /// # Errors
    ///
    /// A panic in the user's function or in the poll, as `catch_unwind` gives it.
    fn start_in(
        &self,
        context: StageContext,
        spare: &mut Spare,
        cx: &mut Context<'_>,
    ) -> std::thread::Result<First<'static, AttemptResult>>;
}

/// A user's stage function `F`, returning futures of `Result<T, StageError>`.
pub(crate) struct TypedStage<F>(pub(crate) F);

impl<F, Fut, T> StageFn for TypedStage<F>
where
    F: Fn(StageContext) -> Fut + Send + Sync,
    Fut: Future<Output = Result<T, StageError>> + Send + 'static,
    T: Send + Sync + 'static,
{
    fn call(&self, context: StageContext) -> BoxFuture<'static, AttemptResult> {
        Box::pin(IntoArtifact {
            future: (self.0)(context),
        })
    }

    fn start_in(
        &self,
        context: StageContext,
        spare: &mut Spare,
        cx: &mut Context<'_>,
    ) -> std::thread::Result<First<'static, AttemptResult>> {
        let future = catch_unwind(AssertUnwindSafe(|| (self.0)(context)))?;
        start_in_spare(IntoArtifact { future }, spare, cx)
    }
}

pin_project_lite::pin_project! {
    /// An attempt's future with its output wrapped as an [`Artifact`]: `futures`' `Map` without
    /// its finished state, which costs a move of the whole future at the end (the run never polls
    /// an attempt again once it ended; were it polled, the panic of a finished `async fn` would be
    /// caught as the attempt's).
    struct IntoArtifact<Fut> {
        #[pin]
        future: Fut,
    }
}

impl<Fut, T> Future for IntoArtifact<Fut>
where
    Fut: Future<Output = Result<T, StageError>>,
    T: Send + Sync + 'static,
{
    type Output = AttemptResult;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AttemptResult> {
        self.project()
            .future
            .poll(cx)
            .map(|result| result.map(Output::of))
    }
}

/// The artifact of every `()` output: unit outputs (stages run for their effects) share one
/// allocation instead of making one per run.
pub(crate) fn unit_artifact() -> &'static Artifact {
    static UNIT: OnceLock<Artifact> = OnceLock::new();
    UNIT.get_or_init(|| Arc::new(()))
}
