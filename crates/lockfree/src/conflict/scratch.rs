//! The partitioned scan's scratch buffers, kept by each thread between calls.
//!
//! The parallel scan used to allocate its routing buffers, partition tables and per-partition
//! results on the rayon pool's threads and free them every call. glibc gives a freed block back
//! to the arena of the thread that allocated it, and when the top of that arena gets past its
//! trim threshold it hands the pages back to the kernel (`madvise`/`munmap`): the next call
//! faulted them in again, hundreds to thousands of minor page faults a call (the 2 x 65,536-key
//! width row about 2k, the 100k skewed one about 5k), which under load were most of the slow
//! rounds' time. A library must not change the process's malloc settings (`mallopt`), so the
//! buffers are kept instead: nothing is freed, so nothing is trimmed.
//!
//! Two kinds are kept, each in a thread local:
//! - a thread's [`ScanState`] (table, key references, slots, nodes), used by whichever thread
//!   scans partitions (a pool thread, or the caller in the serial partitioned scan) or a small
//!   input through one table (`scan_one`: at 1k proposals, about 20 page faults a call when it
//!   allocated its own), taken for a job and given back at its end ([`LentState`]);
//! - the caller's [`CallBuffers`]: each routed chunk's partitions and each partition's groups
//!   and members, lent to the pool's jobs for one call and given back by the caller, and the
//!   caller's own (key lists, combined order and scan, the report's flags), since at 100k
//!   proposals they are megabytes that glibc hands back as well.
//!
//! Bounds: a thread keeps at most [`STATE_BYTES`] of scan state and [`CALL_BYTES`] of
//! call buffers; past them the excess is freed after the call, so a single huge call does
//! not pin its memory for ever (it pays the faults as before).
//!
//! Reentrancy and panics: a buffer is taken out of its thread local (which is left empty) for
//! the whole time it is used, so a nested call on the same thread (from a user `Hash` or `Eq`, or
//! a rayon job stolen while waiting) finds nothing and allocates its own, and whichever call
//! gives back last is kept. Buffers are given back only on a normal return: on a panic (a user
//! `Hash` or `Eq` that panics) they are dropped with the unwinding frame, and the thread local
//! stays empty until the next call refills it. Every buffer is emptied before it is kept, and
//! every user resets it before writing, so no state leaks from one call to the next.
//!
//! The buffers hold borrowed keys of one call's lifetime and type; kept, they hold nothing, only
//! their allocations, under a placeholder type of the same layout ([`recycle`]).

use std::cell::Cell;
use std::mem::{align_of, size_of, ManuallyDrop};
use std::ops::{Deref, DerefMut};

use super::distinct::DistinctTable;
use super::partition::Occurrence;
use super::report::Accesses;
use super::scan::{Scan, ScanState};
use super::KeyLists;
use crate::proposal::ProposalId;

/// The most bytes of scan state (table, key references, slots, nodes, bitset) a thread keeps
/// between calls: 4 MiB, enough for the partitions of any input the scan sizes itself for
/// ([`KEYS_PER_PARTITION`](super::partition::KEYS_PER_PARTITION) keys, about 0.5 MiB, and hot
/// partitions of skewed inputs a few times that).
pub(super) const STATE_BYTES: usize = 4 << 20;

/// The most bytes of per-call buffers (key lists, routed occurrences, per-partition and combined
/// groups and members, the report's flags) a calling thread keeps between calls: 16 MiB, enough
/// for 100k proposals of 4 keys (400k routed occurrences of 16 bytes and their slack, about
/// 8 MiB, and 3.2 MiB of key lists). Larger calls keep this much and free the rest.
pub(super) const CALL_BYTES: usize = 16 << 20;

/// `vec`'s allocation, emptied, as a vector of `U`: no allocation, unless the two types differ in
/// size or alignment (never for the types here, which differ only in a key type behind a
/// reference and a lifetime), in which case the allocation is freed and an empty vector returned.
pub(super) fn recycle<T, U>(mut vec: Vec<T>) -> Vec<U> {
    vec.clear();
    if size_of::<T>() != size_of::<U>() || align_of::<T>() != align_of::<U>() || size_of::<T>() == 0
    {
        return Vec::new();
    }
    let mut vec = ManuallyDrop::new(vec);
    // SAFETY: the allocation was made by the global allocator for `capacity` values of `T`, whose
    // size and alignment are `U`'s (checked above), so it is the allocation of `capacity` values
    // of `U`; the length is 0, so no value of `T` is read as a `U`; `vec` is not dropped
    // (`ManuallyDrop`), so the allocation has one owner.
    unsafe { Vec::from_raw_parts(vec.as_mut_ptr().cast::<U>(), 0, vec.capacity()) }
}

