//! Hash-based conflict detection: one pass over the proposals, never pairwise.
//!
//! The scan keeps one hash map from key to a dense slot index; each slot is a small state machine
//! (first toucher, last toucher, number of distinct touchers and writers) plus an intrusive linked
//! list of later touchers threaded through one flat node array. No per-key allocation happens, a key
//! touched by a single proposal costs one map insert and one slot push, and the keys are borrowed
//! from the input, never cloned, until a contested key is reported.

use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use rayon::prelude::*;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

use crate::proposal::{Proposal, ProposalError, ProposalId};

/// How the members of a [`ConflictGroup`] collide on its key.
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
/// Runs in O(n·k) for n proposals of k keys, with a single [`FxHashMap`](rustc_hash::FxHashMap)
/// lookup per key occurrence and no allocation per key. Keys are cloned only for contested keys.
///
/// # Errors
///
/// [`ProposalError::DuplicateId`] if two proposals share an id (the id of the later one is named).
/// [`ProposalError::TooManyProposals`] beyond 2^31 - 1 proposals.
///
/// # Progress
///
/// Sequential and non-blocking: it runs on the caller's thread only.
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
    K: Hash + Eq + Clone,
{
    check_ids(proposals)?;
    let (lists, occurrences) = key_lists(proposals.iter());
    let scan = scan(lists.into_iter(), occurrences, |_| true);
    Ok(scan.into_report(proposals.len(), |index| proposals[index].id))
}

/// The largest number of proposals one check accepts: member indices are packed into 31 bits.
pub(crate) const MAX_PROPOSALS: usize = (u32::MAX >> 1) as usize;

/// The top bit of a packed member: set when the member writes the key.
pub(crate) const WRITER: u32 = 1 << 31;

const NONE: u32 = u32::MAX;

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
    /// Distinct proposals touching the key.
    touchers: u32,
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

/// The one pass over the keys for which `keep` holds (all of them, or one hash partition).
///
/// `capacity` sizes the map up front (the number of distinct keys expected). The caller has
/// checked that there are at most [`MAX_PROPOSALS`] proposals.
pub(crate) fn scan<'a, K>(
    lists: impl Iterator<Item = KeyLists<'a, K>>,
    capacity: usize,
    mut keep: impl FnMut(&K) -> bool,
) -> Scan<'a, K>
where
    K: Hash + Eq + 'a,
{
    let mut state = ScanState {
        index: FxHashMap::with_capacity_and_hasher(capacity, FxBuildHasher),
        keys: Vec::with_capacity(capacity),
        slots: Vec::with_capacity(capacity),
        nodes: Vec::new(),
    };
    for (index, (writes, reads)) in lists.enumerate() {
        debug_assert!(index < MAX_PROPOSALS);
        // Bounded by MAX_PROPOSALS, checked by every caller.
        let index = index as u32;
        // Written keys first: a proposal's first touch of a key then says whether it writes it,
        // and a later read of the same key by the same proposal is skipped as a repeat.
        for key in writes {
            if keep(key) {
                state.touch(key, index, WRITER);
            }
        }
        for key in reads {
            if keep(key) {
                state.touch(key, index, 0);
            }
        }
    }
    state.finish()
}

/// The same result as [`scan`] over all keys, computed on the rayon pool: the keys are split into
/// one partition per thread by the high bits of their hash, each partition is scanned on its own
/// (every thread reads all key lists but inserts only its partition's keys into a map of its own),
/// and the partitions' groups are put back in first-appearance order.
pub(crate) fn scan_parallel<'a, K>(lists: &[KeyLists<'a, K>], occurrences: usize) -> Scan<'a, K>
where
    K: Hash + Eq + Sync + 'a,
{
    let parts = rayon::current_num_threads().max(1);
    if parts == 1 {
        return scan(lists.iter().copied(), occurrences, |_| true);
    }
    let capacity = occurrences / parts + occurrences / (parts * 8) + 16;
    let scans: Vec<Scan<'a, K>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            scan(lists.iter().copied(), capacity, |key| {
                partition_of(key, parts) == part
            })
        })
        .collect();
    // Each partition lists its groups in first-appearance order; the global order is by the first
    // member and then by the key's first position inside that member's lists.
    let mut order: Vec<(u32, usize, usize, usize)> = Vec::new();
    for (part, scan) in scans.iter().enumerate() {
        for (index, group) in scan.groups.iter().enumerate() {
            let first = scan.members[group.start] & !WRITER;
            let (writes, reads) = lists[first as usize];
            let position = writes
                .iter()
                .position(|key| key == group.key)
                .or_else(|| {
                    reads
                        .iter()
                        .position(|key| key == group.key)
                        .map(|position| writes.len() + position)
                })
                .unwrap_or(usize::MAX);
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

/// Which of `parts` partitions a key belongs to, from the high bits of its hash. The maps inside a
/// partition index by the low bits of the same hash, so they still spread evenly.
fn partition_of<K: Hash>(key: &K, parts: usize) -> usize {
    let hash = FxBuildHasher.hash_one(key);
    ((u128::from(hash) * parts as u128) >> 64) as usize
}

struct ScanState<'a, K> {
    index: FxHashMap<&'a K, u32>,
    keys: Vec<&'a K>,
    slots: Vec<Slot>,
    nodes: Vec<Node>,
}

impl<'a, K: Hash + Eq> ScanState<'a, K> {
    #[inline]
    fn touch(&mut self, key: &'a K, index: u32, writer: u32) {
        match self.index.entry(key) {
            Entry::Vacant(vacant) => {
                vacant.insert(self.slots.len() as u32);
                self.keys.push(key);
                self.slots.push(Slot {
                    first: index | writer,
                    last: index,
                    head: NONE,
                    tail: NONE,
                    touchers: 1,
                    writers: u32::from(writer != 0),
                });
            }
            Entry::Occupied(occupied) => {
                let slot = &mut self.slots[*occupied.get() as usize];
                if slot.last == index {
                    return;
                }
                slot.last = index;
                slot.touchers += 1;
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
        }
    }

    fn finish(self) -> Scan<'a, K> {
        let mut groups = Vec::new();
        let mut members = Vec::new();
        for (slot, key) in self.slots.iter().zip(self.keys) {
            if slot.writers == 0 || slot.touchers < 2 {
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
