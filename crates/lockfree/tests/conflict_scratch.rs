//! The buffers `detect_conflicts` keeps between calls on each thread (the calling thread's and
//! the rayon pool's) never change a report: after a user `Hash` or `Eq` panics half-way through a
//! call, under nested calls made from inside `Hash` and `Eq` (on the calling thread and on the
//! pool's threads, with another key type), and from call to call of different sizes and key
//! types on one thread. Every report is compared with the one a fresh thread (no kept buffers)
//! computes for the same proposals with plain `u64` keys.

use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use hivekit_lockfree::{
    detect_conflicts, ConflictGroup, ConflictReport, Proposal, ProposalError, ProposalId,
};

/// The hooks below are process-wide: the tests that arm them run one at a time.
static HOOKS: Mutex<()> = Mutex::new(());

/// `Hash` calls on [`Key`] so far, and the call that panics (`usize::MAX`: none).
static HASHES: AtomicUsize = AtomicUsize::new(0);
static PANIC_AT_HASH: AtomicUsize = AtomicUsize::new(usize::MAX);
/// `Eq` calls on [`Key`] so far, and the call that panics.
static EQS: AtomicUsize = AtomicUsize::new(0);
static PANIC_AT_EQ: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Whether every [`NEST_EVERY`]th `Hash` and `Eq` call runs a nested detection.
static NEST: AtomicBool = AtomicBool::new(false);
const NEST_EVERY: usize = 20_000;

/// A `u64` key whose `Hash` and `Eq` may panic or run a nested `detect_conflicts`.
#[derive(Debug, Clone)]
struct Key(u64);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let call = HASHES.fetch_add(1, Ordering::Relaxed);
        assert!(
            call != PANIC_AT_HASH.load(Ordering::Relaxed),
            "a user Hash that panics"
        );
        if NEST.load(Ordering::Relaxed) && call % NEST_EVERY == 0 {
            nested_detection();
        }
        self.0.hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        let call = EQS.fetch_add(1, Ordering::Relaxed);
        assert!(
            call != PANIC_AT_EQ.load(Ordering::Relaxed),
            "a user Eq that panics"
        );
        if NEST.load(Ordering::Relaxed) && call % NEST_EVERY == 0 {
            nested_detection();
        }
        self.0 == other.0
    }
}

impl Eq for Key {}

/// A detection of its own (another key type, large enough for the pool) inside a `Hash` or `Eq`
/// call, checked against a fresh thread's report.
fn nested_detection() {
    thread_local! {
        static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    if DEPTH.get() > 0 {
        return;
    }
    DEPTH.set(1);
    let (inner, expected) = NESTED.get().expect("set before nesting is armed");
    let got = detect_conflicts(inner);
    DEPTH.set(0);
    assert_eq!(&got, expected, "a nested detection");
}

/// The nested detection's input and its report on a fresh thread, made before nesting is armed
/// (a fresh thread inside `Hash`, on a pool thread, could wait for a pool it blocks).
#[allow(clippy::type_complexity)]
static NESTED: std::sync::OnceLock<(
    Vec<Proposal<u64, ()>>,
    Result<ConflictReport<u64>, ProposalError>,
)> = std::sync::OnceLock::new();

/// `count` proposals of 2 written and 2 read keys from `space` keys (seeded), ids increasing.
fn proposals<K>(
    count: usize,
    space: u64,
    seed: u64,
    key: impl Fn(u64) -> K,
) -> Vec<Proposal<K, ()>> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % space
    };
    (0..count as u64)
        .map(|id| {
            let writes = [next(), next()].map(&key);
            let reads = [next(), next()].map(&key);
            Proposal::new(ProposalId(id), ())
                .writes(writes)
                .reads(reads)
        })
        .collect()
}

/// The report of `proposals` (with plain `u64` keys) on a fresh thread, which keeps no buffers.
fn fresh<K: Clone + Send + Sync + Into<u64>>(
    proposals: &[Proposal<K, ()>],
) -> Result<ConflictReport<u64>, ProposalError> {
    let plain: Vec<Proposal<u64, ()>> = proposals
        .iter()
        .map(|proposal| {
            Proposal::new(proposal.id, ())
                .writes(proposal.writes.iter().cloned().map(Into::into))
                .reads(proposal.reads.iter().cloned().map(Into::into))
        })
        .collect();
    std::thread::spawn(move || detect_conflicts(&plain))
        .join()
        .expect("the fresh thread's detection")
}

impl From<Key> for u64 {
    fn from(key: Key) -> u64 {
        key.0
    }
}

/// `report` with its [`Key`]s as `u64`s.
fn plain(
    report: Result<ConflictReport<Key>, ProposalError>,
) -> Result<ConflictReport<u64>, ProposalError> {
    report.map(|report| ConflictReport {
        groups: report
            .groups
            .into_iter()
            .map(|group| ConflictGroup {
                key: group.key.0,
                kind: group.kind,
                members: group.members,
                access: group.access,
            })
            .collect(),
        independent: report.independent,
    })
}

