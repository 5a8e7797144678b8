//! The conflict-detection inputs and the straightforward peer (an `FxHashMap` index), shared by the
//! criterion suite (`conflict.rs`) and the instruction counts (`instructions.rs`).

// Each bench binary uses a part of this module.
#![allow(dead_code)]

use std::borrow::Borrow;
use std::hash::Hash;

use benches_common::proposals::{proposal_specs, ProposalSpec};
use benches_common::skewed::{path_key, same_keys_specs, skewed_specs};
use benches_common::workload::DEFAULT_SEED;
use hivekit_lockfree::{Access, ConflictGroup, ConflictKind, ConflictReport, Proposal, ProposalId};
use rustc_hash::FxHashMap;

/// The uniform workload: `n` proposals of 4 keys, 10 % in conflict.
pub(crate) fn proposals(n: usize) -> Vec<Proposal<u64, ()>> {
    proposal_specs(n, 4, 0.1, DEFAULT_SEED)
        .into_iter()
        .map(|spec| super::to_proposal(spec, |_| ()))
        .collect()
}

/// The skewed, history-like workload with `u64` keys.
pub(crate) fn skewed_proposals(n: usize) -> Vec<Proposal<u64, ()>> {
    skewed_specs(n, DEFAULT_SEED)
        .into_iter()
        .map(|spec| super::to_proposal(spec, |_| ()))
        .collect()
}

/// The skewed workload with the same keys as path-like strings.
pub(crate) fn skewed_path_proposals(n: usize) -> Vec<Proposal<String, ()>> {
    skewed_specs(n, DEFAULT_SEED)
        .into_iter()
        .map(to_path_proposal)
        .collect()
}

/// Two proposals writing the same `width` keys.
pub(crate) fn same_keys_proposals(width: usize) -> Vec<Proposal<u64, ()>> {
    same_keys_specs(2, width)
        .into_iter()
        .map(|spec| super::to_proposal(spec, |_| ()))
        .collect()
}

fn to_path_proposal(spec: ProposalSpec) -> Proposal<String, ()> {
    Proposal::new(ProposalId(spec.id), ())
        .writes(spec.writes.into_iter().map(path_key))
        .reads(spec.reads.into_iter().map(path_key))
}

/// Puts contested keys in first-appearance order (the order `detect_conflicts` reports): by each
/// group's first member, then by the key's first position in that member's lists, computed once per
/// group (`sort_by_cached_key`), as a user would.
pub(crate) fn into_report<K, Q>(
    proposals: &[Proposal<K, ()>],
    mut groups: Vec<(Q, Vec<(u32, bool)>)>,
) -> ConflictReport<K>
where
    K: Eq + Clone,
    Q: Borrow<K>,
{
    let position = |index: u32, key: &K| {
        let proposal = &proposals[index as usize];
        proposal
            .writes
            .iter()
            .chain(&proposal.reads)
            .position(|touched| touched == key)
            .unwrap_or(usize::MAX)
    };
    groups
        .sort_by_cached_key(|(key, members)| (members[0].0, position(members[0].0, key.borrow())));
    let mut in_group = vec![false; proposals.len()];
    let groups = groups
        .into_iter()
        .map(|(key, members)| {
            let writers = members.iter().filter(|(_, writes)| *writes).count();
            ConflictGroup {
                key: key.borrow().clone(),
                kind: if writers >= 2 {
                    ConflictKind::WriteWrite
                } else {
                    ConflictKind::ReadWrite
                },
                members: members
                    .iter()
                    .map(|&(index, _)| {
                        in_group[index as usize] = true;
                        proposals[index as usize].id
                    })
                    .collect(),
                access: members
                    .iter()
                    .map(|&(_, writes)| if writes { Access::Write } else { Access::Read })
                    .collect(),
            }
        })
        .collect();
    let independent = proposals
        .iter()
        .zip(&in_group)
        .filter(|(_, &grouped)| !grouped)
        .map(|(proposal, _)| proposal.id)
        .collect();
    ConflictReport {
        groups,
        independent,
    }
}

/// The straightforward one-pass index: a `Vec` of touchers per borrowed key, then a scan of the
/// map and a sort of the contested keys into first-appearance order.
pub(crate) fn fxhashmap_index<K: Hash + Eq + Clone>(
    proposals: &[Proposal<K, ()>],
) -> ConflictReport<K> {
    let mut index: FxHashMap<&K, Vec<(u32, bool)>> = FxHashMap::default();
    for (position, proposal) in proposals.iter().enumerate() {
        let position = position as u32;
        let touches = proposal
            .writes
            .iter()
            .map(|key| (key, true))
            .chain(proposal.reads.iter().map(|key| (key, false)));
        for (key, writes) in touches {
            let touchers = index.entry(key).or_default();
            match touchers.last_mut() {
                Some((last, last_writes)) if *last == position => *last_writes |= writes,
                _ => touchers.push((position, writes)),
            }
        }
    }
    let groups = index
        .into_iter()
        .filter(|(_, touchers)| touchers.len() >= 2 && touchers.iter().any(|(_, writes)| *writes))
        .collect();
    into_report(proposals, groups)
}
