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
    // interleaved high and low, so every shard in use also takes the scan and then the id set (built
    // once an out-of-order id reaches a shard of `SMALL_SHARD` or more), and duplicates are
    // offered after each id in all three states.
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
        let found = tiny::contested(&lists);
        assert_eq!(found, !full.groups.is_empty(), "{proposals:?}");
        contested_rounds += usize::from(found);
    }
    // Both answers occur.
    assert!(contested_rounds > 100 && contested_rounds < 1_900);
}
