//! A light voter's slot memory, kept from one round to the next.
//!
//! A round gives each light voter a reusable slot for its vote calls (`VoteSlot`), one heap block
//! per voter, allocated on the voter's first call and freed when the round's vote phase ends: in a
//! 1,000-agent round with conflicts, 1,000 allocations and frees (about 150 instructions a voter,
//! 3% of the round). A [`SlotBlock`] keeps the emptied block of a voter's slot for its slot in the
//! next round, which (the same agent, the same future type) has the same layout.

use std::alloc::{dealloc, Layout};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};

/// An empty heap block of some layout, or none.
pub(crate) struct SlotBlock {
    block: Option<(NonNull<u8>, Layout)>,
}

// SAFETY: the block holds no value, only memory from the global allocator, which any thread may
// use and free.
unsafe impl Send for SlotBlock {}

// SAFETY: a shared `SlotBlock` gives access to nothing (every method takes `&mut self`).
unsafe impl Sync for SlotBlock {}

impl std::fmt::Debug for SlotBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotBlock")
            .field("layout", &self.block.map(|(_, layout)| layout))
            .finish()
    }
}

impl Default for SlotBlock {
    fn default() -> Self {
        Self::new()
    }
}

impl SlotBlock {
    /// No block.
    pub(crate) const fn new() -> Self {
        Self { block: None }
    }

    /// Whether a block is kept (for the tests).
    #[cfg(test)]
    pub(crate) fn is_kept(&self) -> bool {
        self.block.is_some()
    }

    /// `value`, pinned on the heap: in the kept block if it has `T`'s layout (taken from here),
    /// else in a new allocation (a kept block of another layout stays kept).
    #[inline]
    pub(crate) fn boxed<T>(&mut self, value: T) -> Pin<Box<T>> {
        let layout = Layout::new::<T>();
        match self.block {
            Some((block, held)) if held == layout && layout.size() != 0 => {
                self.block = None;
                let block = block.cast::<T>();
                // SAFETY: `block` was allocated by the global allocator with `layout`, which is
                // `Layout::new::<T>()`, and holds no value (see `keep`): exactly the memory a
                // `Box<T>` owns and frees. Writing `value` initializes it.
                unsafe {
                    block.as_ptr().write(value);
                    Box::into_pin(Box::from_raw(block.as_ptr()))
                }
            }
            _ => Box::pin(value),
        }
    }

    /// Drops the value of `boxed` in place and keeps its block (freeing the one kept before). A
    /// panic in the value's destructor is swallowed: the value is never touched again, its memory
    /// is still the allocator's block.
    pub(crate) fn keep<T: ?Sized>(&mut self, boxed: Pin<Box<T>>) {
        let layout = Layout::for_value::<T>(&boxed);
        // SAFETY: the value is dropped in place below, before its memory is reused or freed, as
        // pinning requires; it is never moved.
        let raw = Box::into_raw(unsafe { Pin::into_inner_unchecked(boxed) });
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `raw` points to a live value that nothing else refers to (its `Box` was
            // consumed above), dropped once.
            unsafe { ptr::drop_in_place(raw) }
        }));
        if layout.size() == 0 {
            // A zero-sized box allocated nothing.
            return;
        }
        let Some(block) = NonNull::new(raw.cast::<u8>()) else {
            return;
        };
        if let Some((old, held)) = self.block.replace((block, layout)) {
            // SAFETY: `old` was allocated by the global allocator with `held` and holds no value.
            unsafe { dealloc(old.as_ptr(), held) };
        }
    }
}

impl Drop for SlotBlock {
    fn drop(&mut self) {
        if let Some((block, layout)) = self.block.take() {
            // SAFETY: `block` was allocated by the global allocator with `layout` (a `Box`'s
            // block, see `keep`) and holds no value.
            unsafe { dealloc(block.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::SlotBlock;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>, [u64; 4]);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_kept_block_serves_the_next_value_of_its_layout_and_each_value_is_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut block = SlotBlock::new();
        let first = block.boxed(Counted(Arc::clone(&drops), [1; 4]));
        let address = &*first as *const Counted as usize;
        block.keep(first);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(block.is_kept());
        let second = block.boxed(Counted(Arc::clone(&drops), [2; 4]));
        assert_eq!(
            &*second as *const Counted as usize, address,
            "the same block"
        );
        assert_eq!(second.1, [2; 4]);
        assert!(!block.is_kept());
        // Another layout: a new allocation, the kept block stays.
        block.keep(second);
        let other = block.boxed([7u8; 3]);
        assert!(block.is_kept());
        assert_eq!(*other, [7; 3]);
        // Kept through a trait object, as the round keeps its slots.
        let dynamic: Pin<Box<dyn Future<Output = u8> + Send>> = block.boxed(async { 5 });
        block.keep(dynamic);
        let unit = block.boxed(());
        block.keep(unit);
        drop(block);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_destructor_is_swallowed_and_its_block_kept() {
        struct Panics;
        impl Drop for Panics {
            fn drop(&mut self) {
                panic!("drop");
            }
        }
        let mut block = SlotBlock::new();
        block.keep(Box::pin((Panics, 1u64, 2u64)));
        assert!(block.is_kept());
        let reused = block.boxed((3u64, 4u64));
        assert_eq!(*reused, (3, 4));
    }
}
