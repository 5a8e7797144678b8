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
/// assert_eq!(group.access[1], Access::Write);
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
    pub access: Accesses,
}

impl<K> ConflictGroup<K> {
    /// True if `id` is a member of this group.
    pub fn contains(&self, id: ProposalId) -> bool {
        self.members.contains(&id)
    }

    /// The members with their access, in input order.
    pub fn members_with_access(&self) -> impl Iterator<Item = (ProposalId, Access)> + '_ {
        self.members.iter().copied().zip(self.access.iter())
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

/// Each member's [`Access`] in a [`ConflictGroup`], in member order: one bit per member.
///
/// Up to 64 members the bits live inline, so the common small group costs one allocation (its
/// members) instead of two; a report of many small groups (wide proposals, hot keys) spent a
/// large share of its time allocating and freeing these lists. It reads like a slice of
/// `Access`: [`len`](Self::len), [`get`](Self::get), [`iter`](Self::iter), indexing, and
/// comparison with slices, arrays and vectors of `Access`. With the `serde` feature it
/// serializes as a sequence of accesses.
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
/// use hivekit_lockfree::{Access, Accesses};
///
/// let access: Accesses = [Access::Read, Access::Write, Access::Read].into_iter().collect();
/// assert_eq!(access.len(), 3);
/// assert_eq!(access[1], Access::Write);
/// assert_eq!(access.get(3), None);
/// assert_eq!(access, [Access::Read, Access::Write, Access::Read]);
/// assert_eq!(access.iter().filter(|a| a.is_write()).count(), 1);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Accesses {
    /// The number of members.
    len: usize,
    /// Bit `i` set when member `i` writes; bits at and above `len` are always clear, so the
    /// derived equality compares contents.
    bits: AccessBits,
}

/// Where the bits of [`Accesses`] live: inline up to 64 members, else on the heap. Which one is
/// decided by the length alone, so equal lists always use the same variant.
#[derive(Clone, PartialEq, Eq, Hash)]
enum AccessBits {
    Inline(u64),
    Heap(Box<[u64]>),
}

impl Default for AccessBits {
    fn default() -> Self {
        AccessBits::Inline(0)
    }
}

impl Accesses {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// `len` accesses, member `i` writing when `writes(i)` is true.
    pub(crate) fn from_fn(len: usize, mut writes: impl FnMut(usize) -> bool) -> Self {
        if len <= 64 {
            let mut bits = 0_u64;
            for index in 0..len {
                bits |= u64::from(writes(index)) << index;
            }
            return Accesses {
                len,
                bits: AccessBits::Inline(bits),
            };
        }
        let mut words = vec![0_u64; len.div_ceil(64)].into_boxed_slice();
        for index in 0..len {
            words[index / 64] |= u64::from(writes(index)) << (index % 64);
        }
        Accesses {
            len,
            bits: AccessBits::Heap(words),
        }
    }

    /// One access per packed member of the scan, in order: member `i` writes when `members[i]`
    /// has the [`WRITER`](super::WRITER) bit set.
    ///
    /// Sixty-four members to a word without a branch or bounds check per member: the report of a
    /// skewed workload (groups of thousands of members) spent a tenth of its calling thread's
    /// instructions in [`from_fn`](Self::from_fn)'s per-member closure.
    pub(crate) fn from_packed(members: &[u32]) -> Self {
        let shift = super::WRITER.trailing_zeros();
        let word = |chunk: &[u32]| {
            chunk
                .iter()
                .enumerate()
                .fold(0_u64, |bits, (offset, &member)| {
                    bits | (u64::from(member >> shift & 1) << offset)
                })
        };
        let bits = if members.len() <= 64 {
            AccessBits::Inline(word(members))
        } else {
            AccessBits::Heap(members.chunks(64).map(word).collect())
        };
        Accesses {
            len: members.len(),
            bits,
        }
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The access of member `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<Access> {
        if index >= self.len {
            return None;
        }
        let word = match &self.bits {
            AccessBits::Inline(bits) => *bits,
            AccessBits::Heap(words) => words[index / 64],
        };
        Some(if word >> (index % 64) & 1 == 1 {
            Access::Write
        } else {
            Access::Read
        })
    }

    /// The accesses in member order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Access> + DoubleEndedIterator + '_ {
        (0..self.len).map(|index| {
            // In range: `index < len`.
            self.get(index).unwrap_or(Access::Read)
        })
    }

    /// The accesses as a vector.
    pub fn to_vec(&self) -> Vec<Access> {
        self.iter().collect()
    }
}

impl fmt::Debug for Accesses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl std::ops::Index<usize> for Accesses {
    type Output = Access;

    /// # Panics
    ///
    /// If `index` is out of range, as a slice's indexing does.
    fn index(&self, index: usize) -> &Access {
        match self.get(index) {
            Some(Access::Write) => &Access::Write,
            Some(Access::Read) => &Access::Read,
            None => panic!(
                "index out of bounds: the len is {} but the index is {index}",
                self.len
            ),
        }
    }
}

impl FromIterator<Access> for Accesses {
    fn from_iter<I: IntoIterator<Item = Access>>(iter: I) -> Self {
        let accesses: Vec<Access> = iter.into_iter().collect();
        Accesses::from_fn(accesses.len(), |index| accesses[index].is_write())
    }
}

impl From<Vec<Access>> for Accesses {
    fn from(accesses: Vec<Access>) -> Self {
        Accesses::from_fn(accesses.len(), |index| accesses[index].is_write())
    }
}

impl From<&[Access]> for Accesses {
    fn from(accesses: &[Access]) -> Self {
        Accesses::from_fn(accesses.len(), |index| accesses[index].is_write())
    }
}

impl PartialEq<[Access]> for Accesses {
    fn eq(&self, other: &[Access]) -> bool {
        self.len == other.len() && self.iter().eq(other.iter().copied())
    }
}

impl<const N: usize> PartialEq<[Access; N]> for Accesses {
    fn eq(&self, other: &[Access; N]) -> bool {
        *self == other[..]
    }
}

impl PartialEq<Vec<Access>> for Accesses {
    fn eq(&self, other: &Vec<Access>) -> bool {
        *self == other[..]
    }
}

impl PartialEq<&[Access]> for Accesses {
    fn eq(&self, other: &&[Access]) -> bool {
        *self == **other
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Accesses {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Accesses {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Access>::deserialize(deserializer).map(Accesses::from)
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

    /// The groups `id` belongs to, in report order. A scan of every group's members (O(members of
    /// all groups)): to ask about many ids, build a map from `groups` once.
    pub fn groups_of(&self, id: ProposalId) -> impl Iterator<Item = &ConflictGroup<K>> + '_ {
        self.groups.iter().filter(move |group| group.contains(id))
    }
}
