//! Concurrent aggregation: many threads submit proposals, one call resolves conflicts and merges.
//!
//! This file holds the [`Aggregator`] (sharded submission, then `finish`); `outcome.rs` the
//! [`Aggregate`] it returns and the one-call [`aggregate`]; `decide.rs` the step both share:
//! detect the conflicts, decide every group, record who lost where; `tiny.rs` the check that
//! lets a tiny round without conflicts skip the full scan; `ids.rs` the id blocks that pick a
//! shard and the set a shard checks duplicates against; `spare.rs` the shards' memory a thread
//! keeps for its next aggregator.

use std::cell::OnceCell;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crossbeam_utils::CachePadded;
use rayon::prelude::*;
use rustc_hash::{FxBuildHasher, FxHashSet};

use crate::conflict::{key_lists, KeyLists, Resolution};
use crate::conflict::{MAX_OCCURRENCES, MAX_PROPOSALS};
use crate::hint::Priority;
use crate::loom::sync::atomic::{AtomicU64, Ordering};
use crate::merge::Merge;
use crate::proposal::{Proposal, ProposalError, ProposalId};

mod decide;
mod ids;
mod outcome;
mod spare;
#[cfg(test)]
mod tests;
mod tiny;

use decide::{decide_all, merged, Decided};
use ids::{block_of, BlockIds};
pub use outcome::{aggregate, Aggregate};
use spare::Shards;
use tiny::{contested, TINY_OCCURRENCES};

/// Collects proposals from many threads, then resolves their conflicts and merges the winners.
///
/// [`submit`](Aggregator::submit) takes `&self`, so any number of threads submit at once.
/// [`finish`](Aggregator::finish) consumes the aggregator and:
///
/// 1. puts the proposals in submission order (the order in which `submit` calls took their turn,
///    consistent with happens-before: a `submit` that returned before another one started comes
///    first, so for calls from one thread it is program order);
/// 2. finds every conflict group ([`detect_conflicts`](crate::detect_conflicts));
/// 3. resolves each group on its own by the [`Resolution`]: the group's best member is its winner
///    (highest priority, or submitted first; ties go to the lower id). If the winner writes the key it
///    alone wins the group; if it only reads the key, every member that only reads it wins with it
///    (readers never conflict with each other) and the writers lose. Under `RejectAll` nobody wins;
/// 4. accepts a proposal exactly when it wins **every** group it belongs to (a proposal in no group
///    is always accepted), and rejects the others with the first group, in report order, that they
///    lost. Groups are decided independently of each other: a proposal that lost to a winner which
///    was itself rejected elsewhere stays rejected. So no two accepted proposals conflict, the
///    result never depends on thread timing beyond the submission order, and in every connected set
///    of conflicting proposals the best one (by the resolution's order) is accepted;
/// 5. merges the accepted payloads with [`Merge`].
///
/// From [`DEFAULT_PARALLEL_THRESHOLD`](Aggregator::DEFAULT_PARALLEL_THRESHOLD) proposals up (or the
/// threshold given to [`with_parallel_threshold`](Aggregator::with_parallel_threshold)), conflict
/// detection is partitioned by key hash across the rayon pool and payloads merge in parallel; the
/// result is identical to the sequential path.
///
/// # Progress
///
/// `submit` is blocking but short: it locks one of several cache-padded shards (chosen by the
/// proposal id's block of 64 consecutive ids) for a duplicate check (one comparison when ids
/// arrive in increasing order, else a scan of a small shard or a bit of a per-block bitmap) and a
/// push, and takes its place in the submission order with one atomic increment. Threads that
/// submit from ranges of ids of their own rarely share a shard; threads whose ids interleave
/// (drawn from one shared counter) mostly take the same shard's lock in turn. `len` is
/// wait-free. `finish` is blocking.
///
/// # Send and Sync
///
/// `Send` and `Sync` when `K` and `P` are `Send`: threads share it by reference (for example with
/// [`std::thread::scope`]) or in an `Arc` and unwrap it before `finish`.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{Aggregator, Proposal, Resolution, Sum};
///
/// let aggregator = Aggregator::new();
/// std::thread::scope(|scope| {
///     for thread in 0..4_u64 {
///         let aggregator = &aggregator;
///         scope.spawn(move || {
///             for i in 0..100 {
///                 let id = thread * 100 + i;
///                 // Each thread writes its own counter: no conflicts.
///                 let proposal = Proposal::new(id, Sum(1_u64)).writes([format!("counter-{thread}")]);
///                 aggregator.submit(proposal).unwrap();
///             }
///         });
///     }
/// });
/// assert_eq!(aggregator.len(), 400);
/// // Each thread's proposals write the same key, so each counter keeps one winner.
/// let outcome = aggregator.finish(Resolution::FirstSubmitted);
/// assert_eq!(outcome.accepted.len(), 4);
/// assert_eq!(outcome.merged, Some(Sum(4)));
/// assert_eq!(outcome.rejected.len(), 396);
/// ```
pub struct Aggregator<K, P> {
    shards: Shards<K, P>,
    /// The next submission number; also an upper bound on the number of proposals.
    sequence: CachePadded<AtomicU64>,
    parallel_threshold: usize,
}

