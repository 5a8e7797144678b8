//! The [`Merge`] trait: combining accepted payloads in any order and grouping.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// Payloads that combine into one: the accepted changes of an aggregation round.
///
/// Implementations must be **associative** (`(a ⊕ b) ⊕ c == a ⊕ (b ⊕ c)`) and **commutative**
/// (`a ⊕ b == b ⊕ a`), so that the result does not depend on submission order or on how
/// [`merge_all`] splits the work between threads. Every implementation in this crate is
/// property-tested for both laws.
///
/// Provided implementations:
///
/// | type | merge |
/// |---|---|
/// | [`Sum<T>`] (integers) | wrapping addition (wrapping keeps the laws where overflow would not) |
/// | [`Max<T>`], [`Min<T>`] (`T: Ord`) | the larger / smaller value |
/// | [`BTreeSet`], [`HashSet`] | union |
/// | [`BTreeMap<K, V>`], [`HashMap<K, V>`] (`V: Merge`) | union; values under the same key merge |
/// | [`Option<T>`] (`T: Merge`) | `None` is the identity |
/// | `()` and tuples of up to four `Merge` types | component-wise |
///
/// Call it as `Merge::merge(&mut map, other)` on a `BTreeMap`: the standard library has an unstable
/// inherent `BTreeMap::merge` of its own, and method syntax triggers a future-compatibility warning.
///
/// `Vec<T>` is deliberately not `Merge`: concatenation is not commutative, so a merged vector would
/// depend on submission order. Collect into a set or a map keyed by something stable instead.
///
/// # Progress
///
/// `merge` runs on the caller's thread without synchronisation; the provided implementations are
/// wait-free (bounded by the sizes of their inputs).
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use hivekit_lockfree::{Max, Merge, Sum};
///
/// let mut votes = BTreeMap::from([("alpha", Sum(2_u64))]);
/// Merge::merge(&mut votes, BTreeMap::from([("alpha", Sum(1)), ("beta", Sum(4))]));
/// assert_eq!(votes, BTreeMap::from([("alpha", Sum(3)), ("beta", Sum(4))]));
///
/// let mut highest = Max(3);
/// highest.merge(Max(9));
/// assert_eq!(highest, Max(9));
/// ```
pub trait Merge {
    /// Folds `other` into `self`.
    fn merge(&mut self, other: Self);
}

/// Merges all `payloads` into one: `None` when there are none.
///
/// Below [`PARALLEL_MERGE_THRESHOLD`] payloads the fold is sequential, as it is for plain data
/// (payloads without drop glue, such as [`Sum`], [`Max`] or tuples of them) under
/// [`PLAIN_MERGE_BYTES`] in total: folding those is one pass over their bytes, cheaper than waking
/// the pool, and no clock is read (plain data is folded in runs of a fixed length, which compile
/// to an unrolled loop whose speed does not depend on its place in the binary). Otherwise the
/// path is picked by measured cost, not by count alone: the last [`MERGE_PROBE`] payloads are
/// folded on the calling thread and timed, and the rest go to the rayon pool (one contiguous run
/// per thread folded sequentially, then the partial results merged) only if, at that rate, they
/// would take longer than [`PARALLEL_MERGE_WORK`]; otherwise the sequential fold simply goes on.
/// A probe that says "parallel" is confirmed by a second one (the faster rate counts), so a probe
/// the scheduler interrupted does not send cheap payloads to the pool. Costly payloads (sets,
/// maps) split from a few thousand. Because [`Merge`] is associative and commutative, every path
/// gives the same result.
///
/// A plain-data payload whose merge costs much more than a pass over its bytes should be merged
/// with [`merge_all_with_threshold`], which splits by count.
///
/// # Progress
///
/// Blocking: returns once every merge has run (on the caller's thread, or on the rayon pool).
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{merge_all, Sum};
///
/// let total = merge_all((1..=100_u64).map(Sum).collect());
/// assert_eq!(total, Some(Sum(5050)));
/// assert_eq!(merge_all(Vec::<Sum<u64>>::new()), None);
/// ```
pub fn merge_all<P: Merge + Send>(payloads: Vec<P>) -> Option<P> {
    // No clock read below: the plain-data rule needs none, and a fold this cheap would pay for it.
    if is_small_plain_data::<P>(payloads.len()) {
        return fold_in_runs(payloads);
    }
    if payloads.len() < PARALLEL_MERGE_THRESHOLD {
        return payloads.into_iter().reduce(merged);
    }
    let mut payloads = payloads;
    let (mut probed, first) = probe(&mut payloads);
    let mut estimate = first;
    if estimate >= PARALLEL_MERGE_WORK {
        // One preemption inside a probe of a microsecond multiplies its rate by thousands: only
        // a second probe as slow confirms that the pool pays.
        let (again, second) = probe(&mut payloads);
        probed = either(probed, again);
        estimate = estimate.min(second);
    }
    let rest = if estimate < PARALLEL_MERGE_WORK {
        payloads.into_iter().reduce(merged)
    } else {
        merge_parallel(payloads.into_par_iter())
    };
    either(probed, rest)
}

