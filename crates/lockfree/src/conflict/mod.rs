//! Hash-based conflict detection: one pass over the proposals, never pairwise.
//!
//! Every key occurrence is hashed once with FxHash. The scan keeps an open-addressing table from key
//! to a dense slot index (8 bytes per entry: a hash tag and the slot, so a probe rarely touches the
//! key itself); each slot is a small state machine (first toucher, last toucher, number of distinct
//! writers) plus an intrusive linked list of later touchers threaded through one flat node array.
//! No per-key allocation happens, a key touched by a single proposal costs one table insert and one
//! slot push (in a partition of a large input, where each routed occurrence can be read back by its
//! number, only the table insert: the entry names the occurrence, and the slot is made when a second
//! proposal touches the key), and the keys are borrowed from the input, never cloned, until a contested key is
//! reported.
//!
//! Large inputs are first routed by the high bits of the hash into partitions whose tables fit in
//! the L2 cache (a sequential write per occurrence instead of a cache miss per probe); partitions
//! are independent, so large inputs (and the aggregator's) are scanned on the rayon pool. The partitions' groups are put
//! back in first-appearance order, so the report is the same whichever path produced it.
//!
//! The module holds the report ([`report`]: groups, kinds, each member's access), the pass that
//! finds inputs whose keys no two proposals share conflict-free ([`distinct`]), the scan
//! ([`scan`]: one table), the partitioning ([`partition`]: routing, parallel scans, combining),
//! and the resolution step ([`resolve`]: given groups and a policy, who wins and why), which the
//! [`Aggregator`](crate::Aggregator) and the hive's round both call.

use std::hash::Hash;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use rustc_hash::{FxBuildHasher, FxHashSet};

use crate::proposal::{Proposal, ProposalError, ProposalId};
use scratch::{give_call_buffers, take_call_buffers};

mod distinct;
mod partition;
mod report;
mod resolve;
mod scan;
mod scratch;
mod small;
#[cfg(test)]
mod tests;

pub(crate) use partition::{scan, scan_parallel};
use partition::{scan_in, scan_parallel_in};
pub use report::{Access, Accesses, ConflictGroup, ConflictKind, ConflictReport};
pub(crate) use resolve::{loses, pick_winner};
pub use resolve::{resolve_conflicts, RejectReason, Resolution};
pub(crate) use scan::Scan;

