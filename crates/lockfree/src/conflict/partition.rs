//! The partitioning of large inputs: occurrences routed by hash into cache-sized partitions,
//! scanned one by one or on the rayon pool, and their groups put back in first-appearance order.

use std::hash::{BuildHasher, Hash};

use rayon::prelude::*;
use rustc_hash::FxBuildHasher;

use super::scan::{
    cleared_with_room, prefetch_keys, scan_one, table_hash, RawGroup, Scan, ScanState,
    PREFETCH_DISTANCE,
};
use super::scratch::{give_call_buffers, recycle, take_call_buffers, CallBuffers, LentState};
use super::{KeyLists, WRITER};

/// Distinct keys per partition the partitioned scan aims for: the partition's table (8 bytes per
/// entry at most two-thirds full), slots and key references then fit in a 512 KiB L2 cache.
pub(super) const KEYS_PER_PARTITION: usize = 8 * 1024;

/// The most partitions (write streams while routing) the scan uses.
pub(super) const MAX_PARTITIONS: usize = 256;

/// One key occurrence, hashed and routed to its partition.
///
/// 16 bytes: routing writes one per key occurrence and the scan reads it back, so at 100k
/// proposals these streams are megabytes; only the half of the hash the table uses is kept (the
/// partition's bits are implied by which partition holds it). Packing the hash and the member
/// into one `u64` (one store less per occurrence while routing) was tried and dropped: routing
/// saved 0.2M instructions at 100k proposals, and unpacking cost the scan 1.6M.
#[derive(Debug)]
pub(super) struct Occurrence<'a, K> {
    key: &'a K,
    /// The low half of the key's hash ([`table_hash`]).
    hash: u32,
    /// The proposal index, packed with [`WRITER`].
    member: u32,
}

// Manual impls: a derive would require `K: Clone`/`K: Copy`.
impl<K> Clone for Occurrence<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Occurrence<'_, K> {}

impl<'a, K> Occurrence<'a, K> {
    /// The occurrence of `key`, whose [`table_hash`] is `hash`, by `member` (packed with
    /// [`WRITER`]).
    #[inline(always)]
    fn new(key: &'a K, hash: u32, member: u32) -> Self {
        Occurrence { key, hash, member }
    }

    /// The key's [`table_hash`].
    #[inline(always)]
    pub(super) fn hash(self) -> u32 {
        self.hash
    }

    /// The proposal index, packed with [`WRITER`].
    #[inline(always)]
    pub(super) fn member(self) -> u32 {
        self.member
    }

    /// The key, borrowed from the input.
    #[cfg(test)]
    pub(super) fn key(self) -> &'a K {
        self.key
    }
}

/// Finds every contested key in `lists` (one entry per proposal, in input order), on the
/// calling thread.
///
/// Small inputs go through one table. Larger ones are first routed by the high bits of each key's
/// hash into partitions small enough for their tables to stay in cache (a sequential write per
/// occurrence instead of a cache miss per table probe), each partition is scanned on its own, and
/// the partitions' groups are put back in first-appearance order.
///
/// The caller has checked the proposal and occurrence limits.
pub(crate) fn scan<'a, K>(lists: &[KeyLists<'a, K>], occurrences: usize) -> Scan<'a, K>
where
    K: Hash + Eq + 'a,
{
    let mut kept = take_call_buffers();
    let scan = scan_in(lists, occurrences, &mut kept);
    give_call_buffers(kept);
    scan
}

