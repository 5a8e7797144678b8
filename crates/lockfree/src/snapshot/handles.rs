//! What a [`SnapshotCell`](super::SnapshotCell) hands out and takes back: an owned [`Snapshot`] of
//! one version, a [`Staged`] value for a commit, and the [`CommitError`] that gives a refused value
//! back.

use std::fmt;
use std::ops::Deref;

use super::Versioned;
use crate::loom::sync::Arc;

/// An owned snapshot of one version of a [`SnapshotCell`](crate::SnapshotCell): the value as it was, and its version.
///
/// Dereferences to the value. Cloning is one reference count increment; the version stays alive (and
/// unchanged) until the last clone is dropped, however many writes happen meanwhile. `Send` and `Sync`
/// when `T` is, so it can be held across `.await`s in a multi-thread runtime.
///
/// # Examples
///
/// ```
/// let cell = hivekit_lockfree::SnapshotCell::new(vec![1, 2, 3]);
/// let snapshot = cell.load();
/// cell.store(vec![]);
/// assert_eq!(snapshot.iter().sum::<i32>(), 6);
/// assert_eq!(snapshot.version(), 0);
/// ```
pub struct Snapshot<T> {
    pub(super) node: Arc<Versioned<T>>,
}

impl<T> Snapshot<T> {
    /// The version this snapshot holds.
    pub fn version(&self) -> u64 {
        self.node.version
    }

    /// The value (also reachable through `Deref`).
    pub fn value(&self) -> &T {
        &self.node.value
    }

    /// Stages `value` on this snapshot's version: the commit succeeds only if nobody wrote since this
    /// snapshot was taken.
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::new(1);
    /// let seen = cell.load();
    /// cell.store(5);
    /// // Computed from an outdated view: refused.
    /// assert!(cell.commit(seen.stage(*seen + 1)).is_err());
    /// ```
    pub fn stage(&self, value: T) -> Staged<T> {
        Staged::new(self.version(), value)
    }

    /// True when both snapshots share the same version of the same cell.
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        Arc::ptr_eq(&this.node, &other.node)
    }
}

impl<T> Clone for Snapshot<T> {
    fn clone(&self) -> Self {
        Self {
            node: Arc::clone(&self.node),
        }
    }
}

impl<T> Deref for Snapshot<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.node.value
    }
}

impl<T> AsRef<T> for Snapshot<T> {
    fn as_ref(&self) -> &T {
        &self.node.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Snapshot<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Snapshot")
            .field("version", &self.node.version)
            .field("value", &self.node.value)
            .finish()
    }
}

/// A value staged for [`SnapshotCell::commit`](crate::SnapshotCell::commit), with the version it is based on.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{SnapshotCell, Staged};
///
/// let cell = SnapshotCell::new("draft");
/// let staged = Staged::new(cell.version(), "final");
/// assert_eq!((staged.base(), *staged.value()), (0, "final"));
/// assert_eq!(cell.commit(staged).ok(), Some(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged<T> {
    pub(super) base: u64,
    pub(super) value: T,
}

impl<T> Staged<T> {
    /// `value`, to be committed only if the cell is still at version `base`.
    pub fn new(base: u64, value: T) -> Self {
        Self { base, value }
    }

    /// The version the commit expects to replace.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The staged value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The staged value, mutably (the base stays).
    pub fn value_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Gives the staged value back without committing it.
    pub fn into_value(self) -> T {
        self.value
    }
}

/// Why [`SnapshotCell::commit`](crate::SnapshotCell::commit) refused a staged value. The value is always given back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError<T> {
    /// Another write happened since the staged base version.
    #[error("commit based on version {base} conflicts with current version {current}")]
    Conflict {
        /// The version the staged value was based on.
        base: u64,
        /// The version current when the commit was refused: different from `base`, and greater
        /// than it whenever `base` came from this cell ([`SnapshotCell::stage`](crate::SnapshotCell::stage),
        /// [`Snapshot::stage`]); a hand-built [`Staged`] may name a base the cell has not reached.
        current: u64,
        /// The staged value, untouched.
        value: T,
    },
}

impl<T> CommitError<T> {
    /// The refused value.
    pub fn into_value(self) -> T {
        match self {
            Self::Conflict { value, .. } => value,
        }
    }
}
