//! rayon's reduce/fold panic semantics (`iter_panic`, `simple_panic`) as they reach hivekit's
//! parallel merges: a `Merge` that panics inside `merge_all_with_threshold(.., 0)` or a parallel
//! `Aggregator::finish` unwinds to the caller with the user's own panic message, drops every
//! payload exactly once, and leaves the rayon pool usable; and the parallel paths complete when
//! called from inside a one-thread pool (rayon's `iter_panic_fuse` setup) or from a pool job.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hivekit_lockfree::{
    merge_all_with_threshold, Aggregator, Merge, Proposal, ProposalId, Resolution, Sum,
};

const DEADLINE: Duration = Duration::from_secs(20);
const BOOM: &str = "boom from a user Merge";

/// A payload counting its drops whose merge panics when it meets `poison`.
struct Payload {
    value: u64,
    poison: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Merge for Payload {
    fn merge(&mut self, other: Self) {
        if self.value == self.poison || other.value == self.poison {
            panic!("{BOOM}");
        }
        // Keep the smaller value, so the poisoned one is never merged away before it is met.
        self.value = self.value.min(other.value);
    }
}

fn payloads(count: u64, poison: u64, drops: &Arc<AtomicUsize>) -> Vec<Payload> {
    (0..count)
        .map(|value| Payload {
            value,
            poison,
            drops: Arc::clone(drops),
        })
        .collect()
}

/// The panic's message, whichever of `&str` or `String` it was raised as.
fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Runs `job` on another thread and fails the test if it does not finish in time (a deadlocked
/// pool would otherwise hang the suite).
fn within_deadline<R: Send + 'static>(what: &str, job: impl FnOnce() -> R + Send + 'static) -> R {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(catch_unwind(AssertUnwindSafe(job)));
    });
    match result.recv_timeout(DEADLINE) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what} did not finish within {DEADLINE:?}"),
    }
}

/// rayon's `iter_panic`: the panic of a closure run on the pool reaches the caller as the user
/// raised it. `merge_all_with_threshold(.., 0)` always merges on the pool; the sequential path
/// (`usize::MAX`) must behave the same. Every payload is dropped exactly once either way.
#[test]
fn a_panicking_merge_on_the_pool_reaches_the_caller_with_its_message_and_drops_all() {
    for (threshold, count) in [(0, 10_000_u64), (0, 7), (usize::MAX, 10_000)] {
        let drops = Arc::new(AtomicUsize::new(0));
        let all = payloads(count, count / 2 + 1, &drops);
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            merge_all_with_threshold(all, threshold)
        }));
        let panic = unwound
            .err()
            .expect("the merge that meets the poison panics");
        assert_eq!(message(panic.as_ref()), BOOM, "threshold {threshold}");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            count as usize,
            "threshold {threshold}, {count} payloads: each dropped exactly once"
        );
    }
}

/// rayon keeps its pool after a job panicked: a merge on the pool after a panicking one gives the
/// right result, many times over.
#[test]
fn the_pool_still_merges_correctly_after_merges_that_panicked() {
    for round in 0..20_u64 {
        let drops = Arc::new(AtomicUsize::new(0));
        let poisoned = payloads(2_000, 1_000 + round, &drops);
        assert!(catch_unwind(AssertUnwindSafe(|| merge_all_with_threshold(poisoned, 0))).is_err());
        let sums: Vec<Sum<u64>> = (1..=10_000).map(Sum).collect();
        assert_eq!(
            merge_all_with_threshold(sums, 0),
            Some(Sum(50_005_000)),
            "round {round}"
        );
    }
}

/// A parallel `Aggregator::finish` (threshold 0) whose `Merge` panics: the caller gets the user's
/// message, not a wrapped one, and every payload, accepted or rejected, is dropped exactly once.
#[test]
fn a_parallel_finish_whose_merge_panics_unwinds_with_the_users_message() {
    for resolution in [Resolution::HighestPriority, Resolution::FirstSubmitted] {
        const COUNT: u64 = 3_000;
        let drops = Arc::new(AtomicUsize::new(0));
        let aggregator = Aggregator::with_parallel_threshold(0);
        std::thread::scope(|scope| {
            for t in 0..4_u64 {
                let (aggregator, drops) = (&aggregator, &drops);
                scope.spawn(move || {
                    for id in (t..COUNT).step_by(4) {
                        let payload = Payload {
                            value: id,
                            poison: 1_000,
                            drops: Arc::clone(drops),
                        };
                        // Ids `id` and `id + 4` (one thread's, in that order) write one key, so the
                        // lower id wins under either resolution (the poisoned 1,000 among them).
                        let proposal = Proposal::new(id, payload).writes([(id % 4, id / 8)]);
                        aggregator.submit(proposal).expect("distinct ids");
                    }
                });
            }
        });
        let unwound = catch_unwind(AssertUnwindSafe(|| aggregator.finish(resolution)));
        let panic = unwound
            .err()
            .expect("the poisoned payload is accepted and merged");
        assert_eq!(message(panic.as_ref()), BOOM, "{resolution:?}");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            COUNT as usize,
            "{resolution:?}"
        );
    }
}

