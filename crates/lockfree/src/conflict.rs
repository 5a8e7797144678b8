//! Hash-based conflict detection: one pass over the proposals, never pairwise.
//!
//! Every key occurrence is hashed once with FxHash. The scan keeps an open-addressing table from key
//! to a dense slot index (8 bytes per entry: a hash tag and the slot, so a probe rarely touches the
//! key itself); each slot is a small state machine (first toucher, last toucher, number of distinct
//! writers) plus an intrusive linked list of later touchers threaded through one flat node array.
//! No per-key allocation happens, a key touched by a single proposal costs one table insert and one
//! slot push, and the keys are borrowed from the input, never cloned, until a contested key is
//! reported.
//!
//! Large inputs are first routed by the high bits of the hash into partitions whose tables fit in
//! the L2 cache (a sequential write per occurrence instead of a cache miss per probe); partitions
//! are independent, so large inputs (and the aggregator's) are scanned on the rayon pool. The partitions' groups are put
//! back in first-appearance order, so the report is the same whichever path produced it.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use rayon::prelude::*;
use rustc_hash::{FxBuildHasher, FxHashSet};

use crate::proposal::{Proposal, ProposalError, ProposalId};

/// How the members of a [`ConflictGroup`] collide on its key.
///
/// # Progress
///
/// Plain data without synchronisation: every method is wait-free.
///
/// # Send and Sync
///
/// `Send` and `Sync`: it holds no references.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::ConflictKind;
///
/// assert_eq!(ConflictKind::WriteWrite.to_string(), "write-write");
/// assert_eq!(ConflictKind::ReadWrite.to_string(), "read-write");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ConflictKind {
    /// Two or more members write the key (other members may read it).
    WriteWrite,
    /// Exactly one member writes the key and the others read it.
    ReadWrite,
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictKind::WriteWrite => "write-write",
            ConflictKind::ReadWrite => "read-write",
        })
    }
}

/// All the proposals that contend for one key.
///
/// A key is contested when at least one proposal writes it and at least one other proposal reads or
/// writes it. Its group lists every proposal that touches the key, once each, in input order.
///
/// # Progress
///
/// Plain data without synchronisation: every method is wait-free.
///
/// # Send and Sync
///
/// `Send`/`Sync` exactly when its type parameters are.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{detect_conflicts, ConflictKind, Proposal, ProposalId};
///
/// let proposals = [
///     Proposal::new(1, ()).reads(["limit"]),
///     Proposal::new(2, ()).writes(["limit"]),
/// ];
/// let report = detect_conflicts(&proposals)?;
/// let group = &report.groups[0];
/// assert_eq!(group.key, "limit");
/// assert_eq!(group.kind, ConflictKind::ReadWrite);
/// assert_eq!(group.members, [ProposalId(1), ProposalId(2)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConflictGroup<K> {
    /// The contested key.
    pub key: K,
    /// Whether several members write it, or one writes and the others read.
    pub kind: ConflictKind,
    /// Every proposal that reads or writes the key, once each, in input order.
    pub members: Vec<ProposalId>,
}

impl<K> ConflictGroup<K> {
    /// True if `id` is a member of this group.
    pub fn contains(&self, id: ProposalId) -> bool {
        self.members.contains(&id)
    }
}

/// The result of [`detect_conflicts`]: one group per contested key and the proposals in none.
///
/// Groups are ordered by where their key first appears in the input: by the first proposal that
/// touches it and, inside that proposal, written keys before read keys, each in list order.
///
/// # Progress
///
/// Plain data without synchronisation: every method is wait-free except
/// [`conflicting_ids`](ConflictReport::conflicting_ids), which sorts, on the caller's thread.
///
/// # Send and Sync
///
/// Plain data: `Send`/`Sync` when `K` is.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{detect_conflicts, Proposal, ProposalId};
///
/// let proposals = [
///     Proposal::new(1, ()).writes(["r1"]),
///     Proposal::new(2, ()).writes(["r2"]),
///     Proposal::new(3, ()).writes(["r1"]),
///     Proposal::new(4, ()).writes(["r2"]),
///     Proposal::new(5, ()).writes(["r3"]).reads(["r3"]),
/// ];
/// let report = detect_conflicts(&proposals)?;
/// assert_eq!(report.groups.len(), 2);
/// assert_eq!(report.groups[0].members, [ProposalId(1), ProposalId(3)]);
/// assert_eq!(report.groups[1].members, [ProposalId(2), ProposalId(4)]);
/// assert_eq!(report.independent, [ProposalId(5)]);
/// assert!(!report.is_conflict_free());
/// assert_eq!(report.groups_of(ProposalId(3)).count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConflictReport<K> {
    /// One group per contested key.
    pub groups: Vec<ConflictGroup<K>>,
    /// The proposals that belong to no group, in input order.
    pub independent: Vec<ProposalId>,
}

