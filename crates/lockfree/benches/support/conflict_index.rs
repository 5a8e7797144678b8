//! The conflict-detection inputs and the straightforward peer (an `FxHashMap` index), shared by the
//! criterion suite (`conflict.rs`) and the instruction counts (`instructions.rs`).

// Each bench binary uses a part of this module.
#![allow(dead_code)]

use benches_common::proposals::proposal_specs;
use benches_common::workload::DEFAULT_SEED;
use hivekit_lockfree::{ConflictGroup, ConflictKind, ConflictReport, Proposal};
use rustc_hash::FxHashMap;

pub(crate) fn proposals(n: usize) -> Vec<Proposal<u64, ()>> {
    proposal_specs(n, 4, 0.1, DEFAULT_SEED)
        .into_iter()
        .map(|spec| super::to_proposal(spec, |_| ()))
        .collect()
}

/// Puts contested keys in first-appearance order (the order `detect_conflicts` reports), given each
/// group's first member index and the key.
pub(crate) fn into_report(
    proposals: &[Proposal<u64, ()>],
    mut groups: Vec<(u64, Vec<(u32, bool)>)>,
) -> ConflictReport<u64> {
    let position = |index: u32, key: u64| {
        let proposal = &proposals[index as usize];
        proposal
            .writes
            .iter()
            .chain(&proposal.reads)
            .position(|touched| *touched == key)
            .unwrap_or(usize::MAX)
    };
    groups.sort_unstable_by_key(|(key, members)| (members[0].0, position(members[0].0, *key)));
    let mut in_group = vec![false; proposals.len()];
    let groups = groups
        .into_iter()
        .map(|(key, members)| {
            let writers = members.iter().filter(|(_, writes)| *writes).count();
            ConflictGroup {
                key,
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

/// The straightforward one-pass index: a `Vec` of touchers per key, then a scan of the map.
pub(crate) fn fxhashmap_index(proposals: &[Proposal<u64, ()>]) -> ConflictReport<u64> {
    let mut index: FxHashMap<u64, Vec<(u32, bool)>> = FxHashMap::default();
    for (position, proposal) in proposals.iter().enumerate() {
        let position = position as u32;
        let touches = proposal
            .writes
            .iter()
            .map(|key| (key, true))
            .chain(proposal.reads.iter().map(|key| (key, false)));
        for (key, writes) in touches {
            let touchers = index.entry(*key).or_default();
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
