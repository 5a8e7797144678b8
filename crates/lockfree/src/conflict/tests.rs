//! Unit tests of the scan, the partitioning and the report.

use super::partition::{
    bucketed, mostly_once, partition_of, partitions, route, scan, scan_parallel, sorted_by_buckets,
    KEYS_PER_PARTITION, MAX_PARTITIONS,
};
use super::scan::{independent, keep_independent, scan_one};
use super::small::{detect_small, occurrences_and_order, SMALL_OCCURRENCES, SMALL_PROPOSALS};
use super::*;
use crate::Priority;

fn ids(raw: &[u64]) -> Vec<ProposalId> {
    raw.iter().copied().map(ProposalId).collect()
}

#[test]
fn empty_input_gives_empty_report() {
    let proposals: [Proposal<u32, ()>; 0] = [];
    let report = detect_conflicts(&proposals).unwrap();
    assert_eq!(report, ConflictReport::default());
    assert!(report.is_conflict_free());
}

#[test]
fn read_modify_write_does_not_conflict_with_itself() {
    let proposals = [
        Proposal::new(1, ()).reads(["a", "a"]).writes(["a", "a"]),
        Proposal::new(2, ()).reads(["b"]),
        Proposal::new(3, ()).reads(["b"]),
    ];
    let report = detect_conflicts(&proposals).unwrap();
    assert!(report.is_conflict_free());
    assert_eq!(report.independent, ids(&[1, 2, 3]));
}

#[test]
fn interleaved_writes_give_one_group_per_key() {
    let proposals = [
        Proposal::new(10, ()).writes(["r1"]),
        Proposal::new(11, ()).writes(["r2"]),
        Proposal::new(12, ()).writes(["r1"]),
        Proposal::new(13, ()).writes(["r2"]),
    ];
    let report = detect_conflicts(&proposals).unwrap();
    assert_eq!(report.groups.len(), 2);
    assert_eq!(report.groups[0].key, "r1");
    assert_eq!(report.groups[0].members, ids(&[10, 12]));
    assert_eq!(report.groups[0].kind, ConflictKind::WriteWrite);
    assert_eq!(report.groups[1].key, "r2");
    assert_eq!(report.groups[1].members, ids(&[11, 13]));
    assert!(report.independent.is_empty());
    assert_eq!(report.conflicting_ids(), ids(&[10, 11, 12, 13]));
}

#[test]
fn read_before_write_is_found_as_read_write() {
    let proposals = [
        Proposal::new(1, ()).reads(["k"]),
        Proposal::new(2, ()).reads(["k"]),
        Proposal::new(3, ()).writes(["k"]).priority(Priority::High),
    ];
    let report = detect_conflicts(&proposals).unwrap();
    assert_eq!(report.groups.len(), 1);
    assert_eq!(report.groups[0].kind, ConflictKind::ReadWrite);
    assert_eq!(report.groups[0].members, ids(&[1, 2, 3]));
}

#[test]
fn readers_alone_never_conflict() {
    let proposals = [
        Proposal::new(1, ()).reads(["k"]),
        Proposal::new(2, ()).reads(["k"]),
    ];
    assert!(detect_conflicts(&proposals).unwrap().is_conflict_free());
}

#[test]
fn duplicate_ids_are_an_error_in_any_order() {
    let proposals = [
        Proposal::new(5, ()).writes(["a"]),
        Proposal::new(2, ()).writes(["b"]),
        Proposal::new(5, ()).writes(["c"]),
    ];
    assert_eq!(
        detect_conflicts(&proposals),
        Err(ProposalError::DuplicateId(ProposalId(5)))
    );
}

/// Proposals over a key space small enough for many conflicts, large enough to be routed
/// through several partitions.
fn many(n: u64, space: u64) -> Vec<Proposal<u64, ()>> {
    (0..n)
        .map(|id| {
            let key = |slot: u64| (id.wrapping_mul(0x9e37_79b9) ^ (slot << 40)) % space;
            Proposal::new(id, ())
                .writes([key(0), key(1)])
                .reads([key(2), key(1), key(3)])
        })
        .collect()
}

