//! Seeded scheduling-hint streams for the scheduler suites: plain data, converted by each bench.
//!
//! benches-common cannot depend on hivekit crates, so a hint is three small numbers here; the bench
//! turns them into `hivekit_lockfree::SchedulingHint` (`Priority::ALL[priority]`, and so on).

use rand::Rng;

use crate::workload::rng;

/// One scheduling hint as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HintSpec {
    /// Priority index: 0 = low .. 3 = critical.
    pub priority: u8,
    /// Latency tier index: 0 = hot .. 2 = cold.
    pub latency: u8,
    /// Cost index: 0 = minimal .. 3 = heavy.
    pub cost: u8,
}

/// `count` hints drawn with a realistic skew: priorities low 30 %, normal 50 %, high 15 %,
/// critical 5 %; latency tiers and costs uniform. So all 48 sort keys occur and most work is normal.
///
/// # Examples
///
/// ```
/// use benches_common::hints::hint_stream;
///
/// let hints = hint_stream(1_000, 7);
/// assert_eq!(hints, hint_stream(1_000, 7));
/// assert!(hints.iter().all(|hint| hint.priority < 4 && hint.latency < 3 && hint.cost < 4));
/// ```
pub fn hint_stream(count: usize, seed: u64) -> Vec<HintSpec> {
    let mut rng = rng(seed);
    (0..count)
        .map(|_| {
            let priority = match rng.gen_range(0..100) {
                0..=29 => 0,
                30..=79 => 1,
                80..=94 => 2,
                _ => 3,
            };
            HintSpec {
                priority,
                latency: rng.gen_range(0..3),
                cost: rng.gen_range(0..4),
            }
        })
        .collect()
}