/// Finds every conflict among `proposals` in one pass over their keys.
///
/// Two proposals conflict when one writes a key the other reads or writes. The result holds one
/// [`ConflictGroup`] per contested key and the ids of the proposals that conflict with nothing.
/// Conflicts are found whatever the order and mix of the input. A proposal that reads and writes the
/// same key, or lists a key twice, never conflicts with itself. Empty input gives an empty report.
///
/// Runs in O(n·k) for n proposals of k keys: one FxHash and one probe of a cache-sized table per key
/// occurrence, and no allocation per key (up to 64 proposals of 32 key occurrences in all, a
/// comparison of hashes with the keys seen so far, on the stack: no allocation but the report's;
/// below 65,536 occurrences, an input whose keys no two proposals share is found conflict-free by
/// a lookup and an insert per occurrence, before any of the scan's work).
/// Keys are cloned only for contested keys. Keys must be
/// `Sync` because large inputs (from 65,536 key occurrences) are split by key hash into independent
/// partitions scanned on the rayon pool: still one pass over each proposal, and the same report.
///
/// # Errors
///
/// [`ProposalError::DuplicateId`] if two proposals share an id (the id of the later one is named).
/// [`ProposalError::TooManyProposals`] beyond 2^31 - 1 proposals, and
/// [`ProposalError::TooManyKeys`] beyond 2^32 - 2 key occurrences.
///
/// # Memory
///
/// Past the handful of proposals that need no buffers, the scratch buffers of a call (key lists,
/// routed occurrences, partition tables, group lists) are kept by the threads that used them for
/// their next call instead of being freed: freed every call, their pages went back to the kernel
/// and were faulted in again (hundreds to thousands of page faults a call, nearly half the CPU
/// time of a 10k-proposal skewed input). A calling thread keeps at most 16 MiB, a rayon pool thread at most 4 MiB; a
/// larger call frees the excess when it returns.
///
/// # Progress
///
/// Non-blocking. Below 16,384 proposals and 65,536 key occurrences it runs on the caller's thread
/// only; from 16,384 proposals up the caller waits for the pool to read the proposals' key lists,
/// and from 65,536 occurrences up for the partitions it hands to the rayon pool (and, for reports
/// of many group members, for the member lists it has built there).
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
    check_count(proposals)?;
    // Below the pool's bounds, one pass over the proposals counts their key occurrences and checks
    // the ids' order, for every path below (the parallel read does both itself).
    let counted = (proposals.len() < PARALLEL_PROPOSALS).then(|| {
        let (occurrences, increasing) = small::occurrences_and_order(proposals);
        if !increasing {
            check_ids(proposals)?;
        }
        Ok(occurrences)
    });
    let counted = counted.transpose()?;
    // A handful of proposals (a hive round's) skip the table scan's buffers (see `small`).
    if let Some(occurrences) = counted {
        if proposals.len() <= small::SMALL_PROPOSALS && occurrences <= small::SMALL_OCCURRENCES {
            return Ok(small::detect_small(proposals));
        }
    }
    // The buffers of the call (the distinct-keys table, the key lists, the partitions', the
    // report's flags) are the calling thread's kept ones (`scratch`): allocated and freed every
    // call, their pages were handed back by glibc and faulted in again. A failed check drops them
    // (the next call allocates afresh).
    let mut kept = take_call_buffers();
    // Proposals that share no key (a hive round of agents that write keys of their own) are
    // found conflict-free by a pass through a table of their keys (see `distinct`); an input
    // with a shared key goes on to the table scan from the first such key.
    if let Some(occurrences) = counted.filter(|&occurrences| occurrences < PARALLEL_OCCURRENCES) {
        if let Some(report) = kept.distinct.report(proposals, occurrences) {
            give_call_buffers(kept);
            return Ok(report);
        }
    }
    // One pass over the proposals for their key lists and, for large inputs, the fast path of
    // the id check: at 100k proposals they are megabytes, past the cache, and each pass was a
    // serial read of all of it. The parallel read also copies the ids into a list of their own:
    // the report reads the id of every proposal (the independent ones), and reading them from the
    // proposals was another serial pass over those megabytes on the calling thread (at 100k
    // proposals, ~90k cache misses).
    let lists = kept.lend_lists();
    let (lists, ids, occurrences) = match counted {
        Some(occurrences) => (key_lists_in(proposals, lists), None, occurrences),
        None => {
            let (lists, ids, occurrences, increasing) =
                key_lists_and_order_parallel(proposals, lists);
            if !increasing {
                check_ids(proposals)?;
            }
            (lists, Some(ids), occurrences)
        }
    };
    check_occurrences(occurrences)?;
    let scan = if occurrences < PARALLEL_OCCURRENCES {
        scan_in(&lists, occurrences, &mut kept)
    } else {
        scan_parallel_in(&lists, occurrences, &mut kept)
    };
    let members = scan.members.len();
    let serial_report = occurrences < PARALLEL_OCCURRENCES
        || members < PARALLEL_MEMBERS
        || members < MEMBERS_PER_PARALLEL_GROUP * scan.groups.len();
    let (in_group, built) = (&mut kept.in_group, &mut kept.built);
    let report = match ids {
        Some(ids) if serial_report => scan.report_with_ids(ids, in_group),
        Some(ids) => scan.report_parallel(ids, in_group, built),
        None if serial_report => {
            scan.report(proposals.len(), |index| proposals[index].id, in_group)
        }
        None => {
            // The pool's threads read the ids from their own list: `Proposal` need not be `Sync`.
            let ids: Vec<ProposalId> = proposals.iter().map(|proposal| proposal.id).collect();
            scan.report_parallel(ids, in_group, built)
        }
    };
    kept.keep_scan(scan);
    kept.keep_lists(lists);
    give_call_buffers(kept);
    Ok(report)
}

/// From this many group members up (after a parallel scan), [`detect_conflicts`] builds the
/// groups' member lists on the rayon pool.
///
/// Below, the list of ids the pool needs costs about as much as it saves: 100k uniform proposals
/// of 4 keys have 10k members (serial), 10k skewed ones about 70k (parallel).
const PARALLEL_MEMBERS: usize = 1 << 15;

/// The fewest members per group, on average, for which [`detect_conflicts`] builds the member
/// lists on the rayon pool.
///
/// A group's fixed costs (its allocation, the key's clone, the hand-back from the pool, and a free
/// on the caller's thread of a block another thread allocated) dominate groups of two or three:
/// the width rows (two proposals sharing every key, two members per group) keep the serial path,
/// the skewed ones (about 9 members per group) take the parallel one.
const MEMBERS_PER_PARALLEL_GROUP: usize = 4;

