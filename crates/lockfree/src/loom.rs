//! The concurrency primitives of this crate, routed through one place so the same code runs under
//! [loom](https://docs.rs/loom) (`RUSTFLAGS="--cfg loom"`) and on `std`.
//!
//! Everything lock-free in the crate takes its atomics, `Arc`, memory reclamation and queue lanes from
//! here, never from `std` directly. Under loom:
//!
//! - atomics, `Arc` and `Mutex` are loom's, so every interleaving of them is explored, and
//!   [`cell::Witness`] lets loom check that plain data is published before it is read;
//! - [`epoch`] keeps retired memory until the owning structure is dropped instead of using
//!   crossbeam-epoch (which loom cannot see): the publication protocol (compare-and-swap on the
//!   current pointer) is what the models check, reclamation is crossbeam's;
//! - [`lane::Lane`] is a `Mutex<VecDeque<T>>` instead of a crossbeam `SegQueue` (whose internal spin
//!   waits loom cannot preempt): it is the overflow of each scheduler lane, so the models check the
//!   lane's own ring and state-word protocol (on loom's atomics and cells, with a 2-slot ring) and
//!   the scheduler's bitmap protocol around the lanes.

pub(crate) mod sync {
    #[cfg(loom)]
    pub(crate) use loom::sync::Arc;
    #[cfg(not(loom))]
    pub(crate) use std::sync::Arc;

    pub(crate) mod atomic {
        #[cfg(loom)]
        pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
        #[cfg(not(loom))]
        pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};

        pub(crate) use std::sync::atomic::Ordering;
    }
}

/// Stand-ins for plain data, so loom can check that it is published before it is read.
pub(crate) mod cell {
    /// Marks the plain data of a node published through an atomic pointer. Under loom it is an
    /// `UnsafeCell` written when the node is built and read by every reader, so loom reports a
    /// causality violation if publication does not order the two (a too weak ordering on the
    /// pointer). On `std` it is empty and costs nothing.
    #[cfg(loom)]
    #[derive(Debug)]
    pub(crate) struct Witness(loom::cell::UnsafeCell<()>);

    // SAFETY: the cell holds `()` and is only touched through loom's `with`/`with_mut`, which is how
    // loom checks (and reports) unsynchronised access; sharing it is the point.
    #[cfg(loom)]
    unsafe impl Sync for Witness {}

    #[cfg(loom)]
    impl Witness {
        pub(crate) fn new() -> Self {
            let witness = Self(loom::cell::UnsafeCell::new(()));
            witness.0.with_mut(|_| ());
            witness
        }

        pub(crate) fn read(&self) {
            self.0.with(|_| ());
        }
    }

    #[cfg(not(loom))]
    #[derive(Debug)]
    pub(crate) struct Witness;

    #[cfg(not(loom))]
    impl Witness {
        #[inline(always)]
        pub(crate) fn new() -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn read(&self) {}
    }
}

/// Epoch-based reclamation: pin the thread while reading a shared pointer, retire what was unlinked.
pub(crate) mod epoch {
    /// A raw pointer that may be sent to the thread that eventually frees it.
    pub(crate) struct SendPtr<T>(pub(crate) *const T);

    // SAFETY: a `SendPtr` is only created for memory whose ownership moves to the deferred drop that
    // frees it, and the pointee may be dropped on (and was shared with) any thread: `T: Send + Sync`.
    unsafe impl<T: Send + Sync> Send for SendPtr<T> {}

    impl<T> SendPtr<T> {
        /// The pointer. A method, so that closures capture the whole `SendPtr` and not its field.
        pub(crate) fn into_raw(self) -> *const T {
            self.0
        }
    }

    #[cfg(not(loom))]
    pub(crate) use crossbeam_epoch::Guard;

    #[cfg(not(loom))]
    std::thread_local! {
        /// This crate's participant in crossbeam-epoch's default collector, one per thread that
        /// pins through [`pin`].
        static HANDLE: crossbeam_epoch::LocalHandle =
            crossbeam_epoch::default_collector().register();
    }