/// The sequential fold, in runs of a fixed length drained from the end: runs of [`LONG_RUN`], then
/// of [`SHORT_RUN`], then the few left.
///
/// A run of known length compiles to an unrolled loop (for [`Sum`] of `u64`, 12 payloads an
/// iteration) whose speed does not depend on where the linker puts it. The `into_iter().reduce`
/// loop of unknown length is a 29-byte loop of 4 payloads that ran 1.3x slower on the 2-core
/// development machine (AMD EPYC, Zen 4) when it straddled a 64-byte boundary (100k `Sum<u64>`:
/// 13.6 µs against 10.4 µs; 2x when the input came from L3), and two builds of the same source
/// place it differently: that, not the instructions (the same ones), made
/// `proposal_merging/hivekit/sum-100k` slower than the hand-written fold in one build and faster
/// in the next.
fn fold_in_runs<P: Merge>(mut payloads: Vec<P>) -> Option<P> {
    let long = fold_runs::<P, LONG_RUN>(&mut payloads);
    let short = fold_runs::<P, SHORT_RUN>(&mut payloads);
    either(either(long, short), payloads.into_iter().reduce(merged))
}

/// Folds runs of `RUN` payloads off the end of `payloads` until fewer than `RUN` are left.
fn fold_runs<P: Merge, const RUN: usize>(payloads: &mut Vec<P>) -> Option<P> {
    let mut total = None;
    while payloads.len() >= RUN {
        let run = payloads.drain(payloads.len() - RUN..).reduce(merged);
        total = either(total, run);
    }
    total
}

/// The length of [`fold_in_runs`]' long runs: the cost of starting a run is noise next to it.
const LONG_RUN: usize = 8192;

/// The length of [`fold_in_runs`]' short runs, which leave fewer than this to the plain loop.
const SHORT_RUN: usize = 512;

/// Whether `count` payloads of `P` are plain data (no drop glue) under [`PLAIN_MERGE_BYTES`].
fn is_small_plain_data<P>(count: usize) -> bool {
    !std::mem::needs_drop::<P>()
        && count.saturating_mul(std::mem::size_of::<P>()) < PLAIN_MERGE_BYTES
}

/// Folds the last [`MERGE_PROBE`] of `payloads` (at least that many) and returns the result with
/// the time the rest would take at the probe's rate: the payloads of one call are alike, so the
/// probe is a sample. Drained from the end, so the rest stays where it is (no copy, no allocation).
fn probe<P: Merge>(payloads: &mut Vec<P>) -> (Option<P>, Duration) {
    let started = Instant::now();
    let probed = payloads
        .drain(payloads.len() - MERGE_PROBE..)
        .reduce(merged);
    let estimate = started
        .elapsed()
        .mul_f64(payloads.len() as f64 / MERGE_PROBE as f64);
    (probed, estimate)
}

/// Both merged, or whichever is there.
fn either<P: Merge>(left: Option<P>, right: Option<P>) -> Option<P> {
    match (left, right) {
        (Some(left), Some(right)) => Some(merged(left, right)),
        (left, right) => left.or(right),
    }
}