#[test]
fn partitioned_scans_match_the_single_table() {
    for (n, space) in [(12_000, 40_000), (10_000, 4_000), (9_000, 1 << 40)] {
        let reference = assert_partitioned_scans_match(&many(n, space));
        assert!(space > 1 << 20 || !reference.groups.is_empty());
    }
}

/// The report of the single-table scan (the reference every other path must match) for an input
/// large enough that `detect_conflicts` takes the parallel path.
fn large_reference_report(proposals: &[Proposal<u64, ()>]) -> ConflictReport<u64> {
    let (lists, occurrences) = key_lists(proposals.iter());
    assert!(
        occurrences >= PARALLEL_OCCURRENCES,
        "the input must be large"
    );
    scan_one(&lists, occurrences).into_report(proposals.len(), |index| proposals[index].id)
}

#[test]
fn large_inputs_take_the_parallel_path_with_the_same_report() {
    let proposals = many(20_000, 60_000);
    let reference = large_reference_report(&proposals);
    assert!(!reference.groups.is_empty());
    assert_eq!(detect_conflicts(&proposals), Ok(reference));
}

/// The key lists, ids and id order read on the pool are the serial read's, run boundaries
/// included.
#[test]
fn key_lists_read_on_the_pool_match_the_serial_read() {
    let mut proposals = many(PARALLEL_PROPOSALS as u64 + 5, 60_000);
    const { assert!(PARALLEL_PROPOSALS > 2 * KEY_LIST_RUN, "several runs") };
    let same = |proposals: &[Proposal<u64, ()>]| {
        let serial = key_lists_in(proposals, Vec::new());
        let (serial_occurrences, serial_increasing) = occurrences_and_order(proposals);
        let (pooled, pooled_ids, pooled_occurrences, pooled_increasing) =
            key_lists_and_order_parallel(proposals, Vec::new());
        let ids: Vec<ProposalId> = proposals.iter().map(|proposal| proposal.id).collect();
        assert_eq!(pooled_ids, ids);
        assert_eq!(pooled_occurrences, serial_occurrences);
        assert_eq!(pooled_increasing, serial_increasing);
        assert_eq!(pooled.len(), serial.len());
        for ((pooled_writes, pooled_reads), (writes, reads)) in pooled.iter().zip(&serial) {
            assert!(std::ptr::eq(*pooled_writes, *writes) && std::ptr::eq(*pooled_reads, *reads));
        }
        pooled_increasing
    };
    assert!(same(&proposals));
    // The only decrease sits across the boundary of two runs read by different jobs.
    proposals.swap(KEY_LIST_RUN - 1, KEY_LIST_RUN);
    assert!(!same(&proposals));
}

/// Regression guard for the pooled read: a repeated id at a run boundary is still found.
#[test]
fn a_duplicate_id_across_two_pooled_runs_is_an_error() {
    let mut proposals = many(PARALLEL_PROPOSALS as u64 + 5, 60_000);
    let repeated = proposals[KEY_LIST_RUN - 1].id;
    proposals[KEY_LIST_RUN].id = repeated;
    assert_eq!(
        detect_conflicts(&proposals),
        Err(ProposalError::DuplicateId(repeated))
    );
}

