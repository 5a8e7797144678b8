//! Several threads submitting to one `Aggregator` in a forced turn order (scattered, repeated and extreme ids): every duplicate is refused with its id, and `finish` equals `aggregate` over the stored proposals in that order.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use hivekit_lockfree::{
    aggregate, Aggregator, Priority, Proposal, ProposalError, ProposalId, Resolution, Sum,
};
use proptest::prelude::*;

type Payload = (Sum<u64>, BTreeSet<u64>);

fn id_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0_u64..200,           // dense blocks, many repeats
        2 => 0_u64..5_000,         // scattered over blocks
        1 => any::<u64>(),         // anywhere
        1 => prop_oneof![Just(0_u64), Just(63), Just(64), Just(u64::MAX), Just(u64::MAX - 1)],
    ]
}

fn step() -> impl Strategy<Value = (u64, Vec<u8>, Vec<u8>, usize)> {
    (
        id_strategy(),
        proptest::collection::vec(0_u8..10, 0..3),
        proptest::collection::vec(0_u8..10, 0..3),
        0..4_usize,
    )
}

fn resolution() -> impl Strategy<Value = Resolution> {
    prop_oneof![
        Just(Resolution::HighestPriority),
        Just(Resolution::FirstSubmitted),
        Just(Resolution::RejectAll),
    ]
}

fn proposal(
    number: usize,
    (id, reads, writes, priority): &(u64, Vec<u8>, Vec<u8>, usize),
) -> Proposal<u8, Payload> {
    Proposal::new(
        *id,
        (Sum(number as u64 + 1), BTreeSet::from([number as u64])),
    )
    .reads(reads.clone())
    .writes(writes.clone())
    .priority(Priority::ALL[*priority])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn turn_ordered_submissions_equal_aggregate_in_that_order(
        steps in proptest::collection::vec(step(), 0..120),
        threads in 1..4_usize,
        threshold in prop_oneof![Just(0_usize), Just(usize::MAX)],
        resolution in resolution(),
    ) {
        let aggregator: Aggregator<u8, Payload> = Aggregator::with_parallel_threshold(threshold);
        let turn = AtomicUsize::new(0);
        // results[number] = what submit returned for step `number`.
        let results: Vec<std::sync::Mutex<Option<Result<(), ProposalError>>>> =
            steps.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let (aggregator, turn, results, steps) = (&aggregator, &turn, &results, &steps);
                scope.spawn(move || {
                    for number in (thread..steps.len()).step_by(threads) {
                        while turn.load(Ordering::Acquire) != number {
                            std::hint::spin_loop();
                            std::thread::yield_now();
                        }
                        let result = aggregator.submit(proposal(number, &steps[number]));
                        *results[number].lock().unwrap() = Some(result);
                        turn.store(number + 1, Ordering::Release);
                    }
                });
            }
        });
        let mut seen = HashSet::new();
        let mut stored = Vec::new();
        for (number, step) in steps.iter().enumerate() {
            let got = results[number].lock().unwrap().take().expect("every step ran");
            if seen.insert(step.0) {
                prop_assert_eq!(got, Ok(()), "step {} id {}", number, step.0);
                stored.push(proposal(number, step));
            } else {
                prop_assert_eq!(got, Err(ProposalError::DuplicateId(ProposalId(step.0))), "step {}", number);
            }
        }
        prop_assert_eq!(aggregator.len(), stored.len());
        let outcome = aggregator.finish(resolution);
        let expected = aggregate(stored, resolution).expect("stored ids are distinct");
        prop_assert_eq!(outcome, expected);
    }
}

/// One shard driven through every duplicate-check mode (increasing, small scan, blocks,
/// scattered): ids of one block of 64 in decreasing order, then repeats of each.
#[test]
fn one_block_in_decreasing_order_then_repeated() {
    for (start, stride) in [
        (0_u64, 1_u64),
        (64 * 1000, 1),
        (5, 64 * 977),
        (u64::MAX - 4000, 61),
    ] {
        let aggregator: Aggregator<u8, Sum<u64>> = Aggregator::new();
        let ids: Vec<u64> = (0..40)
            .rev()
            .map(|i| start.wrapping_add(i * stride))
            .collect();
        for &id in &ids {
            aggregator
                .submit(Proposal::new(id, Sum(1)).writes([id as u8]))
                .unwrap();
        }
        for &id in &ids {
            assert_eq!(
                aggregator.submit(Proposal::new(id, Sum(1000))),
                Err(ProposalError::DuplicateId(ProposalId(id))),
                "start {start} stride {stride} id {id}"
            );
        }
        assert_eq!(aggregator.len(), ids.len());
        let outcome = aggregator.finish(Resolution::RejectAll);
        assert_eq!(outcome.accepted.len() + outcome.rejected.len(), ids.len());
        let order: Vec<ProposalId> = {
            let mut all: Vec<ProposalId> = outcome.accepted.clone();
            all.extend(outcome.rejected.iter().map(|(id, _)| *id));
            all.sort();
            all
        };
        let mut want: Vec<ProposalId> = ids.iter().map(|&id| ProposalId(id)).collect();
        want.sort();
        assert_eq!(order, want);
    }
}
