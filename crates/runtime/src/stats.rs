//! Per-thread counters for [`stats`], written without any shared write on the hot path.
//!
//! Each thread owns one cache-line-aligned block of counters. Only the owning thread writes it (a
//! plain load and store, no read-modify-write), so counting never moves a cache line between cores.
//! The blocks are registered once per thread in a global list; [`stats`] sums them. When a thread
//! exits, its counts are folded into a retired total and its block leaves the list, so the list does
//! not grow with every short-lived thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Counts of what the global runtime has done, summed over every thread, from [`stats`].
///
/// # Examples
///
/// ```
/// let before = hivekit_runtime::stats();
/// hivekit_runtime::execute(async { 1 });
/// let after = hivekit_runtime::stats();
/// assert_eq!(after.executes - before.executes, 1);
/// assert_eq!(after.fast_path_hits - before.fast_path_hits, 1);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeStats {
    /// Futures run by `execute`/`try_execute`: fast-path hits plus calls that blocked (a future
    /// that panics on its first poll is not counted).
    pub executes: u64,
    /// Of those, futures that were ready on their first poll and skipped `block_on`.
    pub fast_path_hits: u64,
    /// Tasks started with [`spawn`](crate::spawn).
    pub spawns: u64,
    /// Closures started with [`spawn_blocking`](crate::spawn_blocking).
    pub blocking_spawns: u64,
    /// Calls refused with [`RuntimeError::WouldDeadlock`](crate::RuntimeError::WouldDeadlock).
    pub would_deadlock: u64,
    /// Runtimes hivekit has built in this process: 0 before the first use (and when
    /// [`configure`](crate::configure) adopted the application's runtime), then 1, however many
    /// threads raced to build it.
    pub runtimes_built: u64,
}

impl RuntimeStats {
    /// Executes that had to block on the runtime because the future was not ready at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = hivekit_runtime::stats();
    /// assert_eq!(stats.slow_path(), stats.executes - stats.fast_path_hits);
    /// ```
    pub fn slow_path(&self) -> u64 {
        self.executes - self.fast_path_hits
    }
}

/// Returns the counts so far, summed over every thread that ever used the runtime.
///
/// Each counter is read once, so a snapshot taken while other threads are counting may mix moments,
/// but no count is ever lost or counted twice. Reading does not build the runtime.
///
/// # Progress
///
/// Blocking: takes the registry lock (held by threads only while they start or exit).
///
/// # Examples
///
/// ```
/// let before = hivekit_runtime::stats();
/// let task = hivekit_runtime::spawn(async { 2 });
/// assert_eq!(hivekit_runtime::execute(task).unwrap(), 2);
/// assert_eq!(hivekit_runtime::stats().spawns - before.spawns, 1);
/// ```
pub fn stats() -> RuntimeStats {
    let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let mut total = registry.retired;
    for counters in &registry.live {
        total.add(&counters.snapshot());
    }
    total.runtimes_built = crate::global::runtimes_built();
    total
}

impl RuntimeStats {
    fn add(&mut self, other: &Self) {
        self.executes += other.executes;
        self.fast_path_hits += other.fast_path_hits;
        self.spawns += other.spawns;
        self.blocking_spawns += other.blocking_spawns;
        self.would_deadlock += other.would_deadlock;
    }
}

struct Registry {
    live: Vec<Arc<ThreadCounters>>,
    retired: RuntimeStats,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: Vec::new(),
    retired: RuntimeStats {
        executes: 0,
        fast_path_hits: 0,
        spawns: 0,
        blocking_spawns: 0,
        would_deadlock: 0,
        runtimes_built: 0,
    },
});

/// One thread's counters, alone on their cache lines (128 bytes covers adjacent-line prefetching).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct ThreadCounters {
    fast_path_hits: AtomicU64,
    slow_path: AtomicU64,
    spawns: AtomicU64,
    blocking_spawns: AtomicU64,
    would_deadlock: AtomicU64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    FastPathHits,
    SlowPath,
    Spawns,
    BlockingSpawns,
    WouldDeadlock,
}

