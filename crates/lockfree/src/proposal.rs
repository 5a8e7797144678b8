//! Proposals: what an agent wants to change, which keys it reads and which it writes.

use std::fmt;

use crate::Priority;

/// The identity of a [`Proposal`], unique within one conflict check or one [`Aggregator`].
///
/// Displays as `#7`. Ordered by the number: where a rule needs a tie-break, the lower id wins.
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
/// use hivekit_lockfree::ProposalId;
///
/// let id = ProposalId(7);
/// assert_eq!(id.to_string(), "#7");
/// assert!(ProposalId(1) < id);
/// assert_eq!(ProposalId::from(7), id);
/// ```
///
/// [`Aggregator`]: crate::Aggregator
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct ProposalId(pub u64);

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl From<u64> for ProposalId {
    fn from(id: u64) -> Self {
        ProposalId(id)
    }
}

impl From<ProposalId> for u64 {
    fn from(id: ProposalId) -> Self {
        id.0
    }
}

/// A change an agent proposes: the keys it reads, the keys it writes, and a payload.
///
/// Two proposals conflict when one writes a key the other reads or writes. A proposal that reads
/// and writes the same key (a read-modify-write) never conflicts with itself, and a key listed twice
/// in one proposal counts once. See [`detect_conflicts`](crate::detect_conflicts).
///
/// Built either from its public fields or with the builder methods, which append to the key lists.
///
/// # Progress
///
/// Plain data without synchronisation: every method is wait-free.
///
/// # Send and Sync
///
/// `Send`/`Sync` exactly when `K` and `P` are; a proposal is plain data.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{Priority, Proposal, ProposalId};
///
/// let proposal = Proposal::new(7, "raise the limit")
///     .reads(["config/limits"])
///     .writes(["limits/max"])
///     .priority(Priority::High);
/// assert_eq!(proposal.id, ProposalId(7));
/// assert_eq!(proposal.reads, ["config/limits"]);
/// assert_eq!(proposal.writes, ["limits/max"]);
/// assert_eq!(proposal.priority, Priority::High);
/// assert!(proposal.touches(&"limits/max"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Proposal<K, P> {
    /// Unique id of the proposal.
    pub id: ProposalId,
    /// How much the proposer cares; used by [`Resolution::HighestPriority`](crate::Resolution).
    pub priority: Priority,
    /// Keys the proposal depends on but does not change.
    pub reads: Vec<K>,
    /// Keys the proposal changes.
    pub writes: Vec<K>,
    /// What the proposal carries: the change itself.
    pub payload: P,
}

impl<K, P> Proposal<K, P> {
    /// Its key occurrences (reads and writes), saturating: with zero-sized keys the two lists can
    /// each be `usize::MAX` long without allocating, and a saturated count is over every limit,
    /// so it is refused with `TooManyKeys` rather than wrapping round to a small one.
    #[inline]
    pub(crate) fn occurrences(&self) -> usize {
        self.writes.len().saturating_add(self.reads.len())
    }

    /// A proposal with no keys and [`Priority::Normal`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::{Priority, Proposal, ProposalId};
    ///
    /// let proposal: Proposal<&str, u32> = Proposal::new(ProposalId(1), 5);
    /// assert!(proposal.reads.is_empty() && proposal.writes.is_empty());
    /// assert_eq!(proposal.priority, Priority::Normal);
    /// ```
    pub fn new(id: impl Into<ProposalId>, payload: P) -> Self {
        Proposal {
            id: id.into(),
            priority: Priority::Normal,
            reads: Vec::new(),
            writes: Vec::new(),
            payload,
        }
    }

    /// Appends keys the proposal reads.
    #[must_use]
    pub fn reads(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        append(&mut self.reads, keys);
        self
    }

    /// Appends keys the proposal writes.
    #[must_use]
    pub fn writes(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        append(&mut self.writes, keys);
        self
    }

    /// Sets the priority.
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// The same proposal with its payload transformed.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::Proposal;
    ///
    /// let proposal = Proposal::new(1, 20_u32).writes(["a"]).map_payload(u64::from);
    /// assert_eq!(proposal.payload, 20_u64);
    /// ```
    pub fn map_payload<Q>(self, f: impl FnOnce(P) -> Q) -> Proposal<K, Q> {
        Proposal {
            id: self.id,
            priority: self.priority,
            reads: self.reads,
            writes: self.writes,
            payload: f(self.payload),
        }
    }

    /// True if the proposal reads or writes `key`.
    pub fn touches(&self, key: &K) -> bool
    where
        K: PartialEq,
    {
        self.writes.contains(key) || self.reads.contains(key)
    }

    /// True if the proposal writes `key`.
    pub fn writes_key(&self, key: &K) -> bool
    where
        K: PartialEq,
    {
        self.writes.contains(key)
    }
}

/// Appends `keys` to `list`; a list that has never allocated is collected instead, sized to the
/// keys at once (extending an empty vector goes through its grow path and rounds a short list up
/// to four slots: about a quarter of a 1-key agent's propose call in the hive's 1k round).
fn append<K>(list: &mut Vec<K>, keys: impl IntoIterator<Item = K>) {
    if list.capacity() == 0 {
        *list = keys.into_iter().collect();
    } else {
        list.extend(keys);
    }
}

/// What can be wrong with a set of proposals.
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
/// use hivekit_lockfree::{detect_conflicts, Proposal, ProposalError, ProposalId};
///
/// let proposals = [Proposal::new(3, ()).writes(["a"]), Proposal::new(3, ()).writes(["b"])];
/// let error = detect_conflicts(&proposals).unwrap_err();
/// assert_eq!(error, ProposalError::DuplicateId(ProposalId(3)));
/// assert_eq!(error.to_string(), "duplicate proposal id #3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    /// Two proposals carry the same id.
    #[error("duplicate proposal id {0}")]
    DuplicateId(ProposalId),
    /// More proposals than one check can index.
    #[error("too many proposals: {count} (at most {max} per check)")]
    TooManyProposals {
        /// How many proposals were given.
        count: usize,
        /// The most one check accepts.
        max: usize,
    },
    /// More key occurrences (reads plus writes over all proposals) than one check can index.
    #[error("too many key occurrences: at most {max} per check")]
    TooManyKeys {
        /// The most one check accepts.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_appends_keys() {
        let proposal = Proposal::new(1, ())
            .reads(["a"])
            .reads(["b", "c"])
            .writes(["d"])
            .writes(Vec::<&str>::new());
        assert_eq!(proposal.reads, ["a", "b", "c"]);
        assert_eq!(proposal.writes, ["d"]);
        assert!(proposal.touches(&"c"));
        assert!(!proposal.touches(&"e"));
        assert!(proposal.writes_key(&"d"));
        assert!(!proposal.writes_key(&"a"));
    }

    #[test]
    fn keys_are_appended_to_lists_set_by_hand_and_collected_into_fresh_ones() {
        let mut proposal = Proposal::new(1, ()).writes(["a", "b"]);
        assert_eq!(
            proposal.writes.capacity(),
            2,
            "a fresh list is sized to its keys"
        );
        proposal.reads = vec!["x"];
        proposal.writes.clear();
        let proposal = proposal.reads(["y"]).writes(["c"]);
        assert_eq!(proposal.reads, ["x", "y"]);
        assert_eq!(proposal.writes, ["c"]);
    }

    #[test]
    fn id_round_trips_through_u64() {
        let id = ProposalId::from(42);
        assert_eq!(u64::from(id), 42);
        assert_eq!(format!("{id}"), "#42");
    }
}