/// One shard of submitted proposals, on its own cache line.
type PaddedShard<K, P> = CachePadded<Mutex<Shard<K, P>>>;

struct Shard<K, P> {
    /// How duplicates are found (see [`insert_id`](Shard::insert_id)).
    seen: Seen,
    /// Key occurrences stored here, at most [`MAX_OCCURRENCES`] / shards so that the total stays
    /// within what one conflict check indexes.
    occurrences: usize,
    /// The first chunk of `(submission number, proposal)` entries, kept apart from the others so
    /// that a shard holding few proposals costs one allocation.
    first: Vec<(u64, Proposal<K, P>)>,
    /// The further chunks, which never move once allocated, so a growing shard does not copy
    /// every proposal it holds (a `Vec` doubling would).
    more: Vec<Vec<(u64, Proposal<K, P>)>>,
    /// Proposals stored.
    len: usize,
}

/// How a shard finds a duplicate id. One field, not a set beside a highest id: a shard fits in
/// 128 bytes, the cache padding (with both, it took 256, and the larger box of shards cost a
/// round of 10 proposals 1,600 instructions in the allocator).
enum Seen {
    /// Every id so far arrived above the ones before it; `top` is the highest (`None` before the
    /// first). Until an id arrives that is not above it while the shard holds [`SMALL_SHARD`]
    /// proposals or more, duplicates are found without an index.
    Increasing { top: Option<ProposalId> },
    /// Every id stored here, by block: ids that come in runs (counters), where most inserts
    /// are a bit test. Boxed, as the next: the sets are larger than the rest of the shard.
    Blocks(Box<BlockIds>),
    /// Every id stored here, one by one: ids scattered over the id range (hashes), which would
    /// cost a block lookup and a bitmap each (about 100 ns of CPU per submit of random ids from
    /// one thread, against 75 with this set).
    Scattered(Box<FxHashSet<ProposalId>>),
}

/// When a shard starts indexing, it keeps its ids by block if its blocks hold at least this many
/// of them on average, else one by one ([`Seen::Scattered`]).
const DENSE_BLOCK: usize = 4;

/// The first chunk's capacity; each further chunk doubles, up to [`MAX_CHUNK`]. Sized for small
/// rounds, whose proposals (fewer than 64 increasing ids) fill one shard: with 8, a round of 10
/// proposals allocated three times (the first chunk, the list of further chunks, a second chunk)
/// instead of once (`aggregation_round/hivekit-round/n_10`: 11,786 to 11,250 instructions).
const FIRST_CHUNK: usize = 16;

/// The largest chunk: big enough to amortise the allocation, small enough not to overshoot much.
const MAX_CHUNK: usize = 4096;

/// Below this many proposals a shard checks an id that is not above every stored one by scanning
/// its entries; from it on, with an index of its ids (see [`Seen`]). A scan of a few ids costs
/// less than allocating and filling a table, and small rounds (a handful of proposals spread over
/// the shards) are where that allocation showed.
const SMALL_SHARD: usize = 16;

impl<K, P> Shard<K, P> {
    fn new() -> Self {
        Shard {
            seen: Seen::Increasing { top: None },
            occurrences: 0,
            first: Vec::new(),
            more: Vec::new(),
            len: 0,
        }
    }