/// [`scan`] with the calling thread's kept buffers, `kept` (`scratch`): fresh allocations of a
/// few hundred KiB each cost page faults on every call. One state for every partition, as in
/// [`scan_parallel_in`].
pub(super) fn scan_in<'a, K>(
    lists: &[KeyLists<'a, K>],
    occurrences: usize,
    kept: &mut CallBuffers,
) -> Scan<'a, K>
where
    K: Hash + Eq + 'a,
{
    let parts = partitions(occurrences, 1);
    if parts == 1 {
        return scan_one(lists, occurrences);
    }
    let buffers = kept.lend_routes(1).pop().unwrap_or_default();
    let routed = [route_into(
        buffers,
        lists,
        0,
        parts.trailing_zeros(),
        occurrences,
    )];
    let mut state = LentState::take();
    let scans: Vec<Scan<'a, K>> = kept
        .lend_outputs(parts)
        .into_iter()
        .enumerate()
        .map(|(part, mut into)| {
            scan_partition(&mut state, &routed, part, &mut into);
            into
        })
        .collect();
    drop(state);
    kept.keep_routes(routed);
    let scan = combine(&scans, lists, kept);
    kept.keep_outputs(scans);
    scan
}

/// [`scan`] on the rayon pool: routing runs on chunks of proposals and the partitions (at least
/// one per thread) are scanned in parallel. The result is the same as [`scan`]'s.
///
/// The routing and result buffers are the calling thread's kept ones, lent to the pool's jobs,
/// and each job scans with its thread's kept state (`scratch`): allocated on the pool's threads
/// and freed every call, they were handed back to the kernel by glibc and faulted in again on the
/// next call.
pub(crate) fn scan_parallel<'a, K>(lists: &[KeyLists<'a, K>], occurrences: usize) -> Scan<'a, K>
where
    K: Hash + Eq + Sync + 'a,
{
    let mut kept = take_call_buffers();
    let scan = scan_parallel_in(lists, occurrences, &mut kept);
    give_call_buffers(kept);
    scan
}

/// [`scan_parallel`] with the calling thread's kept buffers, `kept`.
pub(super) fn scan_parallel_in<'a, K>(
    lists: &[KeyLists<'a, K>],
    occurrences: usize,
    kept: &mut CallBuffers,
) -> Scan<'a, K>
where
    K: Hash + Eq + Sync + 'a,
{
    let threads = rayon::current_num_threads().max(1);
    let parts = partitions(occurrences, threads);
    if parts == 1 {
        return scan_one(lists, occurrences);
    }
    let bits = parts.trailing_zeros();
    let chunk = lists.len().div_ceil(threads * 4).max(1);
    let chunks = lists.len().div_ceil(chunk);
    let chunk_occurrences = occurrences / chunks.max(1);
    let routed: Vec<Vec<Vec<Occurrence<'a, K>>>> = lists
        .par_chunks(chunk)
        .zip(kept.lend_routes(chunks))
        .enumerate()
        .map(|(number, (lists, buffers))| {
            route_into(buffers, lists, number * chunk, bits, chunk_occurrences)
        })
        .collect();
    let scans: Vec<Scan<'a, K>> = kept
        .lend_outputs(parts)
        .into_par_iter()
        .enumerate()
        .map_init(
            // Reused across the partitions one rayon job scans, as in `scan`.
            LentState::take,
            |state, (part, mut into)| {
                scan_partition(state, &routed, part, &mut into);
                into
            },
        )
        .collect();
    kept.keep_routes(routed);
    let scan = combine(&scans, lists, kept);
    kept.keep_outputs(scans);
    scan
}

/// The number of partitions for `occurrences`: a power of two, at least `at_least` (rounded up),
/// aiming at no more than [`KEYS_PER_PARTITION`] keys each, at most [`MAX_PARTITIONS`].
///
/// Below two partitions' worth one table is used. Above, the count is rounded up, never down: at
/// 10k proposals of 4 keys, rounding down gave 4 partitions of 10k keys whose tables and slots
/// no longer fit in L2, and the scan ran at half the speed of 8 partitions of 5k keys (measured).
pub(super) fn partitions(occurrences: usize, at_least: usize) -> usize {
    let wanted = if occurrences < 2 * KEYS_PER_PARTITION {
        1
    } else {
        occurrences.div_ceil(KEYS_PER_PARTITION)
    };
    wanted.max(at_least).next_power_of_two().min(MAX_PARTITIONS)
}

