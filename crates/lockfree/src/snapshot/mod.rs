//! [`SnapshotCell`]: versioned shared state with lock-free reads and compare-and-swap commits.
//!
//! The cell holds one pointer to the current version: an `Arc` allocation holding the value and its
//! version number. Readers pin the current epoch (crossbeam-epoch) and dereference the pointer; writers
//! allocate the next version and swap the pointer with a compare-and-swap. The replaced version's
//! `Arc` reference is released once no pinned reader can still see it, so [`Snapshot`]s taken with
//! [`SnapshotCell::load`] keep their version alive for as long as they live, and a plain
//! [`SnapshotCell::read`] touches no shared reference count at all.
//!
//! Versions are numbered: the cell starts at 0 and every successful write installs exactly the
//! previous version plus one. While a thread is pinned the node it loaded cannot be freed, so its
//! address cannot be reused by a newer version: comparing pointers is comparing versions (no ABA).

use std::fmt;
use std::marker::PhantomData;

use crate::loom::cell::Witness;
use crate::loom::epoch::{self, Guard, Retired};
use crate::loom::sync::atomic::{AtomicPtr, Ordering};
use crate::loom::sync::Arc;

mod handles;
mod limbo;
mod store_at;
#[cfg(all(test, not(loom)))]
mod tests;

pub use handles::{CommitError, Snapshot, Staged};

/// One version of the value: what the cell points to and what a [`Snapshot`] shares.
#[derive(Debug)]
struct Versioned<T> {
    version: u64,
    value: T,
    /// Lets loom check that `version` and `value` are published before they are read.
    written: Witness,
    /// The next older version in the cell's limbo, while this one waits there after being replaced.
    next_replaced: AtomicPtr<Versioned<T>>,
}