    /// Every stored entry, in the order this shard stored them.
    fn entries(&self) -> impl Iterator<Item = &(u64, Proposal<K, P>)> + '_ {
        self.first.iter().chain(self.more.iter().flatten())
    }

    /// Every stored entry, by value, leaving the shard empty.
    fn take_entries(&mut self) -> impl Iterator<Item = (u64, Proposal<K, P>)> {
        std::mem::take(&mut self.first)
            .into_iter()
            .chain(std::mem::take(&mut self.more).into_iter().flatten())
    }

    /// Records `id`, or returns false if this shard already holds it.
    ///
    /// Ids handed out by a counter arrive in increasing order (from one thread always, from many
    /// mostly), and an id above every stored one is new: one comparison, no hashing. An id that is
    /// not is checked by scanning the entries while the shard is small, and past that by a
    /// [`BlockIds`] of every stored id (a bit per id), built then and kept from then on. The
    /// comparison comes first because at 1k and 10k proposals the hash set of ids that preceded
    /// the bitmaps (inserts and rehashes) was about a tenth of a round's instructions. Two
    /// threads submitting their own ranges put every shard they share on the indexed path (one
    /// thread's ids are below the other's).
    #[inline]
    fn insert_id(&mut self, id: ProposalId) -> bool {
        if let Seen::Increasing { top } = &mut self.seen {
            if top.is_none_or(|top| id > top) {
                *top = Some(id);
                return true;
            }
        }
        self.insert_unordered_id(id)
    }

    /// [`insert_id`](Shard::insert_id) for an id not above every stored one, or in an indexed
    /// shard. Out of line, so that the comparison inlined into `submit` stays small.
    #[inline(never)]
    fn insert_unordered_id(&mut self, id: ProposalId) -> bool {
        match &mut self.seen {
            Seen::Blocks(ids) => return ids.insert(id),
            Seen::Scattered(ids) => return ids.insert(id),
            Seen::Increasing { .. } => {}
        }
        if self.len < SMALL_SHARD {
            return !self.entries().any(|(_, proposal)| proposal.id == id);
        }
        let known = || self.entries().map(|(_, proposal)| proposal.id);
        let mut blocks = Box::new(BlockIds::default());
        blocks.reserve(self.len);
        blocks.extend(known());
        let (new, seen) = if blocks.blocks() * DENSE_BLOCK <= self.len {
            (blocks.insert(id), Seen::Blocks(blocks))
        } else {
            let mut ids = Box::new(FxHashSet::default());
            ids.reserve(self.len * 2);
            ids.extend(known());
            (ids.insert(id), Seen::Scattered(ids))
        };
        self.seen = seen;
        new
    }

    /// Takes back an id [`insert_id`](Shard::insert_id) accepted but that was refused after all.
    /// Unindexed, nothing to undo: the id was not stored, and `top` stays an upper bound.
    fn forget_id(&mut self, id: ProposalId) {
        match &mut self.seen {
            Seen::Blocks(ids) => ids.remove(id),
            Seen::Scattered(ids) => {
                ids.remove(&id);
            }
            Seen::Increasing { .. } => {}
        }
    }

    fn push(&mut self, entry: (u64, Proposal<K, P>)) {
        if self.more.is_empty() && self.first.len() < FIRST_CHUNK {
            if self.first.capacity() == 0 {
                self.first.reserve_exact(FIRST_CHUNK);
            }
            self.first.push(entry);
        } else {
            match self.more.last_mut() {
                Some(chunk) if chunk.len() < chunk.capacity() => chunk.push(entry),
                last => {
                    let capacity = last.map_or(FIRST_CHUNK * 2, |chunk| {
                        (chunk.capacity() * 2).min(MAX_CHUNK)
                    });
                    let mut chunk = Vec::with_capacity(capacity);
                    chunk.push(entry);
                    self.more.push(chunk);
                }
            }
        }
        self.len += 1;
    }
}

impl<K, P> fmt::Debug for Aggregator<K, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregator")
            .field("len", &self.len())
            .field("shards", &self.shards.len())
            .field("parallel_threshold", &self.parallel_threshold)
            .finish_non_exhaustive()
    }
}

