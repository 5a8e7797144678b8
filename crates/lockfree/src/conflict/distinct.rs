//! The distinct-keys path: an input in which no key is touched by two proposals (a hive round of
//! agents that each write keys of their own) is found conflict-free by one pass through a table of
//! its keys, without the table scan's slots, key references, groups or membership flags.
//!
//! The table scan pays for what a conflict needs whether or not there is one: its key lists, a slot
//! and a key reference per distinct key, the scan's finish and the report's per-proposal flags. On
//! 1,000 proposals of one written key each that was about 140 instructions per proposal (a seventh
//! of a whole 1,000-agent hive round), of which the lookup itself is a small part. Here each key
//! occurrence is hashed, looked up and inserted (its table entry names the proposal), and the pass
//! stops at the first key a second proposal touches: the caller then runs the table scan, which
//! gives the report of inputs with repeated keys. Such an input pays for the pass up to that key
//! (the first key two proposals share, which in an input with conflicts at random comes early).
//!
//! The table is kept by the thread from call to call ([`scratch`](super::scratch)) and never
//! cleared: each entry carries the stamp of the call that wrote it, and an entry with another
//! call's stamp is empty. Clearing a table sized for 1,000 keys (16 KB) cost more than the pass.

use std::hash::{BuildHasher, Hash};

use rustc_hash::FxBuildHasher;

use super::report::ConflictReport;
use super::scratch::bytes;
use crate::proposal::Proposal;

/// An entry's stamp: the call that wrote it. Entries with another stamp are empty.
const STAMP: u64 = 0xffff_0000_0000_0000;

/// An entry's tag: 16 bits of the key's hash, which settle almost every mismatch in a probe run
/// without touching the key itself.
const TAG: u64 = 0x0000_ffff_0000_0000;

/// An entry's proposal: the index of the proposal whose key it holds.
const PROPOSAL: u64 = 0x0000_0000_ffff_ffff;

/// The table of the distinct-keys pass, kept between calls: entries of [`STAMP`], [`TAG`] and
/// [`PROPOSAL`], and the stamp of the last call.
#[derive(Debug)]
pub(super) struct DistinctTable {
    entries: Vec<u64>,
    /// The last call's stamp; zero before the first call (zeroed entries are then empty to every
    /// call's stamp, which is never zero).
    stamp: u16,
}

impl DistinctTable {
    /// No table yet.
    pub(super) const EMPTY: Self = DistinctTable {
        entries: Vec::new(),
        stamp: 0,
    };

    /// Bytes of the table's allocation.
    pub(super) fn bytes(&self) -> usize {
        bytes(&self.entries)
    }

    /// The report of `proposals` (`occurrences` key occurrences in all) if no key is touched by
    /// two of them, as the table scan would give it (no groups; every id independent, in input
    /// order); `None` if one is, or if the input has too many proposals or occurrences for the
    /// pass (then the table scan decides). A proposal that lists a key twice (written and read, or
    /// twice in one list) touches it once. The ids are not checked.
    pub(super) fn report<K, P>(
        &mut self,
        proposals: &[Proposal<K, P>],
        occurrences: usize,
    ) -> Option<ConflictReport<K>>
    where
        K: Hash + Eq,
    {
        // Entries name proposals in 32 bits, and the table holds up to 1.5 entries per occurrence.
        if proposals.len() > PROPOSAL as usize || occurrences > MAX_OCCURRENCES {
            return None;
        }
        let len = table_size(occurrences);
        let stamp = self.next_stamp(len);
        let table = &mut self.entries[..len];
        let mask = len - 1;
        for (index, proposal) in proposals.iter().enumerate() {
            let reads = &proposal.reads[..];
            for (at, key) in proposal.writes.iter().enumerate() {
                if !insert(table, mask, stamp, key, index, at, proposals) {
                    return None;
                }
            }
            let written = proposal.writes.len();
            for (at, key) in reads.iter().enumerate() {
                if !insert(table, mask, stamp, key, index, written + at, proposals) {
                    return None;
                }
            }
        }
        Some(ConflictReport {
            groups: Vec::new(),
            independent: proposals.iter().map(|proposal| proposal.id).collect(),
        })
    }

    /// A new stamp, in the table's upper bits, for a call that uses the first `len` entries
    /// (a power of two): the table is made that large first, zeroed (a fresh `calloc`'d one when
    /// it is too small, in place when the stamps wrap round), so that no entry holds the stamp.
    fn next_stamp(&mut self, len: usize) -> u64 {
        if self.entries.len() < len {
            self.entries = vec![0; len];
            self.stamp = 0;
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.entries.fill(0);
            self.stamp = 1;
        }
        u64::from(self.stamp) << 48
    }
}

/// The most key occurrences the pass takes: its table stays under 1 MB. Larger inputs are the
/// partitioned scans' (from 65,536 occurrences, on the rayon pool).
const MAX_OCCURRENCES: usize = 1 << 16;

/// A power-of-two table size that keeps `keys` entries at most about two-thirds full (as the
/// table scan's).
fn table_size(keys: usize) -> usize {
    (keys + keys / 2).max(16).next_power_of_two()
}

