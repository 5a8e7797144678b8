//! Helpers for the tasks the crates above run on the runtime: a handle that aborts its task when
//! dropped ([`AbortOnDrop`]), work that is either polled in place or spawned ([`InlineOrSpawned`]),
//! and the message of a caught panic ([`panic_message`]).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};

/// A spawned task's handle that aborts the task when dropped, so a task never outlives the
/// future that waits for it (a cancelled round or run takes its tasks down with it).
///
/// Awaiting it gives the task's output, or the [`JoinError`] saying the task panicked or was
/// aborted.
///
/// # Cancel safety
///
/// Dropping it before it finishes aborts the task; the task's output is then lost.
///
/// # Examples
///
/// ```
/// use hivekit_runtime::{execute, AbortOnDrop};
///
/// let answer = execute(async {
///     let task = AbortOnDrop::new(tokio::spawn(async { 6 * 7 }));
///     task.await
/// });
/// assert_eq!(answer.unwrap(), 42);
///
/// // Dropped before it finishes: the task is aborted instead of running on, and what it held is
/// // dropped with it.
/// let aborted = execute(async {
///     let (held, watch) = tokio::sync::oneshot::channel::<()>();
///     let task = AbortOnDrop::new(tokio::spawn(async move {
///         let _held = held;
///         std::future::pending::<()>().await
///     }));
///     drop(task);
///     watch.await.is_err()
/// });
/// assert!(aborted);
/// ```
pub struct AbortOnDrop<T> {
    handle: JoinHandle<T>,
}

impl<T> AbortOnDrop<T> {
    /// Takes charge of `handle`: the task is aborted when this guard is dropped.
    pub fn new(handle: JoinHandle<T>) -> Self {
        Self { handle }
    }

    /// Asks the task to stop now; awaiting the guard then gives its output if it had already
    /// finished, else a cancelled [`JoinError`].
    pub fn abort(&self) {
        self.handle.abort();
    }

    /// Whether the task has finished (its output, if any, is ready to be awaited).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl<T> From<JoinHandle<T>> for AbortOnDrop<T> {
    fn from(handle: JoinHandle<T>) -> Self {
        Self::new(handle)
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Outside tokio's cooperative budget: a poll is one look at the task's state, and a
        // `FuturesUnordered` of many handles (a wide fan's spawned stages) must not turn each poll
        // past the budget into a deferred wake-up that has the set poll every handle again, once
        // per budget's worth of handles (quadratic in the number of handles).
        Pin::new(&mut tokio::task::unconstrained(&mut self.get_mut().handle)).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl<T> fmt::Debug for AbortOnDrop<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortOnDrop")
            .field("id", &self.handle.id())
            .field("finished", &self.handle.is_finished())
            .finish()
    }
}

/// Work its owner either polls in place (cheap work: no task, no channel) or runs as a spawned
/// task (work that should use another core), awaited the same way.
///
/// Both arms give `Result<F::Output, JoinError>`: the inline arm is always `Ok`, the spawned arm
/// is `Err` when its task panicked or was aborted. A spawned task is aborted when this value is
/// dropped.
///
/// The inline future must be [`Unpin`] (box it with [`Box::pin`] otherwise), so that the owner can
/// keep many of these in a `FuturesUnordered` or a `Vec` and poll them without pinning each.
///
/// # Cancel safety
///
/// Dropping it drops the inline future or aborts the spawned task.
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
///
/// use hivekit_runtime::{execute, InlineOrSpawned};
///
/// type Work = Pin<Box<dyn Future<Output = u64> + Send>>;
///
/// let results = execute(async {
///     let cheap: InlineOrSpawned<Work> = InlineOrSpawned::Inline(Box::pin(async { 1 }));
///     let heavy: InlineOrSpawned<Work> = InlineOrSpawned::spawn(async { (1..=10).product() });
///     (cheap.await.unwrap(), heavy.await.unwrap())
/// });
/// assert_eq!(results, (1, 3_628_800));
/// ```
pub enum InlineOrSpawned<F: Future> {
    /// Polled by its owner, in place.
    Inline(F),
    /// Running as its own task, aborted when dropped.
    Spawned(AbortOnDrop<F::Output>),
}

impl<F> InlineOrSpawned<F>
where
    F: Future,
    F::Output: Send + 'static,
{
    /// Spawns `future` (any future with the same output as the inline arm) on the current
    /// runtime with `tokio::spawn`, and keeps its guard.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn<G>(future: G) -> Self
    where
        G: Future<Output = F::Output> + Send + 'static,
    {
        Self::Spawned(AbortOnDrop::new(tokio::spawn(future)))
    }
}

impl<F: Future> InlineOrSpawned<F> {
    /// Whether this is a spawned task.
    pub fn is_spawned(&self) -> bool {
        matches!(self, Self::Spawned(_))
    }
}

impl<F: Future + Unpin> Future for InlineOrSpawned<F> {
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Inline(future) => Pin::new(future).poll(cx).map(Ok),
            Self::Spawned(task) => Pin::new(task).poll(cx),
        }
    }
}

impl<F: Future> fmt::Debug for InlineOrSpawned<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline(..)"),
            Self::Spawned(task) => f.debug_tuple("Spawned").field(task).finish(),
        }
    }
}

/// The message a panic carried: its `&str` or `String` payload (what `panic!` with a message
/// produces), or `"a panic with a non-string payload"`.
///
/// Use it on the payload of `std::panic::catch_unwind` or of [`JoinError::into_panic`], to record
/// a panic in user code as data instead of letting it unwind further.
///
/// # Examples
///
/// ```
/// use std::panic::catch_unwind;
///
/// use hivekit_runtime::panic_message;
///
/// let payload = catch_unwind(|| panic!("agent {} lost its mind", 7)).unwrap_err();
/// assert_eq!(panic_message(&*payload), "agent 7 lost its mind");
///
/// let payload = catch_unwind(|| std::panic::panic_any(42)).unwrap_err();
/// assert_eq!(panic_message(&*payload), "a panic with a non-string payload");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// [`panic_message`] of a caught panic's payload, which is dropped here: quietly, so that a payload
/// whose own destructor panics (`panic_any` of a type that panics when dropped) does not unwind
/// from where the first panic was caught.
///
/// # Examples
///
/// ```
/// use std::panic::catch_unwind;
///
/// use hivekit_runtime::take_panic_message;
///
/// struct Bomb;
/// impl Drop for Bomb {
///     fn drop(&mut self) {
///         panic!("dropped");
///     }
/// }
///
/// let payload = catch_unwind(|| std::panic::panic_any(Bomb)).unwrap_err();
/// assert_eq!(take_panic_message(payload), "a panic with a non-string payload");
/// ```
pub fn take_panic_message(payload: Box<dyn Any + Send>) -> String {
    let message = panic_message(&*payload);
    if let Err(again) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)))
    {
        // Its payload may be as broken: leaked, not dropped.
        std::mem::forget(again);
    }
    message
}