/// The inputs: the pool's path with the key lists read on the pool (20k proposals, 80k
/// occurrences) and on the caller (5k wide proposals), the calling thread's partitioned scan
/// (5k proposals, 20k occurrences), hot keys (skewed: most proposals in groups) and the single
/// table (1k proposals).
fn inputs() -> Vec<Vec<Proposal<Key, ()>>> {
    let mut wide = proposals(5_000, 50_000, 4, Key);
    for proposal in &mut wide {
        let more: Vec<Key> = proposal
            .reads
            .iter()
            .map(|key| Key(key.0 + 1_000_000))
            .collect();
        proposal.reads.extend(more.iter().cloned());
        proposal
            .reads
            .extend(more.iter().map(|key| Key(key.0 + 1_000_000)));
        proposal
            .writes
            .extend(more.into_iter().map(|key| Key(key.0 + 2_000_000)));
    }
    vec![
        proposals(20_000, 400_000, 1, Key),
        wide,
        proposals(5_000, 40_000, 2, Key),
        proposals(20_000, 300, 3, Key),
        proposals(1_000, 3_000, 5, Key),
    ]
}

fn reset_hooks() {
    HASHES.store(0, Ordering::Relaxed);
    EQS.store(0, Ordering::Relaxed);
    PANIC_AT_HASH.store(usize::MAX, Ordering::Relaxed);
    PANIC_AT_EQ.store(usize::MAX, Ordering::Relaxed);
    NEST.store(false, Ordering::Relaxed);
}

/// A `Hash` or `Eq` that panics part-way through a call (on the calling thread or a pool thread,
/// while routing or scanning) leaves every thread's buffers fit for the next call: the same
/// thread's next calls report what a fresh thread does, for that input and for the others.
#[test]
fn a_panicking_hash_or_eq_leaves_the_kept_buffers_valid() {
    let _hooks = HOOKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let inputs = inputs();
    let all_expected: Vec<_> = inputs.iter().map(|input| fresh(input)).collect();
    for (input, expected) in inputs.iter().zip(&all_expected) {
        reset_hooks();
        // How many calls of each one detection makes, to panic half-way and near the end.
        assert_eq!(&plain(detect_conflicts(input)), expected);
        let (hashes, eqs) = (HASHES.load(Ordering::Relaxed), EQS.load(Ordering::Relaxed));
        for (panic_at, counter) in [
            (hashes / 2, &PANIC_AT_HASH),
            (hashes - 1, &PANIC_AT_HASH),
            (eqs / 2, &PANIC_AT_EQ),
            (eqs.saturating_sub(1), &PANIC_AT_EQ),
        ] {
            reset_hooks();
            counter.store(panic_at, Ordering::Relaxed);
            let unwound = catch_unwind(AssertUnwindSafe(|| detect_conflicts(input)));
            reset_hooks();
            if panic_at > 0 {
                assert!(unwound.is_err(), "call {panic_at} of Hash or Eq panics");
            }
            for (other, other_expected) in inputs.iter().zip(&all_expected) {
                assert_eq!(&plain(detect_conflicts(other)), other_expected);
            }
        }
    }
    reset_hooks();
}

/// Detections nested inside `Hash` and `Eq` (with `u64` keys, big enough for the pool; run on
/// the calling thread and on the pool's threads while their buffers are lent out) give the right
/// reports, and so do the calls they are nested in.
#[test]
fn nested_detections_from_hash_and_eq_report_right() {
    let _hooks = HOOKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let inputs = inputs();
    let expected: Vec<_> = inputs.iter().map(|input| fresh(input)).collect();
    NESTED.get_or_init(|| {
        let inner = proposals(17_000, 30_000, 3, |key| key);
        let expected = fresh(&inner);
        (inner, expected)
    });
    reset_hooks();
    NEST.store(true, Ordering::Relaxed);
    for _ in 0..2 {
        for (input, expected) in inputs.iter().zip(&expected) {
            assert_eq!(&plain(detect_conflicts(input)), expected);
        }
    }
    reset_hooks();
}

/// Calls of every size and two key types, one after another on one thread (each reusing what
/// the one before kept), and the same from inside a rayon job, report what a fresh thread does.
#[test]
fn calls_of_every_size_on_one_thread_report_like_a_fresh_thread() {
    let _hooks = HOOKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    reset_hooks();
    let inputs = inputs();
    let plain_inputs: Vec<Vec<Proposal<u64, ()>>> = [200_000, 70_000, 10, 3]
        .iter()
        .zip(1..)
        .map(|(&space, seed)| proposals(30_000, space, seed, |key| key))
        .collect();
    let expected: Vec<_> = inputs.iter().map(|input| fresh(input)).collect();
    let plain_expected: Vec<_> = plain_inputs.iter().map(|input| fresh(input)).collect();
    let check = || {
        for _ in 0..2 {
            for ((input, expected), (plain_input, plain_expected)) in inputs
                .iter()
                .zip(&expected)
                .zip(plain_inputs.iter().zip(&plain_expected))
            {
                assert_eq!(&plain(detect_conflicts(input)), expected);
                assert_eq!(&detect_conflicts(plain_input), plain_expected);
            }
        }
    };
    check();
    rayon::join(check, check);
}
