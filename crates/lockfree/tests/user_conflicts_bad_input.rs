//! Bad input on every size path (one duplicated id anywhere, including at internal run boundaries) gives the typed `DuplicateId` error, keys are cloned only when contested, and `Sum` wraps as documented through every merge path.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use hivekit_lockfree::{
    aggregate, detect_conflicts, merge_all, merge_all_with_threshold, Aggregator, Proposal,
    ProposalError, ProposalId, Resolution, Sum,
};
use proptest::prelude::*;

fn input(count: usize, increasing: bool, seed: u64) -> Vec<Proposal<u64, Sum<u64>>> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|index| {
            let id = if increasing {
                index as u64 * 3 + 10
            } else {
                (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
            };
            let k = next() % 50;
            Proposal::new(id, Sum(1)).reads([k]).writes([next() % 50])
        })
        .collect()
}

/// Makes proposal `later` carry the id of proposal `earlier`.
fn duplicate(
    mut proposals: Vec<Proposal<u64, Sum<u64>>>,
    earlier: usize,
    later: usize,
) -> (Vec<Proposal<u64, Sum<u64>>>, ProposalId) {
    let id = proposals[earlier].id;
    proposals[later].id = id;
    (proposals, id)
}

fn check_duplicate(label: &str, proposals: Vec<Proposal<u64, Sum<u64>>>, id: ProposalId) {
    assert_eq!(
        detect_conflicts(&proposals).map(|_| ()),
        Err(ProposalError::DuplicateId(id)),
        "{label}: detect_conflicts"
    );
    let empty: Vec<Proposal<u64, Sum<u64>>> = proposals
        .iter()
        .map(|p| Proposal::new(p.id, Sum(1)))
        .collect();
    assert_eq!(
        detect_conflicts(&empty).map(|_| ()),
        Err(ProposalError::DuplicateId(id)),
        "{label}: detect_conflicts without keys"
    );
    assert_eq!(
        aggregate(proposals.clone(), Resolution::HighestPriority).map(|_| ()),
        Err(ProposalError::DuplicateId(id)),
        "{label}: aggregate"
    );
    let aggregator = Aggregator::with_parallel_threshold(0);
    let mut refused = Vec::new();
    for proposal in proposals {
        if let Err(error) = aggregator.submit(proposal) {
            refused.push(error);
        }
    }
    assert_eq!(refused, [ProposalError::DuplicateId(id)], "{label}: submit");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn one_duplicate_anywhere_is_a_typed_error(
        count in prop_oneof![2_usize..80, Just(4_097_usize), Just(16_384), Just(16_390)],
        increasing in any::<bool>(),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let (i, j) = (a.index(count), b.index(count));
        prop_assume!(i != j);
        let (earlier, later) = (i.min(j), i.max(j));
        let (proposals, id) = duplicate(input(count, increasing, seed), earlier, later);
        check_duplicate(&format!("count {count} at {earlier}/{later}"), proposals, id);
    }
}

/// Duplicates right at the edges of internal runs: the small path's 64 proposals, the pool's
/// runs of 4,096 proposals when reading key lists, and the parallel read from 16,384 proposals.
#[test]
fn a_duplicate_at_every_run_boundary_is_a_typed_error() {
    let cases: &[(usize, usize, usize)] = &[
        (64, 62, 63),
        (65, 63, 64),
        (65, 0, 64),
        (16_384, 4_095, 4_096),
        (16_384, 4_096, 4_097),
        (16_384, 0, 16_383),
        (16_385, 16_383, 16_384),
        (20_000, 8_191, 8_192),
        (20_000, 12_287, 16_384),
    ];
    for &(count, earlier, later) in cases {
        for increasing in [true, false] {
            let (proposals, id) = duplicate(input(count, increasing, count as u64), earlier, later);
            check_duplicate(
                &format!("count {count} at {earlier}/{later} increasing {increasing}"),
                proposals,
                id,
            );
        }
    }
}