/// A round submitted from many threads and finished, with every resolution.
fn round(resolution: Resolution, threshold: usize) -> (Option<Sum<u64>>, usize, usize) {
    const COUNT: u64 = 2_000;
    let aggregator = Aggregator::with_parallel_threshold(threshold);
    std::thread::scope(|scope| {
        for t in 0..4_u64 {
            let aggregator = &aggregator;
            scope.spawn(move || {
                for id in (t..COUNT).step_by(4) {
                    // Every tenth proposal shares a key with its neighbour.
                    let key = if id % 10 < 2 { id / 10 } else { 1_000 + id };
                    aggregator
                        .submit(Proposal::new(id, Sum(1_u64)).writes([key]))
                        .expect("distinct ids");
                }
            });
        }
    });
    let outcome = aggregator.finish(resolution);
    (
        outcome.merged,
        outcome.accepted.len(),
        outcome.rejected.len(),
    )
}

/// rayon's `iter_panic_fuse` runs in `ThreadPoolBuilder::new().num_threads(1)`: hivekit's parallel
/// paths called from inside such a pool (and from a job of the global pool) must complete, with
/// the same result as outside it. 2,000 proposals with 200 conflicting pairs: 1,800 accepted
/// under a resolution with a winner, 1,800 under `RejectAll` minus the 200 pairs' members.
#[test]
fn parallel_finish_and_merge_complete_inside_a_one_thread_pool_and_a_pool_job() {
    let expected = |resolution| match resolution {
        Resolution::RejectAll => (Some(Sum(1_600)), 1_600, 400),
        _ => (Some(Sum(1_800)), 1_800, 200),
    };
    for resolution in [
        Resolution::HighestPriority,
        Resolution::FirstSubmitted,
        Resolution::RejectAll,
    ] {
        assert_eq!(round(resolution, 0), expected(resolution), "outside");
        let inside_one = within_deadline("a finish inside a one-thread pool", move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .expect("pool");
            pool.install(|| {
                let merged = merge_all_with_threshold((1..=5_000_u64).map(Sum).collect(), 0);
                (round(resolution, 0), merged)
            })
        });
        assert_eq!(
            inside_one.0,
            expected(resolution),
            "inside a one-thread pool"
        );
        assert_eq!(inside_one.1, Some(Sum(12_502_500)));
        let in_a_job = within_deadline("a finish inside a global pool job", move || {
            let (a, b) = rayon::join(|| round(resolution, 0), || round(resolution, 0));
            assert_eq!(a, b);
            a
        });
        assert_eq!(in_a_job, expected(resolution), "inside a pool job");
    }
}

/// rayon's `simple_panic` (a panic inside `join` reaches the caller): a `Merge` panic inside a
/// one-thread pool's parallel finish reaches the `install` caller with its message, and that pool
/// then runs another round to the right result.
#[test]
fn a_one_thread_pool_survives_a_panicking_parallel_finish() {
    let outcome = within_deadline("the one-thread pool rounds", || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let drops = Arc::new(AtomicUsize::new(0));
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| {
                let aggregator = Aggregator::with_parallel_threshold(0);
                for id in 0..500_u64 {
                    let payload = Payload {
                        value: id,
                        poison: 250,
                        drops: Arc::clone(&drops),
                    };
                    aggregator
                        .submit(Proposal::new(id, payload).writes([id]))
                        .expect("distinct ids");
                }
                aggregator.finish(Resolution::HighestPriority)
            })
        }));
        let message = unwound
            .err()
            .map(|panic| message(panic.as_ref()))
            .unwrap_or_default();
        let after = pool.install(|| round(Resolution::FirstSubmitted, 0));
        (message, drops.load(Ordering::SeqCst), after)
    });
    assert_eq!(outcome.0, BOOM);
    assert_eq!(outcome.1, 500, "every payload dropped exactly once");
    assert_eq!(outcome.2, (Some(Sum(1_800)), 1_800, 200));
}

/// Ids of every accepted proposal of a parallel round equal those of the sequential one (rayon's
/// reduce result does not depend on the split), submitted concurrently from many threads.
#[test]
fn a_parallel_round_accepts_the_same_ids_as_a_sequential_one() {
    let ids = |threshold: usize| {
        let aggregator = Aggregator::with_parallel_threshold(threshold);
        std::thread::scope(|scope| {
            for t in 0..4_u64 {
                let aggregator = &aggregator;
                scope.spawn(move || {
                    for id in (t * 1_000)..(t * 1_000 + 1_000) {
                        let proposal = Proposal::new(id, Sum(id)).writes([id % 700]);
                        aggregator.submit(proposal).expect("distinct ids");
                    }
                });
            }
        });
        let outcome = aggregator.finish(Resolution::HighestPriority);
        let mut accepted: Vec<ProposalId> = outcome.accepted;
        accepted.sort();
        (accepted, outcome.merged)
    };
    let (sequential, sequential_sum) = ids(usize::MAX);
    let (parallel, parallel_sum) = ids(0);
    // Under HighestPriority with equal priorities the lower id wins each key: ids 0..700.
    assert_eq!(sequential, (0..700).map(ProposalId).collect::<Vec<_>>());
    assert_eq!(parallel, sequential);
    assert_eq!(parallel_sum, sequential_sum);
    assert_eq!(parallel_sum, Some(Sum((0..700).sum())));
}