    /// Pins the calling thread in crossbeam-epoch's default collector.
    ///
    /// Not `crossbeam_epoch::pin()`: that goes through crossbeam's `with_handle`, which carries a
    /// second, cold copy of the pin (for a thread whose handle is already destroyed). That makes it
    /// large enough that LLVM inlines it into `SnapshotCell::load` in one build and calls it in
    /// another: 9 instructions per read apart (call, return, three saved registers), which is how
    /// the instruction row `snapshot_read/hivekit-load/ops_1k` counted either 61,108 or 70,106 for
    /// one commit. Here the fast path (a thread-local access and `LocalHandle::pin`) is small and
    /// always inlined, and the fallback is an out-of-line call.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn pin() -> Guard {
        match HANDLE.try_with(crossbeam_epoch::LocalHandle::pin) {
            Ok(guard) => guard,
            Err(_) => pin_without_handle(),
        }
    }

    /// [`pin`] on a thread whose handle was already destroyed (a read from another thread-local's
    /// destructor at thread exit): crossbeam's own `pin`, which registers a temporary participant.
    #[cfg(not(loom))]
    #[cold]
    #[inline(never)]
    fn pin_without_handle() -> Guard {
        crossbeam_epoch::pin()
    }

    /// Memory retired by one structure. On `std` it is handed to crossbeam-epoch's global collector and
    /// this type is empty; the structure needs no drop logic for it.
    #[cfg(not(loom))]
    #[derive(Debug, Default)]
    pub(crate) struct Retired;

    #[cfg(not(loom))]
    impl Retired {
        pub(crate) const fn new() -> Self {
            Self
        }

        /// Runs `free` once no thread pinned now can still see the retired memory.
        ///
        /// # Safety
        ///
        /// The memory `free` releases must already be unreachable for threads that pin after this
        /// call, and `free` must be safe to run on any thread.
        pub(crate) unsafe fn defer(&self, guard: &Guard, free: impl FnOnce() + Send + 'static) {
            // SAFETY: the caller guarantees the memory is unlinked, so once every guard pinned now is
            // dropped nothing can reach it; `free` is `Send`, so running it on another thread is fine.
            unsafe { guard.defer_unchecked(free) }
        }
    }

    /// Under loom: nothing is pinned, and retired memory is kept until the structure is dropped.
    #[cfg(loom)]
    #[derive(Debug)]
    pub(crate) struct Guard(());

    #[cfg(loom)]
    pub(crate) fn pin() -> Guard {
        Guard(())
    }

    #[cfg(loom)]
    impl Guard {
        /// Under loom retired memory waits in [`Retired`] until its structure is dropped: nothing
        /// to hand over.
        pub(crate) fn flush(&self) {}
    }

    /// Under loom: deferred frees wait here until the owning structure is dropped, when no thread can
    /// hold a reference into it any more.
    #[cfg(loom)]
    pub(crate) struct Retired {
        pending: loom::sync::Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    }

    #[cfg(loom)]
    impl std::fmt::Debug for Retired {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.debug_struct("Retired").finish_non_exhaustive()
        }
    }

    #[cfg(loom)]
    impl Retired {
        pub(crate) fn new() -> Self {
            Self {
                pending: loom::sync::Mutex::new(Vec::new()),
            }
        }

        /// Keeps `free` until `self` is dropped.
        ///
        /// # Safety
        ///
        /// As for the `std` version.
        pub(crate) unsafe fn defer(&self, _guard: &Guard, free: impl FnOnce() + Send + 'static) {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pending.push(Box::new(free));
        }
    }

    #[cfg(loom)]
    impl Default for Retired {
        fn default() -> Self {
            Self::new()
        }
    }

    #[cfg(loom)]
    impl Drop for Retired {
        fn drop(&mut self) {
            let pending = std::mem::take(
                self.pending
                    .get_mut()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            for free in pending {
                free();
            }
        }
    }
}