/// Nearly every proposal in some group, several per group: the groups' member lists are built on
/// the rayon pool.
#[test]
fn many_members_are_listed_on_the_pool_with_the_same_report() {
    let proposals = many(20_000, 10_000);
    let reference = large_reference_report(&proposals);
    let members: usize = reference
        .groups
        .iter()
        .map(|group| group.members.len())
        .sum();
    let groups = reference.groups.len();
    assert!(
        members >= PARALLEL_MEMBERS && members >= MEMBERS_PER_PARALLEL_GROUP * groups,
        "{members} members in {groups} groups"
    );
    let (lists, occurrences) = key_lists(proposals.iter());
    let ids: Vec<ProposalId> = proposals.iter().map(|proposal| proposal.id).collect();
    assert_eq!(
        scan_parallel(&lists, occurrences).into_report_parallel(ids),
        reference
    );
    assert_eq!(detect_conflicts(&proposals), Ok(reference));
}

#[test]
fn partitions_hold_at_most_the_aimed_keys() {
    assert_eq!(partitions(0, 1), 1);
    assert_eq!(partitions(2 * KEYS_PER_PARTITION - 1, 1), 1);
    // 10k proposals of 4 keys: rounding down gave 4 partitions of 10k keys.
    assert_eq!(partitions(40_000, 1), 8);
    assert_eq!(partitions(40_000, 16), 16);
    for occurrences in (2 * KEYS_PER_PARTITION..MAX_PARTITIONS * KEYS_PER_PARTITION)
        .step_by(KEYS_PER_PARTITION / 3)
    {
        let parts = partitions(occurrences, 1);
        assert!(parts.is_power_of_two() && parts <= MAX_PARTITIONS);
        assert!(
            occurrences.div_ceil(parts) <= KEYS_PER_PARTITION,
            "{occurrences}"
        );
    }
    assert_eq!(partitions(usize::MAX / 2, 1), MAX_PARTITIONS);
}

/// Regression: putting partitioned groups back in order searched each group's key in its first
/// member's lists, quadratic in the width of one proposal.
#[test]
fn wide_proposals_keep_first_appearance_order_across_partitions() {
    let width = 20_000_u64;
    let keys = |offset: u64| (0..width).map(move |key| key.wrapping_mul(0x9e37_79b9) + offset);
    let proposals = [
        // Written keys, then read keys that the second proposal writes: both lists are used.
        Proposal::new(1, ()).writes(keys(0)).reads(keys(1 << 40)),
        Proposal::new(2, ()).writes(keys(1 << 40)).reads(keys(0)),
    ];
    let reference = assert_partitioned_scans_match(&proposals);
    assert_eq!(reference.groups.len(), 2 * width as usize);
    assert_eq!(reference.groups[0].key, 0);
    assert_eq!(reference.groups[width as usize].key, 1 << 40);
}

#[test]
fn table_grows_past_a_short_estimate() {
    let proposals = many(3_000, 1 << 40);
    let (lists, _) = key_lists(proposals.iter());
    let id_of = |index: usize| proposals[index].id;
    // A capacity estimate of zero forces the table to grow many times.
    let grown = scan_one(&lists, 0).into_report(proposals.len(), id_of);
    let sized = scan_one(&lists, 15_000).into_report(proposals.len(), id_of);
    assert_eq!(grown, sized);
}

/// `scan_one` scans in the thread's kept state: a scan after larger ones (other keys, another
/// key type, a table that grew) reports what the same scan reports on a fresh thread.
#[test]
fn one_table_scans_in_kept_state_match_a_fresh_thread() {
    let small = many(1_000, 3_000);
    let report = |proposals: &[Proposal<u64, ()>]| {
        let (lists, occurrences) = key_lists(proposals.iter());
        scan_one(&lists, occurrences).into_report(proposals.len(), |index| proposals[index].id)
    };
    let fresh = std::thread::scope(|scope| scope.spawn(|| report(&small)).join().unwrap());
    assert!(!fresh.groups.is_empty());
    let large = many(3_500, 7_000);
    let (lists, _) = key_lists(large.iter());
    let _grown = scan_one(&lists, 0);
    let named: Vec<Proposal<String, ()>> = (0..500_u64)
        .map(|id| Proposal::new(id, ()).writes([format!("k{}", id % 97)]))
        .collect();
    let (lists, occurrences) = key_lists(named.iter());
    assert!(!scan_one(&lists, occurrences).groups.is_empty());
    assert_eq!(report(&small), fresh);
    assert_eq!(report(&small), fresh);
}

