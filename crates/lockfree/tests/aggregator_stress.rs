//! The `Aggregator` under concurrent submission: smoke, single producer, contended producers, and
//! a stress run with counted invariants (every proposal decided exactly once, no lost submission,
//! duplicate ids refused exactly once, the accepted set conflict-free, submission order
//! respecting happens-before).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;

use hivekit_lockfree::{
    Aggregate, Aggregator, Priority, Proposal, ProposalError, ProposalId, RejectReason, Resolution,
    Sum,
};

const THREADS: u64 = 4;

/// A deterministic pseudo-random key for `(id, slot)`: keys collide often enough for conflicts.
fn key(id: u64, slot: u64, space: u64) -> u64 {
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ slot.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x % space
}

fn proposal(id: u64, space: u64) -> Proposal<u64, Sum<u64>> {
    Proposal::new(id, Sum(id))
        .reads([key(id, 0, space), key(id, 1, space)])
        .writes([key(id, 2, space)])
        .priority(Priority::ALL[(id % 4) as usize])
}

/// Runs `body(thread)` on each of THREADS threads, released together by a barrier.
fn on_threads(body: impl Fn(u64) + Sync) {
    let barrier = Barrier::new(THREADS as usize);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (barrier, body) = (&barrier, &body);
            scope.spawn(move || {
                barrier.wait();
                body(thread);
            });
        }
    });
}

/// Submits `per_thread` proposals from each of THREADS threads released together.
fn submit_concurrently(aggregator: &Aggregator<u64, Sum<u64>>, per_thread: u64, space: u64) {
    on_threads(|thread| {
        for i in 0..per_thread {
            aggregator
                .submit(proposal(thread * per_thread + i, space))
                .unwrap();
        }
    });
}

fn assert_decided_once_and_conflict_free(
    outcome: &Aggregate<u64, Sum<u64>>,
    total: u64,
    space: u64,
) {
    let mut seen = BTreeSet::new();
    for id in outcome
        .accepted
        .iter()
        .chain(outcome.rejected.iter().map(|(id, _)| id))
    {
        assert!(seen.insert(*id), "{id} decided twice");
    }
    assert_eq!(seen.len() as u64, total, "every proposal decided");
    // Conflict-free: a key written by an accepted proposal is touched by no other accepted one.
    let mut touchers: HashMap<u64, (BTreeSet<ProposalId>, bool)> = HashMap::new();
    for id in &outcome.accepted {
        let p = proposal(id.0, space);
        for key in p.reads.iter().chain(&p.writes) {
            let entry = touchers.entry(*key).or_default();
            entry.0.insert(*id);
            entry.1 |= p.writes.contains(key);
        }
    }
    for (key, (ids, written)) in &touchers {
        assert!(
            !written || ids.len() == 1,
            "accepted {ids:?} conflict on {key}"
        );
    }
    let expected: u64 = outcome.accepted.iter().map(|id| id.0).sum();
    assert_eq!(
        outcome.merged.map(|merged| merged.0),
        (!outcome.accepted.is_empty()).then_some(expected)
    );
}

#[test]
fn smoke() {
    let aggregator = Aggregator::new();
    aggregator
        .submit(Proposal::new(1, Sum(1_u64)).writes(["a"]))
        .unwrap();
    aggregator
        .submit(Proposal::new(2, Sum(2)).writes(["b"]))
        .unwrap();
    assert_eq!(aggregator.len(), 2);
    let outcome = aggregator.finish(Resolution::HighestPriority);
    assert_eq!(outcome.accepted, [ProposalId(1), ProposalId(2)]);
    assert_eq!(outcome.merged, Some(Sum(3)));
}