/// Every key ever cloned, by value.
static CLONED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[derive(Debug, PartialEq, Eq)]
struct Key(u32);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Clone for Key {
    fn clone(&self) -> Self {
        CLONED.lock().unwrap().push(self.0);
        Key(self.0)
    }
}

/// `detect_conflicts` docs: "Keys are cloned only for contested keys", on every size path.
#[test]
fn only_contested_keys_are_cloned_on_every_path() {
    for (count, per) in [(5_usize, 2_u32), (40, 3), (200, 3), (6_000, 3), (17_000, 4)] {
        let proposals: Vec<Proposal<Key, ()>> = (0..count as u32)
            .map(|i| {
                // Private keys (never contested) plus one of a few shared keys every 7th proposal.
                let mut proposal = Proposal::new(u64::from(i), ())
                    .writes((0..per).map(|j| Key(1_000_000 + i * 10 + j)))
                    .reads([Key(2_000_000 + i)]);
                if i % 7 == 0 {
                    proposal = proposal.writes([Key(i % 3)]);
                } else if i % 7 == 1 {
                    proposal = proposal.reads([Key(i % 3)]);
                }
                proposal
            })
            .collect();
        CLONED.lock().unwrap().clear();
        let report = detect_conflicts(&proposals).unwrap();
        let contested: BTreeSet<u32> = report.groups.iter().map(|group| group.key.0).collect();
        let cloned: BTreeSet<u32> = CLONED.lock().unwrap().drain(..).collect();
        let uncontested: Vec<&u32> = cloned.difference(&contested).take(5).collect();
        assert!(
            uncontested.is_empty(),
            "{count} proposals: uncontested keys cloned: {uncontested:?}"
        );
    }
}

macro_rules! wrapping_sum_checks {
    ($($name:ident: $t:ty),*) => {$(
        #[test]
        fn $name() {
            for count in [1_usize, 2, 3, 511, 512, 513, 8_192, 8_193, 20_000] {
                let values: Vec<$t> = (0..count).map(|i| <$t>::MAX.wrapping_sub((i % 5) as $t)).collect();
                let want = values.iter().fold(0 as $t, |total, value| total.wrapping_add(*value));
                let want = if count == 0 { None } else { Some(Sum(want)) };
                let payloads: Vec<Sum<$t>> = values.iter().copied().map(Sum).collect();
                assert_eq!(merge_all(payloads.clone()), want, "merge_all of {count}");
                for threshold in [0, 1, 2, usize::MAX] {
                    assert_eq!(merge_all_with_threshold(payloads.clone(), threshold), want, "threshold {threshold}, {count}");
                }
                let proposals: Vec<Proposal<u8, Sum<$t>>> = payloads
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| Proposal::new(i as u64, p))
                    .collect();
                assert_eq!(aggregate(proposals.clone(), Resolution::RejectAll).unwrap().merged, want, "aggregate {count}");
                for threshold in [0, usize::MAX] {
                    let aggregator = Aggregator::with_parallel_threshold(threshold);
                    for proposal in proposals.iter().cloned() {
                        aggregator.submit(proposal).unwrap();
                    }
                    assert_eq!(aggregator.finish(Resolution::RejectAll).merged, want, "aggregator {threshold}, {count}");
                }
            }
        }
    )*};
}

wrapping_sum_checks!(
    sum_u8_wraps: u8, sum_i8_wraps: i8, sum_u64_wraps: u64, sum_i64_wraps: i64,
    sum_u128_wraps: u128, sum_i128_wraps: i128, sum_usize_wraps: usize, sum_isize_wraps: isize
);

/// The documented example: u64::MAX + 1 wraps to 0 (no panic in debug builds).
#[test]
fn sum_of_u64_max_and_one_is_zero() {
    use hivekit_lockfree::Merge;
    let mut sum = Sum(u64::MAX);
    sum.merge(Sum(1));
    assert_eq!(sum, Sum(0));
    let mut signed = Sum(i64::MIN);
    signed.merge(Sum(-1));
    assert_eq!(signed, Sum(i64::MAX));
}