/// Scans one partition: its occurrences from every routed chunk, in chunk (input) order.
///
/// Keys touched by one proposal only get no slot when most keys look so ([`mostly_once`]): the
/// table entry names the routed occurrence instead ([`ScanState::touch_numbered`]).
///
/// The partition's groups and members go into `into`'s allocations (kept between calls).
///
/// Never inlined (one call per partition, so it costs nothing): the instruction suite counts it by
/// name on the rayon pool's threads.
#[inline(never)]
fn scan_partition<'a, K: Hash + Eq>(
    state: &mut ScanState<'a, K>,
    routed: &[Vec<Vec<Occurrence<'a, K>>>],
    part: usize,
    into: &mut Scan<'a, K>,
) {
    let count: usize = routed.iter().map(|chunk| chunk[part].len()).sum();
    // An occurrence is numbered by its chunk (the high bits) and its offset in that chunk's run
    // (the low `shift` bits), so reading it back for a key's second toucher is two indexings.
    let longest = routed
        .iter()
        .map(|chunk| chunk[part].len())
        .max()
        .unwrap_or(0);
    let shift = longest.next_power_of_two().trailing_zeros();
    // A slot for every key, as in the single table, when the numbers would not fit in 32 bits
    // (runs of millions of occurrences in one partition), or when most keys look touched more
    // than once: then nearly every key gets a slot anyway, and reading its first occurrence back
    // costs more than the slots saved (skewed_10k: 6.9M instructions in the scans against 6.0M).
    if (routed.len() as u64) << shift > u64::from(u32::MAX) || !mostly_once(routed, part, count) {
        // Sized for the keys such a partition holds, not for its occurrences (the table grows
        // past a short estimate): skewed_10k's partitions hold about 6k occurrences of 1.2k
        // keys, and a table for 6k keys (128 KiB, zeroed on every call, and past glibc's mmap
        // threshold when freshly allocated) was 1.7M of the row's 20.1M instructions in memset.
        state.reset_for_slots(count);
        for chunk in routed {
            for occurrence in &chunk[part] {
                state.touch(
                    occurrence.hash(),
                    occurrence.key,
                    occurrence.member() & !WRITER,
                    occurrence.member() & WRITER,
                );
            }
        }
        state.finish_into(into);
        return;
    }
    state.reset(count);
    let offsets = (1_u32 << shift) - 1;
    let occurrence = |at: u32| {
        let occurrence = routed[(at >> shift) as usize][part][(at & offsets) as usize];
        (occurrence.key, occurrence.member())
    };
    for (number, chunk) in routed.iter().enumerate() {
        // Checked above: every number fits in 32 bits.
        let base = (number as u32) << shift;
        for (offset, occurrence_here) in chunk[part].iter().enumerate() {
            state.touch_numbered(
                occurrence_here.hash(),
                occurrence_here.key,
                occurrence_here.member(),
                base | offset as u32,
                occurrence,
            );
        }
    }
    state.finish_into(into);
}

/// Occurrences [`mostly_once`] samples from a partition.
const SAMPLES: usize = 64;