/// The total size in bytes under which [`merge_all`] folds plain data (payloads without drop glue)
/// sequentially without timing a probe.
///
/// Folding plain data reads its bytes once: 100k `Sum<u64>` (800 KB) fold in about 16 µs on the
/// 2-core development machine, where the pool took 54 µs (`proposal_merging/*/sum-100k`), and at
/// that rate 8 MiB fold in about [`PARALLEL_MERGE_WORK`], the point from which the probe would pick
/// the pool anyway. Under it the probe only cost: two clock reads (about 0.5% of the 100k fold)
/// and, when the scheduler interrupted the probe, a needless trip to the pool.
pub const PLAIN_MERGE_BYTES: usize = 8 << 20;

/// How many payloads [`merge_all`] folds and times before it picks the path for the rest.
///
/// Small enough to be a sliver of any input that reaches the choice (at least
/// [`PARALLEL_MERGE_THRESHOLD`]), large enough that two clock reads (tens of nanoseconds) are noise
/// next to the timed fold.
pub const MERGE_PROBE: usize = 1024;

// Two probes are drained from inputs of at least PARALLEL_MERGE_THRESHOLD payloads.
const _: () = assert!(2 * MERGE_PROBE <= PARALLEL_MERGE_THRESHOLD);

/// The estimated sequential work from which [`merge_all`] hands the rest to the rayon pool.
///
/// Waking the pool and merging the partial results cost a few tens of microseconds on the 2-core
/// development machine (`proposal_merging`: 100k `Sum<u64>`, about 50 µs of folding, ran slower on
/// the pool); at a few times that the second core pays for itself.
pub const PARALLEL_MERGE_WORK: Duration = Duration::from_micros(200);

/// [`merge_all`] with an explicit threshold and no measurement: parallel from `threshold` payloads
/// up, sequential below (`usize::MAX` forces the sequential fold, `0` the parallel one).
///
/// # Progress
///
/// Blocking, as [`merge_all`].
///
/// # Examples
///
/// ```
/// use std::collections::BTreeSet;
/// use hivekit_lockfree::merge_all_with_threshold;
///
/// let sets: Vec<BTreeSet<u32>> = (0..10).map(|i| BTreeSet::from([i % 3])).collect();
/// let sequential = merge_all_with_threshold(sets.clone(), usize::MAX);
/// let parallel = merge_all_with_threshold(sets, 0);
/// assert_eq!(sequential, parallel);
/// assert_eq!(parallel, Some(BTreeSet::from([0, 1, 2])));
/// ```
pub fn merge_all_with_threshold<P: Merge + Send>(payloads: Vec<P>, threshold: usize) -> Option<P> {
    if payloads.len() >= threshold.max(2) {
        merge_parallel(payloads.into_par_iter())
    } else {
        payloads.into_iter().reduce(merged)
    }
}

/// Merges on the rayon pool: one contiguous run of payloads per thread is folded sequentially into
/// an accumulator, then the few partial results merge. A balanced tree of pairwise merges would do
/// more work in total for payloads that grow as they merge (sets, maps): every level would merge
/// mid-sized values, where a fold inserts each small payload into one accumulator.
pub(crate) fn merge_parallel<P, I>(payloads: I) -> Option<P>
where
    P: Merge + Send,
    I: IndexedParallelIterator<Item = P>,
{
    let threads = rayon::current_num_threads().max(1);
    let run = payloads.len().div_ceil(threads).max(1);
    payloads
        .with_min_len(run)
        .fold(
            || None,
            |accumulator: Option<P>, payload| match accumulator {
                Some(accumulator) => Some(merged(accumulator, payload)),
                None => Some(payload),
            },
        )
        .reduce(
            || None,
            |left, right| match (left, right) {
                (Some(left), Some(right)) => Some(merged(left, right)),
                (left, None) => left,
                (None, right) => right,
            },
        )
}

/// The number of payloads from which [`merge_all`] considers merging in parallel (it then decides by
/// measured cost, see [`PARALLEL_MERGE_WORK`]).
///
/// From the `proposal_merging` bench on the 2-core development machine (shared, so the pool rarely
/// had both cores): handing work to the pool costs a few tens of microseconds, so it pays only once
/// the sequential fold takes longer than that. Folding 10k 8-element `BTreeSet`s (about 13 ms) ran
/// 1.5x faster on the pool, while 100k `Sum<u64>` (about 50 µs in total) did not gain. At 8192
/// payloads anything costlier than a few nanoseconds per merge gains; integer sums lose a few tens
/// of microseconds, which is noise next to the round that produced them.
pub const PARALLEL_MERGE_THRESHOLD: usize = 8192;

