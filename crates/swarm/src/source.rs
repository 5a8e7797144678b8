//! An error a stage returned with `?`, kept whole: its type (for downcasting) and its source chain.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Any `std::error::Error` a stage returned, shared (cloning is cheap) with its chain of sources.
///
/// In a live report it is the stage's own error value, so [`downcast_ref`](SourceError::downcast_ref)
/// finds the concrete type anywhere in the chain. Serialized, it is its message and its sources'
/// messages; a report read back from JSON keeps those messages (as [`RecordedError`]s) but not the
/// original types.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::StageError;
///
/// let error: StageError = "x1".parse::<u32>().unwrap_err().into();
/// let source = error.source_error().expect("a parse error is kept whole");
/// assert!(source.downcast_ref::<std::num::ParseIntError>().is_some());
/// assert_eq!(error.to_string(), "invalid digit found in string");
/// ```
#[derive(Clone)]
pub struct SourceError {
    error: Arc<dyn Error + Send + Sync + 'static>,
}

impl SourceError {
    /// Wraps `error`.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self {
            error: Arc::new(error),
        }
    }

    pub(crate) fn from_boxed(error: Box<dyn Error + Send + Sync + 'static>) -> Self {
        Self {
            error: Arc::from(error),
        }
    }

    /// The error itself.
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.error
    }

    /// The first error of type `E` in the chain (the error itself, then its sources).
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.chain().find_map(|error| error.downcast_ref::<E>())
    }

    /// The error, then each of its sources in turn.
    pub fn chain(&self) -> impl Iterator<Item = &(dyn Error + 'static)> {
        let first: &(dyn Error + 'static) = &*self.error;
        std::iter::successors(Some(first), |&error| error.source())
    }

    /// The messages of the error's sources (not the error's own), outermost first.
    pub fn source_messages(&self) -> Vec<String> {
        self.chain().skip(1).map(ToString::to_string).collect()
    }
}

impl fmt::Debug for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.error, f)
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.error, f)
    }
}

/// Equal when the messages of the whole chains are equal (the types cannot be compared).
impl PartialEq for SourceError {
    fn eq(&self, other: &Self) -> bool {
        self.chain()
            .map(ToString::to_string)
            .eq(other.chain().map(ToString::to_string))
    }
}

impl Eq for SourceError {}

#[derive(Serialize, Deserialize)]
struct SourceRepr {
    message: String,
    #[serde(default)]
    sources: Vec<String>,
}

impl Serialize for SourceError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SourceRepr {
            message: self.error.to_string(),
            sources: self.source_messages(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SourceError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = SourceRepr::deserialize(deserializer)?;
        let mut chain: Option<Box<RecordedError>> = None;
        for message in repr.sources.into_iter().rev() {
            chain = Some(Box::new(RecordedError {
                message,
                source: chain,
            }));
        }
        Ok(Self::new(RecordedError {
            message: repr.message,
            source: chain,
        }))
    }
}

/// An error read back from a serialized report: its message and its source's, without the
/// original type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedError {
    message: String,
    source: Option<Box<RecordedError>>,
}

impl fmt::Display for RecordedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for RecordedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}