/// Whether the keys of partition `part` (`count` occurrences) look touched once mostly: at most
/// one in 16 of [`SAMPLES`] evenly spaced occurrences shares its table hash with another sample.
///
/// On a uniform input (100k proposals of 4 keys, 10 % of them in groups of 2 to 4) almost no
/// sample repeats; on a skewed one a few hot keys make up most occurrences, and most samples do.
/// Deterministic (no state carried between partitions), so the instruction counts do not depend
/// on which rayon job scanned which partition. About 2k instructions per partition.
pub(super) fn mostly_once<K>(
    routed: &[Vec<Vec<Occurrence<'_, K>>>],
    part: usize,
    count: usize,
) -> bool {
    if count < SAMPLES {
        return false;
    }
    let step = count / SAMPLES;
    let mut hashes = [0_u32; SAMPLES];
    let (mut taken, mut next, mut passed) = (0, 0, 0);
    for chunk in routed {
        let run = &chunk[part];
        while taken < SAMPLES && next < passed + run.len() {
            hashes[taken] = run[next - passed].hash();
            taken += 1;
            next += step;
        }
        passed += run.len();
    }
    let hashes = &mut hashes[..taken];
    hashes.sort_unstable();
    let repeats = hashes.windows(2).filter(|pair| pair[0] == pair[1]).count();
    repeats * 16 <= taken
}

/// Hashes the occurrences of `lists` (proposals numbered from `first_index`) into `2^bits`
/// partitions, keeping input order (and written keys before read keys) inside each.
#[cfg(test)]
pub(super) fn route<'a, K: Hash>(
    lists: &[KeyLists<'a, K>],
    first_index: usize,
    bits: u32,
    occurrences: usize,
) -> Vec<Vec<Occurrence<'a, K>>> {
    route_into(Vec::new(), lists, first_index, bits, occurrences)
}

/// [`route`] into the allocations of `buffers` (kept between calls, one per partition; each
/// replaced when too small, missing ones allocated). Entries past the `2^bits` partitions are left
/// in the result, empty.
///
/// Never inlined, as [`scan_partition`].
#[inline(never)]
pub(super) fn route_into<'a, K: Hash>(
    buffers: Vec<Vec<Occurrence<'static, ()>>>,
    lists: &[KeyLists<'a, K>],
    first_index: usize,
    bits: u32,
    occurrences: usize,
) -> Vec<Vec<Occurrence<'a, K>>> {
    let parts = 1 << bits;
    let expected = occurrences / parts + occurrences / (parts * 4) + 4;
    let mut routed: Vec<Vec<Occurrence<'a, K>>> = buffers.into_iter().map(recycle).collect();
    if routed.len() < parts {
        routed.resize_with(parts, Vec::new);
    }
    for part in &mut routed[..parts] {
        cleared_with_room(part, expected);
    }
    fill_routes(&mut routed[..parts], lists, first_index);
    routed
}

/// The loop of [`route_into`]: appends the occurrences of `lists` (proposals numbered from
/// `first_index`) to their partitions in `routed` (a power of two of them, each empty with room
/// for its estimate).
///
/// Never inlined, and apart from the buffers' preparation: the loop is short of registers, and in
/// one function with it (the kept buffers' recycling) it cost 0.1M instructions more at
/// skewed_10k. Not named `route…`: the instruction suite counts `route*` functions by toggling
/// collection on their entry and exit, and a nested one would toggle it off.
#[inline(never)]
fn fill_routes<'a, K: Hash>(
    routed: &mut [Vec<Occurrence<'a, K>>],
    lists: &[KeyLists<'a, K>],
    first_index: usize,
) {
    let parts = routed.len();
    // One write cursor per partition in a local array, instead of a push on each partition's
    // vector in memory (its length reloaded, checked and stored per occurrence; 37 instructions
    // per occurrence at 100k proposals of 4 keys).
    let mut cursors: Vec<Cursor<'a, K>> = routed.iter_mut().map(Cursor::new).collect();
    let cursors = &mut cursors[..parts];
    for (offset, &(writes, reads)) in lists.iter().enumerate() {
        prefetch_keys(lists, offset + PREFETCH_DISTANCE);
        // Bounded by MAX_PROPOSALS, checked by every caller.
        let index = (first_index + offset) as u32;
        for key in writes {
            let hash = FxBuildHasher.hash_one(key);
            let part = partition_of(hash, parts);
            cursors[part].push(
                Occurrence::new(key, table_hash(hash), index | WRITER),
                routed,
                part,
            );
        }
        for key in reads {
            let hash = FxBuildHasher.hash_one(key);
            let part = partition_of(hash, parts);
            cursors[part].push(Occurrence::new(key, table_hash(hash), index), routed, part);
        }
    }
    for (part, cursor) in cursors.iter().enumerate() {
        cursor.finish(&mut routed[part]);
    }
}

/// The partition of a key whose 64-bit FxHash is `hash`, of `parts` (a power of two, at most
/// [`MAX_PARTITIONS`]): the low bits of the hash's top byte.
///
/// The table inside uses the hash's low 32 bits, so the partitions and the table positions stay
/// independent. A constant shift, where the top `log2(parts)` bits took a shift by a variable
/// count (on x86-64, one more register pinned in a loop already short of them).
#[inline(always)]
pub(super) fn partition_of(hash: u64, parts: usize) -> usize {
    const { assert!(MAX_PARTITIONS <= 256, "the partition comes from one byte") };
    (hash >> 56) as usize & (parts - 1)
}

/// Where [`route`] writes the next occurrence of one partition: into the spare capacity of that
/// partition's vector, whose length is set once, at the end ([`finish`](Self::finish)).
struct Cursor<'a, K> {
    /// The next entry to write, in the vector's spare capacity.
    next: *mut Occurrence<'a, K>,
    /// The end of the vector's capacity.
    end: *mut Occurrence<'a, K>,
}