impl<K> Default for ConflictReport<K> {
    fn default() -> Self {
        ConflictReport {
            groups: Vec::new(),
            independent: Vec::new(),
        }
    }
}

impl<K> ConflictReport<K> {
    /// True if no two proposals conflict.
    pub fn is_conflict_free(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every proposal that belongs to at least one group, each once, in ascending id order.
    pub fn conflicting_ids(&self) -> Vec<ProposalId> {
        let mut ids: Vec<ProposalId> = self
            .groups
            .iter()
            .flat_map(|group| group.members.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The groups `id` belongs to, in report order.
    pub fn groups_of(&self, id: ProposalId) -> impl Iterator<Item = &ConflictGroup<K>> + '_ {
        self.groups.iter().filter(move |group| group.contains(id))
    }
}

/// Finds every conflict among `proposals` in one pass over their keys.
///
/// Two proposals conflict when one writes a key the other reads or writes. The result holds one
/// [`ConflictGroup`] per contested key and the ids of the proposals that conflict with nothing.
/// Conflicts are found whatever the order and mix of the input. A proposal that reads and writes the
/// same key, or lists a key twice, never conflicts with itself. Empty input gives an empty report.
///
/// Runs in O(n·k) for n proposals of k keys: one FxHash and one probe of a cache-sized table per key
/// occurrence, and no allocation per key. Keys are cloned only for contested keys. Keys must be
/// `Sync` because large inputs (from 65,536 key occurrences) are split by key hash into independent
/// partitions scanned on the rayon pool: still one pass over each proposal, and the same report.
///
/// # Errors
///
/// [`ProposalError::DuplicateId`] if two proposals share an id (the id of the later one is named).
/// [`ProposalError::TooManyProposals`] beyond 2^31 - 1 proposals, and
/// [`ProposalError::TooManyKeys`] beyond 2^32 - 2 key occurrences.
///
/// # Progress
///
/// Non-blocking. Below 65,536 key occurrences it runs on the caller's thread only; from there up
/// the caller also waits for the partitions it hands to the rayon pool.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{detect_conflicts, ConflictKind, Proposal, ProposalId};
///
/// let proposals = [
///     Proposal::new(1, "bump").reads(["version"]).writes(["version"]),
///     Proposal::new(2, "rename").writes(["name"]),
///     Proposal::new(3, "reset").writes(["version"]),
/// ];
/// let report = detect_conflicts(&proposals)?;
/// assert_eq!(report.groups.len(), 1);
/// assert_eq!(report.groups[0].kind, ConflictKind::WriteWrite);
/// assert_eq!(report.groups[0].members, [ProposalId(1), ProposalId(3)]);
/// assert_eq!(report.independent, [ProposalId(2)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn detect_conflicts<K, P>(
    proposals: &[Proposal<K, P>],
) -> Result<ConflictReport<K>, ProposalError>
where
    K: Hash + Eq + Clone + Sync,
{
    check_ids(proposals)?;
    let (lists, occurrences) = key_lists(proposals.iter());
    check_occurrences(occurrences)?;
    let scan = if occurrences >= PARALLEL_OCCURRENCES {
        scan_parallel(&lists, occurrences)
    } else {
        scan(&lists, occurrences)
    };
    Ok(scan.into_report(proposals.len(), |index| proposals[index].id))
}

/// From this many key occurrences up, [`detect_conflicts`] routes and scans on the rayon pool.
///
/// Past the last-level cache the scan is bound by misses on the proposals' key lists, and a
/// second core keeps twice as many in flight (at 100k proposals of 4 keys, the parallel scan
/// costs about 10 % more CPU time than the sequential one, against a second core's worth of
/// throughput). Set at 16k proposals of 4 keys, the aggregator's measured parallel threshold
/// ([`Aggregator::DEFAULT_PARALLEL_THRESHOLD`](crate::Aggregator::DEFAULT_PARALLEL_THRESHOLD)),
/// well above where the pool's start-up stops mattering.
const PARALLEL_OCCURRENCES: usize = 1 << 16;

/// The largest number of proposals one check accepts: member indices are packed into 31 bits.
pub(crate) const MAX_PROPOSALS: usize = (u32::MAX >> 1) as usize;

/// The top bit of a packed member: set when the member writes the key.
pub(crate) const WRITER: u32 = 1 << 31;

const NONE: u32 = u32::MAX;

/// The largest number of key occurrences one check accepts: slot numbers (plus one) fit in the 32
/// low bits of a table entry.
pub(crate) const MAX_OCCURRENCES: usize = (u32::MAX - 1) as usize;

/// Fails on more key occurrences than slot numbers can address.
pub(crate) fn check_occurrences(occurrences: usize) -> Result<(), ProposalError> {
    if occurrences > MAX_OCCURRENCES {
        return Err(ProposalError::TooManyKeys {
            max: MAX_OCCURRENCES,
        });
    }
    Ok(())
}

/// Fails on a duplicate id or on more proposals than indices can address.
pub(crate) fn check_ids<K, P>(proposals: &[Proposal<K, P>]) -> Result<(), ProposalError> {
    if proposals.len() > MAX_PROPOSALS {
        return Err(ProposalError::TooManyProposals {
            count: proposals.len(),
            max: MAX_PROPOSALS,
        });
    }
    // Fast path: ids handed out by a counter are strictly increasing, which proves them distinct
    // without hashing anything.
    if proposals.windows(2).all(|pair| pair[0].id < pair[1].id) {
        return Ok(());
    }
    let mut seen: FxHashSet<ProposalId> =
        FxHashSet::with_capacity_and_hasher(proposals.len(), FxBuildHasher);
    for proposal in proposals {
        if !seen.insert(proposal.id) {
            return Err(ProposalError::DuplicateId(proposal.id));
        }
    }
    Ok(())
}

/// The per-key state machine of the scan.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The first proposal to touch the key, packed with [`WRITER`].
    first: u32,
    /// The last proposal to touch the key (plain index): repeated touches by it are ignored.
    last: u32,
    /// The first node of the list of later touchers, or [`NONE`].
    head: u32,
    /// The last node of that list, or [`NONE`].
    tail: u32,
    /// Distinct proposals writing the key.
    writers: u32,
}