impl<T> Versioned<T> {
    fn new(version: u64, value: T) -> Self {
        Self {
            version,
            value,
            written: Witness::new(),
            next_replaced: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

/// Every this many versions, the writer whose new version crosses a multiple of it hands the cell's
/// limbo to the collector: writers pay for the hand-over once per batch.
const RETIRE_BATCH: u64 = 64;
/// A thread that finds replaced versions waiting hands them over on one read in this many, so that
/// reads pay for the hand-over rarely, yet a writer that went idle keeps nothing alive for long.
const READS_PER_RETIRE: u32 = 128;

/// Versioned shared state: lock-free reads, staged compare-and-swap commits, and read-copy-update.
///
/// Every write installs a new version (the previous one plus one, or a later one with
/// [`store_at`](Self::store_at); a new cell is version 0). Reads
/// never block writers and writers never block readers:
///
/// - [`read`](Self::read) lends the current value and its version to a closure. It is the fast path:
///   it pins the thread's epoch and follows one pointer, writing no shared cache line (no reference
///   count).
/// - [`load`](Self::load) returns an owned [`Snapshot`] (one reference count increment) that can be kept,
///   cloned, sent to other threads and held across `.await`s.
/// - [`stage`](Self::stage) and [`commit`](Self::commit) implement optimistic concurrency: the commit
///   succeeds only if nobody wrote since the staged base version, and otherwise hands the value back
///   in [`CommitError::Conflict`].
/// - [`update`](Self::update) retries a read-copy-update until it applies, so no update is ever lost;
///   [`store`](Self::store) replaces the value unconditionally.
///
/// Replaced versions are reclaimed by crossbeam-epoch once no reader can still see them (and once the
/// last [`Snapshot`] of them is dropped). Reclamation is deferred: a replaced value is dropped a little
/// later, possibly on another thread, which is why `T` must be `Send + Sync + 'static`.
///
/// How long a replaced version can stay alive is bounded. A write puts the version it replaced in
/// the cell's *limbo* (a lock-free stack on the cell, not the writing thread's local garbage bag,
/// where it could wait for as long as that thread stays idle). The limbo is handed to
/// crossbeam-epoch's global queue as a batch by the write whose new version crosses a multiple of 64
/// (under [`store`](Self::store), every 64th write; under `store_at`, which may skip versions, at
/// least as often), and by
/// any thread that finds it non-empty on about one [`read`](Self::read) or [`load`](Self::load) in
/// 128 of its own, picked at random (so that no repeating pattern of reads over several cells
/// always lands on the same cell), and at the latest on the 256th. A collection (on every
/// hand-over, and on every 128th pin of each thread) frees the batches handed over before every
/// thread then pinned had unpinned, at most 8 batches (up to 512 versions) per collection
/// (crossbeam-epoch's step limit). So a writer that goes idle keeps at most 63 replaced versions
/// alive only while no thread uses the cell, and none once another thread has made a few hundred
/// reads. A reader that stays pinned (a long [`read`](Self::read) closure) or a live
/// [`Snapshot`] delays it: versions replaced while a reader stayed pinned pile up in the global
/// queue (shared by every cell of the process), and once it unpins they drain at about 512 per
/// 128 pins, so N of them take about N / 4 more reads.
///
/// # Progress
///
/// [`read`](Self::read), [`load`](Self::load), [`version`](Self::version) and [`stage`](Self::stage) are
/// wait-free (apart from crossbeam-epoch's occasional garbage collection on pin, and the occasional
/// lock-free hand-over of replaced versions described above).
/// [`commit`](Self::commit) decides with one compare-and-swap, success or conflict; a successful one
/// then puts the replaced version in the limbo, which is lock-free (it retries only when another
/// thread changed the limbo meanwhile).
/// [`store`](Self::store), [`update`](Self::update) and [`try_update`](Self::try_update) are lock-free:
/// a retry happens only because another write succeeded.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{CommitError, SnapshotCell};
///
/// let cell = SnapshotCell::new(vec!["scout"]);
/// assert_eq!(cell.version(), 0);
///
/// // The fast path: borrow the current value and its version.
/// let agents = cell.read(|agents, version| {
///     assert_eq!(version, 0);
///     agents.len()
/// });
/// assert_eq!(agents, 1);
///
/// // Optimistic concurrency: stage on a version, commit if nobody wrote meanwhile.
/// let snapshot = cell.load();
/// let mut next = snapshot.to_vec();
/// next.push("worker");
/// assert_eq!(cell.commit(snapshot.stage(next))?, 1);
///
/// // A commit based on an old version is refused and the value comes back.
/// let stale = snapshot.stage(vec![]);
/// let Err(CommitError::Conflict { base, current, value }) = cell.commit(stale) else {
///     panic!("a stale commit must conflict");
/// };
/// assert_eq!((base, current, value.len()), (0, 1, 0));
///
/// // Read-copy-update never loses an update.
/// assert_eq!(cell.update(|agents| [agents.as_slice(), &["queen"]].concat()), 2);
/// assert_eq!(*cell.load(), ["scout", "worker", "queen"]);
/// # Ok::<(), CommitError<Vec<&str>>>(())
/// ```
pub struct SnapshotCell<T> {
    /// `Arc::into_raw` of the current version; the cell owns one strong reference to it.
    current: AtomicPtr<Versioned<T>>,
    /// Replaced versions not yet handed to the collector, newest first, linked through
    /// `next_replaced`; the cell still owns one strong reference to each. Next to `current`, so
    /// checking it costs a read no extra cache miss.
    limbo: AtomicPtr<Versioned<T>>,
    /// Replaced versions waiting until no pinned reader can see them.
    retired: Retired,
    /// Called with the new version after each write lands ([`with_watcher`](Self::with_watcher)).
    on_write: Option<Box<dyn Fn(u64) + Send + Sync>>,
    /// The cell owns `Arc<Versioned<T>>`s: it is `Send`/`Sync` exactly when they are.
    _owns: PhantomData<Arc<Versioned<T>>>,
}

impl<T: Send + Sync + 'static> SnapshotCell<T> {
    /// A cell holding `value` at version 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::new(42);
    /// assert_eq!((*cell.load(), cell.version()), (42, 0));
    /// ```
    pub fn new(value: T) -> Self {
        Self::with_version(value, 0)
    }

    /// A cell holding `value` at `version`: for a cell that mirrors versions numbered elsewhere (a
    /// memory shared between processes opens at the version its store already holds). Writes go on
    /// from there, one version at a time.
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::with_version("opened", 41);
    /// assert_eq!(cell.version(), 41);
    /// assert_eq!(cell.store("next"), 42);
    /// ```
    ///
    /// A cell at `u64::MAX` can be read but not written: a write would have no version to take,
    /// and panics saying so (rather than wrapping to 0 under readers who expect versions to grow).
    pub fn with_version(value: T, version: u64) -> Self {
        let first = Arc::new(Versioned::new(version, value));
        Self {
            current: AtomicPtr::new(Arc::into_raw(first).cast_mut()),
            limbo: AtomicPtr::new(std::ptr::null_mut()),
            retired: Retired::new(),
            on_write: None,
            _owns: PhantomData,
        }
    }

    /// A cell holding `value` at `version` that calls `on_write` with the new version after each
    /// write lands, whichever method wrote it ([`commit`](Self::commit), [`store`](Self::store),
    /// [`update`](Self::update), [`try_update`](Self::try_update), [`store_at`](Self::store_at)):
    /// the hook of a memory whose followers wait for new versions, so that a write through the
    /// cell itself wakes them too. It runs on the writing thread, once the new version is visible
    /// to readers; it must be quick and must not panic (a panic unwinds out of the write, which has
    /// landed). A cell without a watcher pays one untaken branch per write.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let watcher = seen.clone();
    /// let cell = hivekit_lockfree::SnapshotCell::with_watcher("a", 0, move |version| {
    ///     watcher.store(version, Ordering::Release);
    /// });
    /// cell.store("b");
    /// assert_eq!(seen.load(Ordering::Acquire), 1);
    /// cell.update(|_| "c");
    /// assert_eq!(seen.load(Ordering::Acquire), 2);
    /// ```
    pub fn with_watcher(
        value: T,
        version: u64,
        on_write: impl Fn(u64) + Send + Sync + 'static,
    ) -> Self {
        let mut cell = Self::with_version(value, version);
        cell.on_write = Some(Box::new(on_write));
        cell
    }

    /// The current version: 0 for a new cell, plus one for every successful write.
    ///
    /// # Progress
    ///
    /// Wait-free.
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::new("a");
    /// cell.store("b");
    /// assert_eq!(cell.version(), 1);
    /// ```
    #[inline]
    pub fn version(&self) -> u64 {
        self.read(|_, version| version)
    }

    /// Calls `reader` with the current value and its version, and returns what it returns.
    ///
    /// This is the fast path: it pins the thread's epoch and follows one pointer; it writes no shared
    /// memory (no reference count), except on one call in 128 while replaced versions wait in the
    /// cell's limbo, which hands them to the collector (see [`SnapshotCell`]). The value is borrowed
    /// only for the call; use
    /// [`load`](Self::load) to keep it. A long-running `reader` delays the reclamation of replaced
    /// versions (it keeps the epoch pinned), never a writer.
    ///
    /// # Progress
    ///
    /// Wait-free (apart from `reader` itself).
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::new(String::from("hive"));
    /// let (length, version) = cell.read(|name, version| (name.len(), version));
    /// assert_eq!((length, version), (4, 0));
    /// ```
    #[inline]
    pub fn read<R>(&self, reader: impl FnOnce(&T, u64) -> R) -> R {
        let guard = epoch::pin();
        // SAFETY: `current` always points to a live `Versioned<T>` owned by the cell; a replaced version
        // is only released after every guard pinned before its replacement is dropped, and `guard`
        // lives until after `reader` returns.
        let current = unsafe { published(self.current.load(Ordering::Acquire)) };
        self.help_retire(&guard);
        reader(&current.value, current.version)
    }

    /// An owned [`Snapshot`] of the current version: it keeps that version alive and unchanged for as
    /// long as it (or a clone) lives, and can be sent to other threads or held across `.await`s.
    ///
    /// # Progress
    ///
    /// Wait-free (one reference count increment).
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::new(1);
    /// let before = cell.load();
    /// cell.store(2);
    /// assert_eq!((*before, before.version()), (1, 0));
    /// assert_eq!(*cell.load(), 2);
    /// ```
    // `#[inline]` as on `read`: without it the caller's crate holds one copy of the instance, in
    // whichever codegen unit the partitioning puts it, and LLVM inlined it into a caller in some
    // builds and called it in others, as unrelated edits to this crate reshuffled the partition
    // (`snapshot_read/hivekit-load/ops_1k` flipped between 52,109 and 59,133 instructions).
    #[inline]
    pub fn load(&self) -> Snapshot<T> {
        let guard = epoch::pin();
        self.help_retire(&guard);
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: `current` came from `Arc::into_raw` and the cell's own strong reference cannot be
        // released while `_guard` is pinned (see `read`), so the count is at least one here and may be
        // incremented; the new reference is then owned by the snapshot.
        let node = unsafe {
            Arc::increment_strong_count(current);
            Arc::from_raw(current)
        };
        node.written.read();
        Snapshot { node }
    }

    /// Stages `value` as the successor of the current version, for [`commit`](Self::commit).
    ///
    /// The base is the version current *now*. When the value was computed from an earlier
    /// [`Snapshot`], stage on that snapshot's version instead with [`Snapshot::stage`], so that a write
    /// that happened in between is detected.
    ///
    /// # Progress
    ///
    /// Wait-free.
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::new(1);
    /// let staged = cell.stage(2);
    /// assert_eq!(staged.base(), 0);
    /// assert_eq!(cell.commit(staged).ok(), Some(1));
    /// ```
    #[inline]
    pub fn stage(&self, value: T) -> Staged<T> {
        Staged::new(self.version(), value)
    }

    /// Installs the staged value if the cell is still at the staged base version, and returns the new
    /// version (base + 1).
    ///
    /// # Errors
    ///
    /// [`CommitError::Conflict`] when another write happened since the base version; it carries the
    /// base, the version now current, and the staged value, which is given back untouched.
    ///
    /// # Progress
    ///
    /// A single compare-and-swap decides; on success, putting the replaced version in the limbo is
    /// lock-free.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{CommitError, SnapshotCell};
    ///
    /// let cell = SnapshotCell::new(0);
    /// let first = cell.stage(10);
    /// let second = cell.stage(20);
    /// assert_eq!(cell.commit(first).ok(), Some(1));
    /// match cell.commit(second) {
    ///     Err(CommitError::Conflict { base: 0, current: 1, value: 20 }) => {}
    ///     other => panic!("expected a conflict, got {other:?}"),
    /// }
    /// ```
    #[inline]
    pub fn commit(&self, staged: Staged<T>) -> Result<u64, CommitError<T>> {
        let Staged { base, value } = staged;
        let guard = epoch::pin();
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: `current` is live while `guard` is pinned (see `read`).
        let current_version = unsafe { published(current) }.version;
        if current_version != base {
            return Err(CommitError::Conflict {
                base,
                current: current_version,
                value,
            });
        }
        let version = next_version(base);
        let next = Arc::new(Versioned::new(version, value));
        match self.publish(current, next, &guard) {
            Ok(()) => Ok(version),
            Err((actual, next)) => {
                // SAFETY: `actual` was loaded while `guard` is pinned (see `read`).
                let current = unsafe { published(actual) }.version;
                Err(CommitError::Conflict {
                    base,
                    current,
                    value: unpublished_value(next),
                })
            }
        }
    }

    /// Replaces the value with `update(&current)` and returns the new version; if another write lands
    /// first, `update` is called again on the newer value, so no update is ever lost.
    ///
    /// `update` may therefore run more than once and should have no side effects other than building
    /// the new value.
    ///
    /// # Progress
    ///
    /// Lock-free: a retry means another write succeeded.
    ///
    /// # Examples
    ///
    /// ```
    /// let counter = hivekit_lockfree::SnapshotCell::new(0_u64);
    /// std::thread::scope(|scope| {
    ///     for _ in 0..4 {
    ///         scope.spawn(|| {
    ///             for _ in 0..100 {
    ///                 counter.update(|count| count + 1);
    ///             }
    ///         });
    ///     }
    /// });
    /// assert_eq!((*counter.load(), counter.version()), (400, 400));
    /// ```
    pub fn update(&self, mut update: impl FnMut(&T) -> T) -> u64 {
        match self.try_update(|value| Ok::<T, std::convert::Infallible>(update(value))) {
            Ok(version) => version,
            Err(never) => match never {},
        }
    }

    /// Like [`update`](Self::update), but `update` may refuse: its error is returned and nothing is
    /// written.
    ///
    /// # Errors
    ///
    /// The first error `update` returns.
    ///
    /// # Progress
    ///
    /// Lock-free.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = hivekit_lockfree::SnapshotCell::new(3_u32);
    /// let spend = |left: &u32| left.checked_sub(1).ok_or("budget exhausted");
    /// assert_eq!(budget.try_update(spend), Ok(1));
    /// budget.store(0);
    /// assert_eq!(budget.try_update(spend), Err("budget exhausted"));
    /// assert_eq!(budget.version(), 2);
    /// ```
    pub fn try_update<E>(&self, mut update: impl FnMut(&T) -> Result<T, E>) -> Result<u64, E> {
        let guard = epoch::pin();
        let mut current = self.current.load(Ordering::Acquire);
        loop {
            // SAFETY: `current` was loaded while `guard` is pinned (see `read`).
            let node = unsafe { published(current) };
            let version = next_version(node.version);
            let next = Arc::new(Versioned::new(version, update(&node.value)?));
            match self.publish(current, next, &guard) {
                Ok(()) => return Ok(version),
                Err((actual, _unpublished)) => current = actual,
            }
        }
    }

    /// Replaces the value unconditionally and returns the new version.
    ///
    /// # Progress
    ///
    /// Lock-free: it retries only to number the version correctly when another write lands first.
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::new('a');
    /// assert_eq!(cell.store('b'), 1);
    /// assert_eq!(cell.read(|value, version| (*value, version)), ('b', 1));
    /// ```
    #[inline]
    pub fn store(&self, value: T) -> u64 {
        self.replace(value, |version, _| version)
    }

    /// Replaces the value unconditionally and returns the version it replaced (arc-swap's `swap`):
    /// of concurrent swaps, each gets back a different version, so every value written is handed
    /// back exactly once (or is still current). The new version is the returned one's plus one.
    ///
    /// # Progress
    ///
    /// Lock-free, as [`store`](Self::store).
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::new(String::from("draft"));
    /// let old = cell.swap(String::from("final"));
    /// assert_eq!((old.as_str(), old.version()), ("draft", 0));
    /// assert_eq!((cell.load().as_str(), cell.version()), ("final", 1));
    /// ```
    pub fn swap(&self, value: T) -> Snapshot<T> {
        self.replace(value, |_, replaced| {
            // SAFETY: `replaced` was current until this write and `replace` calls this while its
            // guard is still pinned; the cell's own strong reference to it sits in the limbo and is
            // released only after that guard is dropped, so it is live: taking one more reference
            // is sound.
            unsafe {
                Arc::increment_strong_count(replaced);
                Snapshot {
                    node: Arc::from_raw(replaced),
                }
            }
        })
    }

    /// Publishes `value` as the next version, then calls `then` with the new version and the
    /// version it replaced (still pinned: `then` runs before the guard is dropped).
    #[inline(always)]
    fn replace<R>(&self, value: T, then: impl FnOnce(u64, *mut Versioned<T>) -> R) -> R {
        let guard = epoch::pin();
        let mut current = self.current.load(Ordering::Acquire);
        let mut next = Arc::new(Versioned::new(0, value));
        loop {
            // SAFETY: `current` was loaded while `guard` is pinned (see `read`).
            let version = next_version(unsafe { published(current) }.version);
            match Arc::get_mut(&mut next) {
                Some(unpublished) => unpublished.version = version,
                None => unreachable!("an unpublished version has a single owner"),
            }
            match self.publish(current, next, &guard) {
                Ok(()) => return then(version, current),
                Err((actual, unpublished)) => {
                    current = actual;
                    next = unpublished;
                }
            }
        }
    }

    /// Swaps `current` for `next`; on success retires `current`, otherwise returns the pointer now
    /// installed and gives `next` back.
    #[allow(clippy::type_complexity)] // a private helper; a named type would hide the two halves
    fn publish(
        &self,
        current: *mut Versioned<T>,
        next: Arc<Versioned<T>>,
        guard: &Guard,
    ) -> Result<(), (*mut Versioned<T>, Arc<Versioned<T>>)> {
        let next_version = next.version;
        let next = Arc::into_raw(next).cast_mut();
        match self
            .current
            .compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(replaced) => {
                // SAFETY: `replaced` was current while `guard` is pinned (see `read`), and it is
                // released only through the limbo, after `guard` is dropped.
                let replaced_version = unsafe { published(replaced) }.version;
                self.push_limbo(replaced);
                // Once per multiple of `RETIRE_BATCH` the versions cross: the write that replaces
                // its last version under `store`, and as often under `store_at`, which may skip
                // versions (and so the one ending the batch).
                if replaced_version / RETIRE_BATCH != next_version / RETIRE_BATCH {
                    self.retire_limbo(guard);
                }
                if let Some(on_write) = &self.on_write {
                    on_write(next_version);
                }
                Ok(())
            }
            Err(actual) => {
                // SAFETY: `next` was never published; we take back the reference `into_raw` made.
                Err((actual, unsafe { Arc::from_raw(next) }))
            }
        }
    }
}

/// The version `pointer` points to, as loaded from [`SnapshotCell::current`] by a pinned thread.
///
/// # Safety
///
/// `pointer` must have been loaded from a cell's `current` while the caller's guard is pinned, and
/// the reference must not outlive that guard.
#[inline]
unsafe fn published<'guard, T>(pointer: *const Versioned<T>) -> &'guard Versioned<T> {
    // SAFETY: the caller loaded `pointer` while pinned, and a replaced version is released only after
    // every guard pinned before its replacement is dropped (see `SnapshotCell::read`).
    let node = unsafe { &*pointer };
    node.written.read();
    node
}

/// The value of a version that was never published (so this is its only reference).
fn unpublished_value<T>(node: Arc<Versioned<T>>) -> T {
    match Arc::try_unwrap(node) {
        Ok(node) => node.value,
        Err(_) => unreachable!("an unpublished version has a single owner"),
    }
}

impl<T> Drop for SnapshotCell<T> {
    fn drop(&mut self) {
        // Every version the cell still holds is released through one `Vec`, whose drop goes on
        // after a value that panics in its own drop: released one by one, the first panic would
        // leak the rest. (With an empty limbo the current version is the only one, and the
        // `Vec` never allocates.)
        let mut held = Vec::new();
        // The limbo: `&mut self` means no reader is inside `read` or `load`, so nothing can still
        // see these versions through the cell (a `Snapshot` holds its own reference).
        let mut next = self.limbo.load(Ordering::Acquire);
        while !next.is_null() {
            // SAFETY: the cell's strong reference from `Arc::into_raw`, released exactly once.
            let node = unsafe { Arc::from_raw(next) };
            next = node.next_replaced.load(Ordering::Relaxed);
            held.push(node);
        }
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: `&mut self` means no reader is inside `read` or `load` on this cell; the pointer holds
        // the cell's own strong reference from `Arc::into_raw`, released exactly once here. Versions
        // replaced earlier were released (or are pending release) through `retired`.
        let current = unsafe { Arc::from_raw(current) };
        if held.is_empty() {
            drop(current);
        } else {
            held.push(current);
            drop(held);
        }
    }
}

impl<T: Default + Send + Sync + 'static> Default for SnapshotCell<T> {
    /// A cell holding `T::default()` at version 0.
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Send + Sync + 'static> From<T> for SnapshotCell<T> {
    /// A cell holding `value` at version 0.
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: fmt::Debug + Send + Sync + 'static> fmt::Debug for SnapshotCell<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.read(|value, version| {
            formatter
                .debug_struct("SnapshotCell")
                .field("version", &version)
                .field("value", value)
                .finish()
        })
    }
}

/// The version a write after `version` takes.
#[inline]
fn next_version(version: u64) -> u64 {
    match version.checked_add(1) {
        Some(next) => next,
        None => version_overflow(),
    }
}

#[cold]
#[inline(never)]
fn version_overflow() -> ! {
    panic!("SnapshotCell version overflow: a cell at version u64::MAX cannot be written")
}