impl<'a, K> Cursor<'a, K> {
    /// A cursor at the start of `routed`, an empty vector; nothing else touches the vector until
    /// the cursor is [`finish`](Self::finish)ed.
    fn new(routed: &mut Vec<Occurrence<'a, K>>) -> Self {
        debug_assert!(routed.is_empty());
        let next = routed.as_mut_ptr();
        Cursor {
            next,
            // In bounds of (one past) the allocation: the capacity's end.
            end: next.wrapping_add(routed.capacity()),
        }
    }

    /// Appends `occurrence` to partition `part`, growing its vector (`routed[part]`, the vector
    /// the cursor was made for) when full.
    #[inline(always)]
    fn push(
        &mut self,
        occurrence: Occurrence<'a, K>,
        routed: &mut [Vec<Occurrence<'a, K>>],
        part: usize,
    ) {
        if self.next == self.end {
            self.grow(&mut routed[part]);
        }
        // SAFETY: `next` is below `end`, so it points to spare capacity of the partition's vector
        // (`new` and `grow` set both from that vector's buffer and capacity, and nothing else
        // writes to or reallocates the vector meanwhile); `Occurrence` is `Copy`, so overwriting
        // uninitialized memory drops nothing.
        unsafe {
            self.next.write(occurrence);
            self.next = self.next.add(1);
        }
    }

    /// Makes room in a full partition: its vector takes the written entries as its length and
    /// doubles its capacity.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, vec: &mut Vec<Occurrence<'a, K>>) {
        self.finish(vec);
        vec.reserve(vec.len().max(4));
        // SAFETY: `len` is at most the capacity, so the pointer stays in (or one past) the
        // allocation.
        self.next = unsafe { vec.as_mut_ptr().add(vec.len()) };
        self.end = vec.as_mut_ptr().wrapping_add(vec.capacity());
    }

    /// Gives the partition's vector (the one the cursor was made for) the entries written
    /// through the cursor as its length.
    fn finish(&self, vec: &mut Vec<Occurrence<'a, K>>) {
        // SAFETY: `next` and the vector's buffer point into the same allocation (`new` and `grow`
        // set `next` from it and it was not reallocated since), `next` is not below it.
        let written = unsafe { self.next.offset_from(vec.as_ptr()) };
        let len = usize::try_from(written).unwrap_or(0);
        debug_assert!(len <= vec.capacity());
        // SAFETY: the first `len` entries were written through the cursor (every entry from the
        // buffer's start up to `next`: `new` starts at an empty vector's start and `grow` keeps
        // the written prefix as the length), and `len` is at most the capacity.
        unsafe { vec.set_len(len) };
    }
}