/// Which thread is running, as a small number, for per-thread striping.
pub(crate) mod thread {
    /// A number fixed for the calling thread: threads are numbered in the order they first ask.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn index() -> usize {
        use std::cell::Cell;
        use std::sync::atomic::{AtomicUsize, Ordering};

        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            // `const`-initialised and without a destructor: reading it is one thread-pointer-relative
            // load, with no lazy-initialisation or teardown check (this runs on every aging `pop`).
            static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        INDEX.with(|index| {
            let mut value = index.get();
            if value == usize::MAX {
                value = NEXT.fetch_add(1, Ordering::Relaxed);
                index.set(value);
            }
            value
        })
    }

    /// Under loom every thread shares stripe 0, so the models see the shared-counter case.
    #[cfg(loom)]
    pub(crate) fn index() -> usize {
        0
    }

    /// True on about one call in `period` on the calling thread (the first call included), at
    /// pseudo-random calls, and at the latest on the `2 * period`-th call after the last true one.
    /// Not on every `period`-th call: the calls come from every cell the thread reads, and a fixed
    /// period fires on the same step of a repeating pattern of reads (a reader that reads its
    /// memory three times and another cell once a turn would never help the other cell). The
    /// bound keeps a reader of one idle cell handing it over within a few hundred reads; where it
    /// fires in a pattern depends on the random calls before it.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn tick(period: u32) -> bool {
        use std::cell::Cell;

        thread_local! {
            // `const` and without a destructor, as `INDEX` above: one thread-relative load. A
            // xorshift32 state (zero until the first call, never zero after) and the calls since
            // the last true one.
            static STATE: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
        }
        STATE.with(|state| {
            let (mut x, since) = state.get();
            if x == 0 {
                // Seeded by the thread-local's address, so that threads do not fire in step.
                let seed = (std::ptr::from_ref(state) as usize as u32).wrapping_mul(0x9E37_79B9);
                state.set((seed | 1, 0));
                return true;
            }
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Below 2^32 / period: probability 1 / period.
            let fire = (u64::from(x) * u64::from(period)) >> 32 == 0
                || since + 1 >= period.saturating_mul(2);
            state.set((x, if fire { 0 } else { since + 1 }));
            fire
        })
    }

    /// Under loom always true: a per-thread counter would make executions differ between
    /// iterations, and the models should see the hand-over on every read.
    #[cfg(loom)]
    pub(crate) fn tick(_period: u32) -> bool {
        true
    }
}

/// The overflow queue of a priority scheduler lane (`scheduler/lane.rs`).
pub(crate) mod lane {
    /// An unbounded multi-producer multi-consumer FIFO queue.
    #[cfg(not(loom))]
    pub(crate) type Lane<T> = crossbeam_queue::SegQueue<T>;

    /// Under loom: `SegQueue`'s `push` and `pop` over a locked `VecDeque`, with an atomic count of
    /// the items. A push publishes its item by incrementing the count after storing it (as `SegQueue`
    /// publishes its tail index); a pop first claims an item by decrementing the count, then takes
    /// one from the deque, which must hold it. (The scheduler lane keeps its own emptiness in its
    /// state word, so this queue's emptiness is not read.)
    #[cfg(loom)]
    #[derive(Debug)]
    pub(crate) struct Lane<T> {
        items: loom::sync::Mutex<std::collections::VecDeque<T>>,
        count: loom::sync::atomic::AtomicUsize,
    }

    #[cfg(loom)]
    impl<T> Lane<T> {
        pub(crate) fn new() -> Self {
            Self {
                items: loom::sync::Mutex::new(std::collections::VecDeque::new()),
                count: loom::sync::atomic::AtomicUsize::new(0),
            }
        }

        fn items(&self) -> loom::sync::MutexGuard<'_, std::collections::VecDeque<T>> {
            self.items
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        pub(crate) fn push(&self, item: T) {
            self.items().push_back(item);
            self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }

        pub(crate) fn pop(&self) -> Option<T> {
            let mut count = self.count.load(std::sync::atomic::Ordering::Acquire);
            loop {
                if count == 0 {
                    return None;
                }
                match self.count.compare_exchange(
                    count,
                    count - 1,
                    std::sync::atomic::Ordering::AcqRel,
                    std::sync::atomic::Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(actual) => count = actual,
                }
            }
            // Claimed: every counted item was stored before it was counted.
            self.items().pop_front()
        }
    }
}
