//! The resolution step against a model written from its documentation, on random proposals: each
//! group's access per member (`access_of`, `members_with_access`: a member that reads and writes
//! the key writes it), who loses to a given winner (`losers_to`), and `resolve_conflicts` under
//! every rule (each group decided on its own; each rejected proposal listed once, with the reason
//! of the first group it lost, in the order of those first losses).

use std::collections::BTreeSet;

use hivekit_lockfree::{
    detect_conflicts, Access, ConflictGroup, Priority, Proposal, ProposalId, RejectReason,
    Resolution,
};
use proptest::prelude::*;

mod support;

use support::ProposalSpace;

fn proposals() -> impl Strategy<Value = Vec<Proposal<u8, ()>>> {
    support::proposals(
        ProposalSpace {
            max: 30,
            keys: 10,
            reads: 4,
            writes: 4,
        },
        |_| (),
    )
}

fn find(input: &[Proposal<u8, ()>], id: ProposalId) -> &Proposal<u8, ()> {
    input
        .iter()
        .find(|p| p.id == id)
        .expect("a member is an input proposal")
}

/// The documented winner of a group, or `None` under `RejectAll`.
fn model_winner(
    input: &[Proposal<u8, ()>],
    group: &ConflictGroup<u8>,
    resolution: Resolution,
) -> Option<ProposalId> {
    match resolution {
        Resolution::RejectAll => None,
        Resolution::FirstSubmitted => group.members.first().copied(),
        Resolution::HighestPriority => group
            .members
            .iter()
            .copied()
            .min_by_key(|id| (std::cmp::Reverse(find(input, *id).priority), *id)),
    }
}

fn model_losers(
    input: &[Proposal<u8, ()>],
    group: &ConflictGroup<u8>,
    winner: ProposalId,
) -> Vec<ProposalId> {
    if !group.members.contains(&winner) {
        return Vec::new();
    }
    let writes = |id: ProposalId| find(input, id).writes.contains(&group.key);
    group
        .members
        .iter()
        .copied()
        .filter(|&member| member != winner && (writes(winner) || writes(member)))
        .collect()
}

fn model_resolution(
    input: &[Proposal<u8, ()>],
    groups: &[ConflictGroup<u8>],
    resolution: Resolution,
) -> Vec<(ProposalId, RejectReason<u8>)> {
    let mut seen = BTreeSet::new();
    let mut rejected = Vec::new();
    for group in groups {
        match model_winner(input, group, resolution) {
            None => {
                for &member in &group.members {
                    if seen.insert(member) {
                        rejected.push((member, RejectReason::RejectAll { key: group.key }));
                    }
                }
            }
            Some(winner) => {
                for member in model_losers(input, group, winner) {
                    if seen.insert(member) {
                        rejected.push((
                            member,
                            RejectReason::LostTo {
                                winner,
                                key: group.key,
                            },
                        ));
                    }
                }
            }
        }
    }
    rejected
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn access_and_losers_match_the_definition(input in proposals()) {
        let report = detect_conflicts(&input).unwrap();
        for group in &report.groups {
            let expected: Vec<(ProposalId, Access)> = group
                .members
                .iter()
                .map(|&id| {
                    let access = if find(&input, id).writes.contains(&group.key) {
                        Access::Write
                    } else {
                        Access::Read
                    };
                    (id, access)
                })
                .collect();
            prop_assert_eq!(group.members_with_access().collect::<Vec<_>>(), expected.clone());
            for (id, access) in &expected {
                prop_assert_eq!(group.access_of(*id), Some(*access));
                prop_assert_eq!(access.is_write(), *access == Access::Write);
                prop_assert_eq!(
                    group.losers_to(*id).collect::<Vec<_>>(),
                    model_losers(&input, group, *id)
                );
            }
            let stranger = ProposalId(u64::MAX);
            prop_assert_eq!(group.access_of(stranger), None);
            prop_assert_eq!(group.losers_to(stranger).count(), 0);
        }
    }

    #[test]
    fn resolve_conflicts_matches_the_model_under_every_rule(input in proposals()) {
        let report = detect_conflicts(&input).unwrap();
        let priority_of = |id: ProposalId| -> Priority { find(&input, id).priority };
        for resolution in [Resolution::HighestPriority, Resolution::FirstSubmitted, Resolution::RejectAll] {
            let got = hivekit_lockfree::resolve_conflicts(&report.groups, resolution, priority_of);
            prop_assert_eq!(got, model_resolution(&input, &report.groups, resolution), "{:?}", resolution);
        }
    }
}

#[test]
fn a_proposal_reading_and_writing_a_key_several_times_is_one_writing_member() {
    let input = vec![
        Proposal::new(1, ()).reads([5, 5]).writes([5, 5]),
        Proposal::new(2, ()).reads([5]),
    ];
    let report = detect_conflicts(&input).unwrap();
    assert_eq!(report.groups.len(), 1);
    let group = &report.groups[0];
    assert_eq!(
        group.members_with_access().collect::<Vec<_>>(),
        [
            (ProposalId(1), Access::Write),
            (ProposalId(2), Access::Read)
        ]
    );
    assert_eq!(
        group.losers_to(ProposalId(2)).collect::<Vec<_>>(),
        [ProposalId(1)]
    );
    assert_eq!(
        group.losers_to(ProposalId(1)).collect::<Vec<_>>(),
        [ProposalId(2)]
    );
}
