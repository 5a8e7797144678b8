//! Unit tests of the aggregator's decision rule on small rounds.

use super::*;
use crate::conflict::{RejectReason, Resolution};
use crate::proposal::ProposalId;
use crate::{Priority, Sum};

#[test]
fn reader_winner_keeps_every_reader() {
    let outcome = aggregate(
        vec![
            Proposal::new(1, Sum(1_u32))
                .reads(["k"])
                .priority(Priority::High),
            Proposal::new(2, Sum(2)).writes(["k"]),
            Proposal::new(3, Sum(4)).reads(["k"]),
        ],
        Resolution::HighestPriority,
    )
    .unwrap();
    assert_eq!(outcome.accepted, [ProposalId(1), ProposalId(3)]);
    assert_eq!(
        outcome.rejected,
        [(
            ProposalId(2),
            RejectReason::LostTo {
                winner: ProposalId(1),
                key: "k"
            }
        )]
    );
    assert_eq!(outcome.merged, Some(Sum(5)));
}

#[test]
fn ties_go_to_the_lower_id() {
    let outcome = aggregate(
        vec![
            Proposal::new(9, ()).writes(["k"]),
            Proposal::new(4, ()).writes(["k"]),
        ],
        Resolution::HighestPriority,
    )
    .unwrap();
    assert_eq!(outcome.accepted, [ProposalId(4)]);
}

#[test]
fn empty_aggregator_gives_empty_outcome() {
    let aggregator: Aggregator<u64, Sum<u64>> = Aggregator::new();
    let outcome = aggregator.finish(Resolution::HighestPriority);
    assert_eq!(outcome.merged, None);
    assert!(outcome.accepted.is_empty() && outcome.rejected.is_empty());
    assert!(outcome.conflicts.is_conflict_free());
}

#[test]
fn shards_refuse_duplicates_before_and_after_they_outgrow_the_scan_of_their_entries() {
    // Ids share a shard in blocks of 64: 10 proposals leave their one shard below `SMALL_SHARD`
    // (duplicates found by scanning), 40 push it past it (duplicates found by the id set built
    // then), 2,000 fill 32 blocks spread over the 8 to 256 shards.
    for count in [10_u64, 40, 2_000] {
        let aggregator = Aggregator::new();
        for id in 0..count {
            let proposal = Proposal::new(id, Sum(1_u64)).writes([id]);
            assert_eq!(aggregator.submit(proposal), Ok(()));
        }
        for id in (0..count).rev() {
            let again = aggregator.submit(Proposal::new(id, Sum(1_u64)).writes([id]));
            assert_eq!(again, Err(ProposalError::DuplicateId(ProposalId(id))));
        }
        assert_eq!(aggregator.len(), count as usize);
        let outcome = aggregator.finish(Resolution::FirstSubmitted);
        assert_eq!(
            outcome.accepted,
            (0..count).map(ProposalId).collect::<Vec<_>>()
        );
        assert_eq!(outcome.merged, Some(Sum(count)));
    }
}

#[test]
fn shards_refuse_duplicates_among_ids_that_arrive_out_of_order() {
    // Increasing ids are accepted by one comparison with the shard's highest; these arrive
    // interleaved high and low, so every shard in use also takes the scan and then the block
    // bitmaps (built once an out-of-order id reaches a shard of `SMALL_SHARD` or more), and
    // duplicates are offered after each id in all three states.
    for count in [40_u64, 2_000] {
        let aggregator = Aggregator::new();
        let order: Vec<u64> = (0..count / 2).flat_map(|i| [count - 1 - i, i]).collect();
        for (position, &id) in order.iter().enumerate() {
            let proposal = Proposal::new(id, Sum(1_u64)).writes([id]);
            assert_eq!(aggregator.submit(proposal), Ok(()));
            let earlier = order[position / 2];
            let again = aggregator.submit(Proposal::new(earlier, Sum(1_u64)));
            assert_eq!(again, Err(ProposalError::DuplicateId(ProposalId(earlier))));
        }
        assert_eq!(aggregator.len(), count as usize);
        let outcome = aggregator.finish(Resolution::FirstSubmitted);
        let expected: Vec<ProposalId> = order.iter().copied().map(ProposalId).collect();
        assert_eq!(outcome.accepted, expected);
        assert_eq!(outcome.merged, Some(Sum(count)));
    }
}

