//! What a router stage returns: the successors that run.

use serde::{Deserialize, Serialize};

/// The output of a router stage ([`PipelineBuilder::router`](crate::PipelineBuilder::router)):
/// which of the router's dependents run. The others are skipped ("route not taken").
///
/// # Examples
///
/// ```
/// use hivekit_swarm::Route;
///
/// let route = Route::to(["post", "notify"]);
/// assert!(route.takes("post"));
/// assert!(!route.takes("archive"));
/// assert!(Route::all().takes("archive"));
/// assert!(!Route::none().takes("post"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The dependents that run (ignored when `all` is set).
    pub targets: Vec<String>,
    /// Every dependent runs.
    #[serde(default)]
    pub all: bool,
}

impl Route {
    /// Runs the dependents named in `targets`, and no others.
    pub fn to<I>(targets: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self {
            targets: targets.into_iter().map(Into::into).collect(),
            all: false,
        }
    }

    /// Runs every dependent (the router acts as a plain stage).
    pub fn all() -> Self {
        Self {
            targets: Vec::new(),
            all: true,
        }
    }

    /// Runs no dependent.
    pub fn none() -> Self {
        Self {
            targets: Vec::new(),
            all: false,
        }
    }

    /// Whether the dependent named `stage` runs.
    pub fn takes(&self, stage: &str) -> bool {
        self.all || self.targets.iter().any(|target| target == stage)
    }
}