#[test]
fn groups_of_lists_every_group_of_a_member() {
    let proposals = [
        Proposal::new(1, ()).writes(["a", "b"]),
        Proposal::new(2, ()).reads(["a"]),
        Proposal::new(3, ()).writes(["b"]),
    ];
    let report = detect_conflicts(&proposals).unwrap();
    let keys: Vec<_> = report.groups_of(ProposalId(1)).map(|g| g.key).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(report.groups_of(ProposalId(2)).count(), 1);
}

#[test]
fn accesses_read_like_a_slice_inline_and_on_the_heap() {
    for len in [0, 1, 63, 64, 65, 128, 130] {
        let expected: Vec<Access> = (0..len)
            .map(|index| {
                if index % 3 == 1 {
                    Access::Write
                } else {
                    Access::Read
                }
            })
            .collect();
        let accesses = Accesses::from_fn(len, |index| index % 3 == 1);
        assert_eq!(accesses, expected, "len {len}");
        assert_eq!(accesses.len(), len);
        assert_eq!(accesses.is_empty(), len == 0);
        assert_eq!(accesses.get(len), None);
        assert_eq!(accesses.iter().rev().collect::<Vec<_>>(), {
            let mut reversed = expected.clone();
            reversed.reverse();
            reversed
        });
        for (index, access) in expected.iter().enumerate() {
            assert_eq!(accesses[index], *access);
            assert_eq!(accesses.get(index), Some(*access));
        }
        assert_eq!(Accesses::from(expected.clone()), accesses);
        assert_eq!(expected.iter().copied().collect::<Accesses>(), accesses);
        assert_eq!(format!("{accesses:?}"), format!("{expected:?}"));
    }
    assert_ne!(
        Accesses::from_fn(65, |index| index == 64),
        Accesses::from_fn(65, |_| false)
    );
}

#[test]
fn groups_of_more_than_64_members_report_each_members_access() {
    let proposals: Vec<Proposal<u64, ()>> = (0..150)
        .map(|id| {
            if id % 7 == 0 {
                Proposal::new(id, ()).writes([1_u64])
            } else {
                Proposal::new(id, ()).reads([1_u64])
            }
        })
        .collect();
    let report = detect_conflicts(&proposals).unwrap();
    assert_eq!(report.groups.len(), 1);
    let group = &report.groups[0];
    assert_eq!(group.access.len(), 150);
    for (id, access) in group.members_with_access() {
        assert_eq!(access.is_write(), id.0 % 7 == 0, "member {id}");
    }
}

#[test]
fn accesses_from_packed_members_match_accesses_from_fn() {
    for len in [0, 1, 63, 64, 65, 128, 130, 1_000] {
        let writes = |index: usize| index % 5 == 2 || index % 7 == 0;
        let members: Vec<u32> = (0..len as u32)
            .map(|index| (index * 3) | if writes(index as usize) { WRITER } else { 0 })
            .collect();
        assert_eq!(
            Accesses::from_packed(&members),
            Accesses::from_fn(len, writes),
            "len {len}"
        );
    }
}

/// Hot keys touched by thousands of proposals and cold ones touched once, as in a commit history:
/// groups larger than 64 members, most slots never contested, both partitioned paths.
#[test]
fn hot_and_cold_keys_give_the_same_report_on_every_path() {
    let proposals: Vec<Proposal<u64, ()>> = (0..20_000_u64)
        .map(|id| {
            let hot = id.wrapping_mul(0x9e37_79b9) % 97;
            let cold = |slot: u64| (1 << 40) + id * 4 + slot;
            let proposal = Proposal::new(id, ()).writes([cold(0), cold(1)]);
            if id % 3 == 0 {
                proposal.writes([hot]).reads([cold(2), hot % 7])
            } else {
                proposal.reads([hot, cold(3)])
            }
        })
        .collect();
    let reference = large_reference_report(&proposals);
    assert!(reference
        .groups
        .iter()
        .any(|group| group.members.len() > 64));
    let (lists, occurrences) = key_lists(proposals.iter());
    assert_eq!(
        scan(&lists, occurrences).into_report(proposals.len(), |index| proposals[index].id),
        reference
    );
    assert_eq!(detect_conflicts(&proposals), Ok(reference));
}