#[test]
fn single_producer_keeps_submission_order() {
    // Submitted in descending id order: FirstSubmitted must pick the first submitted, not the
    // lowest id, and the outcome lists proposals in submission order.
    let aggregator = Aggregator::new();
    for id in (0..10_u64).rev() {
        aggregator
            .submit(Proposal::new(id, Sum(id)).writes(["shared"]))
            .unwrap();
    }
    let outcome = aggregator.finish(Resolution::FirstSubmitted);
    assert_eq!(outcome.accepted, [ProposalId(9)]);
    let rejected: Vec<u64> = outcome.rejected.iter().map(|(id, _)| id.0).collect();
    assert_eq!(rejected, (0..9).rev().collect::<Vec<_>>());
    assert!(outcome
        .rejected
        .iter()
        .all(|(_, reason)| reason.winner() == Some(ProposalId(9))));
}

#[test]
fn contended_first_submitted_honours_each_threads_order() {
    // Each thread writes its own key, with ids in descending order; the winner per key must be the
    // first proposal that thread submitted, whatever the interleaving across threads.
    for threshold in [0, usize::MAX] {
        let aggregator = Aggregator::with_parallel_threshold(threshold);
        on_threads(|thread| {
            for i in (0..500_u64).rev() {
                let proposal = Proposal::new(thread * 1000 + i, Sum(1_u64)).writes([thread]);
                aggregator.submit(proposal).unwrap();
            }
        });
        let outcome = aggregator.finish(Resolution::FirstSubmitted);
        let winners: BTreeSet<u64> = outcome.accepted.iter().map(|id| id.0).collect();
        let expected: BTreeSet<u64> = (0..THREADS).map(|thread| thread * 1000 + 499).collect();
        assert_eq!(winners, expected);
        assert_eq!(outcome.rejected.len(), THREADS as usize * 499);
    }
}

#[test]
fn highest_priority_ties_are_deterministic_under_contention() {
    // All proposals have the same priority and write one key: the lowest id wins every time,
    // whatever the submission interleaving.
    for round in 0..3 {
        let aggregator =
            Aggregator::with_parallel_threshold(if round == 0 { usize::MAX } else { 0 });
        on_threads(|thread| {
            for i in 0..250_u64 {
                // Thread 3 holds the lowest ids but submits them last.
                let id = 1000 - (thread * 250 + i);
                aggregator
                    .submit(Proposal::new(id, ()).writes(["k"]))
                    .unwrap();
            }
        });
        let outcome = aggregator.finish(Resolution::HighestPriority);
        assert_eq!(outcome.accepted, [ProposalId(1)], "round {round}");
        assert_eq!(outcome.rejected.len(), 999);
    }
}

#[test]
fn reject_all_rejects_every_member_and_only_them() {
    let aggregator = Aggregator::new();
    submit_concurrently(&aggregator, 500, 1500);
    let outcome = aggregator.finish(Resolution::RejectAll);
    let conflicting: BTreeSet<ProposalId> =
        outcome.conflicts.conflicting_ids().into_iter().collect();
    assert!(!conflicting.is_empty(), "the workload has conflicts");
    for (id, reason) in &outcome.rejected {
        assert!(conflicting.contains(id));
        assert!(matches!(reason, RejectReason::RejectAll { .. }));
        assert!(outcome
            .conflicts
            .groups_of(*id)
            .any(|group| &group.key == reason.key()));
    }
    assert_eq!(outcome.rejected.len(), conflicting.len());
    assert_eq!(outcome.accepted, outcome.conflicts.independent);
    assert_decided_once_and_conflict_free(&outcome, THREADS * 500, 1500);
}

#[test]
fn stress_every_proposal_decided_exactly_once() {
    for (threshold, resolution) in [
        (usize::MAX, Resolution::HighestPriority),
        (0, Resolution::HighestPriority),
        (0, Resolution::FirstSubmitted),
    ] {
        let aggregator = Aggregator::with_parallel_threshold(threshold);
        submit_concurrently(&aggregator, 5_000, 40_000);
        assert_eq!(aggregator.len(), THREADS as usize * 5_000);
        let outcome = aggregator.finish(resolution);
        assert!(!outcome.rejected.is_empty() && !outcome.accepted.is_empty());
        assert_decided_once_and_conflict_free(&outcome, THREADS * 5_000, 40_000);
    }
}

