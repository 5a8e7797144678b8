//! The step [`Aggregator::finish`](super::Aggregator::finish) and [`aggregate`](super::aggregate)
//! share: detect the conflicts, decide every group on its own, record where each proposal lost.

use std::hash::Hash;

use super::tiny::{contested, TINY_OCCURRENCES};
use super::Aggregate;
use crate::conflict::{
    loses, pick_winner, scan, scan_parallel, Access, ConflictReport, KeyLists, RejectReason,
    Resolution, Scan, WRITER,
};
use crate::hint::Priority;
use crate::merge::Merge;
use crate::proposal::ProposalId;

/// In [`Decided::losses`]: the proposal lost no group.
const ACCEPTED: u32 = u32::MAX;

/// Every proposal's fate, before the payloads are merged.
pub(super) struct Decided<K> {
    /// Ids in submission order.
    ids: Vec<ProposalId>,
    /// Per proposal, in submission order: the index of the first group it lost, or [`ACCEPTED`].
    /// Empty when there is no group at all (everyone is accepted), so a round without conflicts
    /// neither fills nor reads it. 4 bytes per proposal: at 10k proposals a wider entry (the
    /// group and the winner's id) was a quarter of a megabyte to fill and read back.
    losses: Vec<u32>,
    /// Per group: its winner, `None` under `RejectAll`.
    winners: Vec<Option<ProposalId>>,
    conflicts: ConflictReport<K>,
}

impl<K> Decided<K> {
    /// Nothing contested: every proposal (ids in submission order) is independent and accepted.
    pub(super) fn undisputed(ids: Vec<ProposalId>) -> Self {
        let conflicts = ConflictReport {
            groups: Vec::new(),
            independent: ids.clone(),
        };
        Decided {
            ids,
            losses: Vec::new(),
            winners: Vec::new(),
            conflicts,
        }
    }
}

impl<K: Clone> Decided<K> {
    /// True if the proposal at `index` (in submission order) is accepted.
    #[inline]
    pub(super) fn accepts(&self, index: usize) -> bool {
        self.losses.get(index).is_none_or(|&loss| loss == ACCEPTED)
    }

    pub(super) fn into_aggregate<P>(self, merged: Option<P>) -> Aggregate<K, P> {
        if self.losses.is_empty() {
            return Aggregate {
                merged,
                accepted: self.ids,
                rejected: Vec::new(),
                conflicts: self.conflicts,
            };
        }
        let accepted_count = self.losses.iter().filter(|&&loss| loss == ACCEPTED).count();
        let mut accepted = Vec::with_capacity(accepted_count);
        let mut rejected = Vec::with_capacity(self.ids.len() - accepted_count);
        for (id, loss) in self.ids.into_iter().zip(self.losses) {
            if loss == ACCEPTED {
                accepted.push(id);
                continue;
            }
            let key = self.conflicts.groups[loss as usize].key.clone();
            let reason = match self.winners[loss as usize] {
                Some(winner) => RejectReason::LostTo { winner, key },
                None => RejectReason::RejectAll { key },
            };
            rejected.push((id, reason));
        }
        Aggregate {
            merged,
            accepted,
            rejected,
            conflicts: self.conflicts,
        }
    }
}

/// Detects and resolves the conflicts among the proposals whose key lists are `lists` and whose
/// ids are `ids` (both in submission order, distinct ids, `occurrences` keys in all, within the
/// limits). `priority` gives a proposal's priority by its index.
pub(super) fn decide_all<'a, K>(
    lists: Vec<KeyLists<'a, K>>,
    occurrences: usize,
    ids: Vec<ProposalId>,
    priority: impl Fn(usize) -> Priority,
    resolution: Resolution,
    parallel: bool,
) -> Decided<K>
where
    K: Hash + Eq + Clone + Sync + 'a,
{
    if occurrences <= TINY_OCCURRENCES && !contested(lists.iter().copied()) {
        return Decided::undisputed(ids);
    }
    let scan = if parallel {
        scan_parallel(&lists, occurrences)
    } else {
        scan(&lists, occurrences)
    };
    drop(lists);
    if scan.groups.is_empty() {
        return Decided::undisputed(ids);
    }
    let rank = |index: usize| (priority(index), ids[index]);
    let (losses, winners) = decide(ids.len(), &scan, resolution, rank);
    let conflicts = scan.into_report(ids.len(), |index| ids[index]);
    Decided {
        ids,
        losses,
        winners,
        conflicts,
    }
}

pub(super) fn merged<P: Merge>(mut left: P, right: P) -> P {
    left.merge(right);
    left
}

/// Decides every group on its own and records, per proposal, the first group it lost, and per
/// group its winner.
fn decide<K>(
    count: usize,
    scan: &Scan<'_, K>,
    resolution: Resolution,
    rank: impl Fn(usize) -> (Priority, ProposalId),
) -> (Vec<u32>, Vec<Option<ProposalId>>) {
    let mut losses = vec![ACCEPTED; count];
    let mut winners = Vec::with_capacity(scan.groups.len());
    let access = |member: u32| {
        if member & WRITER != 0 {
            Access::Write
        } else {
            Access::Read
        }
    };
    let mut lose = |member: u32, group: u32| {
        let loss = &mut losses[(member & !WRITER) as usize];
        if *loss == ACCEPTED {
            *loss = group;
        }
    };
    for (group_index, group) in scan.groups.iter().enumerate() {
        // Fewer groups than key occurrences, which are at most MAX_OCCURRENCES < ACCEPTED.
        let group_index = group_index as u32;
        let members = scan.members_of(group);
        let Some(best) = pick_winner(resolution, members, |member| {
            rank((member & !WRITER) as usize)
        }) else {
            winners.push(None);
            for &member in members {
                lose(member, group_index);
            }
            continue;
        };
        winners.push(Some(rank((best & !WRITER) as usize).1));
        for &member in members {
            if loses(access(best), member == best, access(member)) {
                lose(member, group_index);
            }
        }
    }
    (losses, winners)
}
