//! The resolution step: given conflict groups and a policy, who wins each group and why the others
//! lose. The one owner of these rules: the [`Aggregator`](crate::Aggregator) and the hive's round
//! both call it.

use std::fmt;

use rustc_hash::{FxBuildHasher, FxHashSet};

use super::report::{Access, ConflictGroup};
use crate::hint::Priority;
use crate::proposal::ProposalId;

/// How a conflict group picks its winner.
///
/// Whatever the rule, ties are broken by the lower [`ProposalId`].
///
/// # Progress
///
/// Plain data without synchronisation: every method is wait-free.
///
/// # Send and Sync
///
/// `Send` and `Sync`: it holds no references.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::Resolution;
///
/// assert_eq!(Resolution::default(), Resolution::HighestPriority);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Resolution {
    /// The member with the highest [`Priority`](crate::Priority) wins; ties go to the lower id.
    #[default]
    HighestPriority,
    /// The member submitted first wins (for [`aggregate`](crate::aggregate) and
    /// [`resolve_conflicts`], the first in the input; the hive calls this `FirstProposed`).
    FirstSubmitted,
    /// Nobody wins: every member of every conflict group is rejected.
    RejectAll,
}

/// Why a proposal was rejected.
///
/// Displays in lower case, naming the key (with its `Debug` form) and the winner.
///
/// # Progress
///
/// Plain data without synchronisation: every method is wait-free.
///
/// # Send and Sync
///
/// `Send`/`Sync` exactly when its type parameters are.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{ProposalId, RejectReason};
///
/// let lost = RejectReason::LostTo { winner: ProposalId(3), key: "limits" };
/// assert_eq!(lost.to_string(), "lost to #3 on key \"limits\"");
/// let all = RejectReason::RejectAll { key: 7 };
/// assert_eq!(all.to_string(), "in conflict on key 7, and the resolution rejects every conflicting proposal");
/// assert_eq!(all.key(), &7);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum RejectReason<K> {
    /// The proposal lost the conflict group of `key` to `winner`.
    LostTo {
        /// The winner of that group.
        winner: ProposalId,
        /// The contested key.
        key: K,
    },
    /// The proposal contends for `key` and the resolution was [`Resolution::RejectAll`].
    RejectAll {
        /// The contested key.
        key: K,
    },
}

impl<K> RejectReason<K> {
    /// The contested key the proposal was rejected on.
    pub fn key(&self) -> &K {
        match self {
            RejectReason::LostTo { key, .. } | RejectReason::RejectAll { key } => key,
        }
    }

    /// The proposal that won, if one did.
    pub fn winner(&self) -> Option<ProposalId> {
        match self {
            RejectReason::LostTo { winner, .. } => Some(*winner),
            RejectReason::RejectAll { .. } => None,
        }
    }
}

impl<K: fmt::Debug> fmt::Display for RejectReason<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::LostTo { winner, key } => write!(f, "lost to {winner} on key {key:?}"),
            RejectReason::RejectAll { key } => write!(
                f,
                "in conflict on key {key:?}, and the resolution rejects every conflicting proposal"
            ),
        }
    }
}

/// The winner of one group under `resolution` among `members` (in input order, at least one), given
/// each member's priority and id; `None` under [`Resolution::RejectAll`].
///
/// Members are in input order, and ids are distinct, so the first member is the earliest submitted.
/// Equal priorities go to the lower id.
pub(crate) fn pick_winner<M: Copy>(
    resolution: Resolution,
    members: &[M],
    rank: impl Fn(M) -> (Priority, ProposalId),
) -> Option<M> {
    match resolution {
        Resolution::RejectAll => None,
        Resolution::FirstSubmitted => members.first().copied(),
        Resolution::HighestPriority => members.iter().copied().min_by_key(|&member| {
            let (priority, id) = rank(member);
            (std::cmp::Reverse(priority), id)
        }),
    }
}

/// Whether a member with `member` access loses to a winner with `winner` access (`is_winner`: the
/// member is the winner): a writing winner beats every other member, a reading winner only the
/// writers, since readers never conflict with each other.
#[inline]
pub(crate) fn loses(winner: Access, is_winner: bool, member: Access) -> bool {
    !is_winner && (winner.is_write() || member.is_write())
}

/// Resolves every conflict group under `resolution`: each group is decided on its own, and every
/// rejected proposal is listed once, with the reason of the first group (in `groups` order) it
/// lost, in the order of those first losses.
///
/// `priority_of` gives each member's priority (used by [`Resolution::HighestPriority`] only).
/// A proposal that loses one group may still win another; it is rejected all the same.
///
/// # Progress
///
/// Wait-free: runs on the caller's thread, in O(total members) (plus one `priority_of` call per
/// member under [`Resolution::HighestPriority`]).
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{detect_conflicts, resolve_conflicts, Priority, Proposal, ProposalId, RejectReason, Resolution};
///
/// let proposals = [
///     Proposal::new(1, ()).writes(["limit"]),
///     Proposal::new(2, ()).writes(["limit"]).priority(Priority::High),
///     Proposal::new(3, ()).reads(["limit"]),
/// ];
/// let report = detect_conflicts(&proposals)?;
/// let priority_of = |id: ProposalId| proposals.iter().find(|p| p.id == id).map_or(Priority::Low, |p| p.priority);
/// let rejected = resolve_conflicts(&report.groups, Resolution::HighestPriority, priority_of);
/// let lost = |id| RejectReason::LostTo { winner: ProposalId(id), key: "limit" };
/// assert_eq!(rejected, [(ProposalId(1), lost(2)), (ProposalId(3), lost(2))]);
///
/// let rejected = resolve_conflicts(&report.groups, Resolution::FirstSubmitted, priority_of);
/// assert_eq!(rejected, [(ProposalId(2), lost(1)), (ProposalId(3), lost(1))]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn resolve_conflicts<K: Clone>(
    groups: &[ConflictGroup<K>],
    resolution: Resolution,
    priority_of: impl Fn(ProposalId) -> Priority,
) -> Vec<(ProposalId, RejectReason<K>)> {
    let mut rejected = Vec::new();
    let mut seen: FxHashSet<ProposalId> = FxHashSet::with_hasher(FxBuildHasher);
    for group in groups {
        let members: Vec<(ProposalId, Access)> = group.members_with_access().collect();
        match pick_winner(resolution, &members, |(id, _)| (priority_of(id), id)) {
            None => {
                for &(member, _) in &members {
                    if seen.insert(member) {
                        let key = group.key.clone();
                        rejected.push((member, RejectReason::RejectAll { key }));
                    }
                }
            }
            Some((winner, winner_access)) => {
                for &(member, access) in &members {
                    if loses(winner_access, member == winner, access) && seen.insert(member) {
                        let key = group.key.clone();
                        rejected.push((member, RejectReason::LostTo { winner, key }));
                    }
                }
            }
        }
    }
    rejected
}