impl ThreadCounters {
    fn snapshot(&self) -> RuntimeStats {
        let fast_path_hits = self.fast_path_hits.load(Ordering::Relaxed);
        RuntimeStats {
            executes: fast_path_hits + self.slow_path.load(Ordering::Relaxed),
            fast_path_hits,
            spawns: self.spawns.load(Ordering::Relaxed),
            blocking_spawns: self.blocking_spawns.load(Ordering::Relaxed),
            would_deadlock: self.would_deadlock.load(Ordering::Relaxed),
            runtimes_built: 0,
        }
    }

    fn bump(&self, counter: Counter) {
        let cell = match counter {
            Counter::FastPathHits => &self.fast_path_hits,
            Counter::SlowPath => &self.slow_path,
            Counter::Spawns => &self.spawns,
            Counter::BlockingSpawns => &self.blocking_spawns,
            Counter::WouldDeadlock => &self.would_deadlock,
        };
        // Only the owning thread writes, so load + store cannot lose an increment, and it avoids
        // the locked read-modify-write a `fetch_add` would cost.
        cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// Everything the runtime keeps per thread.
#[derive(Debug)]
pub(crate) struct ThreadState {
    counters: Arc<ThreadCounters>,
}

impl ThreadState {
    fn register() -> Self {
        let counters = Arc::new(ThreadCounters::default());
        REGISTRY
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .push(Arc::clone(&counters));
        Self { counters }
    }

    pub(crate) fn bump(&self, counter: Counter) {
        self.counters.bump(counter);
    }

    /// Records that the bottom of this thread's tokio context stack is the global runtime (a thread
    /// the global runtime started, or a plain thread `execute` entered the global runtime on), which
    /// opens [`try_execute`](crate::try_execute)'s fast path on this thread.
    pub(crate) fn mark_base_global(&self) {
        let counter: *const AtomicU64 = &self.counters.fast_path_hits;
        FAST_PATH.with(|fast| fast.set(counter));
    }
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // First, so that nothing reaches the counters through `FAST_PATH` once they may be freed.
        FAST_PATH.with(|fast| fast.set(std::ptr::null()));
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        registry.retired.add(&self.counters.snapshot());
        registry
            .live
            .retain(|counters| !Arc::ptr_eq(counters, &self.counters));
    }
}

thread_local! {
    pub(crate) static THREAD: ThreadState = ThreadState::register();

    /// This thread's fast-path hit counter while the thread sits in the global runtime's context
    /// ([`ThreadState::mark_base_global`]), null otherwise. `const`-initialised and without a
    /// destructor, so reading it is one thread-pointer-relative load with no initialisation or
    /// teardown check: the whole test of [`try_execute`](crate::try_execute)'s fast path. The
    /// pointer targets the counters `THREAD` owns, and `THREAD`'s destructor nulls it first.
    static FAST_PATH: Cell<*const AtomicU64> = const { Cell::new(std::ptr::null()) };
}

/// True when the calling thread sits in the global runtime's context and its counters are alive:
/// [`try_execute`](crate::try_execute) may poll in place.
#[inline]
pub(crate) fn on_fast_path() -> bool {
    !FAST_PATH.with(Cell::get).is_null()
}

/// Counts a fast-path hit for the calling thread (nothing if its counters are gone).
#[inline]
pub(crate) fn bump_fast_path() {
    let counter = FAST_PATH.with(Cell::get);
    if counter.is_null() {
        return;
    }
    // SAFETY: a non-null `FAST_PATH` points to the `fast_path_hits` of the `Arc<ThreadCounters>` that
    // this thread's live `THREAD` owns; `THREAD`'s destructor nulls it before that `Arc` can go.
    let counter = unsafe { &*counter };
    // Only the owning thread writes (see `ThreadCounters::bump`).
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Bumps `counter` for the calling thread; a thread whose locals are already destroyed is not
/// counted (it is exiting and cannot register again).
pub(crate) fn bump(counter: Counter) {
    let _ = THREAD.try_with(|thread| thread.bump(counter));
}
