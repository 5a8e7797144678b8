//! The two criterion timings every suite runs with, as plain numbers.
//!
//! [`criterion()`](crate::criterion) applies them, and `cargo xtask bench` plans a full run's time
//! from them (xtask includes this file by path, so the numbers live in one place and xtask needs no
//! criterion). Full mode is sized so that a full run of every suite, with its paired rounds, stays
//! within 30 minutes on a 2-core machine (`cargo xtask bench --plan` prints the estimate).

use std::time::Duration;

/// Samples, warm-up and measurement time of one criterion row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Samples per row.
    pub samples: u64,
    /// Warm-up time per row.
    pub warm_up: Duration,
    /// Target measurement time per row.
    pub measurement: Duration,
}

/// Full mode: 50 samples, 0.3 s warm-up, 1.2 s measurement (about 3.5x quick mode's measurement,
/// with five times its samples).
pub const FULL: Timing = Timing {
    samples: 50,
    warm_up: Duration::from_millis(300),
    measurement: Duration::from_millis(1_200),
};

/// Quick mode (`HIVEKIT_BENCH_QUICK=1`, and the paired rounds of every run): 10 samples, 150 ms
/// warm-up, 350 ms measurement.
pub const QUICK: Timing = Timing {
    samples: 10,
    warm_up: Duration::from_millis(150),
    measurement: Duration::from_millis(350),
};