#[test]
fn the_tiny_check_finds_a_contested_key_exactly_when_the_full_scan_does() {
    // Every mix of up to 16 proposals of up to 4 keys from a small key space (so that keys
    // repeat within and across proposals), from a fixed pseudo-random sequence.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let mut contested_rounds = 0;
    for _ in 0..2_000 {
        let universe = 1 + next(12);
        let proposals: Vec<(Vec<u64>, Vec<u64>)> = (0..next(17))
            .map(|_| {
                let writes = (0..next(3)).map(|_| next(universe)).collect();
                let reads = (0..next(3)).map(|_| next(universe)).collect();
                (writes, reads)
            })
            .collect();
        let lists: Vec<(&[u64], &[u64])> = proposals
            .iter()
            .map(|(writes, reads)| (&writes[..], &reads[..]))
            .collect();
        let occurrences = proposals.iter().map(|(w, r)| w.len() + r.len()).sum();
        assert!(occurrences <= tiny::TINY_OCCURRENCES);
        let full = crate::conflict::scan(&lists, occurrences);
        let found = tiny::contested(lists.iter().copied());
        assert_eq!(found, !full.groups.is_empty(), "{proposals:?}");
        contested_rounds += usize::from(found);
    }
    // Both answers occur.
    assert!(contested_rounds > 100 && contested_rounds < 1_900);
}

#[test]
fn block_ids_agree_with_a_set_of_single_ids() {
    // Inserts and removals in a fixed pseudo-random order, of ids from neighbouring blocks, far
    // apart and at the top of the id range, checked against a plain set after every step.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let bases = [0, 64, 1 << 40, u64::MAX - 127];
    let mut ids = ids::BlockIds::default();
    ids.reserve(100);
    let mut model = std::collections::HashSet::new();
    for _ in 0..20_000 {
        let id = ProposalId(bases[next(4) as usize] + next(128));
        if next(4) == 0 {
            ids.remove(id);
            model.remove(&id);
        } else {
            assert_eq!(ids.insert(id), model.insert(id), "{id}");
        }
    }
    assert!(model.len() > 100);
}

#[test]
fn shards_refuse_duplicates_when_two_increasing_streams_share_them() {
    // Two counters' ids alternate (as two threads of their own ranges would): each stream
    // increases, but a shard holding the higher stream's blocks sees the lower one's ids below
    // its highest, so shards move to their block bitmaps, and every id offered again is refused.
    let aggregator: Aggregator<u64, Sum<u64>> = Aggregator::new();
    let order: Vec<u64> = (0..2_000_u64).flat_map(|i| [i, 100_000 + i]).collect();
    for &id in &order {
        assert_eq!(aggregator.submit(Proposal::new(id, Sum(1_u64))), Ok(()));
    }
    for &id in order.iter().rev() {
        let again = aggregator.submit(Proposal::new(id, Sum(1_u64)));
        assert_eq!(again, Err(ProposalError::DuplicateId(ProposalId(id))));
    }
    assert_eq!(aggregator.len(), order.len());
    assert!(aggregator
        .shards
        .iter()
        .any(|shard| matches!(shard.lock().unwrap().seen, Seen::Blocks(_))));
    let outcome = aggregator.finish(Resolution::FirstSubmitted);
    let expected: Vec<ProposalId> = order.iter().copied().map(ProposalId).collect();
    assert_eq!(outcome.accepted, expected);
    assert_eq!(outcome.merged, Some(Sum(order.len() as u64)));
}

#[test]
fn shards_refuse_duplicates_among_scattered_ids() {
    // Ids spread over the whole range (as hashes would be) leave about one id a block: shards
    // keep them one by one, and refuse every id offered again.
    let scatter = |i: u64| {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    };
    let aggregator: Aggregator<u64, Sum<u64>> = Aggregator::new();
    let order: Vec<u64> = (0..2_000).map(scatter).collect();
    for &id in &order {
        assert_eq!(aggregator.submit(Proposal::new(id, Sum(1_u64))), Ok(()));
    }
    for &id in order.iter().rev() {
        let again = aggregator.submit(Proposal::new(id, Sum(1_u64)));
        assert_eq!(again, Err(ProposalError::DuplicateId(ProposalId(id))));
    }
    assert!(aggregator
        .shards
        .iter()
        .any(|shard| matches!(shard.lock().unwrap().seen, Seen::Scattered(_))));
    let outcome = aggregator.finish(Resolution::FirstSubmitted);
    let expected: Vec<ProposalId> = order.iter().copied().map(ProposalId).collect();
    assert_eq!(outcome.accepted, expected);
}

