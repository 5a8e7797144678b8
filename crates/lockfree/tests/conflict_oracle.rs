//! Conflict detection against a slow pairwise oracle, on random proposals.

use std::collections::{BTreeMap, BTreeSet};

use hivekit_lockfree::{
    aggregate, detect_conflicts, Aggregator, ConflictKind, ConflictReport, Proposal, ProposalError,
    ProposalId, Resolution,
};
use proptest::prelude::*;

mod support;

use support::ProposalSpace;

/// Random proposals over 12 keys (up to 4 reads and 4 writes each).
fn proposals(max: usize) -> impl Strategy<Value = Vec<Proposal<u8, ()>>> {
    support::proposals(
        ProposalSpace {
            max,
            keys: 12,
            reads: 5,
            writes: 5,
        },
        |_| (),
    )
}

/// What the report must say, computed pairwise: the keys some pair conflicts on, with every
/// proposal touching them (input order) and their writer count; and the proposals in no pair.
#[derive(Debug)]
struct Oracle {
    groups: BTreeMap<u8, (Vec<ProposalId>, usize)>,
    independent: Vec<ProposalId>,
}

fn oracle(proposals: &[Proposal<u8, ()>]) -> Oracle {
    let touches = |p: &Proposal<u8, ()>, key: u8| p.reads.contains(&key) || p.writes.contains(&key);
    let writes = |p: &Proposal<u8, ()>, key: u8| p.writes.contains(&key);
    let mut contested = BTreeSet::new();
    let mut in_pair = vec![false; proposals.len()];
    for (i, a) in proposals.iter().enumerate() {
        for (j, b) in proposals.iter().enumerate().skip(i + 1) {
            for key in 0u8..12 {
                if (writes(a, key) && touches(b, key)) || (writes(b, key) && touches(a, key)) {
                    contested.insert(key);
                    in_pair[i] = true;
                    in_pair[j] = true;
                }
            }
        }
    }
    let groups = contested
        .into_iter()
        .map(|key| {
            let members = proposals
                .iter()
                .filter(|p| touches(p, key))
                .map(|p| p.id)
                .collect();
            let writers = proposals.iter().filter(|p| writes(p, key)).count();
            (key, (members, writers))
        })
        .collect();
    let independent = proposals
        .iter()
        .zip(&in_pair)
        .filter(|(_, &paired)| !paired)
        .map(|(p, _)| p.id)
        .collect();
    Oracle {
        groups,
        independent,
    }
}

/// The order groups must come in: by the first touch of their key (writes before reads).
fn first_appearance(proposals: &[Proposal<u8, ()>]) -> Vec<u8> {
    let mut seen = Vec::new();
    for proposal in proposals {
        for key in proposal.writes.iter().chain(&proposal.reads) {
            if !seen.contains(key) {
                seen.push(*key);
            }
        }
    }
    seen
}

fn check_against_oracle(proposals: &[Proposal<u8, ()>], report: &ConflictReport<u8>) {
    let expected = oracle(proposals);
    let found: BTreeMap<u8, (Vec<ProposalId>, ConflictKind)> = report
        .groups
        .iter()
        .map(|group| (group.key, (group.members.clone(), group.kind)))
        .collect();
    assert_eq!(found.len(), report.groups.len(), "one group per key");
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        expected.groups.keys().collect::<Vec<_>>(),
        "contested keys"
    );
    for (key, (members, writers)) in &expected.groups {
        let (found_members, kind) = &found[key];
        assert_eq!(found_members, members, "members of key {key}");
        let expected_kind = if *writers >= 2 {
            ConflictKind::WriteWrite
        } else {
            ConflictKind::ReadWrite
        };
        assert_eq!(*kind, expected_kind, "kind of key {key}");
    }
    assert_eq!(report.independent, expected.independent);
    let order: Vec<u8> = first_appearance(proposals)
        .into_iter()
        .filter(|key| expected.groups.contains_key(key))
        .collect();
    assert_eq!(
        report.groups.iter().map(|g| g.key).collect::<Vec<_>>(),
        order
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn detection_matches_pairwise_oracle(proposals in proposals(40)) {
        let report = detect_conflicts(&proposals).unwrap();
        check_against_oracle(&proposals, &report);
    }

    #[test]
    fn parallel_detection_matches_sequential(proposals in proposals(60)) {
        let sequential = detect_conflicts(&proposals).unwrap();
        let aggregator = Aggregator::with_parallel_threshold(0);
        for proposal in proposals.clone() {
            aggregator.submit(proposal).unwrap();
        }
        let parallel = aggregator.finish(Resolution::HighestPriority);
        prop_assert_eq!(&parallel.conflicts, &sequential);
        let model = aggregate(proposals, Resolution::HighestPriority).unwrap();
        prop_assert_eq!(parallel.conflicts, model.conflicts);
    }
}

#[test]
fn string_keys_are_borrowed_and_reported() {
    let proposals = vec![
        Proposal::new(1, ()).writes(["ns/alpha".to_string()]),
        Proposal::new(2, ()).reads(["ns/alpha".to_string(), "ns/beta".to_string()]),
        Proposal::new(3, ()).writes(["ns/beta".to_string()]),
    ];
    let report = detect_conflicts(&proposals).unwrap();
    assert_eq!(report.groups.len(), 2);
    assert_eq!(report.groups[0].key, "ns/alpha");
    assert_eq!(report.groups[1].key, "ns/beta");
    assert_eq!(report.groups_of(ProposalId(2)).count(), 2);
}

#[test]
fn a_late_conflict_is_not_hidden_by_earlier_ones() {
    // Proposals 1..=3 all write `a`; proposal 4 reads `a` at the very end.
    let proposals: Vec<Proposal<&str, ()>> = vec![
        Proposal::new(1, ()).writes(["a"]),
        Proposal::new(2, ()).writes(["a", "b"]),
        Proposal::new(3, ()).writes(["a"]),
        Proposal::new(4, ()).reads(["a"]),
        Proposal::new(5, ()).reads(["b"]),
    ];
    let report = detect_conflicts(&proposals).unwrap();
    let ids = |raw: &[u64]| raw.iter().copied().map(ProposalId).collect::<Vec<_>>();
    assert_eq!(report.groups[0].members, ids(&[1, 2, 3, 4]));
    assert_eq!(report.groups[1].members, ids(&[2, 5]));
    assert_eq!(report.groups[1].kind, ConflictKind::ReadWrite);
}

#[test]
fn duplicate_id_is_reported_by_value() {
    let proposals = [
        Proposal::new(1, ()).writes([1u8]),
        Proposal::new(2, ()).writes([2u8]),
        Proposal::new(1, ()).writes([3u8]),
    ];
    let error = detect_conflicts(&proposals).unwrap_err();
    assert_eq!(error, ProposalError::DuplicateId(ProposalId(1)));
    assert_eq!(error.to_string(), "duplicate proposal id #1");
    assert_eq!(
        aggregate(proposals.to_vec(), Resolution::RejectAll).unwrap_err(),
        ProposalError::DuplicateId(ProposalId(1))
    );
}
