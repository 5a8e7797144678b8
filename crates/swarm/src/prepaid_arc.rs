//! An `Arc` whose owner pays for the references it hands out in advance, many in one atomic add.
//!
//! The run hands every stage a context holding a reference to the run's shared state. With
//! `std::sync::Arc` that is an atomic increment per stage, when the context is made, and an atomic
//! decrement when the stage drops it: about a tenth of what a no-op stage costs the run. Here the
//! run's own handle adds references to the count in batches ([`PrepaidArc::prepaid_clone`]: one
//! atomic add for as many stages as are left), hands them out with no atomic operation, and gives
//! back those it did not hand out when it is dropped or unwrapped. The decrement stays: a context
//! may outlive the stage (moved into a task of the stage's own making), so it is counted like any
//! other reference.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

/// Beyond this many references the count could overflow: abort, as `Arc` does.
const MAX_REFERENCES: usize = isize::MAX as usize;

/// The heap block: the count of live references (prepaid ones included) and the value.
struct Counted<T> {
    references: AtomicUsize,
    value: T,
}

/// A shared, reference-counted `T`, like `Arc<T>`; a handle can hold references paid for in
/// advance (see the module docs).
///
/// # Progress
///
/// `clone` and `drop` are one atomic read-modify-write each, as for `Arc`; `prepaid_clone` is none,
/// except once per batch.
pub(crate) struct PrepaidArc<T> {
    counted: NonNull<Counted<T>>,
    /// References this handle added to the count and has not handed out yet.
    prepaid: usize,
    /// The handle owns a share of the block, and may drop the `T` in it.
    _owns: PhantomData<Counted<T>>,
}

// SAFETY: as for `Arc<T>`: handles on other threads share the `T` (so `T: Sync`) and the last one
// drops it wherever it is (so `T: Send`); the count is atomic.
unsafe impl<T: Send + Sync> Send for PrepaidArc<T> {}
// SAFETY: as above; `&PrepaidArc<T>` only gives `&T` and clones.
unsafe impl<T: Send + Sync> Sync for PrepaidArc<T> {}

impl<T> PrepaidArc<T> {
    /// `value`, shared, with one reference: this handle.
    pub(crate) fn new(value: T) -> Self {
        let counted = Box::new(Counted {
            references: AtomicUsize::new(1),
            value,
        });
        Self {
            counted: NonNull::from(Box::leak(counted)),
            prepaid: 0,
            _owns: PhantomData,
        }
    }

    fn counted(&self) -> &Counted<T> {
        // SAFETY: the block lives while any handle does, and this one is alive.
        unsafe { self.counted.as_ref() }
    }

    /// A new handle on the same value, paid from this handle's prepaid references; when there are
    /// none left, `batch` more are paid for first (at least one), in one atomic add.
    #[inline]
    pub(crate) fn prepaid_clone(&mut self, batch: usize) -> Self {
        if self.prepaid == 0 {
            let batch = batch.max(1);
            let before = self
                .counted()
                .references
                .fetch_add(batch, Ordering::Relaxed);
            if before > MAX_REFERENCES - batch.min(MAX_REFERENCES) {
                std::process::abort();
            }
            self.prepaid = batch;
        }
        self.prepaid -= 1;
        Self {
            counted: self.counted,
            prepaid: 0,
            _owns: PhantomData,
        }
    }

    /// Gives back the prepaid references: this handle then counts for one reference only.
    fn refund(&mut self) {
        if self.prepaid != 0 {
            // Never the last reference: this handle holds one more.
            self.counted()
                .references
                .fetch_sub(self.prepaid, Ordering::Release);
            self.prepaid = 0;
        }
    }

    /// The value, if this is the only handle; else the handle back (its prepaid references given
    /// back).
    pub(crate) fn try_unwrap(mut self) -> Result<T, Self> {
        self.refund();
        if self
            .counted()
            .references
            .compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: the count was 1, held by this handle, which is forgotten: nothing else refers
        // to the block (allocated by `Box::new` in `new`), so it is taken back and freed once.
        let counted = unsafe { Box::from_raw(this.counted.as_ptr()) };
        Ok(counted.value)
    }
}

impl<T> Clone for PrepaidArc<T> {
    fn clone(&self) -> Self {
        let before = self.counted().references.fetch_add(1, Ordering::Relaxed);
        if before > MAX_REFERENCES {
            std::process::abort();
        }
        Self {
            counted: self.counted,
            prepaid: 0,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for PrepaidArc<T> {
    fn drop(&mut self) {
        let held = 1 + self.prepaid;
        // Release: this handle's uses of the value happen before the last handle frees it.
        if self.counted().references.fetch_sub(held, Ordering::Release) != held {
            return;
        }
        // Acquire: every other handle's release above happened before the value is dropped.
        fence(Ordering::Acquire);
        // SAFETY: the count reached zero: no handle refers to the block any more, and only the
        // handle that brought it to zero gets here, once.
        drop(unsafe { Box::from_raw(self.counted.as_ptr()) });
    }
}

impl<T> Deref for PrepaidArc<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.counted().value
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    use super::*;

    /// Counts its drops.
    struct Counter(Arc<AtomicU32>);

    impl Drop for Counter {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn references<T>(handle: &PrepaidArc<T>) -> usize {
        handle.counted().references.load(Ordering::SeqCst)
    }

    #[test]
    fn prepaid_clones_share_the_value_and_the_last_drop_frees_it_once() {
        let drops = Arc::new(AtomicU32::new(0));
        let mut owner = PrepaidArc::new(Counter(drops.clone()));
        let first = owner.prepaid_clone(3);
        assert_eq!(references(&owner), 4, "the owner, and three paid for");
        let second = owner.prepaid_clone(3);
        let third = owner.prepaid_clone(3);
        assert_eq!(references(&owner), 4, "handed out without adding");
        let fourth = owner.prepaid_clone(3);
        assert_eq!(references(&owner), 7, "a second batch");
        drop(owner);
        assert_eq!(
            references(&first),
            4,
            "the owner gave back two unused references"
        );
        drop((first, second, third));
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(fourth);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn try_unwrap_gives_back_prepaid_references_and_needs_the_only_handle() {
        let drops = Arc::new(AtomicU32::new(0));
        let mut owner = PrepaidArc::new(Counter(drops.clone()));
        let clone = owner.prepaid_clone(10);
        let mut owner = match owner.try_unwrap() {
            Ok(_) => panic!("a clone is alive"),
            Err(owner) => owner,
        };
        assert_eq!(
            references(&owner),
            2,
            "the unused prepaid references were given back"
        );
        drop(clone);
        let _ = owner.prepaid_clone(5);
        let value = owner.try_unwrap().ok().expect("the only handle");
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(value);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn handles_dropped_on_many_threads_free_the_value_once() {
        let drops = Arc::new(AtomicU32::new(0));
        let mut owner = PrepaidArc::new(Counter(drops.clone()));
        let mut threads = Vec::new();
        for round in 0..8 {
            let handle = if round % 2 == 0 {
                owner.prepaid_clone(3)
            } else {
                owner.clone()
            };
            threads.push(std::thread::spawn(move || {
                let mut handle = handle;
                let extra: Vec<_> = (0..100).map(|_| handle.prepaid_clone(7)).collect();
                drop(extra);
                drop(handle);
            }));
        }
        drop(owner);
        for thread in threads {
            thread.join().expect("no thread panics");
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
