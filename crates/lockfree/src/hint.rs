//! Scheduling hints: what a unit of work says about how urgently and how cheaply it should run.

/// How urgent a unit of work is. Higher runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Priority {
    /// Background work.
    Low = 0,
    /// The default.
    #[default]
    Normal = 1,
    /// Ahead of normal work.
    High = 2,
    /// Ahead of everything else.
    Critical = 3,
}

impl Priority {
    /// All priorities, lowest first; `Priority::ALL[p as usize] == p`.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ];

    /// The priority's index in [`Priority::ALL`] (0 for `Low` .. 3 for `Critical`).
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// How soon a caller is waiting for the result. Hotter runs first among equal priorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LatencyTier {
    /// Someone is waiting on it now.
    Hot = 0,
    /// Wanted soon.
    #[default]
    Warm = 1,
    /// Nobody is waiting.
    Cold = 2,
}

impl LatencyTier {
    /// All latency tiers, hottest first.
    pub const ALL: [LatencyTier; 3] = [LatencyTier::Hot, LatencyTier::Warm, LatencyTier::Cold];
}

/// What a unit of work costs to run. Cheaper runs first among equal priority and latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ResourceCost {
    /// Almost free.
    Minimal = 0,
    /// A little CPU or memory.
    #[default]
    Light = 1,
    /// Noticeable.
    Moderate = 2,
    /// Expensive.
    Heavy = 3,
}

impl ResourceCost {
    /// All costs, cheapest first.
    pub const ALL: [ResourceCost; 4] = [
        ResourceCost::Minimal,
        ResourceCost::Light,
        ResourceCost::Moderate,
        ResourceCost::Heavy,
    ];
}

/// A priority, a latency tier and a cost: the full ordering of scheduled work.
///
/// # Examples
///
/// ```
/// use hivekit_lockfree::{LatencyTier, Priority, ResourceCost, SchedulingHint};
///
/// let urgent = SchedulingHint::new(Priority::High, LatencyTier::Cold, ResourceCost::Heavy);
/// let hot = SchedulingHint::new(Priority::Normal, LatencyTier::Hot, ResourceCost::Minimal);
/// let cheap = SchedulingHint::new(Priority::Normal, LatencyTier::Hot, ResourceCost::Heavy);
/// // Priority decides first, then latency, then cost; a larger key runs first.
/// assert!(urgent.sort_key() > hot.sort_key());
/// assert!(hot.sort_key() > cheap.sort_key());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SchedulingHint {
    /// How urgent.
    pub priority: Priority,
    /// How soon someone waits for it.
    pub latency: LatencyTier,
    /// How expensive.
    pub cost: ResourceCost,
}

impl From<Priority> for SchedulingHint {
    /// A hint of this priority, with the default latency tier and cost
    /// (`SchedulingHint::from(Priority::High)`, or `Priority::High.into()`).
    fn from(priority: Priority) -> Self {
        Self {
            priority,
            ..Self::default()
        }
    }
}

impl SchedulingHint {
    /// The number of distinct sort keys (4 priorities x 3 latency tiers x 4 costs).
    pub const KEYS: usize = 48;

    /// A hint from its three parts.
    pub const fn new(priority: Priority, latency: LatencyTier, cost: ResourceCost) -> Self {
        Self {
            priority,
            latency,
            cost,
        }
    }

    /// Every distinct hint ([`SchedulingHint::KEYS`] of them), one per sort key, lowest priority first.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_lockfree::SchedulingHint;
    ///
    /// assert_eq!(SchedulingHint::all().count(), SchedulingHint::KEYS);
    /// ```
    pub fn all() -> impl Iterator<Item = SchedulingHint> {
        Priority::ALL.into_iter().flat_map(|priority| {
            LatencyTier::ALL.into_iter().flat_map(move |latency| {
                ResourceCost::ALL
                    .into_iter()
                    .map(move |cost| SchedulingHint::new(priority, latency, cost))
            })
        })
    }

    /// A hint with the given priority and default latency and cost.
    pub const fn with_priority(priority: Priority) -> Self {
        Self {
            priority,
            latency: LatencyTier::Warm,
            cost: ResourceCost::Light,
        }
    }

    /// A dense key in `0..SchedulingHint::KEYS`: larger runs first. Higher priority wins, then a hotter
    /// latency tier, then a cheaper cost.
    pub const fn sort_key(&self) -> u8 {
        let priority = self.priority as u8;
        let hotness = 2 - self.latency as u8;
        let cheapness = 3 - self.cost as u8;
        priority * 12 + hotness * 4 + cheapness
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_hints() -> Vec<SchedulingHint> {
        SchedulingHint::all().collect()
    }

    #[test]
    fn sort_key_is_dense_and_unique() {
        let mut keys: Vec<u8> = all_hints().iter().map(SchedulingHint::sort_key).collect();
        keys.sort_unstable();
        assert_eq!(keys, (0..SchedulingHint::KEYS as u8).collect::<Vec<_>>());
    }

    #[test]
    fn sort_key_orders_priority_then_latency_then_cost() {
        for a in all_hints() {
            for b in all_hints() {
                let expected = a
                    .priority
                    .cmp(&b.priority)
                    .then(b.latency.cmp(&a.latency))
                    .then(b.cost.cmp(&a.cost));
                assert_eq!(a.sort_key().cmp(&b.sort_key()), expected, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn priority_index_matches_all() {
        for (index, priority) in Priority::ALL.into_iter().enumerate() {
            assert_eq!(priority.index(), index);
        }
    }
}