/// A later toucher of a key, in the flat node array.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The proposal index, packed with [`WRITER`].
    member: u32,
    /// The next node for the same key, or [`NONE`].
    next: u32,
}

/// One contested key as the scan found it, before ids and key clones are produced.
#[derive(Debug)]
pub(crate) struct RawGroup<'a, K> {
    /// The contested key, borrowed from the input.
    pub(crate) key: &'a K,
    /// The kind of conflict.
    pub(crate) kind: ConflictKind,
    /// The members' range in [`Scan::members`].
    pub(crate) start: usize,
    /// The end of that range.
    pub(crate) end: usize,
}

/// The scan's result: contested keys in first-appearance order and their packed members.
#[derive(Debug)]
pub(crate) struct Scan<'a, K> {
    /// One entry per contested key.
    pub(crate) groups: Vec<RawGroup<'a, K>>,
    /// Members of all groups, each a proposal index packed with [`WRITER`], in input order per group.
    pub(crate) members: Vec<u32>,
}

impl<'a, K> Scan<'a, K> {
    /// The packed members of one group.
    pub(crate) fn members_of(&self, group: &RawGroup<'a, K>) -> &[u32] {
        &self.members[group.start..group.end]
    }

    /// Turns indices into ids (`id_of(index)` for the `count` scanned proposals) and clones the
    /// contested keys.
    pub(crate) fn into_report(
        self,
        count: usize,
        id_of: impl Fn(usize) -> ProposalId,
    ) -> ConflictReport<K>
    where
        K: Clone,
    {
        let mut in_group = vec![false; count];
        let groups = self
            .groups
            .iter()
            .map(|group| {
                let members = self.members_of(group);
                ConflictGroup {
                    key: group.key.clone(),
                    kind: group.kind,
                    members: members
                        .iter()
                        .map(|&member| {
                            let index = (member & !WRITER) as usize;
                            in_group[index] = true;
                            id_of(index)
                        })
                        .collect(),
                }
            })
            .collect();
        let independent = in_group
            .iter()
            .enumerate()
            .filter(|(_, &grouped)| !grouped)
            .map(|(index, _)| id_of(index))
            .collect();
        ConflictReport {
            groups,
            independent,
        }
    }
}

/// One proposal's key lists as the scan reads them: `(writes, reads)`.
pub(crate) type KeyLists<'a, K> = (&'a [K], &'a [K]);

