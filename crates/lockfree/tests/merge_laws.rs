//! The `Merge` laws (associativity and commutativity) for every provided implementation, and
//! `merge_all` agreeing with a sequential fold whatever the split.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;

use hivekit_lockfree::{merge_all, merge_all_with_threshold, Max, Merge, Min, Sum};
use proptest::prelude::*;

fn merged<T: Merge>(mut left: T, right: T) -> T {
    left.merge(right);
    left
}

fn check_laws<T: Merge + Clone + PartialEq + Debug>(a: T, b: T, c: T) {
    assert_eq!(
        merged(a.clone(), b.clone()),
        merged(b.clone(), a.clone()),
        "commutative"
    );
    assert_eq!(
        merged(merged(a.clone(), b.clone()), c.clone()),
        merged(a, merged(b, c)),
        "associative"
    );
}

fn small_map() -> impl Strategy<Value = BTreeMap<u8, Sum<i32>>> {
    proptest::collection::btree_map(0u8..8, any::<i32>().prop_map(Sum), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sum_u64(a: u64, b: u64, c: u64) {
        check_laws(Sum(a), Sum(b), Sum(c));
    }

    #[test]
    fn sum_i8_wraps_lawfully(a: i8, b: i8, c: i8) {
        check_laws(Sum(a), Sum(b), Sum(c));
    }

    #[test]
    fn sum_i64(a: i64, b: i64, c: i64) {
        check_laws(Sum(a), Sum(b), Sum(c));
    }

    #[test]
    fn max_and_min(a: i32, b: i32, c: i32) {
        check_laws(Max(a), Max(b), Max(c));
        check_laws(Min(a), Min(b), Min(c));
        prop_assert_eq!(merged(merged(Max(a), Max(b)), Max(c)).0, a.max(b).max(c));
        prop_assert_eq!(merged(merged(Min(a), Min(b)), Min(c)).0, a.min(b).min(c));
    }

    #[test]
    fn max_of_strings(a: String, b: String, c: String) {
        check_laws(Max(a.clone()), Max(b.clone()), Max(c.clone()));
        check_laws(Min(a), Min(b), Min(c));
    }

    #[test]
    fn btree_set_union(
        a in proptest::collection::btree_set(0u16..64, 0..10),
        b in proptest::collection::btree_set(0u16..64, 0..10),
        c in proptest::collection::btree_set(0u16..64, 0..10),
    ) {
        let union: BTreeSet<u16> = a.iter().chain(&b).chain(&c).copied().collect();
        prop_assert_eq!(merged(merged(a.clone(), b.clone()), c.clone()), union);
        check_laws(a, b, c);
    }

    #[test]
    fn hash_set_union(
        a in proptest::collection::hash_set(0u16..64, 0..10),
        b in proptest::collection::hash_set(0u16..64, 0..10),
        c in proptest::collection::hash_set(0u16..64, 0..10),
    ) {
        let union: HashSet<u16> = a.iter().chain(&b).chain(&c).copied().collect();
        prop_assert_eq!(merged(merged(a.clone(), b.clone()), c.clone()), union);
        check_laws(a, b, c);
    }

    #[test]
    fn btree_map_merges_values(a in small_map(), b in small_map(), c in small_map()) {
        let merged_map = merged(merged(a.clone(), b.clone()), c.clone());
        for (key, value) in &merged_map {
            let expected = [&a, &b, &c]
                .iter()
                .filter_map(|map| map.get(key))
                .fold(0i32, |sum, Sum(v)| sum.wrapping_add(*v));
            prop_assert_eq!(value.0, expected);
        }
        check_laws(a, b, c);
    }

    #[test]
    fn hash_map_merges_values(a in small_map(), b in small_map(), c in small_map()) {
        let to_hash = |map: BTreeMap<u8, Sum<i32>>| map.into_iter().collect::<HashMap<_, _>>();
        check_laws(to_hash(a), to_hash(b), to_hash(c));
    }

    #[test]
    fn option_and_tuples(
        a in proptest::option::of(any::<u32>()),
        b in proptest::option::of(any::<u32>()),
        c in proptest::option::of(any::<u32>()),
    ) {
        check_laws(a.map(Sum), b.map(Sum), c.map(Sum));
        let triple = |x: Option<u32>| (Sum(x.unwrap_or(1)), Max(x), Min(x), ());
        check_laws(triple(a), triple(b), triple(c));
    }

    #[test]
    fn merge_all_agrees_with_fold_for_any_split(
        payloads in proptest::collection::vec(small_map(), 0..40),
        threshold in 0usize..50,
    ) {
        let fold = payloads.iter().cloned().reduce(merged);
        prop_assert_eq!(merge_all_with_threshold(payloads.clone(), threshold), fold.clone());
        prop_assert_eq!(merge_all(payloads), fold);
    }
}

#[test]
fn nested_maps_merge_deeply() {
    let mut left: BTreeMap<&str, BTreeMap<&str, Sum<u32>>> =
        BTreeMap::from([("team", BTreeMap::from([("alice", Sum(1))]))]);
    // Fully qualified: std is adding an unstable inherent `BTreeMap::merge`.
    Merge::merge(
        &mut left,
        BTreeMap::from([("team", BTreeMap::from([("alice", Sum(2)), ("bob", Sum(5))]))]),
    );
    assert_eq!(
        left["team"],
        BTreeMap::from([("alice", Sum(3)), ("bob", Sum(5))])
    );
}

#[test]
fn merge_all_above_the_threshold_agrees_with_a_fold_whichever_path_the_probe_picks() {
    // Cheap payloads (integer sums, which the probe keeps on one thread) and costly ones (sets of
    // distinct values, which it hands to the pool): both must equal a plain fold, probe included.
    let count = hivekit_lockfree::PARALLEL_MERGE_THRESHOLD * 2 + 7;
    let sums: Vec<Sum<u64>> = (0..count as u64).map(Sum).collect();
    assert_eq!(merge_all(sums.clone()), sums.into_iter().reduce(merged));
    let sets: Vec<BTreeSet<u64>> = (0..count as u64)
        .map(|i| (0..8).map(|j| i * 8 + j).collect())
        .collect();
    let expected = sets.iter().cloned().reduce(merged);
    let total = merge_all(sets).expect("the input is not empty");
    assert_eq!(total.len(), count * 8);
    assert_eq!(Some(total), expected);
}
