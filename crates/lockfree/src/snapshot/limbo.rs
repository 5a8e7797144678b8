//! The cell's limbo: versions just replaced wait here, on the cell, until a batch of them is handed
//! to crossbeam-epoch's collector (see "How long a replaced version can stay alive" on
//! [`SnapshotCell`]).

use super::{SnapshotCell, Versioned, READS_PER_RETIRE};
use crate::loom::epoch::{Guard, SendPtr};
use crate::loom::sync::atomic::Ordering;
use crate::loom::sync::Arc;

impl<T: Send + Sync + 'static> SnapshotCell<T> {
    /// Puts a version just replaced (unlinked from `current`) in the limbo, with the cell's strong
    /// reference to it.
    pub(super) fn push_limbo(&self, replaced: *mut Versioned<T>) {
        let mut head = self.limbo.load(Ordering::Relaxed);
        loop {
            // SAFETY: `replaced` is live: the cell still owns a strong reference to it, which only
            // the limbo releases, and it is not in the limbo yet, so only this thread touches the
            // link.
            unsafe { &*replaced }
                .next_replaced
                .store(head, Ordering::Relaxed);
            // Release: whoever takes the limbo sees the link. No ABA: `head` cannot be freed and
            // reused while this thread is pinned (it is released only through the collector).
            match self.limbo.compare_exchange_weak(
                head,
                replaced,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// On one call in [`READS_PER_RETIRE`] per thread, hands a non-empty limbo to the collector.
    #[inline]
    pub(super) fn help_retire(&self, guard: &Guard) {
        if !self.limbo.load(Ordering::Relaxed).is_null()
            && crate::loom::thread::tick(READS_PER_RETIRE)
        {
            self.retire_limbo(guard);
        }
    }

    /// Takes every version in the limbo and hands them to the collector, which releases the cell's
    /// references once no thread pinned now can still see them.
    #[cold]
    pub(super) fn retire_limbo(&self, guard: &Guard) {
        let batch = self.limbo.swap(std::ptr::null_mut(), Ordering::Acquire);
        if batch.is_null() {
            return;
        }
        let batch = SendPtr(batch.cast_const());
        let free = move || {
            let mut next = batch.into_raw();
            while !next.is_null() {
                // SAFETY: each node holds the strong reference the cell took with `Arc::into_raw`,
                // and this batch is its only owner; the link is read before it is released.
                let node = unsafe { Arc::from_raw(next) };
                next = node.next_replaced.load(Ordering::Relaxed).cast_const();
                drop(node);
            }
        };
        // SAFETY: every version in the batch was unlinked from `current` before it entered the
        // limbo, and the swap took them all out of it, so threads that pin from now on cannot reach
        // them and nobody else releases them. Releasing on any thread is fine: `T: Send + Sync`.
        unsafe { self.retired.defer(guard, free) };
        // Into the global queue now: left in this thread's local bag, the batch would wait for 63
        // more deferrals, a flush or the thread's exit.
        guard.flush();
    }
}