/// A key whose hash keeps only 12 bits of it: thousands of keys share a partition and a table tag,
/// so probes meet other keys' entries, both those touched once and those with a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Colliding(u32);

impl std::hash::Hash for Colliding {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.0 % 4_096).hash(state);
    }
}

/// `n` proposals of 0 to 3 written and 0 to 3 read keys out of `space`, repeats inside a proposal
/// allowed, from `seed` (splitmix64).
fn random_proposals<K>(
    n: u64,
    space: u64,
    seed: u64,
    key: impl Fn(u64) -> K,
) -> Vec<Proposal<K, ()>> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|id| {
            let writes: Vec<K> = (0..next() % 4).map(|_| key(next() % space)).collect();
            let reads: Vec<K> = (0..next() % 4).map(|_| key(next() % space)).collect();
            Proposal::new(id, ()).writes(writes).reads(reads)
        })
        .collect()
}

/// The partitioned scans' reports against the single table's, for an input that is partitioned;
/// the report.
fn assert_partitioned_scans_match<K: Hash + Eq + Clone + Sync + std::fmt::Debug>(
    proposals: &[Proposal<K, ()>],
) -> ConflictReport<K> {
    let (lists, occurrences) = key_lists(proposals.iter());
    assert!(
        partitions(occurrences, 1) > 1,
        "the input must be partitioned"
    );
    let id_of = |index: usize| proposals[index].id;
    let reference = scan_one(&lists, occurrences).into_report(proposals.len(), id_of);
    assert_eq!(
        scan(&lists, occurrences).into_report(proposals.len(), id_of),
        reference
    );
    assert_eq!(
        scan_parallel(&lists, occurrences).into_report(proposals.len(), id_of),
        reference
    );
    reference
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]

    /// Keys touched once have no slot in a partition's scan (the entry names the occurrence), and
    /// a slot is made on the second proposal's touch: repeats inside one proposal, hot keys, keys
    /// touched once and keys sharing a tag must all give the single table's report.
    #[test]
    fn partitioned_scans_match_the_single_table_whatever_the_repeats(
        seed in proptest::prelude::any::<u64>(),
        space in proptest::sample::select(vec![48_u64, 6_000, 400_000, 1 << 30]),
    ) {
        let _ = assert_partitioned_scans_match(&random_proposals(7_000, space, seed, |key| key));
        let _ = assert_partitioned_scans_match(&random_proposals(7_000, space, seed, |key| {
            Colliding(key as u32)
        }));
    }
}

#[test]
fn partitions_of_keys_touched_once_are_scanned_without_a_slot_per_key_and_hot_ones_with() {
    for (space, once) in [(1_u64 << 30, true), (400_000, true), (48, false)] {
        let proposals = random_proposals(7_000, space, 7, |key| key);
        let (lists, occurrences) = key_lists(proposals.iter());
        let bits = partitions(occurrences, 1).trailing_zeros();
        // Two chunks, as the parallel scan routes them.
        let (front, back) = lists.split_at(lists.len() / 2);
        let routed = [
            route(front, 0, bits, occurrences / 2),
            route(back, front.len(), bits, occurrences / 2),
        ];
        for part in 0..1 << bits {
            let count = routed.iter().map(|chunk| chunk[part].len()).sum();
            assert_eq!(mostly_once(&routed, part, count), once, "space {space}");
        }
    }
}