/// From this many key occurrences up, [`detect_conflicts`] routes and scans on the rayon pool.
///
/// Past the last-level cache the scan is bound by misses on the proposals' key lists, and a
/// second core keeps twice as many in flight (at 100k proposals of 4 keys, the parallel scan
/// costs about 10 % more CPU time than the sequential one, against a second core's worth of
/// throughput). Set at 16k proposals of 4 keys, the aggregator's measured parallel threshold
/// ([`Aggregator::DEFAULT_PARALLEL_THRESHOLD`](crate::Aggregator::DEFAULT_PARALLEL_THRESHOLD)),
/// well above where the pool's start-up stops mattering.
const PARALLEL_OCCURRENCES: usize = 1 << 16;

/// From this many proposals up, [`detect_conflicts`] reads the proposals' key lists and ids on
/// the rayon pool.
///
/// At 100k proposals of 4 keys this read was about a third of the calling thread's serial
/// instructions (2.1M of 6.6M, with a cache miss per proposal), while the pool's threads waited
/// for it. Set where 4-key proposals reach [`PARALLEL_OCCURRENCES`], so the inputs whose scan runs
/// on the pool also read their key lists there.
const PARALLEL_PROPOSALS: usize = PARALLEL_OCCURRENCES / 4;

/// The largest number of proposals one check accepts: member indices are packed into 31 bits.
pub(crate) const MAX_PROPOSALS: usize = (u32::MAX >> 1) as usize;

/// The top bit of a packed member: set when the member writes the key.
pub(crate) const WRITER: u32 = 1 << 31;

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

/// Fails on more proposals than indices can address.
fn check_count<K, P>(proposals: &[Proposal<K, P>]) -> Result<(), ProposalError> {
    if proposals.len() > MAX_PROPOSALS {
        return Err(ProposalError::TooManyProposals {
            count: proposals.len(),
            max: MAX_PROPOSALS,
        });
    }
    Ok(())
}

/// Fails on a duplicate id or on more proposals than indices can address.
pub(crate) fn check_ids<K, P>(proposals: &[Proposal<K, P>]) -> Result<(), ProposalError> {
    check_count(proposals)?;
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

/// One proposal's key lists as the scan reads them: `(writes, reads)`.
pub(crate) type KeyLists<'a, K> = (&'a [K], &'a [K]);

/// [`key_lists`] of a slice, in `lists`'s allocation (emptied first; kept between calls).
fn key_lists_in<'a, K, P>(
    proposals: &'a [Proposal<K, P>],
    mut lists: Vec<KeyLists<'a, K>>,
) -> Vec<KeyLists<'a, K>> {
    // A mapped extend (sized once from the slice), not a loop of pushes: the pushes' capacity
    // checks cost about 13 instructions more per proposal.
    lists.clear();
    lists.extend(
        proposals
            .iter()
            .map(|proposal| (&proposal.writes[..], &proposal.reads[..])),
    );
    lists
}

/// [`key_lists_in`] on the rayon pool, with the ids in a list of their own, the key occurrences
/// and whether the ids are strictly increasing (as [`small::occurrences_and_order`] counts them):
/// each pool job reads a run of [`KEY_LIST_RUN`] proposals into its part of the lists
/// ([`read_key_lists`]).
///
/// The lists go into `lists`'s allocation (emptied first; kept between calls).
fn key_lists_and_order_parallel<'a, K: Sync, P>(
    proposals: &'a [Proposal<K, P>],
    mut lists: Vec<KeyLists<'a, K>>,
) -> (Vec<KeyLists<'a, K>>, Vec<ProposalId>, usize, bool) {
    let shared = SharedKeys(proposals);
    lists.clear();
    lists.reserve(proposals.len());
    let mut ids: Vec<ProposalId> = Vec::with_capacity(proposals.len());
    let (occurrences, increasing) = lists.spare_capacity_mut()[..proposals.len()]
        .par_chunks_mut(KEY_LIST_RUN)
        .zip(ids.spare_capacity_mut()[..proposals.len()].par_chunks_mut(KEY_LIST_RUN))
        .enumerate()
        .map(|(number, (run, id_run))| read_key_lists(&shared, number * KEY_LIST_RUN, run, id_run))
        .reduce(
            || (0, true),
            |(left, left_increasing), (right, right_increasing)| {
                (
                    left.saturating_add(right),
                    left_increasing && right_increasing,
                )
            },
        );
    // SAFETY: the runs of both lists cover the first `proposals.len()` entries of their spare
    // capacity exactly (the same run length over the same count, zipped run for run), and
    // `read_key_lists` wrote every entry of both its runs (a panic there would not get here).
    unsafe {
        lists.set_len(proposals.len());
        ids.set_len(proposals.len());
    }
    (lists, ids, occurrences, increasing)
}