/// The key lists of every proposal, and their total length.
pub(crate) fn key_lists<'a, K: 'a, P: 'a>(
    proposals: impl Iterator<Item = &'a Proposal<K, P>>,
) -> (Vec<KeyLists<'a, K>>, usize) {
    let mut occurrences = 0;
    let lists = proposals
        .map(|proposal| {
            occurrences += proposal.writes.len() + proposal.reads.len();
            (&proposal.writes[..], &proposal.reads[..])
        })
        .collect();
    (lists, occurrences)
}

/// Distinct keys per partition the partitioned scan aims for: the partition's table (8 bytes per
/// entry at most two-thirds full), slots and key references then fit in a 512 KiB L2 cache.
const KEYS_PER_PARTITION: usize = 8 * 1024;

/// The most partitions (write streams while routing) the scan uses.
const MAX_PARTITIONS: usize = 256;

/// One key occurrence, hashed and routed to its partition.
///
/// 16 bytes: routing writes one per key occurrence and the scan reads it back, so at 100k
/// proposals these streams are megabytes; only the half of the hash the table uses is kept (the
/// partition's bits are implied by which partition holds it).
#[derive(Debug)]
struct Occurrence<'a, K> {
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
    let parts = partitions(occurrences, 1);
    if parts == 1 {
        return scan_one(lists, occurrences);
    }
    let routed = [route(lists, 0, parts.trailing_zeros(), occurrences)];
    // One state for every partition: its buffers are allocated once per call, not once per
    // partition (each partition's table and slots are a few hundred KiB, and fresh allocations of
    // that size cost page faults on every call).
    let mut state = ScanState::with_capacity(0);
    let scans = (0..parts)
        .map(|part| scan_partition(&mut state, &routed, part))
        .collect();
    combine(scans, lists)
}

/// [`scan`] on the rayon pool: routing runs on chunks of proposals and the partitions (at least
/// one per thread) are scanned in parallel. The result is the same as [`scan`]'s.
pub(crate) fn scan_parallel<'a, K>(lists: &[KeyLists<'a, K>], occurrences: usize) -> Scan<'a, K>
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
    let chunk_occurrences = occurrences / lists.len().div_ceil(chunk).max(1);
    let routed: Vec<Vec<Vec<Occurrence<'a, K>>>> = lists
        .par_chunks(chunk)
        .enumerate()
        .map(|(number, lists)| route(lists, number * chunk, bits, chunk_occurrences))
        .collect();
    let scans = (0..parts)
        .into_par_iter()
        .map_init(
            // Reused across the partitions one rayon job scans, as in `scan`.
            || ScanState::with_capacity(0),
            |state, part| scan_partition(state, &routed, part),
        )
        .collect();
    combine(scans, lists)
}

/// The number of partitions for `occurrences`: a power of two, at least `at_least` (rounded up),
/// aiming at no more than [`KEYS_PER_PARTITION`] keys each, at most [`MAX_PARTITIONS`].
///
/// Below two partitions' worth one table is used. Above, the count is rounded up, never down: at
/// 10k proposals of 4 keys, rounding down gave 4 partitions of 10k keys whose tables and slots
/// no longer fit in L2, and the scan ran at half the speed of 8 partitions of 5k keys (measured).
fn partitions(occurrences: usize, at_least: usize) -> usize {
    let wanted = if occurrences < 2 * KEYS_PER_PARTITION {
        1
    } else {
        occurrences.div_ceil(KEYS_PER_PARTITION)
    };
    wanted.max(at_least).next_power_of_two().min(MAX_PARTITIONS)
}

/// Scans one partition: its occurrences from every routed chunk, in chunk (input) order.
fn scan_partition<'a, K: Hash + Eq>(
    state: &mut ScanState<'a, K>,
    routed: &[Vec<Vec<Occurrence<'a, K>>>],
    part: usize,
) -> Scan<'a, K> {
    let count: usize = routed.iter().map(|chunk| chunk[part].len()).sum();
    state.reset(count);
    for chunk in routed {
        for occurrence in &chunk[part] {
            state.touch(
                occurrence.hash,
                occurrence.key,
                occurrence.member & !WRITER,
                occurrence.member & WRITER,
            );
        }
    }
    state.finish()
}

