//! An id refused by `Aggregator::submit` for too many keys is not taken: it can be submitted again once, in every duplicate-check mode of a shard.

mod support;

use hivekit_lockfree::{Aggregator, Proposal, ProposalError, ProposalId, Resolution, Sum};

fn small(id: u64) -> Proposal<(), Sum<u64>> {
    Proposal::new(id, Sum(id)).reads(support::zst_keys(1))
}

fn huge(id: u64) -> Proposal<(), Sum<u64>> {
    Proposal::new(id, Sum(id)).writes(support::zst_keys(1 << 32))
}

/// Submits `before` (all must be accepted), then a too-large proposal with `refused`, then the
/// same id twice with one key: accepted once, then a duplicate.
fn check(label: &str, before: &[u64], refused: u64) {
    let aggregator = Aggregator::new();
    for &id in before {
        aggregator
            .submit(small(id))
            .unwrap_or_else(|e| panic!("{label}: {id}: {e}"));
    }
    assert!(
        matches!(
            aggregator.submit(huge(refused)),
            Err(ProposalError::TooManyKeys { .. })
        ),
        "{label}: the huge proposal is refused"
    );
    assert_eq!(aggregator.len(), before.len(), "{label}: not counted");
    assert_eq!(
        aggregator.submit(small(refused)),
        Ok(()),
        "{label}: the id is free"
    );
    assert_eq!(
        aggregator.submit(small(refused)),
        Err(ProposalError::DuplicateId(ProposalId(refused))),
        "{label}: now it is taken"
    );
    let outcome = aggregator.finish(Resolution::HighestPriority);
    assert_eq!(outcome.accepted.len(), before.len() + 1, "{label}");
    let expected = before.iter().fold(refused, |sum, id| sum.wrapping_add(*id));
    assert_eq!(outcome.merged, Some(Sum(expected)), "{label}");
}

#[test]
fn a_refused_id_above_every_stored_one_is_free_again() {
    check("increasing, small shard", &[64, 65, 66], 70);
    check(
        "increasing, large shard",
        &(64..100).collect::<Vec<_>>(),
        120,
    );
    check("first submission", &[], 7);
}

#[test]
fn a_refused_id_below_the_stored_ones_is_free_again() {
    // All in one block of 64 ids, so in one shard.
    check("unordered, small shard", &[80, 90, 100], 70);
    // Past 16 proposals an out-of-order id builds the shard's index of blocks.
    let mut ids: Vec<u64> = (84..110).collect();
    ids.push(70);
    check("indexed by blocks", &ids, 66);
}

#[test]
fn extreme_ids_are_stored_and_refused_like_any_other() {
    check("u64::MAX", &[0, u64::MAX - 1], u64::MAX);
    check("zero after u64::MAX", &[u64::MAX, u64::MAX - 63], 0);
}