impl<K, P> Default for Aggregator<K, P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, P> Aggregator<K, P> {
    /// The number of proposals from which [`finish`](Aggregator::finish) works in parallel.
    ///
    /// Below it the parallel path's fixed costs (waking the pool, routing the keys into at least
    /// one partition per thread, merging the partitions' groups) exceed what a second core saves:
    /// a sequential `finish` of 1k proposals takes a few hundred microseconds. From about 16k
    /// proposals (64k key occurrences) the conflict scan is partitioned anyway to keep its tables
    /// in cache, so running the partitions on the pool adds little. Measured with
    /// `commutative_aggregation` and `conditional_aggregation` (`hivekit` against `sequential`);
    /// on the shared 2-core development machine the crossover was too noisy to pin down more
    /// precisely than that.
    pub const DEFAULT_PARALLEL_THRESHOLD: usize = 16_384;

    /// An empty aggregator with the default parallel threshold.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::Aggregator;
    ///
    /// let aggregator: Aggregator<String, u64> = Aggregator::new();
    /// assert!(aggregator.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_parallel_threshold(Self::DEFAULT_PARALLEL_THRESHOLD)
    }

    /// An empty aggregator whose [`finish`](Aggregator::finish) goes parallel from `threshold`
    /// proposals (`usize::MAX`: always sequential, `0`: always parallel).
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{Aggregator, Proposal, Resolution, Sum};
    ///
    /// let sequential = Aggregator::with_parallel_threshold(usize::MAX);
    /// sequential.submit(Proposal::new(1, Sum(2_u8)).writes(["x"]))?;
    /// assert_eq!(sequential.finish(Resolution::RejectAll).merged, Some(Sum(2)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_parallel_threshold(threshold: usize) -> Self {
        Aggregator {
            shards: Shards::new(shard_count()),
            sequence: CachePadded::new(AtomicU64::new(0)),
            parallel_threshold: threshold,
        }
    }

    /// Adds a proposal. Safe to call from many threads at once.
    ///
    /// The proposal takes its place in the submission order before `submit` returns: a
    /// submission that returned before another one started (in the same thread, or in another
    /// one that synchronised with it) comes first. Duplicates are refused across threads too:
    /// of two concurrent submissions of one id, exactly one is stored.
    ///
    /// # Errors
    ///
    /// [`ProposalError::DuplicateId`] if a proposal with the same id was already submitted (the
    /// proposal is dropped, the first one stays); [`ProposalError::TooManyProposals`] beyond
    /// 2^31 - 1 proposals; [`ProposalError::TooManyKeys`] when the proposal's shard already holds
    /// its share (2^32 / shards) of key occurrences.
    ///
    /// # Progress
    ///
    /// Blocking on one shard's lock, held for a duplicate check and a push.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{Aggregator, Proposal, ProposalError, ProposalId};
    ///
    /// let aggregator = Aggregator::new();
    /// aggregator.submit(Proposal::new(1, ()).writes(["a"]))?;
    /// let again = aggregator.submit(Proposal::new(1, ()).writes(["b"]));
    /// assert_eq!(again, Err(ProposalError::DuplicateId(ProposalId(1))));
    /// assert_eq!(aggregator.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit(&self, proposal: Proposal<K, P>) -> Result<(), ProposalError> {
        let occurrences = proposal.occurrences();
        // The shard count is a power of two: a shift, not a division on every submit.
        let budget = MAX_OCCURRENCES >> self.shards.len().trailing_zeros();
        let mut shard = self.shard(proposal.id);
        if !shard.insert_id(proposal.id) {
            return Err(ProposalError::DuplicateId(proposal.id));
        }
        // The limits below are checked after the insert so that the common path looks at the id
        // once; the id is taken back out on the (practically unreachable) refusals.
        if occurrences > budget - shard.occurrences {
            shard.forget_id(proposal.id);
            return Err(ProposalError::TooManyKeys { max: budget });
        }
        // Relaxed is enough: the number only orders submissions, and `finish` reads the entries
        // after every submitting thread has released its shard lock (it owns `self`).
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        if sequence >= MAX_PROPOSALS as u64 {
            shard.forget_id(proposal.id);
            return Err(ProposalError::TooManyProposals {
                count: MAX_PROPOSALS.saturating_add(1),
                max: MAX_PROPOSALS,
            });
        }
        shard.occurrences += occurrences;
        shard.push((sequence, proposal));
        Ok(())
    }

    /// The number of proposals submitted so far.
    ///
    /// # Progress
    ///
    /// Wait-free, and exact once no `submit` is in flight. While submissions run it may count one
    /// that is still being stored.
    pub fn len(&self) -> usize {
        let taken = self.sequence.load(Ordering::Relaxed);
        // Submissions beyond the limit took a number but were refused.
        taken.min(MAX_PROPOSALS as u64) as usize
    }

    /// True if nothing was submitted.
    ///
    /// # Progress
    ///
    /// Wait-free, as [`len`](Aggregator::len).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves every conflict and merges the accepted payloads. See the [type docs](Aggregator)
    /// for the rule.
    ///
    /// # Progress
    ///
    /// Blocking: returns when the aggregate is complete (using the rayon pool above the parallel
    /// threshold).
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{Aggregator, Proposal, ProposalId, RejectReason, Resolution, Sum};
    ///
    /// let aggregator = Aggregator::new();
    /// aggregator.submit(Proposal::new(1, Sum(1_u64)).writes(["a"]))?;
    /// aggregator.submit(Proposal::new(2, Sum(2)).reads(["a"]))?;
    /// let outcome = aggregator.finish(Resolution::RejectAll);
    /// assert!(outcome.accepted.is_empty());
    /// assert_eq!(outcome.merged, None);
    /// assert_eq!(outcome.rejected[1], (ProposalId(2), RejectReason::RejectAll { key: "a" }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish(self, resolution: Resolution) -> Aggregate<K, P>
    where
        K: Hash + Eq + Clone + Send + Sync,
        P: Merge + Send,
    {
        let parallel_threshold = self.parallel_threshold;
        let taken = self.len();
        // The shards stay in their box (moving them out into a vector was an allocation and a
        // copy per round).
        let mut shards = self.shards;
        let (count, occurrences) = shards
            .iter_mut()
            .map(unlocked)
            .fold((0, 0), |(count, occurrences), shard| {
                (count + shard.len, occurrences + shard.occurrences)
            });
        let parallel = count >= parallel_threshold;
        // Submission numbers are dense when nothing was refused: every position is written once.
        let dense = count == taken;

        // A tiny round asks first whether any key is contested, which does not depend on the
        // order of the proposals: without a contested key only the ids need to be put in
        // submission order (no key lists in order, no vector of the shards).
        let undisputed = dense
            && occurrences <= TINY_OCCURRENCES
            && !contested(shards.iter_mut().flat_map(|shard| {
                let shard: &Shard<K, P> = unlocked(shard);
                shard
                    .entries()
                    .map(|(_, proposal)| (&proposal.writes[..], &proposal.reads[..]))
            }));
        let (decided, renumbered) = if undisputed {
            let mut ids = vec![ProposalId(0); taken];
            for shard in shards.iter_mut() {
                for (sequence, proposal) in unlocked(shard).entries() {
                    ids[*sequence as usize] = proposal.id;
                }
            }
            (Decided::undisputed(ids), None)
        } else {
            decide_in_order(&mut shards, taken, count, occurrences, resolution, parallel)
        };
        let renumbered = renumbered.as_deref();
        let index_of = |sequence: u64| {
            renumbered.map_or(sequence as usize, |renumbered| {
                renumbered[sequence as usize] as usize
            })
        };

        // A plain loop, not `filter_map(..).reduce(..)`: its per-proposal closure is left out of
        // line whenever codegen units shift (39 instructions a proposal at 10k), a loop is not.
        let accepted_payloads = |shard: &mut PaddedShard<K, P>| {
            let mut folded: Option<P> = None;
            for (sequence, proposal) in unlocked(shard).take_entries() {
                if decided.accepts(index_of(sequence)) {
                    folded = Some(match folded {
                        Some(folded) => merged(folded, proposal.payload),
                        None => proposal.payload,
                    });
                }
            }
            folded
        };
        // Merge is commutative and associative, so each shard folds its own winners (freeing
        // their key lists on the way) and the shard results merge in any order.
        let merged = if parallel {
            shards
                .par_iter_mut()
                .filter_map(accepted_payloads)
                .reduce_with(merged)
        } else {
            shards
                .iter_mut()
                .filter_map(accepted_payloads)
                .reduce(merged)
        };
        decided.into_aggregate(merged)
    }

    /// The shard of `id`'s block, locked. See [`block_of`] for why blocks, not ids.
    fn shard(&self, id: ProposalId) -> MutexGuard<'_, Shard<K, P>> {
        let hash = FxBuildHasher.hash_one(block_of(id));
        let index = ((u128::from(hash) * self.shards.len() as u128) >> 64) as usize;
        // A panic cannot leave a shard half-updated (insert and push are each complete or not),
        // so a poisoned lock is still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`decide_all`] for the proposals in `shards` (`count` of them, `occurrences` key occurrences,
