//! A heap block kept from one call to the next, so that futures that finish on their first poll
//! cost no allocation.
//!
//! A caller that holds work of any type behind `dyn` (a hive's agents, a pipeline's stages) has to
//! keep each call's future on the heap: boxing it costs an allocation and a free per call, about a
//! tenth of a 1,000-agent round and a sixth of a no-op pipeline stage. Most such futures finish on
//! their first poll. [`start_in_spare`] builds the future in a block kept from the previous call
//! (the same layout: in practice, the same future type), polls it once in place, and, if it
//! finished, drops it in place and keeps the block for the next call. A future still pending takes
//! the block with it as an ordinary `Box`.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll};

/// A pinned, boxed future that can move between threads (what a pending call becomes).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An empty heap block of some layout, or none: the memory [`start_in_spare`] reuses.
///
/// Keep one per caller that starts calls one after another (a round, a run); it frees its block
/// when dropped.
///
/// # Examples
///
/// ```
/// use std::future::{poll_fn, ready};
/// use std::task::Poll;
///
/// use hivekit_runtime::{start_in_spare, First, Spare};
///
/// # pollster::block_on(async {
/// let mut spare = Spare::new();
/// let sum = poll_fn(|cx| {
///     let mut sum = 0;
///     for n in 0..3u64 {
///         // One block serves all three calls: each finishes on its first poll.
///         match start_in_spare(async move { n + 1 }, &mut spare, cx) {
///             Ok(First::Ready(value)) => sum += value,
///             Ok(First::Pending(_)) => unreachable!("an async block without awaits is ready"),
///             Err(panic) => std::panic::resume_unwind(panic),
///         }
///     }
///     Poll::Ready(sum)
/// })
/// .await;
/// assert_eq!(sum, 6);
/// # });
/// ```
pub struct Spare {
    block: Option<(NonNull<u8>, Layout)>,
}

// SAFETY: the block holds no value, only memory from the global allocator, which any thread may
// use and free.
unsafe impl Send for Spare {}

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spare")
            .field("layout", &self.block.map(|(_, layout)| layout))
            .finish()
    }
}

impl Default for Spare {
    fn default() -> Self {
        Self::new()
    }
}

impl Spare {
    /// No block yet: the first call allocates one.
    pub const fn new() -> Self {
        Self { block: None }
    }

    /// A block for `layout` (not zero-sized): the spare one if it has that layout, else a new one
    /// (the spare one, of another layout, is freed).
    #[inline]
    fn take(&mut self, layout: Layout) -> NonNull<u8> {
        match self.block.take() {
            Some((block, held)) if held == layout => block,
            other => Self::fresh(other, layout),
        }
    }

    /// A new block for `layout` (not zero-sized), after freeing `old`: out of line, so that the
    /// reuse above stays small where it is inlined.
    #[cold]
    #[inline(never)]
    fn fresh(old: Option<(NonNull<u8>, Layout)>, layout: Layout) -> NonNull<u8> {
        if let Some((block, held)) = old {
            // SAFETY: `block` was allocated by `alloc` with `held` and holds no value.
            unsafe { dealloc(block.as_ptr(), held) };
        }
        // SAFETY: `layout` is not zero-sized (checked by the caller).
        let block = unsafe { alloc(layout) };
        NonNull::new(block).unwrap_or_else(|| handle_alloc_error(layout))
    }

