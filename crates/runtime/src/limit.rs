//! [`ConcurrencyLimit`]: how many operations may be in flight at once, shared by the hive
//! (`max_in_flight` agent calls) and the swarm (`max_concurrency` stages).

use std::fmt;
use std::num::NonZeroUsize;

/// How many operations may be in flight at once: at most a positive number, or no limit.
///
/// A limit of zero would never start anything, so it cannot be expressed: [`ConcurrencyLimit::new`]
/// and `TryFrom<usize>` turn it into a [`ConcurrencyLimitError`]. The default is
/// [`ConcurrencyLimit::Unbounded`].
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
///
/// use hivekit_runtime::{ConcurrencyLimit, ConcurrencyLimitError};
///
/// let four = ConcurrencyLimit::new(4)?;
/// assert_eq!(four.get(), NonZeroUsize::new(4));
/// assert_eq!(four.slots(), 4);
/// assert_eq!(four.to_string(), "at most 4");
///
/// assert!(ConcurrencyLimit::default().is_unbounded());
/// assert_eq!(ConcurrencyLimit::Unbounded.slots(), usize::MAX);
///
/// assert_eq!(ConcurrencyLimit::new(0), Err(ConcurrencyLimitError::Zero));
/// assert_eq!(ConcurrencyLimit::from(NonZeroUsize::MIN).slots(), 1);
/// # Ok::<(), ConcurrencyLimitError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConcurrencyLimit {
    /// No limit: everything ready starts at once.
    #[default]
    Unbounded,
    /// At most this many at once; the rest wait for a slot.
    AtMost(NonZeroUsize),
}

impl ConcurrencyLimit {
    /// At most `limit` at once.
    ///
    /// # Errors
    ///
    /// [`ConcurrencyLimitError::Zero`] when `limit` is 0.
    pub const fn new(limit: usize) -> Result<Self, ConcurrencyLimitError> {
        match NonZeroUsize::new(limit) {
            Some(limit) => Ok(Self::AtMost(limit)),
            None => Err(ConcurrencyLimitError::Zero),
        }
    }

    /// The limit, or `None` when unbounded.
    pub const fn get(self) -> Option<NonZeroUsize> {
        match self {
            Self::Unbounded => None,
            Self::AtMost(limit) => Some(limit),
        }
    }

    /// The number of slots: the limit, or `usize::MAX` when unbounded (so `len.min(slots)` and
    /// `in_flight < slots` need no special case).
    pub const fn slots(self) -> usize {
        match self {
            Self::Unbounded => usize::MAX,
            Self::AtMost(limit) => limit.get(),
        }
    }

    /// Whether there is no limit.
    pub const fn is_unbounded(self) -> bool {
        matches!(self, Self::Unbounded)
    }
}

impl From<NonZeroUsize> for ConcurrencyLimit {
    fn from(limit: NonZeroUsize) -> Self {
        Self::AtMost(limit)
    }
}

impl From<Option<NonZeroUsize>> for ConcurrencyLimit {
    /// `None` is [`ConcurrencyLimit::Unbounded`].
    fn from(limit: Option<NonZeroUsize>) -> Self {
        limit.map_or(Self::Unbounded, Self::AtMost)
    }
}

impl TryFrom<usize> for ConcurrencyLimit {
    type Error = ConcurrencyLimitError;

    fn try_from(limit: usize) -> Result<Self, Self::Error> {
        Self::new(limit)
    }
}

impl fmt::Display for ConcurrencyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unbounded => f.write_str("unbounded"),
            Self::AtMost(limit) => write!(f, "at most {limit}"),
        }
    }
}

/// Why a number is not a [`ConcurrencyLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConcurrencyLimitError {
    /// A limit of zero, which would never start anything.
    #[error("a concurrency limit must be at least 1, got 0")]
    Zero,
}