/// Routing writes through per-partition cursors into spare capacity and grows a partition when
/// its estimate is short: every occurrence lands once, in input order (written keys first), in
/// the partition of its hash, whether the estimate is right, far too small (every partition
/// grows several times) or the keys are all one (one partition takes everything).
#[test]
fn routing_keeps_every_occurrence_in_order_whatever_the_estimate() {
    use std::hash::BuildHasher;
    for (space, estimate) in [
        (1_u64 << 30, None),
        (1 << 30, Some(0)),
        (1, Some(0)),
        (48, None),
    ] {
        let proposals = random_proposals(3_000, space, 11, |key| key);
        let (lists, occurrences) = key_lists(proposals.iter());
        let bits = 3;
        let routed = route(&lists, 100, bits, estimate.unwrap_or(occurrences));
        let mut expected: Vec<Vec<(u64, u32, u32)>> = vec![Vec::new(); 1 << bits];
        for (offset, (writes, reads)) in lists.iter().enumerate() {
            let index = 100 + offset as u32;
            let touches = writes.iter().map(|key| (key, index | WRITER));
            for (key, member) in touches.chain(reads.iter().map(|key| (key, index))) {
                let hash = rustc_hash::FxBuildHasher.hash_one(key);
                expected[partition_of(hash, 1 << bits)].push((*key, hash as u32, member));
            }
        }
        let got: Vec<Vec<(u64, u32, u32)>> = routed
            .iter()
            .map(|part| {
                part.iter()
                    .map(|occurrence| (*occurrence.key(), occurrence.hash(), occurrence.member()))
                    .collect()
            })
            .collect();
        assert_eq!(got, expected, "space {space}, estimate {estimate:?}");
    }
}

/// The in-place compaction of the id list into the independent list keeps exactly the ids not in
/// a group, in order, whichever ends are grouped, as the list built afresh does.
#[test]
fn the_independent_list_keeps_the_ungrouped_ids_in_order() {
    let all = ids(&[10, 11, 12, 13, 14]);
    for (grouped, kept) in [
        (vec![false; 5], ids(&[10, 11, 12, 13, 14])),
        (vec![true; 5], ids(&[])),
        (vec![true, false, false, false, true], ids(&[11, 12, 13])),
        (vec![false, true, false, true, false], ids(&[10, 12, 14])),
    ] {
        assert_eq!(keep_independent(all.clone(), &grouped), kept);
        assert_eq!(independent(&grouped, |index| all[index]), kept);
    }
    assert_eq!(keep_independent(Vec::new(), &[]), ids(&[]));
}

/// The small path's report against the table scan's, for an input the small path takes; the
/// report.
fn assert_small_path_matches<K: Hash + Eq + Clone + Sync + std::fmt::Debug>(
    proposals: &[Proposal<K, ()>],
) -> ConflictReport<K> {
    let (lists, occurrences) = key_lists(proposals.iter());
    assert!(occurrences <= SMALL_OCCURRENCES && proposals.len() <= SMALL_PROPOSALS);
    let reference =
        scan_one(&lists, occurrences).into_report(proposals.len(), |index| proposals[index].id);
    assert_eq!(detect_small(proposals), reference);
    assert_eq!(detect_conflicts(proposals).as_ref(), Ok(&reference));
    reference
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// A handful of proposals (reads, writes, repeats inside a proposal, keys sharing a hash, ids
    /// in any order) get the table scan's report from the small path, group for group.
    #[test]
    fn the_small_path_matches_the_table_scan_whatever_the_input(
        seed in proptest::prelude::any::<u64>(),
        count in 0_u64..=12,
        space in proptest::sample::select(vec![1_u64, 2, 3, 5, 8, 64]),
        reversed in proptest::prelude::any::<bool>(),
    ) {
        let mut proposals = random_proposals(count, space, seed, |key| key);
        if reversed {
            proposals.reverse();
        }
        let (occurrences, _) = occurrences_and_order(&proposals);
        proptest::prop_assume!(occurrences <= SMALL_OCCURRENCES);
        let _ = assert_small_path_matches(&proposals);
        // Every key hashes alike: the small path must compare the keys themselves.
        let colliding: Vec<Proposal<Colliding, ()>> = proposals
            .iter()
            .map(|proposal| Proposal {
                id: proposal.id,
                priority: proposal.priority,
                reads: proposal.reads.iter().map(|&key| Colliding(key as u32 * 4_096)).collect(),
                writes: proposal.writes.iter().map(|&key| Colliding(key as u32 * 4_096)).collect(),
                payload: (),
            })
            .collect();
        let _ = assert_small_path_matches(&colliding);
    }
}