/// Proposals per pool job in [`key_lists_and_order_parallel`]: big enough that a job's start is
/// noise against its cache misses, small enough for a few jobs per thread.
const KEY_LIST_RUN: usize = 4096;

/// Writes the key lists of the proposals from `first` into `run` and their ids into `id_run` (of
/// the same length); returns their key occurrences and whether their ids increase strictly (from
/// the proposal before `first`, if any).
///
/// Never inlined: the instruction suite counts it by name on the pool's threads.
#[inline(never)]
fn read_key_lists<'a, K, P>(
    shared: &SharedKeys<'a, K, P>,
    first: usize,
    run: &mut [MaybeUninit<KeyLists<'a, K>>],
    id_run: &mut [MaybeUninit<ProposalId>],
) -> (usize, bool) {
    let mut occurrences: usize = 0;
    let mut increasing = true;
    let mut previous = first.checked_sub(1).map(|index| shared.id(index));
    for (offset, (slot, id_slot)) in run.iter_mut().zip(id_run.iter_mut()).enumerate() {
        let index = first + offset;
        let (writes, reads) = shared.lists(index);
        let id = shared.id(index);
        occurrences = occurrences.saturating_add(writes.len().saturating_add(reads.len()));
        increasing &= previous.is_none_or(|previous| previous < id);
        previous = Some(id);
        slot.write((writes, reads));
        id_slot.write(id);
    }
    (occurrences, increasing)
}

/// The parts of a slice of proposals the pool's threads may read: each one's key lists and id.
///
/// A [`Proposal`] need not be `Sync` (its payload may not be), so the slice itself cannot be
/// shared with the pool; its key lists and ids can, since `K` is `Sync` and ids are plain data.
struct SharedKeys<'a, K, P>(&'a [Proposal<K, P>]);

// SAFETY: a `SharedKeys` only hands out the proposals' key lists (`&[K]`, shareable because
// `K: Sync`) and ids (`Copy` plain data), read in place while the caller's shared borrow keeps the
// slice alive and unchanged; it never gives access to a payload, the only part that may be
// `!Sync`.
unsafe impl<K: Sync, P> Sync for SharedKeys<'_, K, P> {}

impl<'a, K, P> SharedKeys<'a, K, P> {
    /// The key lists of proposal `index`.
    #[inline]
    fn lists(&self, index: usize) -> KeyLists<'a, K> {
        let proposal = self.at(index);
        // SAFETY: `proposal` points to a proposal of the borrowed slice, live for 'a; only the
        // two key vectors are read (through references to those fields alone, never to the whole
        // proposal), and nothing mutates them while the slice is borrowed.
        let (writes, reads) = unsafe {
            (
                &*std::ptr::addr_of!((*proposal).writes),
                &*std::ptr::addr_of!((*proposal).reads),
            )
        };
        (&writes[..], &reads[..])
    }

    /// The id of proposal `index`.
    #[inline]
    fn id(&self, index: usize) -> ProposalId {
        let proposal = self.at(index);
        // SAFETY: as in `lists`: a plain-data field of a live, unchanging proposal.
        unsafe { std::ptr::addr_of!((*proposal).id).read() }
    }

    /// A pointer to proposal `index`, made without a reference to the proposal (which would be
    /// one to a possibly `!Sync` value on a pool thread).
    ///
    /// # Panics
    ///
    /// If `index` is out of bounds, as indexing does (callers pass indices below the length).
    #[inline]
    fn at(&self, index: usize) -> *const Proposal<K, P> {
        assert!(index < self.0.len(), "proposal index out of bounds");
        self.0.as_ptr().wrapping_add(index)
    }
}

/// The key lists of every proposal, and their total length.
pub(crate) fn key_lists<'a, K: 'a, P: 'a>(
    proposals: impl Iterator<Item = &'a Proposal<K, P>>,
) -> (Vec<KeyLists<'a, K>>, usize) {
    let mut occurrences: usize = 0;
    let lists = proposals
        .map(|proposal| {
            occurrences = occurrences.saturating_add(proposal.occurrences());
            (&proposal.writes[..], &proposal.reads[..])
        })
        .collect();
    (lists, occurrences)
}