/// Inserts `key`, the key occurrence `at` of proposal `index` (its writes, then its reads), into
/// `table` (`mask`: its length less one) under `stamp`; false if another proposal touches the key.
#[inline(always)]
fn insert<K: Hash + Eq, P>(
    table: &mut [u64],
    mask: usize,
    stamp: u64,
    key: &K,
    index: usize,
    at: usize,
    proposals: &[Proposal<K, P>],
) -> bool {
    let hash = FxBuildHasher.hash_one(key);
    let mut position = hash as usize & mask;
    // The tag from the hash's upper 16 bits: the position takes the lower ones.
    let wanted = stamp | ((hash >> 16) & TAG) | index as u64;
    loop {
        let entry = table[position];
        if entry & STAMP != stamp {
            table[position] = wanted;
            return true;
        }
        // A tag match: the same key (almost always), or another key of the same tag in the run.
        if (entry ^ wanted) & TAG == 0 {
            match tag_match(key, (entry & PROPOSAL) as usize, index, at, proposals) {
                TagMatch::Repeat => return true,
                TagMatch::Shared => return false,
                TagMatch::Other => {}
            }
        }
        position = (position + 1) & mask;
    }
}

/// What an entry whose tag matches a key's holds.
enum TagMatch {
    /// The key, listed earlier by the same proposal: a repeat, not a new touch.
    Repeat,
    /// The key of another proposal, or a key another proposal also touches.
    Shared,
    /// Another key.
    Other,
}

/// Whether the entry of proposal `owner` whose tag matches `key` (the key occurrence `at` of
/// proposal `index`) holds the key. Out of line: a tag matches only when a key repeats (which
/// ends the pass, unless inside one proposal) or, rarely, two keys of a probe run share 16 bits of
/// their hashes.
#[cold]
#[inline(never)]
fn tag_match<K: Eq, P>(
    key: &K,
    owner: usize,
    index: usize,
    at: usize,
    proposals: &[Proposal<K, P>],
) -> TagMatch {
    fn keys<K, P>(proposal: &Proposal<K, P>) -> impl Iterator<Item = &K> {
        proposal.writes.iter().chain(&proposal.reads)
    }
    if owner != index {
        // Another proposal that touches the key, whichever of its entries matched.
        return if keys(&proposals[owner]).any(|other| other == key) {
            TagMatch::Shared
        } else {
            TagMatch::Other
        };
    }
    if keys(&proposals[index])
        .take(at)
        .any(|earlier| earlier == key)
    {
        TagMatch::Repeat
    } else {
        TagMatch::Other
    }
}

#[cfg(test)]
mod tests {
    use super::DistinctTable;
    use crate::proposal::{Proposal, ProposalId};

    #[test]
    fn a_key_of_two_proposals_stops_the_pass_and_repeats_inside_one_do_not() {
        let mut table = DistinctTable::EMPTY;
        let own: Vec<Proposal<&str, ()>> = vec![
            Proposal::new(1, ()).writes(["a", "a"]).reads(["a", "b"]),
            Proposal::new(2, ()).reads(["c", "c"]).writes(["d"]),
        ];
        let report = table.report(&own, 7).expect("no key shared");
        assert!(report.groups.is_empty());
        assert_eq!(report.independent, [ProposalId(1), ProposalId(2)]);
        // Two readers of one key do not conflict, but the pass leaves them to the table scan.
        let shared = vec![
            Proposal::new(1, ()).reads(["a"]),
            Proposal::new(2, ()).reads(["a"]),
        ];
        assert!(table.report(&shared, 2).is_none());
    }

    /// Keys whose hashes share a home and a tag are told apart by comparing the keys.
    #[derive(Debug, PartialEq, Eq)]
    struct SameHash(u32);

    impl std::hash::Hash for SameHash {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            0_u64.hash(state);
        }
    }

    #[test]
    fn keys_of_one_hash_are_compared_in_their_own_and_other_proposals() {
        let mut table = DistinctTable::EMPTY;
        let distinct = vec![
            Proposal::new(1, ()).writes([SameHash(1), SameHash(2)]),
            Proposal::new(2, ())
                .writes([SameHash(3)])
                .reads([SameHash(4)]),
        ];
        assert!(table.report(&distinct, 4).is_some());
        let shared = vec![
            Proposal::new(1, ()).writes([SameHash(1), SameHash(2)]),
            Proposal::new(2, ())
                .writes([SameHash(3)])
                .reads([SameHash(2)]),
        ];
        assert!(table.report(&shared, 4).is_none());
    }

    /// An entry of an earlier call would name a proposal this call does not have (indexing out of
    /// bounds) or hide a key: stale entries are empty, also once the stamps wrap round.
    #[test]
    fn entries_of_earlier_calls_are_empty_also_when_the_stamps_wrap() {
        let mut table = DistinctTable::EMPTY;
        let many: Vec<Proposal<u64, ()>> = (0..100)
            .map(|id| Proposal::new(id, ()).writes([id]))
            .collect();
        let last: Vec<Proposal<u64, ()>> = vec![Proposal::new(1, ()).writes([99])];
        for _ in 0..=u16::MAX {
            assert!(table.report(&many, 100).is_some());
            // The same table length, so key 99 has the home it had in `many`.
            assert!(table.report(&last, 100).is_some());
        }
        assert!(table.stamp != 0);
        // A larger input gets a larger table, empty; a smaller one after it uses its start.
        let more: Vec<Proposal<u64, ()>> = (0..1_000)
            .map(|id| Proposal::new(id, ()).writes([id]))
            .collect();
        assert!(table.report(&more, 1_000).is_some());
        assert!(table.report(&many, 100).is_some());
        assert!(table.report(&last, 1).is_some());
    }
}
