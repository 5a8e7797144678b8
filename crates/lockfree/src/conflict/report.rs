//! The report of a conflict check: one group per contested key, each member with its access, and
//! the proposals in no group.

use std::fmt;

use crate::proposal::ProposalId;

/// How the members of a [`ConflictGroup`] collide on its key.
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
/// use hivekit_lockfree::ConflictKind;
///
/// assert_eq!(ConflictKind::WriteWrite.to_string(), "write-write");
/// assert_eq!(ConflictKind::ReadWrite.to_string(), "read-write");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ConflictKind {
    /// Two or more members write the key (other members may read it).
    WriteWrite,
    /// Exactly one member writes the key and the others read it.
    ReadWrite,
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictKind::WriteWrite => "write-write",
            ConflictKind::ReadWrite => "read-write",
        })
    }
}

/// Whether a member of a [`ConflictGroup`] reads or writes the group's key.
///
/// A proposal that both reads and writes the key writes it.
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
/// use hivekit_lockfree::Access;
///
/// assert_eq!(Access::Write.to_string(), "write");
/// assert!(Access::Write.is_write() && !Access::Read.is_write());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Access {
    /// The member only reads the key.
    Read,
    /// The member writes the key (and may read it too).
    Write,
}

impl Access {
    /// True for [`Access::Write`].
    pub fn is_write(self) -> bool {
        self == Access::Write
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

/// All the proposals that contend for one key.
///
/// A key is contested when at least one proposal writes it and at least one other proposal reads or
/// writes it. Its group lists every proposal that touches the key, once each, in input order, and
/// beside each member its [`Access`] to the key, so deciding who conflicts with a winner needs no
/// second look at the proposals.
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
/// use hivekit_lockfree::{detect_conflicts, Access, ConflictKind, Proposal, ProposalId};
///
/// let proposals = [
///     Proposal::new(1, ()).reads(["limit"]),
///     Proposal::new(2, ()).writes(["limit"]),
/// ];
/// let report = detect_conflicts(&proposals)?;
/// let group = &report.groups[0];
/// assert_eq!(group.key, "limit");
/// assert_eq!(group.kind, ConflictKind::ReadWrite);
/// assert_eq!(group.members, [ProposalId(1), ProposalId(2)]);
/// assert_eq!(group.access, [Access::Read, Access::Write]);
/// assert_eq!(group.access_of(ProposalId(2)), Some(Access::Write));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConflictGroup<K> {
    /// The contested key.
    pub key: K,
    /// Whether several members write it, or one writes and the others read.
    pub kind: ConflictKind,
    /// Every proposal that reads or writes the key, once each, in input order.
    pub members: Vec<ProposalId>,
    /// Each member's access to the key, in the order of [`members`](Self::members).
    pub access: Vec<Access>,
}

impl<K> ConflictGroup<K> {
    /// True if `id` is a member of this group.
    pub fn contains(&self, id: ProposalId) -> bool {
        self.members.contains(&id)
    }

    /// The members with their access, in input order.
    pub fn members_with_access(&self) -> impl Iterator<Item = (ProposalId, Access)> + '_ {
        self.members
            .iter()
            .copied()
            .zip(self.access.iter().copied())
    }

    /// How `id` touches the key, or `None` if it is not a member.
    pub fn access_of(&self, id: ProposalId) -> Option<Access> {
        self.members_with_access()
            .find(|(member, _)| *member == id)
            .map(|(_, access)| access)
    }

    /// The members that conflict with `winner` on the key, in input order: every other member if
    /// the winner writes the key, the other writers if it only reads it (readers never conflict
    /// with each other). Empty if `winner` is not a member.
    pub fn losers_to(&self, winner: ProposalId) -> impl Iterator<Item = ProposalId> + '_ {
        let winner_access = self.access_of(winner);
        self.members_with_access()
            .filter(move |&(member, access)| match winner_access {
                Some(winner_access) => super::loses(winner_access, member == winner, access),
                None => false,
            })
            .map(|(member, _)| member)
    }
}

/// The result of [`detect_conflicts`](crate::detect_conflicts): one group per contested key and the proposals in none.
///
/// Groups are ordered by where their key first appears in the input: by the first proposal that
/// touches it and, inside that proposal, written keys before read keys, each in list order.
///
/// # Progress
///
/// Plain data without synchronisation: every method is wait-free except
/// [`conflicting_ids`](ConflictReport::conflicting_ids), which sorts, on the caller's thread.
///
/// # Send and Sync
///
/// Plain data: `Send`/`Sync` when `K` is.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{detect_conflicts, Proposal, ProposalId};
///
/// let proposals = [
///     Proposal::new(1, ()).writes(["r1"]),
///     Proposal::new(2, ()).writes(["r2"]),
///     Proposal::new(3, ()).writes(["r1"]),
///     Proposal::new(4, ()).writes(["r2"]),
///     Proposal::new(5, ()).writes(["r3"]).reads(["r3"]),
/// ];
/// let report = detect_conflicts(&proposals)?;
/// assert_eq!(report.groups.len(), 2);
/// assert_eq!(report.groups[0].members, [ProposalId(1), ProposalId(3)]);
/// assert_eq!(report.groups[1].members, [ProposalId(2), ProposalId(4)]);
/// assert_eq!(report.independent, [ProposalId(5)]);
/// assert!(!report.is_conflict_free());
/// assert_eq!(report.groups_of(ProposalId(3)).count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConflictReport<K> {
    /// One group per contested key.
    pub groups: Vec<ConflictGroup<K>>,
    /// The proposals that belong to no group, in input order.
    pub independent: Vec<ProposalId>,
}

impl<K> Default for ConflictReport<K> {
    fn default() -> Self {
        ConflictReport {
            groups: Vec::new(),
            independent: Vec::new(),
        }
    }
}

impl<K> ConflictReport<K> {
    /// True if no two proposals conflict.
    pub fn is_conflict_free(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every proposal that belongs to at least one group, each once, in ascending id order.
    pub fn conflicting_ids(&self) -> Vec<ProposalId> {
        let mut ids: Vec<ProposalId> = self
            .groups
            .iter()
            .flat_map(|group| group.members.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The groups `id` belongs to, in report order.
    pub fn groups_of(&self, id: ProposalId) -> impl Iterator<Item = &ConflictGroup<K>> + '_ {
        self.groups.iter().filter(move |group| group.contains(id))
    }
}