/// Bytes of `vec`'s allocation.
pub(super) fn bytes<T>(vec: &Vec<T>) -> usize {
    vec.capacity() * size_of::<T>()
}

/// What a calling thread keeps of one call's buffers, empty: the partitioned scan's (lent to the
/// pool's jobs) and the calling thread's own (key lists, the combined order and scan, the
/// report's flags), which are freed on the calling thread but, at 100k proposals, megabytes whose
/// pages glibc hands back as well.
pub(super) struct CallBuffers {
    /// One entry per routed chunk, one buffer per partition in each.
    pub(super) routes: Vec<Vec<Vec<Occurrence<'static, ()>>>>,
    /// One entry per partition: its groups and members.
    pub(super) outputs: Vec<Scan<'static, ()>>,
    /// The proposals' key lists.
    pub(super) lists: Vec<KeyLists<'static, ()>>,
    /// The partitions' groups in report order (`combine`), and the same sorted by buckets.
    pub(super) order: Vec<(u64, u32, u32)>,
    /// The buckets' result (`sorted_by_buckets`).
    pub(super) sorted: Vec<(u64, u32, u32)>,
    /// The buckets' starts (`sorted_by_buckets`).
    pub(super) starts: Vec<u32>,
    /// The combined scan's groups and members.
    pub(super) scan: Scan<'static, ()>,
    /// Per proposal, whether it is in a group (the report's independent list).
    pub(super) in_group: Vec<bool>,
    /// The groups' member and access lists built on the pool, before they join their groups.
    pub(super) built: Vec<(Vec<ProposalId>, Accesses)>,
    /// The table of the distinct-keys pass (`distinct`).
    pub(super) distinct: DistinctTable,
}

impl CallBuffers {
    pub(super) const EMPTY: Self = CallBuffers {
        routes: Vec::new(),
        outputs: Vec::new(),
        lists: Vec::new(),
        order: Vec::new(),
        sorted: Vec::new(),
        starts: Vec::new(),
        scan: Scan::EMPTY,
        in_group: Vec::new(),
        built: Vec::new(),
        distinct: DistinctTable::EMPTY,
    };

    /// The key lists' buffer, for keys of lifetime `'a` and type `K`; give it back with
    /// [`keep_lists`](Self::keep_lists).
    pub(super) fn lend_lists<'a, K>(&mut self) -> Vec<KeyLists<'a, K>> {
        recycle(std::mem::take(&mut self.lists))
    }

    /// Keeps the key lists' buffer, emptied.
    pub(super) fn keep_lists<K>(&mut self, lists: Vec<KeyLists<'_, K>>) {
        self.lists = recycle(lists);
    }

    /// Keeps the combined scan's buffers, emptied.
    pub(super) fn keep_scan<K>(&mut self, scan: Scan<'_, K>) {
        self.scan = scan.recycle();
    }

    /// Routing buffers for `chunks` routed chunks (empty ones where none are kept), lent out
    /// until [`keep_routes`](Self::keep_routes); the others stay.
    pub(super) fn lend_routes(&mut self, chunks: usize) -> Vec<Vec<Vec<Occurrence<'static, ()>>>> {
        let mut lent = std::mem::take(&mut self.routes);
        self.routes = lent.split_off(chunks.min(lent.len()));
        lent.resize_with(chunks, Vec::new);
        lent
    }

    /// Keeps the buffers of `routed` (lent by [`lend_routes`](Self::lend_routes)), emptied.
    pub(super) fn keep_routes<'a, K: 'a>(
        &mut self,
        routed: impl IntoIterator<Item = Vec<Vec<Occurrence<'a, K>>>>,
    ) {
        let mut kept: Vec<Vec<Vec<Occurrence<'static, ()>>>> = routed
            .into_iter()
            .map(|chunk| chunk.into_iter().map(recycle).collect())
            .collect();
        kept.append(&mut self.routes);
        self.routes = kept;
    }

    /// Result buffers for `parts` partitions (empty ones where none are kept), lent out until
    /// [`keep_outputs`](Self::keep_outputs); the others stay.
    pub(super) fn lend_outputs<'a, K>(&mut self, parts: usize) -> Vec<Scan<'a, K>> {
        let mut lent = std::mem::take(&mut self.outputs);
        self.outputs = lent.split_off(parts.min(lent.len()));
        let mut lent: Vec<Scan<'a, K>> = lent.into_iter().map(Scan::recycle).collect();
        lent.resize_with(parts, || Scan::EMPTY);
        lent
    }

    /// Keeps the buffers of `scans` (lent by [`lend_outputs`](Self::lend_outputs)), emptied.
    pub(super) fn keep_outputs<K>(&mut self, scans: Vec<Scan<'_, K>>) {
        let mut kept: Vec<Scan<'static, ()>> = scans.into_iter().map(Scan::recycle).collect();
        kept.append(&mut self.outputs);
        self.outputs = kept;
    }

    /// Frees the buffers past [`CALL_BYTES`], in order: the calling thread's own first, then
    /// the partitions' results, then the routes (most of the bytes, and reused whole).
    pub(super) fn bound(&mut self) {
        let mut budget = CALL_BYTES;
        let mut fits = |bytes: usize| {
            let fits = bytes <= budget;
            if fits {
                budget -= bytes;
            }
            fits
        };
        if !fits(bytes(&self.lists)) {
            self.lists = Vec::new();
        }
        if !fits(self.distinct.bytes()) {
            self.distinct = DistinctTable::EMPTY;
        }
        if !fits(bytes(&self.order) + bytes(&self.sorted) + bytes(&self.starts)) {
            (self.order, self.sorted, self.starts) = (Vec::new(), Vec::new(), Vec::new());
        }
        if !fits(bytes(&self.scan.groups) + bytes(&self.scan.members)) {
            self.scan = Scan::EMPTY;
        }
        if !fits(bytes(&self.in_group) + bytes(&self.built)) {
            (self.in_group, self.built) = (Vec::new(), Vec::new());
        }
        let _ = fits(bytes(&self.routes) + bytes(&self.outputs));
        for output in &mut self.outputs {
            if !fits(bytes(&output.groups) + bytes(&output.members)) {
                *output = Scan::EMPTY;
            }
        }
        for chunk in &mut self.routes {
            let _ = fits(bytes(chunk));
            for part in chunk.iter_mut() {
                if !fits(bytes(part)) {
                    *part = Vec::new();
                }
            }
        }
    }
}

