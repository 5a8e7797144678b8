//! How long a store keeps runs.

/// How long a store keeps runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// The most runs kept; starting a run deletes the oldest beyond it, never the run it starts
    /// (which counts among them: 0 keeps that run alone, as 1 does) nor a run in progress on the
    /// same [`Durable`](super::Durable) handle (see [`Durable::prune`](super::Durable::prune)).
    pub max_runs: usize,
    /// Delete a run as soon as it ends successfully.
    pub delete_succeeded: bool,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_runs: 1024,
            delete_succeeded: false,
        }
    }
}

impl Retention {
    /// At most `max_runs` runs, succeeded runs kept (0 is allowed: see the field of that name).
    pub fn max_runs(max_runs: usize) -> Self {
        Self {
            max_runs,
            ..Self::default()
        }
    }

    /// This policy, deleting runs that succeed.
    #[must_use]
    pub fn delete_succeeded(self) -> Self {
        Self {
            delete_succeeded: true,
            ..self
        }
    }
}
