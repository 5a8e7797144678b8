//! The small-input path: a handful of proposals (a hive round of ten agents) scanned through
//! arrays on the stack, straight into the report.
//!
//! The table scan's fixed costs dominate such inputs: its key-list vector, table, slot, key, node
//! and bitset buffers, the scan's group and member lists, and the report's membership flags are
//! about ten allocations whatever the input's size, most of the 4,500 instructions a 10-proposal
//! check cost (a tenth of a whole 10-agent hive round). Here a key is found by comparing its hash
//! with those of the keys seen so far (at most [`SMALL_OCCURRENCES`] of them), and the only
//! allocations are the report's own: its group list, each group's members and the independent
//! list. The report is the table scan's, group for group (first-appearance order, members in
//! input order, the same kinds and accesses): `tests.rs` checks the two paths against each other.

use std::hash::{BuildHasher, Hash};

use rustc_hash::FxBuildHasher;

use super::report::{Accesses, ConflictGroup, ConflictKind, ConflictReport};
use super::WRITER;
use crate::proposal::Proposal;

/// The most key occurrences (written and read, over all proposals) the small path takes.
///
/// Its lookup compares a key's hash with every distinct key's before it, so its cost grows with
/// the square of the occurrences: at 32 that is at most 496 compares of two words, about what the
/// table scan's allocations alone cost.
pub(super) const SMALL_OCCURRENCES: usize = 32;

/// The most proposals the small path takes: one bit each in its membership mask (proposals without
/// keys count too).
pub(super) const SMALL_PROPOSALS: usize = 64;

/// One distinct key of a small scan: the table scan's slot, on the stack.
struct SmallSlot<'a, K> {
    key: &'a K,
    hash: u64,
    /// The first proposal to touch the key, packed with [`WRITER`].
    first: u32,
    /// The last proposal to touch the key (plain index): repeated touches by it are ignored.
    last: u32,
    /// Distinct proposals writing the key.
    writers: u32,
    /// Distinct proposals touching the key after the first.
    later: u32,
}

// Manual impls: a derive would require `K: Copy`.
impl<K> Clone for SmallSlot<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for SmallSlot<'_, K> {}

/// The key lists' occurrences and whether the ids are strictly increasing (which proves them
/// distinct), in one pass over `proposals`, without collecting the key lists.
pub(super) fn occurrences_and_order<K, P>(proposals: &[Proposal<K, P>]) -> (usize, bool) {
    let mut occurrences: usize = 0;
    let mut increasing = true;
    // The last id in a register (`None` orders below every id), not the previous proposal
    // indexed and bounds-checked: about a third fewer instructions per proposal.
    let mut previous = None;
    for proposal in proposals {
        occurrences = occurrences.saturating_add(proposal.occurrences());
        increasing &= previous < Some(proposal.id);
        previous = Some(proposal.id);
    }
    (occurrences, increasing)
}

/// The conflict report of `proposals`, whose ids the caller has checked for duplicates: at most
/// [`SMALL_PROPOSALS`] of them with at most [`SMALL_OCCURRENCES`] key occurrences in all.
///
/// # Panics
///
/// When the input is larger than that (callers check both bounds first).
pub(super) fn detect_small<K, P>(proposals: &[Proposal<K, P>]) -> ConflictReport<K>
where
    K: Hash + Eq + Clone,
{
    assert!(
        proposals.len() <= SMALL_PROPOSALS,
        "the small path takes at most {SMALL_PROPOSALS} proposals"
    );
    let mut slots: [Option<SmallSlot<'_, K>>; SMALL_OCCURRENCES] = [None; SMALL_OCCURRENCES];
    let mut slot_count = 0;
    // Later touchers in input order: (slot, member packed with WRITER).
    let mut later: [(u8, u32); SMALL_OCCURRENCES] = [(0, 0); SMALL_OCCURRENCES];
    let mut later_count = 0;
    for (index, proposal) in proposals.iter().enumerate() {
        let index = index as u32;
        // Written keys first, as in the table scan: a proposal's first touch of a key says
        // whether it writes it, and its later read of the key is a repeat.
        let touches = proposal.writes.iter().map(|key| (key, WRITER));
        for (key, writer) in touches.chain(proposal.reads.iter().map(|key| (key, 0))) {
            let hash = FxBuildHasher.hash_one(key);
            let found = slots[..slot_count]
                .iter_mut()
                .enumerate()
                .find_map(|(number, slot)| {
                    let slot = slot.as_mut()?;
                    (slot.hash == hash && *slot.key == *key).then_some((number, slot))
                });
            let Some((number, slot)) = found else {
                slots[slot_count] = Some(SmallSlot {
                    key,
                    hash,
                    first: index | writer,
                    last: index,
                    writers: u32::from(writer != 0),
                    later: 0,
                });
                slot_count += 1;
                continue;
            };
            if slot.last == index {
                continue;
            }
            slot.last = index;
            slot.writers += u32::from(writer != 0);
            slot.later += 1;
            later[later_count] = (number as u8, index | writer);
            later_count += 1;
        }
    }
    let contested = |slot: &SmallSlot<'_, K>| slot.later > 0 && slot.writers > 0;
    let mut groups = Vec::with_capacity(
        slots[..slot_count]
            .iter()
            .flatten()
            .filter(|slot| contested(slot))
            .count(),
    );
    let mut in_group = 0_u64;
    let mut members = [0_u32; SMALL_OCCURRENCES];
    for (number, slot) in slots[..slot_count].iter().enumerate() {
        let Some(slot) = slot.filter(contested) else {
            continue;
        };
        members[0] = slot.first;
        let mut count = 1;
        for &(_, member) in later[..later_count]
            .iter()
            .filter(|&&(of, _)| usize::from(of) == number)
        {
            members[count] = member;
            count += 1;
        }
        let members = &members[..count];
        groups.push(ConflictGroup {
            key: slot.key.clone(),
            kind: if slot.writers >= 2 {
                ConflictKind::WriteWrite
            } else {
                ConflictKind::ReadWrite
            },
            members: members
                .iter()
                .map(|&member| {
                    let index = (member & !WRITER) as usize;
                    in_group |= 1 << index;
                    proposals[index].id
                })
                .collect(),
            access: Accesses::from_packed(members),
        });
    }
    let mut independent = Vec::with_capacity(proposals.len() - in_group.count_ones() as usize);
    for (index, proposal) in proposals.iter().enumerate() {
        if in_group >> index & 1 == 0 {
            independent.push(proposal.id);
        }
    }
    ConflictReport {
        groups,
        independent,
    }
}