#[test]
fn a_locked_shard_fits_its_cache_padding() {
    // `CachePadded` rounds a shard up to 128 bytes on x86-64: one byte more doubles the box of
    // shards that every aggregator allocates (see `Seen`).
    let size = std::mem::size_of::<std::sync::Mutex<Shard<String, Sum<u64>>>>();
    assert!(size <= 128, "a locked shard takes {size} bytes");
}

#[test]
fn a_tiny_round_without_conflicts_lists_its_ids_in_submission_order_across_shards() {
    // Ids of different blocks of 64 land in different shards; the tiny path puts them back in
    // submission order without building the key lists.
    let ids = [700_u64, 3, 130, 64, 9_000, 5, 1_000_000, 200];
    let aggregator = Aggregator::new();
    for (index, &id) in ids.iter().enumerate() {
        let key = format!("key-{index}");
        aggregator
            .submit(Proposal::new(id, Sum(id)).writes([key]))
            .unwrap();
    }
    let outcome = aggregator.finish(Resolution::FirstSubmitted);
    let expected: Vec<ProposalId> = ids.iter().map(|&id| ProposalId(id)).collect();
    assert_eq!(outcome.accepted, expected);
    assert_eq!(outcome.conflicts.independent, expected);
    assert!(outcome.rejected.is_empty());
    assert_eq!(outcome.merged, Some(Sum(ids.iter().sum())));
}

#[test]
fn an_aggregator_reuses_the_shard_memory_its_thread_kept_whatever_its_types() {
    let first: Aggregator<u64, Sum<u64>> = Aggregator::new();
    let memory = first.shards.as_ptr().cast::<u8>();
    first
        .submit(Proposal::new(1, Sum(1_u64)).writes([1_u64]))
        .unwrap();
    assert_eq!(
        first.finish(Resolution::FirstSubmitted).merged,
        Some(Sum(1))
    );
    // A finished round's shards were dropped in place and their memory kept.
    let second: Aggregator<String, crate::Max<u32>> = Aggregator::new();
    assert_eq!(second.shards.as_ptr().cast::<u8>(), memory);
    assert!(second.is_empty());
    second
        .submit(Proposal::new(7, crate::Max(1_u32)).writes(["k".to_owned()]))
        .unwrap();
    let outcome = second.finish(Resolution::FirstSubmitted);
    assert_eq!(outcome.accepted, [ProposalId(7)]);
    // Another thread has memory of its own.
    let elsewhere = std::thread::spawn(move || {
        let third: Aggregator<u64, ()> = Aggregator::new();
        third.shards.as_ptr() as usize
    });
    assert_ne!(elsewhere.join().unwrap(), memory as usize);
}

#[test]
fn an_aggregator_dropped_unfinished_drops_every_proposal_once() {
    use std::sync::Arc;
    let payload = Arc::new(());
    for _ in 0..3 {
        let aggregator = Aggregator::new();
        // Ids in several blocks: several shards, some with further chunks.
        for id in 0..300_u64 {
            let proposal = Proposal::new(id * 7, Arc::clone(&payload)).writes([id]);
            aggregator.submit(proposal).unwrap();
        }
        assert_eq!(Arc::strong_count(&payload), 301);
        drop(aggregator);
        assert_eq!(Arc::strong_count(&payload), 1);
    }
}

#[test]
fn an_aggregator_dropped_with_a_panicking_payload_drops_the_rest_and_keeps_no_memory() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    struct Bomb(Arc<AtomicUsize>, bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
            if self.1 {
                panic!("bomb");
            }
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let aggregator = Aggregator::new();
    for id in 0..200_u64 {
        let payload = Bomb(Arc::clone(&drops), id == 70);
        aggregator
            .submit(Proposal::new(id, payload).writes([id]))
            .unwrap();
    }
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(aggregator)));
    assert!(dropped.is_err());
    assert_eq!(drops.load(Ordering::Relaxed), 200);
    // The thread's next aggregator starts empty and works.
    let next: Aggregator<u64, Sum<u64>> = Aggregator::new();
    assert!(next.is_empty());
    next.submit(Proposal::new(1, Sum(2_u64))).unwrap();
    assert_eq!(next.finish(Resolution::RejectAll).merged, Some(Sum(2)));
}
