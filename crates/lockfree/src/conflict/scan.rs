//! The scan: one pass over key occurrences through an open-addressing table from key to slot,
//! each slot a small state machine with an intrusive list of later touchers.

use std::hash::{BuildHasher, Hash};

use rayon::prelude::*;
use rustc_hash::FxBuildHasher;

use super::report::{Accesses, ConflictGroup, ConflictKind, ConflictReport};
use super::scratch::{bytes, recycle, LentState};
use super::{KeyLists, WRITER};
use crate::proposal::ProposalId;

const NONE: u32 = u32::MAX;

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
    /// A group's members are its range ([`members_of`](Self::members_of)); the ranges need not
    /// follow the groups' order (a combined scan keeps each partition's members together).
    pub(crate) members: Vec<u32>,
}

impl<'a, K> Scan<'a, K> {
    /// No groups, nothing allocated.
    pub(super) const EMPTY: Self = Scan {
        groups: Vec::new(),
        members: Vec::new(),
    };

    /// The same allocations, emptied, for keys of another lifetime and type
    /// ([`recycle`](super::scratch::recycle)).
    pub(super) fn recycle<'b, L>(self) -> Scan<'b, L> {
        Scan {
            groups: recycle(self.groups),
            members: recycle(self.members),
        }
    }

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
        self.report(count, id_of, &mut Vec::new())
    }

    /// [`into_report`](Self::into_report) with `in_group`'s allocation (kept between calls) for
    /// the per-proposal flags.
    pub(crate) fn report(
        &self,
        count: usize,
        id_of: impl Fn(usize) -> ProposalId,
        in_group: &mut Vec<bool>,
    ) -> ConflictReport<K>
    where
        K: Clone,
    {
        let groups = self.report_groups(count, &id_of, in_group);
        ConflictReport {
            groups,
            independent: independent(in_group, id_of),
        }
    }

    /// [`into_report`](Self::into_report) with the id of every proposal in a list of its own
    /// (`ids[index]` is the id of proposal `index`), which becomes the report's independent list:
    /// the grouped ids are squeezed out in place, so the list of about as many ids as there are
    /// proposals is neither allocated again nor written to fresh pages (at 100k proposals, a
    /// 720 KB allocation and a branch per proposal). `in_group`'s allocation (kept between calls)
    /// holds the per-proposal flags.
    pub(crate) fn report_with_ids(
        &self,
        ids: Vec<ProposalId>,
        in_group: &mut Vec<bool>,
    ) -> ConflictReport<K>
    where
        K: Clone,
    {
        let groups = self.report_groups(ids.len(), |index| ids[index], in_group);
        ConflictReport {
            groups,
            independent: keep_independent(ids, in_group),
        }
    }

    /// The report's groups (member ids from `id_of`, keys cloned), and in `in_group` (emptied
    /// first), for each of the `count` scanned proposals, whether it is in one.
    fn report_groups(
        &self,
        count: usize,
        id_of: impl Fn(usize) -> ProposalId,
        in_group: &mut Vec<bool>,
    ) -> Vec<ConflictGroup<K>>
    where
        K: Clone,
    {
        in_group.clear();
        in_group.resize(count, false);
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
                    access: Accesses::from_packed(members),
                }
            })
            .collect();
        groups
    }

    /// [`report_parallel`](Self::report_parallel) with fresh buffers.
    #[cfg(test)]
    pub(crate) fn into_report_parallel(self, ids: Vec<ProposalId>) -> ConflictReport<K>
    where
        K: Clone + Sync,
    {
        self.report_parallel(ids, &mut Vec::new(), &mut Vec::new())
    }

    /// [`report`](Self::report) with the groups' member and access lists built on the rayon pool
    /// (`ids[index]` is the id of proposal `index`); the same report. `ids` becomes the
    /// independent list, as in [`report_with_ids`](Self::report_with_ids). The allocations of
    /// `in_group` and `built` (kept between calls) hold the per-proposal flags and the lists built
    /// on the pool before they join their groups.
    ///
    /// For scans with tens of thousands of members (skewed inputs, where nearly every proposal is
    /// in a group): building those lists, one allocation each, was most of the calling thread's
    /// serial work after the parallel scan (on 10k skewed proposals, about 3.3M of its 7.5M
    /// instructions). The keys are still cloned on the calling thread: `K` need not be `Send`.
    pub(crate) fn report_parallel(
        &self,
        ids: Vec<ProposalId>,
        in_group: &mut Vec<bool>,
        built: &mut Vec<(Vec<ProposalId>, Accesses)>,
    ) -> ConflictReport<K>
    where
        K: Clone + Sync,
    {
        self.groups
            .par_iter()
            .with_min_len(64)
            .map(|group| group_members(self.members_of(group), &ids))
            .collect_into_vec(built);
        in_group.clear();
        in_group.resize(ids.len(), false);
        for &member in &self.members {
            in_group[(member & !WRITER) as usize] = true;
        }
        let groups = self
            .groups
            .iter()
            .zip(built.drain(..))
            .map(|(group, (members, access))| ConflictGroup {
                key: group.key.clone(),
                kind: group.kind,
                members,
                access,
            })
            .collect();
        ConflictReport {
            groups,
            independent: keep_independent(ids, in_group),
        }
    }
}