fn merged<P: Merge>(mut left: P, right: P) -> P {
    left.merge(right);
    left
}

/// A number merged by (wrapping) addition.
///
/// Wrapping addition is associative and commutative for every input; checked or saturating
/// addition would not be (saturation depends on the order in which signed values arrive).
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
/// use hivekit_lockfree::{Merge, Sum};
///
/// let mut total = Sum(40_i64);
/// total.merge(Sum(2));
/// assert_eq!(total.0, 42);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Sum<T>(pub T);

macro_rules! sum_impls {
    ($($t:ty),*) => {$(
        impl Merge for Sum<$t> {
            #[inline]
            fn merge(&mut self, other: Self) {
                self.0 = self.0.wrapping_add(other.0);
            }
        }
    )*};
}

sum_impls!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

/// A value merged by keeping the larger one.
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
/// use hivekit_lockfree::{Max, Merge};
///
/// let mut latest = Max("2024-01-02");
/// latest.merge(Max("2023-12-31"));
/// assert_eq!(latest.0, "2024-01-02");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Max<T>(pub T);

impl<T: Ord> Merge for Max<T> {
    #[inline]
    fn merge(&mut self, other: Self) {
        if other.0 > self.0 {
            self.0 = other.0;
        }
    }
}

/// A value merged by keeping the smaller one.
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
/// use hivekit_lockfree::{Merge, Min};
///
/// let mut deadline = Min(30_u32);
/// deadline.merge(Min(12));
/// assert_eq!(deadline.0, 12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Min<T>(pub T);

impl<T: Ord> Merge for Min<T> {
    #[inline]
    fn merge(&mut self, other: Self) {
        if other.0 < self.0 {
            self.0 = other.0;
        }
    }
}

impl Merge for () {
    fn merge(&mut self, _other: Self) {}
}

impl<T: Merge> Merge for Option<T> {
    fn merge(&mut self, other: Self) {
        match (self.as_mut(), other) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, theirs @ Some(_)) => *self = theirs,
            (_, None) => {}
        }
    }
}

impl<T: Ord> Merge for BTreeSet<T> {
    fn merge(&mut self, mut other: Self) {
        if other.len() > self.len() {
            std::mem::swap(self, &mut other);
        }
        // `append` rebuilds the tree, linear in both sizes; inserting costs a logarithmic search
        // per element of the smaller set. Folding many small sets into a large one must insert,
        // or every step pays for the whole large set.
        let depth = (usize::BITS - self.len().leading_zeros()) as usize;
        if other.len().saturating_mul(depth) <= self.len() {
            self.extend(other);
        } else {
            self.append(&mut other);
        }
    }
}

impl<T: Eq + Hash, S: BuildHasher> Merge for HashSet<T, S> {
    fn merge(&mut self, mut other: Self) {
        if other.len() > self.len() {
            std::mem::swap(self, &mut other);
        }
        self.extend(other);
    }
}

impl<K: Ord, V: Merge> Merge for BTreeMap<K, V> {
    fn merge(&mut self, mut other: Self) {
        // Swapping is sound because `V::merge` is commutative.
        if other.len() > self.len() {
            std::mem::swap(self, &mut other);
        }
        for (key, value) in other {
            match self.entry(key) {
                std::collections::btree_map::Entry::Vacant(vacant) => {
                    vacant.insert(value);
                }
                std::collections::btree_map::Entry::Occupied(mut occupied) => {
                    occupied.get_mut().merge(value);
                }
            }
        }
    }
}

impl<K: Eq + Hash, V: Merge, S: BuildHasher> Merge for HashMap<K, V, S> {
    fn merge(&mut self, mut other: Self) {
        if other.len() > self.len() {
            std::mem::swap(self, &mut other);
        }
        for (key, value) in other {
            match self.entry(key) {
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    vacant.insert(value);
                }
                std::collections::hash_map::Entry::Occupied(mut occupied) => {
                    occupied.get_mut().merge(value);
                }
            }
        }
    }
}