/// `taken` submission numbers handed out): their key lists and ids put in submission order, their
/// priorities only when a conflict needs them (a round without conflicts never does). Also returns
/// the dense index of every submission number when refusals left gaps in them.
fn decide_in_order<'a, K, P>(
    shards: &'a mut [PaddedShard<K, P>],
    taken: usize,
    count: usize,
    occurrences: usize,
    resolution: Resolution,
    parallel: bool,
) -> (Decided<K>, Option<Vec<u32>>)
where
    K: Hash + Eq + Clone + Sync + 'a,
{
    let shards: Vec<&Shard<K, P>> = shards.iter_mut().map(|shard| &*unlocked(shard)).collect();
    let entries = || shards.iter().flat_map(|shard| shard.entries());
    // The proposals stay where they are.
    let (lists, ids, renumbered) = if count == taken {
        // Submission numbers are dense (nothing was refused): every position is written once.
        let mut lists: Vec<KeyLists<'_, K>> = vec![(&[], &[]); taken];
        let mut ids = vec![ProposalId(0); taken];
        for (sequence, proposal) in entries() {
            let index = *sequence as usize;
            lists[index] = (&proposal.writes, &proposal.reads);
            ids[index] = proposal.id;
        }
        (lists, ids, None)
    } else {
        let mut placed: Vec<Option<&Proposal<K, P>>> = vec![None; taken];
        for (sequence, proposal) in entries() {
            // Stored numbers are below `taken`: refused submissions are never stored.
            placed[*sequence as usize] = Some(proposal);
        }
        // A submission refused for being over the limit left a gap: renumber densely.
        let mut next = 0;
        let renumbered: Vec<u32> = placed
            .iter()
            .map(|slot| {
                let index = next;
                next += u32::from(slot.is_some());
                index
            })
            .collect();
        let placed = || placed.iter().flatten();
        let (lists, _) = key_lists(placed().copied());
        let ids = placed().map(|proposal| proposal.id).collect();
        (lists, ids, Some(renumbered))
    };
    let index_of = |sequence: u64| {
        renumbered
            .as_deref()
            .map_or(sequence as usize, |renumbered| {
                renumbered[sequence as usize] as usize
            })
    };
    let priorities = OnceCell::new();
    let priority = |index: usize| {
        priorities.get_or_init(|| {
            let mut priorities = vec![Priority::Low; count];
            for (sequence, proposal) in entries() {
                priorities[index_of(*sequence)] = proposal.priority;
            }
            priorities
        })[index]
    };
    let decided = decide_all(lists, occurrences, ids, priority, resolution, parallel);
    (decided, renumbered)
}

/// The shard behind an exclusively borrowed lock. A panic cannot leave a shard half-updated (see
/// `Aggregator::shard`), so a poisoned lock is still consistent.
fn unlocked<K, P>(shard: &mut PaddedShard<K, P>) -> &mut Shard<K, P> {
    shard.get_mut().unwrap_or_else(PoisonError::into_inner)
}

/// Shards per aggregator: four per hardware thread (so that concurrent submitters rarely meet),
/// a power of two between 8 and 256. Computed once: `available_parallelism` reads cgroup files
/// on Linux, which costs more than a small aggregation round.
fn shard_count() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(4, usize::from);
        (threads * 4).next_power_of_two().clamp(8, 256)
    })
}