/// The ids and accesses of one group's packed `members`, on a rayon thread.
///
/// Never inlined: the instruction suite counts it by name on the pool's threads (it is called
/// only there, from [`Scan::into_report_parallel`]).
#[inline(never)]
fn group_members(members: &[u32], ids: &[ProposalId]) -> (Vec<ProposalId>, Accesses) {
    let member_ids = members
        .iter()
        .map(|&member| ids[(member & !WRITER) as usize])
        .collect();
    (member_ids, Accesses::from_packed(members))
}

/// `ids` (one per proposal, in input order) without those `in_group`: the independent list,
/// compacted in place.
pub(super) fn keep_independent(mut ids: Vec<ProposalId>, in_group: &[bool]) -> Vec<ProposalId> {
    let len = ids.len().min(in_group.len());
    let base = ids.as_mut_ptr();
    let mut kept = 0;
    // Every id is copied down to the next free place, which only advances past an independent
    // one: no branch per proposal (one in ten is grouped, at random, in the uniform workload),
    // and no bounds check on the place (`Vec::retain` and an indexed loop cost 10 and 12
    // instructions per proposal, 1.0M and 1.2M on the calling thread at 100k proposals).
    for (index, &grouped) in in_group[..len].iter().enumerate() {
        // SAFETY: `kept <= index < len <= ids.len()` (`kept` grows by at most one per index), so
        // both places are initialized ids of the vector, and the write never overwrites an id
        // not yet read (`kept <= index`).
        unsafe { base.add(kept).write(base.add(index).read()) };
        kept += usize::from(!grouped);
    }
    ids.truncate(kept);
    ids
}

/// The ids of the proposals not `in_group`, in input order.
pub(super) fn independent(
    in_group: &[bool],
    id_of: impl Fn(usize) -> ProposalId,
) -> Vec<ProposalId> {
    // Sized exactly and filled by a plain loop: the filtered iterator's collect grew the vector
    // by doubling and cost about 31 instructions per proposal (3.1M at 100k).
    let grouped = in_group.iter().filter(|&&grouped| grouped).count();
    let mut independent = Vec::with_capacity(in_group.len() - grouped);
    for (index, &grouped) in in_group.iter().enumerate() {
        if !grouped {
            independent.push(id_of(index));
        }
    }
    independent
}