/// Groups per partition, on average, from which [`combine`] merges the partitions' sorted runs
/// instead of sorting the groups from scratch.
const LONG_RUNS: usize = 128;

/// Puts the groups of several partitions back in first-appearance order: by the first member, then
/// by the key's first position inside that member's lists (written keys first).
///
/// The position is read from the group's key reference, which is the first member's first
/// occurrence of the key (partitions keep input order, written keys first): its offset inside the
/// member's lists is address arithmetic, O(1) per group. Searching the member's lists for the key
/// instead made this step quadratic in the width of one proposal (two proposals of 65,536 shared
/// keys took seconds).
///
/// Its buffers (the order, and the result's groups and members) are `kept`'s.
fn combine<'a, K>(
    scans: &[Scan<'a, K>],
    lists: &[KeyLists<'a, K>],
    kept: &mut CallBuffers,
) -> Scan<'a, K> {
    // Sorted by one packed key (first member, position; both below 2^32: the caller bounds
    // proposals and occurrences), then the partition and the group's index in it, 16 bytes each.
    // Each partition's groups come in first-appearance order (one sorted run each) when it was
    // scanned with a slot per key, and in the order of their keys' second touch otherwise
    // (`ScanState::touch_numbered`; these partitions have few groups).
    let mut order = std::mem::take(&mut kept.order);
    cleared_with_room(&mut order, scans.iter().map(|scan| scan.groups.len()).sum());
    for (part, scan) in scans.iter().enumerate() {
        for (index, group) in scan.groups.iter().enumerate() {
            let first = scan.members[group.start] & !WRITER;
            let position = position_in(lists[first as usize], group.key).min(u32::MAX as usize);
            // Partitions are at most MAX_PARTITIONS, groups per partition at most the key occurrences.
            order.push((
                (u64::from(first) << 32) | position as u64,
                part as u32,
                index as u32,
            ));
        }
    }
    // Packed keys are distinct (one group per key, at its first occurrence), so both sorts give
    // the same order; which one is cheaper depends on the runs. Long runs (skewed inputs: 7.5k
    // groups in 16 partitions at 10k proposals, scanned with a slot per key) are merged by the
    // stable sort; short ones (3.3k groups in 64 partitions at 100k uniform proposals) are too
    // short for it to find, and the unstable sort on the packed key alone costs 400k
    // instructions less (the other way round it costs 240k more).
    //
    // When there are about as many groups as proposals (skewed inputs: 7.5k groups of 10k
    // proposals), counting the groups of each first member and sorting only inside each member's
    // bucket beats both sorts: the stable sort was 0.96M instructions at skewed_10k, on the calling
    // thread while the pool waits.
    if bucketed(order.len(), lists.len()) {
        sorted_by_buckets_into(&order, lists.len(), &mut kept.starts, &mut kept.sorted);
        std::mem::swap(&mut order, &mut kept.sorted);
    } else if order.len() >= LONG_RUNS * scans.len() {
        order.sort();
    } else {
        order.sort_unstable_by_key(|&(key, _, _)| key);
    }
    // The partitions' member lists are appended whole, in partition order, and each group's
    // range is moved by its partition's base: one copy per partition instead of one per group
    // (copying group by group in report order was 0.45M instructions at skewed_10k, 70k members
    // of 7.5k groups, on the calling thread). Users read a group's members through its range.
    let mut bases = Vec::with_capacity(scans.len());
    let mut total = 0;
    for scan in scans {
        bases.push(total);
        total += scan.members.len();
    }
    let Scan {
        mut groups,
        mut members,
    } = std::mem::replace(&mut kept.scan, Scan::EMPTY).recycle();
    cleared_with_room(&mut members, total);
    for scan in scans {
        members.extend_from_slice(&scan.members);
    }
    cleared_with_room(&mut groups, order.len());
    groups.extend(order.iter().map(|&(_, part, index)| {
        let (part, index) = (part as usize, index as usize);
        let group = &scans[part].groups[index];
        RawGroup {
            key: group.key,
            kind: group.kind,
            start: bases[part] + group.start,
            end: bases[part] + group.end,
        }
    }));
    kept.order = order;
    Scan { groups, members }
}

