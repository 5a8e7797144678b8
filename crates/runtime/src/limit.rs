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

/// What a builder's limit setter takes: a [`ConcurrencyLimit`], a [`NonZeroUsize`], an
/// `Option<NonZeroUsize>` (`None`: no limit) or a plain integer, such as `.max_in_flight(8)`.
///
/// A plain integer may be zero or negative, which is no limit at all: the setter keeps the
/// [`ConcurrencyLimitError`], and the builder returns it when built, so a bad number never panics
/// and is never silently turned into some other limit.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
///
/// use hivekit_runtime::{ConcurrencyLimit, ConcurrencyLimitError, IntoConcurrencyLimit};
///
/// assert_eq!(8.into_concurrency_limit()?.slots(), 8);
/// assert_eq!(8_usize.into_concurrency_limit()?.slots(), 8);
/// assert_eq!(NonZeroUsize::MIN.into_concurrency_limit()?.slots(), 1);
/// assert!(None::<NonZeroUsize>.into_concurrency_limit()?.is_unbounded());
/// assert_eq!(0.into_concurrency_limit(), Err(ConcurrencyLimitError::Zero));
/// assert_eq!(
///     (-3).into_concurrency_limit(),
///     Err(ConcurrencyLimitError::Negative { limit: -3 })
/// );
/// # Ok::<(), ConcurrencyLimitError>(())
/// ```
pub trait IntoConcurrencyLimit {
    /// This value as a limit.
    ///
    /// # Errors
    ///
    /// [`ConcurrencyLimitError::Zero`] for a zero, [`ConcurrencyLimitError::Negative`] for a
    /// negative number.
    fn into_concurrency_limit(self) -> Result<ConcurrencyLimit, ConcurrencyLimitError>;
}

impl IntoConcurrencyLimit for ConcurrencyLimit {
    fn into_concurrency_limit(self) -> Result<ConcurrencyLimit, ConcurrencyLimitError> {
        Ok(self)
    }
}

impl IntoConcurrencyLimit for NonZeroUsize {
    fn into_concurrency_limit(self) -> Result<ConcurrencyLimit, ConcurrencyLimitError> {
        Ok(self.into())
    }
}

impl IntoConcurrencyLimit for Option<NonZeroUsize> {
    fn into_concurrency_limit(self) -> Result<ConcurrencyLimit, ConcurrencyLimitError> {
        Ok(self.into())
    }
}

/// Unsigned integers: zero is [`ConcurrencyLimitError::Zero`]; a number above `usize::MAX` (a
/// `u64` on a 32-bit target) is as good as no limit, and taken as `usize::MAX`.
macro_rules! unsigned_limits {
    ($($t:ty),*) => {$(
        impl IntoConcurrencyLimit for $t {
            fn into_concurrency_limit(self) -> Result<ConcurrencyLimit, ConcurrencyLimitError> {
                ConcurrencyLimit::new(usize::try_from(self).unwrap_or(usize::MAX))
            }
        }
    )*};
}

/// Signed integers (an untyped literal such as `8` is an `i32`): negative numbers are
/// [`ConcurrencyLimitError::Negative`].
macro_rules! signed_limits {
    ($($t:ty),*) => {$(
        impl IntoConcurrencyLimit for $t {
            fn into_concurrency_limit(self) -> Result<ConcurrencyLimit, ConcurrencyLimitError> {
                match usize::try_from(self) {
                    Ok(limit) => ConcurrencyLimit::new(limit),
                    Err(_) if self < 0 => Err(ConcurrencyLimitError::Negative {
                        // An `i128` below `i64::MIN` is reported as `i64::MIN`.
                        limit: i64::try_from(self).unwrap_or(i64::MIN),
                    }),
                    Err(_) => ConcurrencyLimit::new(usize::MAX),
                }
            }
        }
    )*};
}

unsigned_limits!(usize, u8, u16, u32, u64, u128);
signed_limits!(isize, i8, i16, i32, i64, i128);

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
    /// A negative limit.
    #[error("a concurrency limit must be at least 1, got {limit}")]
    Negative {
        /// The number given.
        limit: i64,
    },
}
