//! The step [`Aggregator::finish`](super::Aggregator::finish) and [`aggregate`](super::aggregate)
//! share: detect the conflicts, decide every group on its own, record where each proposal lost.

use std::hash::Hash;

use super::Aggregate;
use crate::conflict::{
    key_lists, loses, pick_winner, scan, scan_parallel, Access, ConflictReport, RejectReason,
    Resolution, Scan, WRITER,
};
use crate::merge::Merge;
use crate::proposal::{Proposal, ProposalId};

/// Where a proposal lost: the group index, and the winner (`None` under `RejectAll`).
pub(super) type Loss = Option<(usize, Option<ProposalId>)>;

/// Every proposal's fate, before the payloads are merged.
pub(super) struct Decided<K> {
    /// Ids in submission order.
    ids: Vec<ProposalId>,
    /// Per proposal, in submission order: `None` if accepted, else where it lost.
    pub(super) losses: Vec<Loss>,
    conflicts: ConflictReport<K>,
}

impl<K: Clone> Decided<K> {
    pub(super) fn into_aggregate<P>(self, merged: Option<P>) -> Aggregate<K, P> {
        let accepted_count = self.losses.iter().filter(|loss| loss.is_none()).count();
        let mut accepted = Vec::with_capacity(accepted_count);
        let mut rejected = Vec::with_capacity(self.ids.len() - accepted_count);
        for (id, loss) in self.ids.into_iter().zip(self.losses) {
            match loss {
                None => accepted.push(id),
                Some((group, winner)) => {
                    let key = self.conflicts.groups[group].key.clone();
                    let reason = match winner {
                        Some(winner) => RejectReason::LostTo { winner, key },
                        None => RejectReason::RejectAll { key },
                    };
                    rejected.push((id, reason));
                }
            }
        }
        Aggregate {
            merged,
            accepted,
            rejected,
            conflicts: self.conflicts,
        }
    }
}

/// Detects and resolves the conflicts among `proposals` (in submission order, distinct ids).
pub(super) fn decide_all<K, P>(
    proposals: &[&Proposal<K, P>],
    resolution: Resolution,
    parallel: bool,
) -> Decided<K>
where
    K: Hash + Eq + Clone + Sync,
{
    let (lists, occurrences) = key_lists(proposals.iter().copied());
    let scan = if parallel {
        scan_parallel(&lists, occurrences)
    } else {
        scan(&lists, occurrences)
    };
    drop(lists);
    let losses = decide(proposals, &scan, resolution);
    let ids: Vec<ProposalId> = proposals.iter().map(|proposal| proposal.id).collect();
    let conflicts = scan.into_report(ids.len(), |index| ids[index]);
    Decided {
        ids,
        losses,
        conflicts,
    }
}

pub(super) fn merged<P: Merge>(mut left: P, right: P) -> P {
    left.merge(right);
    left
}

/// Decides every group on its own and records, per proposal, the first group it lost.
fn decide<K, P>(
    proposals: &[&Proposal<K, P>],
    scan: &Scan<'_, K>,
    resolution: Resolution,
) -> Vec<Loss> {
    let mut losses: Vec<Loss> = vec![None; proposals.len()];
    let access = |member: u32| {
        if member & WRITER != 0 {
            Access::Write
        } else {
            Access::Read
        }
    };
    for (group_index, group) in scan.groups.iter().enumerate() {
        let members = scan.members_of(group);
        let rank = |member: u32| {
            let proposal = &proposals[(member & !WRITER) as usize];
            (proposal.priority, proposal.id)
        };
        let Some(best) = pick_winner(resolution, members, rank) else {
            for &member in members {
                losses[(member & !WRITER) as usize].get_or_insert((group_index, None));
            }
            continue;
        };
        let winner = proposals[(best & !WRITER) as usize].id;
        for &member in members {
            if loses(access(best), member == best, access(member)) {
                losses[(member & !WRITER) as usize].get_or_insert((group_index, Some(winner)));
            }
        }
    }
    losses
}