#[test]
fn concurrent_duplicates_are_refused_exactly_once_per_copy() {
    let aggregator: Aggregator<u64, ()> = Aggregator::new();
    let accepted = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    on_threads(|_| {
        for id in 0..1_000_u64 {
            match aggregator.submit(Proposal::new(id, ()).writes([id])) {
                Ok(()) => accepted.fetch_add(1, Ordering::Relaxed),
                Err(ProposalError::DuplicateId(dup)) => {
                    assert_eq!(dup, ProposalId(id));
                    refused.fetch_add(1, Ordering::Relaxed)
                }
                Err(other) => panic!("unexpected error {other}"),
            };
        }
    });
    assert_eq!(accepted.load(Ordering::Relaxed), 1_000);
    assert_eq!(refused.load(Ordering::Relaxed), 3_000);
    assert_eq!(aggregator.len(), 1_000);
    let outcome = aggregator.finish(Resolution::HighestPriority);
    let ids: BTreeSet<u64> = outcome.accepted.iter().map(|id| id.0).collect();
    assert_eq!(ids, (0..1_000).collect());
}

#[test]
fn interleaved_ids_are_each_stored_once_and_their_second_copy_refused() {
    // Thread t owns the ids i * THREADS + t (as if drawn from one shared counter, so concurrent
    // submits fall in the same id block and shard) and also offers its neighbour's id of the same
    // i: of the two copies of every id exactly one is stored, whichever thread got there first.
    const PER_THREAD: u64 = 5_000;
    let aggregator: Aggregator<u64, Sum<u64>> = Aggregator::new();
    let accepted = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    on_threads(|thread| {
        for i in 0..PER_THREAD {
            let neighbour = (thread + 1) % THREADS;
            for id in [i * THREADS + thread, i * THREADS + neighbour] {
                match aggregator.submit(Proposal::new(id, Sum(id)).writes([id])) {
                    Ok(()) => accepted.fetch_add(1, Ordering::Relaxed),
                    Err(ProposalError::DuplicateId(dup)) => {
                        assert_eq!(dup, ProposalId(id));
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(other) => panic!("unexpected error {other}"),
                };
            }
        }
    });
    let total = THREADS * PER_THREAD;
    assert_eq!(accepted.load(Ordering::Relaxed) as u64, total);
    assert_eq!(refused.load(Ordering::Relaxed) as u64, total);
    assert_eq!(aggregator.len() as u64, total);
    let outcome = aggregator.finish(Resolution::FirstSubmitted);
    assert!(outcome.rejected.is_empty());
    let ids: BTreeSet<u64> = outcome.accepted.iter().map(|id| id.0).collect();
    assert_eq!(ids, (0..total).collect());
    assert_eq!(outcome.merged, Some(Sum(total * (total - 1) / 2)));
}

#[test]
fn submission_order_follows_happens_before_across_threads() {
    // A relay: submission n is made by thread n % THREADS only after submission n - 1 returned
    // (a release store of the turn, an acquire load by the next thread), so the submissions form
    // one happens-before chain across threads and shards. Every proposal writes the same key, so
    // under FirstSubmitted the outcome lists them in submission order: it must be the relay's.
    // The ids jump between id blocks (and so shards) and back, out of increasing order.
    const STEPS: u64 = 2_000;
    let id_of = |step: u64| (step * 7_919) % 10_007;
    let aggregator: Aggregator<&str, Sum<u64>> = Aggregator::new();
    let turn = AtomicU64::new(0);
    on_threads(|thread| {
        for step in (thread..STEPS).step_by(THREADS as usize) {
            while turn.load(Ordering::Acquire) != step {
                std::thread::yield_now();
            }
            let proposal = Proposal::new(id_of(step), Sum(1)).writes(["relay"]);
            aggregator.submit(proposal).unwrap();
            turn.store(step + 1, Ordering::Release);
        }
    });
    let outcome = aggregator.finish(Resolution::FirstSubmitted);
    assert_eq!(outcome.accepted, [ProposalId(id_of(0))]);
    let order: Vec<u64> = outcome.rejected.iter().map(|(id, _)| id.0).collect();
    assert_eq!(order, (1..STEPS).map(id_of).collect::<Vec<_>>());
}
