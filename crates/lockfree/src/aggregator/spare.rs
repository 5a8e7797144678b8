//! The shards' memory, kept by a thread when an aggregator is dropped and handed to the next
//! aggregator that thread builds.
//!
//! The shards are cache-padded, so their box is aligned to 128 bytes, which the allocator serves
//! through its aligned path (glibc's `posix_memalign`: an oversized chunk split and its ends
//! freed). A thread that runs round after round reuses one box instead: a round of 10 proposals
//! took 10,979 instructions allocating it, 10,397 reusing it (`aggregation_round/hivekit-round/
//! n_10`). The box's layout does not depend on the keys or payloads (a shard holds only vectors
//! and counters), so aggregators of any types share the kept memory. A thread keeps at most one
//! box (128 bytes a shard), until it exits.

use std::alloc::{dealloc, Layout};
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::sync::Mutex;

use crossbeam_utils::CachePadded;

use super::{PaddedShard, Shard};

/// Shard memory from the global allocator with its layout, freed when dropped.
struct RawShards {
    memory: NonNull<u8>,
    layout: Layout,
}

impl Drop for RawShards {
    fn drop(&mut self) {
        // SAFETY: `memory` was allocated by the global allocator with `layout` (it was a boxed
        // slice of shards of that layout) and nothing else owns it.
        unsafe { dealloc(self.memory.as_ptr(), self.layout) };
    }
}

std::thread_local! {
    /// This thread's kept shard memory, if any.
    static SPARE: Cell<Option<RawShards>> = const { Cell::new(None) };
}

/// An aggregator's shards: a boxed slice whose memory goes to the thread's spare when dropped.
pub(super) struct Shards<K, P> {
    shards: ManuallyDrop<Box<[PaddedShard<K, P>]>>,
}

impl<K, P> Shards<K, P> {
    /// `count` empty shards, in the thread's kept memory if it has memory of their layout.
    pub(super) fn new(count: usize) -> Self {
        let empty = || CachePadded::new(Mutex::new(Shard::new()));
        let layout = Layout::array::<PaddedShard<K, P>>(count);
        let kept = SPARE.try_with(Cell::take).ok().flatten();
        let shards = match kept {
            Some(kept) if Ok(kept.layout) == layout && kept.layout.size() > 0 => {
                let kept = ManuallyDrop::new(kept);
                let first = kept.memory.cast::<PaddedShard<K, P>>().as_ptr();
                for index in 0..count {
                    // SAFETY: the memory has the layout of `count` shards, so it is aligned for
                    // them and `index` is in bounds, and it holds no live value (its shards were
                    // dropped in place before it was kept).
                    unsafe { first.add(index).write(empty()) };
                }
                // SAFETY: the memory was allocated by the global allocator with the layout of
                // `[PaddedShard<K, P>; count]`, which is what this box frees it with, all `count`
                // shards were just written, and `kept` (never dropped) no longer owns it.
                unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(first, count)) }
            }
            // Memory of another layout is freed here (`kept` dropped).
            _ => (0..count).map(|_| empty()).collect(),
        };
        Shards {
            shards: ManuallyDrop::new(shards),
        }
    }
}

impl<K, P> Drop for Shards<K, P> {
    fn drop(&mut self) {
        // SAFETY: `self.shards` is not used after this.
        let shards = unsafe { ManuallyDrop::take(&mut self.shards) };
        let layout = Layout::for_value::<[PaddedShard<K, P>]>(&shards);
        if layout.size() == 0 {
            return;
        }
        let shards = Box::into_raw(shards);
        let kept = RawShards {
            // SAFETY: a box's pointer is never null.
            memory: unsafe { NonNull::new_unchecked(shards.cast::<u8>()) },
            layout,
        };
        // SAFETY: the shards are valid and dropped once, here; the memory stays owned by `kept`,
        // which frees it if a proposal's drop panics (the remaining shards are still dropped).
        unsafe { ptr::drop_in_place(shards) };
        // A thread being torn down keeps nothing: `kept` is freed. Memory kept before (from an
        // aggregator dropped inside a round of this thread) is replaced and freed.
        let _ = SPARE.try_with(|spare| spare.set(Some(kept)));
    }
}

impl<K, P> Deref for Shards<K, P> {
    type Target = [PaddedShard<K, P>];

    fn deref(&self) -> &Self::Target {
        &self.shards
    }
}

impl<K, P> DerefMut for Shards<K, P> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.shards
    }
}
