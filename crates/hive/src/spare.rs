//! A heap block kept from one agent call to the next, so that calls that answer at once cost no
//! allocation.
//!
//! A hive holds agents of any type behind `dyn`, so each call's future has to live on the heap:
//! boxing it cost an allocation and a free per agent per round, about a tenth of a 1,000-agent
//! round. Most agents answer on their first poll. [`start_in_spare`] builds the future in a block
//! kept from the previous call (the same layout: in practice, the same agent type), polls it once
//! in place, and, if it answered, drops it in place and keeps the block for the next call. A
//! future still pending takes the block with it as an ordinary `Box`.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll};

use crate::agent::BoxFuture;

/// An empty heap block of some layout, or none.
pub(crate) struct Spare {
    block: Option<(NonNull<u8>, Layout)>,
}

// SAFETY: the block holds no value, only memory from the global allocator, which any thread may
// use and free.
unsafe impl Send for Spare {}

impl Spare {
    pub(crate) fn new() -> Self {
        Self { block: None }
    }

    /// A block for `layout` (not zero-sized): the spare one if it has that layout, else a new one
    /// (the spare one, of another layout, is freed).
    fn take(&mut self, layout: Layout) -> NonNull<u8> {
        match self.block.take() {
            Some((block, held)) if held == layout => block,
            other => {
                if let Some((block, held)) = other {
                    // SAFETY: `block` was allocated by `alloc` with `held` and holds no value.
                    unsafe { dealloc(block.as_ptr(), held) };
                }
                // SAFETY: `layout` is not zero-sized (checked by the caller).
                let block = unsafe { alloc(layout) };
                NonNull::new(block).unwrap_or_else(|| handle_alloc_error(layout))
            }
        }
    }

    /// Keeps an empty block of `layout` for the next call.
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
pub(crate) enum First<'a, T> {
    Ready(T),
    Pending(BoxFuture<'a, T>),
}

/// Builds `future` in `spare`'s block and polls it once (see the module docs). A panic in the
/// poll is returned as `Err` with the future dropped (a panic in that drop is swallowed: a broken
/// agent must not take the round down) and the block kept.
pub(crate) fn start_in_spare<'a, F>(
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