/// The most groups per proposal, and proposals per group, for which [`combine`] puts the groups
/// in order by buckets ([`sorted_by_buckets`]).
///
/// Outside, a bucket per proposal is either mostly empty (100k uniform proposals have 3.3k
/// groups: the sort of 3.3k keys is cheaper than counting over 100k buckets) or holds thousands
/// of groups (two proposals sharing 16k keys: one bucket, sorted anyway).
const BUCKET_SPREAD: usize = 4;

/// Whether [`combine`] orders `groups` groups of `proposals` proposals by buckets.
pub(super) fn bucketed(groups: usize, proposals: usize) -> bool {
    groups <= proposals.saturating_mul(BUCKET_SPREAD)
        && proposals <= groups.saturating_mul(BUCKET_SPREAD)
}

/// `order` (packed keys `first member << 32 | position`, distinct, members below `proposals`)
/// sorted by packed key: a counting sort on the first member, then a sort inside each member's
/// bucket (most hold one group).
#[cfg(test)]
pub(super) fn sorted_by_buckets(
    order: Vec<(u64, u32, u32)>,
    proposals: usize,
) -> Vec<(u64, u32, u32)> {
    let mut sorted = Vec::new();
    sorted_by_buckets_into(&order, proposals, &mut Vec::new(), &mut sorted);
    sorted
}

/// [`sorted_by_buckets`] into `sorted`, with `starts` for the buckets (both emptied first; kept
/// between calls).
pub(super) fn sorted_by_buckets_into(
    order: &[(u64, u32, u32)],
    proposals: usize,
    starts: &mut Vec<u32>,
    sorted: &mut Vec<(u64, u32, u32)>,
) {
    let bucket = |key: u64| (key >> 32) as usize;
    // `starts[member]`: where the member's bucket starts, then (while scattering) where its next
    // group goes.
    starts.clear();
    starts.resize(proposals + 1, 0);
    for &(key, _, _) in order {
        starts[bucket(key) + 1] += 1;
    }
    let mut sum = 0;
    for start in starts.iter_mut() {
        sum += *start;
        *start = sum;
    }
    cleared_with_room(sorted, order.len());
    let spare = &mut sorted.spare_capacity_mut()[..order.len()];
    for &entry in order {
        let next = &mut starts[bucket(entry.0)];
        spare[*next as usize].write(entry);
        *next += 1;
    }
    // SAFETY: the buckets' starts are the prefix sums of their counts, so the places handed out
    // (each bucket's start up to its start plus its count, one place per entry of the bucket) are
    // `0..order.len()`, each exactly once: every entry of the first `order.len()` places was
    // written above.
    unsafe { sorted.set_len(order.len()) };
    for run in sorted.chunk_by_mut(|a, b| bucket(a.0) == bucket(b.0)) {
        if run.len() > 1 {
            run.sort_unstable_by_key(|&(key, _, _)| key);
        }
    }
}

/// Where `key`, a reference into `writes` or `reads`, sits in `writes` followed by `reads`.
///
/// Plain address arithmetic, no comparison of keys. Zero-sized keys are all equal, so they form
/// one group at most and any position orders it.
fn position_in<K>((writes, reads): KeyLists<'_, K>, key: &K) -> usize {
    let size = std::mem::size_of::<K>().max(1);
    let address = key as *const K as usize;
    let offset_in = |list: &[K]| {
        let start = list.as_ptr() as usize;
        (address >= start && address < start + list.len() * size).then(|| (address - start) / size)
    };
    offset_in(writes)
        .or_else(|| offset_in(reads).map(|offset| writes.len() + offset))
        .unwrap_or(usize::MAX)
}