/// The whole scan through one table, in this thread's kept state (`scratch`). Allocated fresh
/// each call, the table, key references and slots of 1k proposals (about 180 KB) were handed
/// back to the kernel when freed and faulted in again on the next call: 20.7 minor page faults
/// per aggregation round of 1k proposals (10% in conflict), 0.01 with the kept state.
pub(super) fn scan_one<'a, K: Hash + Eq + 'a>(
    lists: &[KeyLists<'a, K>],
    occurrences: usize,
) -> Scan<'a, K> {
    let mut state = LentState::take();
    state.reset(occurrences);
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
pub(super) const PREFETCH_DISTANCE: usize = 8;

/// Starts loading the first cache line of both key lists of `lists[index]`, if it exists.
///
/// A hint only: it never changes a result, and does nothing off x86-64.
#[inline(always)]
pub(super) fn prefetch_keys<K>(lists: &[KeyLists<'_, K>], index: usize) {
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

/// The scan's state: an open-addressing table from key to slot, and the slots.
///
/// The table is a flat `Vec<u64>` probed linearly, each entry the key's [`table_hash`] in the upper
/// half (a tag that settles almost every mismatch without touching the key) and the slot number plus
/// one (zero marks an empty entry). Against a general-purpose map of borrowed keys this halves the
/// memory touched per key (8 bytes instead of 16 plus a control byte), so a lookup costs one cache
/// miss instead of two, and fewer fresh pages are faulted in per call.
pub(super) struct ScanState<'a, K> {
    table: Vec<u64>,
    keys: Vec<&'a K>,
    slots: Vec<Slot>,
    nodes: Vec<Node>,
    /// One bit per slot, set when the slot gets its first later toucher: [`finish`](Self::finish)
    /// walks these words instead of every slot (most keys are touched once, and walking their
    /// slots was about a tenth of the partitioned scan's instructions). Sized by the table, which
    /// always has more entries than there are slots.
    touched_again: Vec<u64>,
}

/// The tag of a table entry in a numbered scan ([`ScanState::touch_numbered`]): the low 31 bits
/// of the key's [`table_hash`], above the entry's low half. [`ScanState::touch`] keeps all 32.
const TAG: u64 = 0x7fff_ffff_0000_0000;

/// Set in an entry of a key touched by one proposal only so far, in a numbered scan: the low half
/// is then the number of that first occurrence instead of a slot number plus one.
const SINGLE: u64 = 1 << 63;

/// The half of a key's 64-bit FxHash that the table uses: the low 32 bits, FxHasher's best mixed.
/// They give the home position (their low bits) and the tag (all 32, or 31 in a numbered scan,
/// so the tag still settles almost every mismatch inside a probe run, whose entries mostly have
/// distinct homes). Routing uses the high bits, so the partitions and the table positions stay
/// independent.
#[inline]
pub(super) fn table_hash(hash: u64) -> u32 {
    hash as u32
}

/// The words of a bitset with one bit per entry of a table of `table_len` entries.
fn bitset_words(table_len: usize) -> usize {
    table_len.div_ceil(64)
}

/// Empties `vec` and makes room for `len` items without copying: growing a cleared vector
/// reallocates, and the allocator copies the whole old block although none of it is used (at
/// 100k proposals, a partition larger than every earlier one on its thread cost about 0.9M
/// instructions of copying per thread).
pub(super) fn cleared_with_room<T>(vec: &mut Vec<T>, len: usize) {
    vec.clear();
    if vec.capacity() < len {
        *vec = Vec::with_capacity(len);
    }
}

/// Makes `vec` `len` zeros: in its allocation when it has room, else in a fresh zeroed one
/// (`calloc`, which on fresh pages from the kernel skips the writes: the first scan of a
/// thread, or one larger than every earlier one, does not write its table twice).
fn zeroed(vec: &mut Vec<u64>, len: usize) {
    if vec.capacity() < len {
        *vec = vec![0; len];
    } else {
        vec.clear();
        vec.resize(len, 0);
    }
}

/// The occurrences per distinct key [`ScanState::reset_for_slots`] sizes the table for.
///
/// Its partitions are those whose sampled occurrences repeat ([`mostly_once`](super::partition::mostly_once)
/// says no): on the skewed workload 5 to 6 occurrences per key (skewed_10k: 97k occurrences of
/// 18k keys), more in the partition of a hot key. A lower ratio only costs a table growth or two.
const OCCURRENCES_PER_REPEATED_KEY: usize = 4;

/// A power-of-two table size that keeps `keys` entries at most about two-thirds full.
fn table_size(keys: usize) -> usize {
    (keys + keys / 2).max(16).next_power_of_two()
}

impl<'a, K> ScanState<'a, K> {
    /// No buffers: [`reset`](Self::reset) before use.
    pub(super) const EMPTY: Self = ScanState {
        table: Vec::new(),
        keys: Vec::new(),
        slots: Vec::new(),
        nodes: Vec::new(),
        touched_again: Vec::new(),
    };

    /// The same buffers, emptied, for keys of another lifetime and type
    /// ([`recycle`](super::scratch::recycle)): [`reset`](Self::reset) before use.
    pub(super) fn recycle<'b, L>(self) -> ScanState<'b, L> {
        let mut table = self.table;
        table.clear();
        let mut touched_again = self.touched_again;
        touched_again.clear();
        ScanState {
            table,
            keys: recycle(self.keys),
            slots: recycle(self.slots),
            nodes: recycle(self.nodes),
            touched_again,
        }
    }

    /// Bytes of the buffers' allocations.
    pub(super) fn bytes(&self) -> usize {
        bytes(&self.table)
            + bytes(&self.keys)
            + bytes(&self.slots)
            + bytes(&self.nodes)
            + bytes(&self.touched_again)
    }
}

impl<'a, K: Hash + Eq> ScanState<'a, K> {
    // Always inlined: its three call sites are the scans' inner loops, and when LLVM's budget
    // left it out of line (as a small change elsewhere in the crate did) the 100k row grew by a
    // fifth: 11M more instructions in calls, spills and reloads of the table and vectors.
    #[inline(always)]
    pub(super) fn touch(&mut self, hash: u32, key: &'a K, index: u32, writer: u32) {
        let mask = self.table.len() - 1;
        let mut position = hash as usize & mask;
        let tag = u64::from(hash) << 32;
        loop {
            let entry = self.table[position];
            if entry == 0 {
                break;
            }
            // The whole upper half is the tag here: this scan makes no SINGLE entries.
            if entry & (TAG | SINGLE) == tag {
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

    /// [`touch`](Self::touch) for a scan whose occurrences are numbered (`at`, distinct for every
    /// occurrence) and can be read back by number (`occurrence(at)`: the key and the packed
    /// member), as a partition's routed occurrences can. `member` is packed with [`WRITER`].
    ///
    /// A key's first touch only writes its table entry (marked [`SINGLE`], holding `at`); its slot
    /// is made on the touch by a second proposal, from the first occurrence read back. Most keys
    /// of a uniform input are touched by one proposal only (at 100k proposals of 4 keys, 390k of
    /// 400k occurrences), and their key reference and slot pushes were a fifth of the partitioned
    /// scan's instructions (`scan_partition` 10.0M to 7.9M per thread at 100k). Slots are then numbered in the order of their second touch, not of the
    /// first, so [`finish`](Self::finish)'s groups are not in first-appearance order: the
    /// partitions' groups are sorted anyway when they are combined.
    ///
    /// Do not mix with [`touch`](Self::touch) between two [`reset`](Self::reset)s, and
    /// [`reset`](Self::reset) for at least as many keys as there are occurrences: the table does
    /// not grow here.
    #[inline(always)]
    pub(super) fn touch_numbered(
        &mut self,
        hash: u32,
        key: &'a K,
        member: u32,
        at: u32,
        occurrence: impl Fn(u32) -> (&'a K, u32),
    ) {
        let mask = self.table.len() - 1;
        let mut position = hash as usize & mask;
        // The top bit of the upper half is SINGLE's.
        let tag = (u64::from(hash) << 32) & TAG;
        let index = member & !WRITER;
        loop {
            let entry = self.table[position];
            if entry == 0 {
                break;
            }
            if entry & TAG == tag {
                if entry & SINGLE == 0 {
                    let slot = (entry as u32 - 1) as usize;
                    // `black_box` as in `touch`.
                    if *self.keys[slot] == *std::hint::black_box(key) {
                        self.touch_again(slot, index, member & WRITER);
                        return;
                    }
                } else {
                    let (first_key, first) = occurrence(entry as u32);
                    if *first_key == *std::hint::black_box(key) {
                        // The same proposal again (its occurrences are consecutive in the
                        // partition): still touched by one proposal.
                        if first & !WRITER == index {
                            return;
                        }
                        let slot = self.slots.len();
                        // Slot numbers stay below the occurrence count, bounded by every caller.
                        self.table[position] = tag | (slot as u64 + 1);
                        self.keys.push(first_key);
                        self.slots.push(Slot {
                            first,
                            last: first & !WRITER,
                            head: NONE,
                            tail: NONE,
                            writers: u32::from(first & WRITER != 0),
                        });
                        self.touch_again(slot, index, member & WRITER);
                        return;
                    }
                }
            }
            position = (position + 1) & mask;
        }
        // No growth check: the caller reset the state for at least as many keys as it has
        // occurrences, so the table never gets past two-thirds full (a store and a compare less
        // per key, most of which are touched once).
        self.table[position] = SINGLE | tag | u64::from(at);
    }

    /// A later touch of a known key: counted once per proposal.
    #[inline]
    fn touch_again(&mut self, slot_index: usize, index: u32, writer: u32) {
        let slot = &mut self.slots[slot_index];
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
            self.touched_again[slot_index / 64] |= 1 << (slot_index % 64);
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
        // The entry holds its key's whole table hash (the tag; only `touch` grows the table, and
        // its entries have no SINGLE bit): no key is read again.
        for &entry in self.table.iter().filter(|&&entry| entry != 0) {
            let mut position = (entry >> 32) as usize & mask;
            while table[position] != 0 {
                position = (position + 1) & mask;
            }
            table[position] = entry;
        }
        self.touched_again.resize(bitset_words(table.len()), 0);
        self.table = table;
    }

    /// Empties the state for a new scan of up to about `keys` distinct keys, keeping its buffers.
    ///
    /// Never inlined (one call per partition): inlined into `scan_partition` (as an unrelated
    /// change in this file once made LLVM do) it cost the scan loop about 1M instructions at 100k
    /// proposals.
    #[inline(never)]
    pub(super) fn reset(&mut self, keys: usize) {
        let table_len = table_size(keys);
        zeroed(&mut self.table, table_len);
        cleared_with_room(&mut self.keys, keys);
        cleared_with_room(&mut self.slots, keys);
        self.nodes.clear();
        zeroed(&mut self.touched_again, bitset_words(table_len));
    }

    /// Empties the state for a scan with a slot per key ([`touch`](Self::touch) only) of
    /// `occurrences` key occurrences whose keys mostly repeat, keeping its buffers.
    ///
    /// The table is sized for [`OCCURRENCES_PER_REPEATED_KEY`] times fewer keys than
    /// occurrences (it grows past that), and the nodes (one per later toucher, at most one per
    /// occurrence) get room for every occurrence up front instead of doubling a few times.
    #[inline(never)]
    pub(super) fn reset_for_slots(&mut self, occurrences: usize) {
        self.reset(occurrences.div_ceil(OCCURRENCES_PER_REPEATED_KEY));
        cleared_with_room(&mut self.nodes, occurrences);
    }

    /// The contested keys found so far; the state is left to be [`reset`](Self::reset).
    pub(super) fn finish(&mut self) -> Scan<'a, K> {
        let mut scan = Scan::EMPTY;
        self.finish_into(&mut scan);
        scan
    }

    /// [`finish`](Self::finish) into `into`, in its allocations (emptied, and replaced when too
    /// small): a partition's result in buffers kept between calls.
    pub(super) fn finish_into(&mut self, into: &mut Scan<'a, K>) {
        // Sized up front from upper bounds: every slot touched again is a group unless nobody
        // writes it, and a group's members are its first toucher plus its nodes (growing these
        // vectors by doubling copied them a few times per partition).
        let contested: usize = self
            .touched_again
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum();
        let Scan { groups, members } = into;
        cleared_with_room(groups, contested);
        cleared_with_room(members, contested + self.nodes.len());
        // Slots touched by a second proposal, in slot (first-appearance) order.
        for (word_index, &word) in self.touched_again.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let slot_index = word_index * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                let slot = &self.slots[slot_index];
                // Contested: someone writes the key (and a second proposal touches it).
                if slot.writers == 0 {
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
                    key: self.keys[slot_index],
                    kind: if slot.writers >= 2 {
                        ConflictKind::WriteWrite
                    } else {
                        ConflictKind::ReadWrite
                    },
                    start,
                    end: members.len(),
                });
            }
        }
    }
}