macro_rules! tuple_impls {
    ($(($($name:ident $index:tt),+)),*) => {$(
        impl<$($name: Merge),+> Merge for ($($name,)+) {
            fn merge(&mut self, other: Self) {
                $(self.$index.merge(other.$index);)+
            }
        }
    )*};
}

tuple_impls!((A 0), (A 0, B 1), (A 0, B 1, C 2), (A 0, B 1, C 2, D 3));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_none_is_identity() {
        let mut value: Option<Sum<u8>> = None;
        value.merge(Some(Sum(3)));
        value.merge(None);
        assert_eq!(value, Some(Sum(3)));
    }

    #[test]
    fn sum_wraps_instead_of_panicking() {
        let mut value = Sum(u8::MAX);
        value.merge(Sum(2));
        assert_eq!(value, Sum(1));
    }

    #[test]
    fn plain_data_under_the_byte_bound_is_folded_without_a_probe_and_owned_data_is_not() {
        assert!(is_small_plain_data::<Sum<u64>>(100_000));
        assert!(is_small_plain_data::<(Sum<u64>, Max<u64>)>(100_000));
        assert!(!is_small_plain_data::<Sum<u64>>(PLAIN_MERGE_BYTES / 8));
        assert!(!is_small_plain_data::<Sum<u64>>(usize::MAX));
        assert!(!is_small_plain_data::<BTreeSet<u64>>(10_000));
        assert!(!is_small_plain_data::<Option<String>>(10_000));
    }

    #[test]
    fn folding_in_runs_merges_every_payload_once_at_each_run_boundary() {
        let lengths = [
            0,
            1,
            SHORT_RUN - 1,
            SHORT_RUN,
            SHORT_RUN + 1,
            LONG_RUN - 1,
            LONG_RUN,
            LONG_RUN + SHORT_RUN + 3,
            3 * LONG_RUN + 2 * SHORT_RUN + SHORT_RUN - 1,
        ];
        for n in lengths {
            // The count catches a payload dropped or merged twice, the sum and the maximum which.
            let payloads: Vec<(Sum<u64>, Sum<u64>, Max<u64>)> =
                (0..n as u64).map(|i| (Sum(i), Sum(1), Max(i))).collect();
            let fold = payloads.clone().into_iter().reduce(merged);
            assert_eq!(fold_in_runs(payloads.clone()), fold, "{n} payloads");
            assert_eq!(merge_all(payloads), fold, "{n} payloads");
        }
    }

    #[test]
    fn plain_data_over_the_byte_bound_merges_to_the_fold() {
        let n = (PLAIN_MERGE_BYTES / 8 + 10) as u64;
        let payloads: Vec<Sum<u64>> = (0..n).map(Sum).collect();
        assert_eq!(merge_all(payloads), Some(Sum(n * (n - 1) / 2)));
    }

    #[test]
    fn costly_payloads_at_the_threshold_merge_to_the_fold_whichever_probes_run() {
        let sets: Vec<BTreeSet<usize>> = (0..PARALLEL_MERGE_THRESHOLD)
            .map(|i| BTreeSet::from([i % 1000, i % 7 + 5000]))
            .collect();
        let fold = sets.clone().into_iter().reduce(merged);
        let merged_all = merge_all(sets);
        assert_eq!(merged_all, fold);
        assert_eq!(merged_all.map(|set| set.len()), Some(1007));
    }

    #[test]
    fn parallel_and_sequential_merge_agree() {
        let payloads: Vec<(Sum<u64>, Max<u64>, BTreeSet<u64>)> = (0..1000)
            .map(|i| (Sum(i), Max(i * 7 % 1000), BTreeSet::from([i % 17])))
            .collect();
        let sequential = merge_all_with_threshold(payloads.clone(), usize::MAX);
        let parallel = merge_all_with_threshold(payloads, 0);
        assert_eq!(sequential, parallel);
        let (sum, max, set) = parallel.unwrap();
        assert_eq!(sum, Sum(499_500));
        assert_eq!(max, Max(999));
        assert_eq!(set.len(), 17);
    }
}