    /// Keeps an empty block of `layout` for the next call.
    #[inline]
    fn keep(&mut self, block: NonNull<u8>, layout: Layout) {
        if let Some((old, held)) = self.block.replace((block, layout)) {
            // SAFETY: as in `take`.
            unsafe { dealloc(old.as_ptr(), held) };
        }
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        if let Some((block, layout)) = self.block.take() {
            // SAFETY: as in `take`.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

/// A call after its first poll: its answer, or its future, still pending, on the heap.
pub enum First<'a, T> {
    /// The future finished on its first poll (and was dropped; the block is kept).
    Ready(T),
    /// The future is pending: it took the block with it, to be polled again when woken.
    Pending(BoxFuture<'a, T>),
}

impl<T: std::fmt::Debug> std::fmt::Debug for First<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ready(value) => f.debug_tuple("Ready").field(value).finish(),
            Self::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// Builds `future` in `spare`'s block and polls it once: a future that finishes is dropped in
/// place and the block kept for the next call; a pending one takes the block as its `Box`. A
/// zero-sized future allocates nothing either way.
///
/// # Errors
///
/// A panic in the poll is returned as `Err` (the payload, as `catch_unwind` gives it) with the
/// future dropped and the block kept; a panic in that drop is swallowed, so that a broken call
/// cannot take its caller down.
///
/// # Examples
///
/// See [`Spare`].
#[inline]
pub fn start_in_spare<'a, F>(
    future: F,
    spare: &mut Spare,
    cx: &mut Context<'_>,
) -> std::thread::Result<First<'a, F::Output>>
where
    F: Future + Send + 'a,
{
    let layout = Layout::new::<F>();
    if layout.size() == 0 {
        // Nothing to allocate (and `alloc` must not be asked for zero bytes).
        let mut boxed = Box::pin(future);
        return match catch_unwind(AssertUnwindSafe(|| boxed.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Ok(First::Ready(output)),
            Ok(Poll::Pending) => Ok(First::Pending(boxed)),
            Err(panic) => {
                let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
                Err(panic)
            }
        };
    }
    let block = spare.take(layout).cast::<F>();
    // SAFETY: `block` is allocated for one `F` and holds no value.
    unsafe { block.as_ptr().write(future) };
    let polled = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the future is never moved from here on: it is dropped in place below, or the
        // `Box` that takes over this very allocation keeps it where it is.
        let pinned = unsafe { Pin::new_unchecked(&mut *block.as_ptr()) };
        pinned.poll(cx)
    }));
    let answer = match polled {
        Ok(Poll::Pending) => {
            // SAFETY: `block` was allocated by the global allocator with `Layout::new::<F>()` and
            // holds an `F`: exactly what a `Box<F>` owns, and frees the same way.
            let boxed: Box<F> = unsafe { Box::from_raw(block.as_ptr()) };
            return Ok(First::Pending(Box::into_pin(boxed)));
        }
        Ok(Poll::Ready(output)) => Ok(First::Ready(output)),
        Err(panic) => Err(panic),
    };
    // A panic in the future's destructor leaves it half dropped; it is never touched again, and
    // its memory is reused.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the block holds a live `F` that nothing else refers to (the poll has returned).
        unsafe { ptr::drop_in_place(block.as_ptr()) }
    }));
    spare.keep(block.cast(), layout);
    answer
}

#[cfg(test)]
mod tests {
    use std::future::{pending, poll_fn, ready};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Poll;

    use super::{start_in_spare, First, Spare};

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn ready_futures_reuse_one_block_and_are_dropped_and_pending_ones_keep_running() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut spare = Spare::new();
        let outcome = poll_fn(|cx| {
            let mut answers = Vec::new();
            for n in 0..5u64 {
                let held = Counted(Arc::clone(&drops));
                let started = start_in_spare(
                    async move {
                        let _held = held;
                        n * 2
                    },
                    &mut spare,
                    cx,
                );
                match started {
                    Ok(First::Ready(value)) => answers.push(value),
                    _ => panic!("an instant future answers at once"),
                }
            }
            let kept = spare.block.is_some();
            // A pending future takes the block with it (as its `Box`), and keeps its state.
            let bytes = [1u8; 24];
            let started = start_in_spare(
                async move {
                    pending::<()>().await;
                    bytes
                },
                &mut spare,
                cx,
            );
            let still_pending = matches!(started, Ok(First::Pending(_)));
            let taken = spare.block.is_none();
            Poll::Ready((answers, kept, still_pending, taken))
        })
        .await;
        assert_eq!(outcome.0, vec![0, 2, 4, 6, 8]);
        assert!(outcome.1, "the block is kept after a ready future");
        assert!(outcome.2);
        assert!(outcome.3, "the pending future took the block");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            5,
            "every finished future was dropped"
        );
    }

    #[tokio::test]
    async fn a_panic_in_the_first_poll_is_returned_and_the_block_is_kept_for_the_next_call() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut spare = Spare::new();
        poll_fn(|cx| {
            let held = Counted(Arc::clone(&drops));
            let panicked = start_in_spare(
                async move {
                    let _held = held;
                    panic!("agent bug");
                },
                &mut spare,
                cx,
            );
            assert!(panicked.is_err());
            assert!(spare.block.is_some());
            let next = start_in_spare(ready(7), &mut spare, cx);
            assert!(matches!(next, Ok(First::Ready(7))));
            Poll::Ready(())
        })
        .await;
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