/// The whole scan through one table.
fn scan_one<'a, K: Hash + Eq + 'a>(lists: &[KeyLists<'a, K>], occurrences: usize) -> Scan<'a, K> {
    let mut state = ScanState::with_capacity(occurrences);
    for (index, &(writes, reads)) in lists.iter().enumerate() {
        prefetch_keys(lists, index + PREFETCH_DISTANCE);
        // Bounded by MAX_PROPOSALS, checked by every caller.
        let index = index as u32;
        // Written keys first: a proposal's first touch of a key then says whether it writes it,
        // and a later read of the same key by the same proposal is skipped as a repeat.
        for key in writes {
            state.touch(table_hash(FxBuildHasher.hash_one(key)), key, index, WRITER);
        }
        for key in reads {
            state.touch(table_hash(FxBuildHasher.hash_one(key)), key, index, 0);
        }
    }
    state.finish()
}

/// How many proposals ahead of the one being hashed [`prefetch_keys`] asks for the key lists.
///
/// Each proposal's key lists are two separate heap blocks, in allocation order rather than input
/// order, so past the last-level cache reading a proposal's first key is a cache (and often TLB)
/// miss that the out-of-order window, a proposal or two deep, cannot hide. Asking for the lists a
/// few proposals ahead keeps several of those misses in flight at once; at 100k proposals this
/// was most of the scan's time (measured in the `conflict_detection` bench).
const PREFETCH_DISTANCE: usize = 8;

/// Starts loading the first cache line of both key lists of `lists[index]`, if it exists.
///
/// A hint only: it never changes a result, and does nothing off x86-64.
#[inline(always)]
fn prefetch_keys<K>(lists: &[KeyLists<'_, K>], index: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(&(writes, reads)) = lists.get(index) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of the x86-64 baseline, so the intrinsic is available, and a
        // prefetch never faults nor reads into the program: any address is allowed (these are
        // the starts of live slices, dangling but never dereferenced when a slice is empty).
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(writes.as_ptr().cast());
            _mm_prefetch::<_MM_HINT_T0>(reads.as_ptr().cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (lists, index);
}

/// Hashes the occurrences of `lists` (proposals numbered from `first_index`) into `2^bits`
/// partitions, keeping input order (and written keys before read keys) inside each.
fn route<'a, K: Hash>(
    lists: &[KeyLists<'a, K>],
    first_index: usize,
    bits: u32,
    occurrences: usize,
) -> Vec<Vec<Occurrence<'a, K>>> {
    let parts = 1 << bits;
    let expected = occurrences / parts + occurrences / (parts * 4) + 4;
    let mut routed: Vec<Vec<Occurrence<'a, K>>> =
        (0..parts).map(|_| Vec::with_capacity(expected)).collect();
    for (offset, &(writes, reads)) in lists.iter().enumerate() {
        prefetch_keys(lists, offset + PREFETCH_DISTANCE);
        // Bounded by MAX_PROPOSALS, checked by every caller.
        let index = (first_index + offset) as u32;
        let keys = writes
            .iter()
            .map(|key| (key, index | WRITER))
            .chain(reads.iter().map(|key| (key, index)));
        for (key, member) in keys {
            let hash = FxBuildHasher.hash_one(key);
            // The high bits choose the partition; the table inside uses the low bits.
            routed[(hash >> (64 - bits)) as usize].push(Occurrence {
                key,
                hash: table_hash(hash),
                member,
            });
        }
    }
    routed
}

/// Puts the groups of several partitions back in first-appearance order: by the first member, then
/// by the key's first position inside that member's lists (written keys first).
///
/// The position is read from the group's key reference, which is the first member's first
/// occurrence of the key (partitions keep input order, written keys first): its offset inside the
/// member's lists is address arithmetic, O(1) per group. Searching the member's lists for the key
/// instead made this step quadratic in the width of one proposal (two proposals of 65,536 shared
/// keys took seconds).
fn combine<'a, K>(scans: Vec<Scan<'a, K>>, lists: &[KeyLists<'a, K>]) -> Scan<'a, K> {
    let mut order: Vec<(u32, usize, usize, usize)> = Vec::new();
    for (part, scan) in scans.iter().enumerate() {
        for (index, group) in scan.groups.iter().enumerate() {
            let first = scan.members[group.start] & !WRITER;
            let position = position_in(lists[first as usize], group.key);
            order.push((first, position, part, index));
        }
    }
    order.sort_unstable();
    let total: usize = scans.iter().map(|scan| scan.members.len()).sum();
    let mut members = Vec::with_capacity(total);
    let groups = order
        .into_iter()
        .map(|(_, _, part, index)| {
            let group = &scans[part].groups[index];
            let start = members.len();
            members.extend_from_slice(scans[part].members_of(group));
            RawGroup {
                key: group.key,
                kind: group.kind,
                start,
                end: members.len(),
            }
        })
        .collect();
    Scan { groups, members }
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

/// The scan's state: an open-addressing table from key to slot, and the slots.
///
/// The table is a flat `Vec<u64>` probed linearly, each entry the key's [`table_hash`] in the upper
/// half (a tag that settles almost every mismatch without touching the key) and the slot number plus
/// one (zero marks an empty entry). Against a general-purpose map of borrowed keys this halves the
/// memory touched per key (8 bytes instead of 16 plus a control byte), so a lookup costs one cache
/// miss instead of two, and fewer fresh pages are faulted in per call.
struct ScanState<'a, K> {
    table: Vec<u64>,
    keys: Vec<&'a K>,
    slots: Vec<Slot>,
    nodes: Vec<Node>,
}

/// The tag half of a table entry.
const TAG: u64 = 0xffff_ffff_0000_0000;

/// The half of a key's 64-bit FxHash that the table uses: the low 32 bits, FxHasher's best mixed.
/// They give the home position (their low bits) and the tag (all 32, so the tag still settles
/// almost every mismatch inside a probe run, whose entries mostly have distinct homes). Routing
/// uses the high bits, so the partitions and the table positions stay independent.
#[inline]
fn table_hash(hash: u64) -> u32 {
    hash as u32
}

/// A power-of-two table size that keeps `keys` entries at most about two-thirds full.
fn table_size(keys: usize) -> usize {
    (keys + keys / 2).max(16).next_power_of_two()
}

impl<'a, K: Hash + Eq> ScanState<'a, K> {
    fn with_capacity(keys: usize) -> Self {
        ScanState {
            table: vec![0; table_size(keys)],
            keys: Vec::with_capacity(keys),
            slots: Vec::with_capacity(keys),
            nodes: Vec::new(),
        }
    }

    #[inline]
    fn touch(&mut self, hash: u32, key: &'a K, index: u32, writer: u32) {
        let mask = self.table.len() - 1;
        let mut position = hash as usize & mask;
        let tag = u64::from(hash) << 32;
        loop {
            let entry = self.table[position];
            if entry == 0 {
                break;
            }
            if entry & TAG == tag {
                let slot = (entry as u32 - 1) as usize;
                // `black_box` hides that `key` is dereferenceable: otherwise the compiler hoists
                // the load of the key to the first occupied probe, and since the key lives in the
                // caller's (cold) proposal memory that costs a cache miss on most probes instead
                // of only on tag matches, which are almost always real matches.
                if *self.keys[slot] == *std::hint::black_box(key) {
                    self.touch_again(slot, index, writer);
                    return;
                }
            }
            position = (position + 1) & mask;
        }
        let slot = self.slots.len();
        // Slot numbers stay below u32::MAX - 1: every caller bounds the key occurrences by
        // MAX_OCCURRENCES (`check_occurrences`, or the aggregator's per-shard budget).
        self.table[position] = tag | (slot as u64 + 1);
        self.keys.push(key);
        self.slots.push(Slot {
            first: index | writer,
            last: index,
            head: NONE,
            tail: NONE,
            writers: u32::from(writer != 0),
        });
        if self.slots.len() * 3 > self.table.len() * 2 {
            self.grow();
        }
    }

    /// A later touch of a known key: counted once per proposal.
    #[inline]
    fn touch_again(&mut self, slot: usize, index: u32, writer: u32) {
        let slot = &mut self.slots[slot];
        if slot.last == index {
            return;
        }
        slot.last = index;
        slot.writers += u32::from(writer != 0);
        let node = self.nodes.len() as u32;
        self.nodes.push(Node {
            member: index | writer,
            next: NONE,
        });
        if slot.tail == NONE {
            slot.head = node;
        } else {
            self.nodes[slot.tail as usize].next = node;
        }
        slot.tail = node;
    }

    /// Doubles the table and re-inserts every key (only when the capacity estimate was short,
    /// as for a skewed hash partition).
    #[cold]
    fn grow(&mut self) {
        let mut table = vec![0; self.table.len() * 2];
        let mask = table.len() - 1;
        for (slot, key) in self.keys.iter().enumerate() {
            let hash = table_hash(FxBuildHasher.hash_one(key));
            let mut position = hash as usize & mask;
            while table[position] != 0 {
                position = (position + 1) & mask;
            }
            table[position] = (u64::from(hash) << 32) | (slot as u64 + 1);
        }
        self.table = table;
    }

    /// Empties the state for a new scan of up to about `keys` distinct keys, keeping its buffers.
    fn reset(&mut self, keys: usize) {
        self.table.clear();
        self.table.resize(table_size(keys), 0);
        self.keys.clear();
        self.keys.reserve(keys);
        self.slots.clear();
        self.slots.reserve(keys);
        self.nodes.clear();
    }

    /// The contested keys found so far; the state is left to be [`reset`](Self::reset).
    fn finish(&mut self) -> Scan<'a, K> {
        let mut groups = Vec::new();
        let mut members = Vec::new();
        for (slot, &key) in self.slots.iter().zip(&self.keys) {
            // Contested: someone writes the key and a second proposal touches it.
            if slot.writers == 0 || slot.head == NONE {
                continue;
            }
            let start = members.len();
            members.push(slot.first);
            let mut node = slot.head;
            while node != NONE {
                let next = self.nodes[node as usize];
                members.push(next.member);
                node = next.next;
            }
            groups.push(RawGroup {
                key,
                kind: if slot.writers >= 2 {
                    ConflictKind::WriteWrite
                } else {
                    ConflictKind::ReadWrite
                },
                start,
                end: members.len(),
            });
        }
        Scan { groups, members }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Priority;

    fn ids(raw: &[u64]) -> Vec<ProposalId> {
        raw.iter().copied().map(ProposalId).collect()
    }

    #[test]
    fn empty_input_gives_empty_report() {
        let proposals: [Proposal<u32, ()>; 0] = [];
        let report = detect_conflicts(&proposals).unwrap();
        assert_eq!(report, ConflictReport::default());
        assert!(report.is_conflict_free());
    }

    #[test]
    fn read_modify_write_does_not_conflict_with_itself() {
        let proposals = [
            Proposal::new(1, ()).reads(["a", "a"]).writes(["a", "a"]),
            Proposal::new(2, ()).reads(["b"]),
            Proposal::new(3, ()).reads(["b"]),
        ];
        let report = detect_conflicts(&proposals).unwrap();
        assert!(report.is_conflict_free());
        assert_eq!(report.independent, ids(&[1, 2, 3]));
    }

    #[test]
    fn interleaved_writes_give_one_group_per_key() {
        let proposals = [
            Proposal::new(10, ()).writes(["r1"]),
            Proposal::new(11, ()).writes(["r2"]),
            Proposal::new(12, ()).writes(["r1"]),
            Proposal::new(13, ()).writes(["r2"]),
        ];
        let report = detect_conflicts(&proposals).unwrap();
        assert_eq!(report.groups.len(), 2);
        assert_eq!(report.groups[0].key, "r1");
        assert_eq!(report.groups[0].members, ids(&[10, 12]));
        assert_eq!(report.groups[0].kind, ConflictKind::WriteWrite);
        assert_eq!(report.groups[1].key, "r2");
        assert_eq!(report.groups[1].members, ids(&[11, 13]));
        assert!(report.independent.is_empty());
        assert_eq!(report.conflicting_ids(), ids(&[10, 11, 12, 13]));
    }

    #[test]
    fn read_before_write_is_found_as_read_write() {
        let proposals = [
            Proposal::new(1, ()).reads(["k"]),
            Proposal::new(2, ()).reads(["k"]),
            Proposal::new(3, ()).writes(["k"]).priority(Priority::High),
        ];
        let report = detect_conflicts(&proposals).unwrap();
        assert_eq!(report.groups.len(), 1);
        assert_eq!(report.groups[0].kind, ConflictKind::ReadWrite);
        assert_eq!(report.groups[0].members, ids(&[1, 2, 3]));
    }

    #[test]
    fn readers_alone_never_conflict() {
        let proposals = [
            Proposal::new(1, ()).reads(["k"]),
            Proposal::new(2, ()).reads(["k"]),
        ];
        assert!(detect_conflicts(&proposals).unwrap().is_conflict_free());
    }

    #[test]
    fn duplicate_ids_are_an_error_in_any_order() {
        let proposals = [
            Proposal::new(5, ()).writes(["a"]),
            Proposal::new(2, ()).writes(["b"]),
            Proposal::new(5, ()).writes(["c"]),
        ];
        assert_eq!(
            detect_conflicts(&proposals),
            Err(ProposalError::DuplicateId(ProposalId(5)))
        );
    }

    /// Proposals over a key space small enough for many conflicts, large enough to be routed
    /// through several partitions.
    fn many(n: u64, space: u64) -> Vec<Proposal<u64, ()>> {
        (0..n)
            .map(|id| {
                let key = |slot: u64| (id.wrapping_mul(0x9e37_79b9) ^ (slot << 40)) % space;
                Proposal::new(id, ())
                    .writes([key(0), key(1)])
                    .reads([key(2), key(1), key(3)])
            })
            .collect()
    }

    #[test]
    fn partitioned_scans_match_the_single_table() {
        for (n, space) in [(12_000, 40_000), (10_000, 4_000), (9_000, 1 << 40)] {
            let proposals = many(n, space);
            let (lists, occurrences) = key_lists(proposals.iter());
            assert!(
                partitions(occurrences, 1) > 1,
                "the input must be partitioned"
            );
            let id_of = |index: usize| proposals[index].id;
            let reference = scan_one(&lists, occurrences).into_report(proposals.len(), id_of);
            let sequential = scan(&lists, occurrences).into_report(proposals.len(), id_of);
            let parallel = scan_parallel(&lists, occurrences).into_report(proposals.len(), id_of);
            assert_eq!(sequential, reference);
            assert_eq!(parallel, reference);
            assert!(space > 1 << 20 || !reference.groups.is_empty());
        }
    }

    #[test]
    fn large_inputs_take_the_parallel_path_with_the_same_report() {
        let proposals = many(20_000, 60_000);
        let (lists, occurrences) = key_lists(proposals.iter());
        assert!(
            occurrences >= PARALLEL_OCCURRENCES,
            "the input must be large"
        );
        let id_of = |index: usize| proposals[index].id;
        let reference = scan_one(&lists, occurrences).into_report(proposals.len(), id_of);
        assert!(!reference.groups.is_empty());
        assert_eq!(detect_conflicts(&proposals), Ok(reference));
    }

    #[test]
    fn partitions_hold_at_most_the_aimed_keys() {
        assert_eq!(partitions(0, 1), 1);
        assert_eq!(partitions(2 * KEYS_PER_PARTITION - 1, 1), 1);
        // 10k proposals of 4 keys: rounding down gave 4 partitions of 10k keys.
        assert_eq!(partitions(40_000, 1), 8);
        assert_eq!(partitions(40_000, 16), 16);
        for occurrences in (2 * KEYS_PER_PARTITION..MAX_PARTITIONS * KEYS_PER_PARTITION)
            .step_by(KEYS_PER_PARTITION / 3)
        {
            let parts = partitions(occurrences, 1);
            assert!(parts.is_power_of_two() && parts <= MAX_PARTITIONS);
            assert!(
                occurrences.div_ceil(parts) <= KEYS_PER_PARTITION,
                "{occurrences}"
            );
        }
        assert_eq!(partitions(usize::MAX / 2, 1), MAX_PARTITIONS);
    }

    /// Regression: putting partitioned groups back in order searched each group's key in its first
    /// member's lists, quadratic in the width of one proposal.
    #[test]
    fn wide_proposals_keep_first_appearance_order_across_partitions() {
        let width = 20_000_u64;
        let keys = |offset: u64| (0..width).map(move |key| key.wrapping_mul(0x9e37_79b9) + offset);
        let proposals = [
            // Written keys, then read keys that the second proposal writes: both lists are used.
            Proposal::new(1, ()).writes(keys(0)).reads(keys(1 << 40)),
            Proposal::new(2, ()).writes(keys(1 << 40)).reads(keys(0)),
        ];
        let (lists, occurrences) = key_lists(proposals.iter());
        assert!(
            partitions(occurrences, 1) > 1,
            "the input must be partitioned"
        );
        let id_of = |index: usize| proposals[index].id;
        let reference = scan_one(&lists, occurrences).into_report(proposals.len(), id_of);
        assert_eq!(reference.groups.len(), 2 * width as usize);
        assert_eq!(reference.groups[0].key, 0);
        assert_eq!(reference.groups[width as usize].key, 1 << 40);
        assert_eq!(scan(&lists, occurrences).into_report(2, id_of), reference);
        assert_eq!(
            scan_parallel(&lists, occurrences).into_report(2, id_of),
            reference
        );
    }

    #[test]
    fn table_grows_past_a_short_estimate() {
        let proposals = many(3_000, 1 << 40);
        let (lists, _) = key_lists(proposals.iter());
        let id_of = |index: usize| proposals[index].id;
        // A capacity estimate of zero forces the table to grow many times.
        let grown = scan_one(&lists, 0).into_report(proposals.len(), id_of);
        let sized = scan_one(&lists, 15_000).into_report(proposals.len(), id_of);
        assert_eq!(grown, sized);
    }

    #[test]
    fn groups_of_lists_every_group_of_a_member() {
        let proposals = [
            Proposal::new(1, ()).writes(["a", "b"]),
            Proposal::new(2, ()).reads(["a"]),
            Proposal::new(3, ()).writes(["b"]),
        ];
        let report = detect_conflicts(&proposals).unwrap();
        let keys: Vec<_> = report.groups_of(ProposalId(1)).map(|g| g.key).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(report.groups_of(ProposalId(2)).count(), 1);
    }
}