std::thread_local! {
    /// This thread's kept scan state ([`LentState`]).
    static STATE: Cell<ScanState<'static, ()>> = const { Cell::new(ScanState::EMPTY) };
    /// This thread's kept call buffers ([`take_call_buffers`]).
    static CALLS: Cell<CallBuffers> = const { Cell::new(CallBuffers::EMPTY) };
}

/// This thread's kept call buffers, taken (the thread keeps none until they are given back
/// with [`give_call_buffers`]); empty ones if there are none (a nested call, or a thread being torn
/// down).
pub(super) fn take_call_buffers() -> CallBuffers {
    CALLS
        .try_with(|kept| kept.replace(CallBuffers::EMPTY))
        .unwrap_or(CallBuffers::EMPTY)
}

/// Gives `buffers` back to this thread, bounded by [`CALL_BYTES`]; they replace (and free)
/// any a nested call gave back meanwhile. Every buffer must be empty.
pub(super) fn give_call_buffers(mut buffers: CallBuffers) {
    buffers.bound();
    let _ = CALLS.try_with(|kept| kept.set(buffers));
}

/// A scan state lent by the thread it runs on, given back when dropped (unless the thread is
/// panicking: then it is freed).
pub(super) struct LentState<'a, K>(ScanState<'a, K>);

impl<'a, K> LentState<'a, K> {
    /// This thread's kept scan state (the thread keeps none while it is lent), or an empty one.
    /// Reset it before use.
    pub(super) fn take() -> Self {
        let state = STATE
            .try_with(|kept| kept.replace(ScanState::EMPTY))
            .unwrap_or(ScanState::EMPTY);
        LentState(state.recycle())
    }
}

impl<'a, K> Deref for LentState<'a, K> {
    type Target = ScanState<'a, K>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<K> DerefMut for LentState<'_, K> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<K> Drop for LentState<'_, K> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let state = std::mem::replace(&mut self.0, ScanState::EMPTY).recycle::<'static, ()>();
        if state.bytes() <= STATE_BYTES {
            let _ = STATE.try_with(|kept| kept.set(state));
        }
    }
}

/// Bytes of `buffers`' allocations.
#[cfg(test)]
pub(super) fn call_bytes(buffers: &CallBuffers) -> usize {
    let routes: usize = buffers
        .routes
        .iter()
        .map(|chunk| bytes(chunk) + chunk.iter().map(bytes).sum::<usize>())
        .sum();
    let outputs: usize = buffers
        .outputs
        .iter()
        .map(|output| bytes(&output.groups) + bytes(&output.members))
        .sum();
    routes
        + bytes(&buffers.routes)
        + outputs
        + bytes(&buffers.outputs)
        + bytes(&buffers.lists)
        + bytes(&buffers.order)
        + bytes(&buffers.sorted)
        + bytes(&buffers.starts)
        + bytes(&buffers.scan.groups)
        + bytes(&buffers.scan.members)
        + bytes(&buffers.in_group)
        + bytes(&buffers.built)
        + buffers.distinct.bytes()
}