/// The distinct-keys pass against the table scan, for any input: it reports (the table scan's
/// report) exactly when no key is touched by two proposals, and `detect_conflicts` gives the
/// table scan's report either way.
fn assert_distinct_path_matches<K: Hash + Eq + Clone + Sync + std::fmt::Debug>(
    proposals: &[Proposal<K, ()>],
    table: &mut distinct::DistinctTable,
) {
    let (lists, occurrences) = key_lists(proposals.iter());
    let reference =
        scan_one(&lists, occurrences).into_report(proposals.len(), |index| proposals[index].id);
    let shared = proposals.iter().enumerate().any(|(index, proposal)| {
        proposals[index + 1..].iter().any(|other| {
            let keys = || proposal.writes.iter().chain(&proposal.reads);
            keys().any(|key| other.touches(key))
        })
    });
    match table.report(proposals, occurrences) {
        Some(report) => {
            assert!(!shared, "a shared key passed the distinct-keys pass");
            assert_eq!(report, reference);
        }
        None => assert!(shared, "distinct keys were left to the table scan"),
    }
    assert_eq!(detect_conflicts(proposals).as_ref(), Ok(&reference));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Inputs with and without shared keys (repeats inside a proposal, readers sharing a key,
    /// keys sharing a hash, one table kept from input to input) get the table scan's report, and
    /// the distinct-keys pass takes exactly those whose keys no two proposals share.
    #[test]
    fn the_distinct_keys_pass_matches_the_table_scan_whatever_the_input(
        seeds in proptest::collection::vec(proptest::prelude::any::<u64>(), 1..4),
        count in 0_u64..=120,
        space in proptest::sample::select(vec![4_u64, 64, 1_000, 100_000, 1 << 40]),
    ) {
        let mut table = distinct::DistinctTable::EMPTY;
        for seed in seeds {
            // Distinct keys in the wide spaces; the first key of each proposal its own.
            let mut proposals = random_proposals(count, space, seed, |key| key);
            if space > 1_000 {
                for proposal in &mut proposals {
                    proposal.writes.insert(0, (1 << 50) + proposal.id.0);
                }
            }
            assert_distinct_path_matches(&proposals, &mut table);
            let colliding: Vec<Proposal<Colliding, ()>> = proposals
                .iter()
                .map(|proposal| Proposal {
                    id: proposal.id,
                    priority: proposal.priority,
                    reads: proposal.reads.iter().map(|&key| Colliding(key as u32)).collect(),
                    writes: proposal.writes.iter().map(|&key| Colliding(key as u32)).collect(),
                    payload: (),
                })
                .collect();
            assert_distinct_path_matches(&colliding, &mut table);
        }
    }
}

/// The small path's bounds: 64 proposals (most without keys) and 32 occurrences are taken, with
/// the ungrouped ids in input order; a duplicate id among unordered ids is still an error.
#[test]
fn the_small_path_takes_up_to_its_bounds_and_still_checks_ids() {
    let mut proposals: Vec<Proposal<u64, ()>> = (0..SMALL_PROPOSALS as u64)
        .rev()
        .map(|id| Proposal::new(id, ()))
        .collect();
    for (index, proposal) in proposals.iter_mut().take(16).enumerate() {
        proposal.writes.push(index as u64 % 4);
        proposal.reads.push(index as u64 % 5);
    }
    assert_eq!(
        occurrences_and_order(&proposals),
        (SMALL_OCCURRENCES, false)
    );
    let report = assert_small_path_matches(&proposals);
    // Keys 0 to 3 are written; key 4 is only read.
    assert_eq!(report.groups.len(), 4);
    assert_eq!(report.independent.len(), SMALL_PROPOSALS - 16);
    assert_eq!(
        report.independent[0],
        ProposalId(SMALL_PROPOSALS as u64 - 17)
    );

    proposals[40].id = ProposalId(SMALL_PROPOSALS as u64 - 3);
    assert_eq!(
        detect_conflicts(&proposals),
        Err(ProposalError::DuplicateId(ProposalId(
            SMALL_PROPOSALS as u64 - 3
        )))
    );
}

/// The bucketed order of the partitions' groups is the sort's, whatever the buckets: empty, one
/// bucket of many groups, many buckets of one, a mix, entries given in any order.
#[test]
fn ordering_by_buckets_matches_the_sort() {
    let mut state = 11_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    for (proposals, groups) in [(1, 0), (1, 500), (2, 3_000), (10_000, 7_500), (50, 120)] {
        let mut seen = std::collections::HashSet::new();
        let order: Vec<(u64, u32, u32)> = (0..groups)
            .map(|index| loop {
                let key = ((next() % proposals) << 32) | (next() % 4_096);
                if seen.insert(key) {
                    break (key, (next() % 16) as u32, index as u32);
                }
            })
            .collect();
        let mut expected = order.clone();
        expected.sort();
        assert_eq!(
            sorted_by_buckets(order, proposals as usize),
            expected,
            "{proposals} proposals"
        );
    }
}

/// The skewed workload (about as many groups as proposals, hot keys) is where the partitions'
/// groups are ordered by buckets: the same report as the single table on both partitioned scans.
#[test]
fn skewed_inputs_order_their_groups_by_buckets_with_the_same_report() {
    let proposals: Vec<Proposal<u64, ()>> = benches_common::skewed::skewed_specs(10_000, 7)
        .into_iter()
        .map(|spec| {
            Proposal::new(spec.id, ())
                .writes(spec.writes)
                .reads(spec.reads)
        })
        .collect();
    let reference = assert_partitioned_scans_match(&proposals);
    assert!(bucketed(reference.groups.len(), proposals.len()));
    assert_eq!(detect_conflicts(&proposals), Ok(reference));
}

/// What a thread keeps between calls stays under its bound however large the call was: the
/// buffers past [`CALL_BYTES`](super::scratch::CALL_BYTES) are freed, those that fit are kept
/// (emptied, their allocations whole).
#[test]
fn kept_call_buffers_are_bounded() {
    use super::scratch::{call_bytes, CallBuffers, CALL_BYTES};
    let mut buffers = CallBuffers::EMPTY;
    // Routes of 8 chunks of 64 partitions, 1 MiB each: 512 MiB, far past the bound.
    buffers.routes = (0..8)
        .map(|_| (0..64).map(|_| Vec::with_capacity(1 << 16)).collect())
        .collect();
    buffers.lists = Vec::with_capacity(1 << 16);
    buffers.in_group = Vec::with_capacity(1 << 20);
    buffers.bound();
    let kept = call_bytes(&buffers);
    assert!(kept <= CALL_BYTES, "{kept} bytes kept");
    assert!(kept >= CALL_BYTES / 2, "only {kept} bytes kept");
    assert!(buffers.lists.capacity() >= 1 << 16 && buffers.in_group.capacity() >= 1 << 20);
}
