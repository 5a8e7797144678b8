//! The shared criterion harness every hivekit bench suite uses.
//!
//! One place for what all suites share, so that numbers from different crates are comparable and no
//! bench file copies setup from another:
//!
//! - [`criterion()`]: the one criterion configuration (quick mode under `HIVEKIT_BENCH_QUICK=1`).
//! - [`alloc`]: a counting global allocator and [`iter_with_allocations`], which times a closure and
//!   records its allocations and bytes per operation where `cargo xtask bench` reads them.
//! - [`threads`]: timing N threads that run the same operation together (`iter_custom`).
//! - [`workload`]: seeded workload generators (CPU work, and per-crate generators in their own modules:
//!   [`proposals`], [`skewed`], [`dags`], [`agents`]), so every run of a bench sees the same input.
//!
//! # Examples
//!
//! ```no_run
//! use criterion::{criterion_group, criterion_main, Criterion};
//!
//! benches_common::install_counting_allocator!();
//!
//! fn bench(c: &mut Criterion) {
//!     let mut group = c.benchmark_group("example_group");
//!     group.bench_function("hivekit", |b| {
//!         benches_common::iter_with_allocations(b, ("example_group", "hivekit", ""), || 1 + 1)
//!     });
//!     group.finish();
//! }
//!
//! criterion_group! { name = benches; config = benches_common::criterion(); targets = bench }
//! criterion_main!(benches);
//! ```

pub mod agents;
pub mod alloc;
pub mod dags;
mod extras;
pub mod hints;
pub mod proposals;
pub mod skewed;
pub mod threads;
pub mod timing;
pub mod workload;

use criterion::Criterion;

pub use alloc::{iter_with_allocations, AllocationStats, CountingAllocator};
pub use extras::{extras_path, record_extra, BenchKey};

/// Environment variable that switches every suite to quick settings (`cargo xtask bench --quick`).
pub const QUICK_ENV: &str = "HIVEKIT_BENCH_QUICK";

/// Environment variable that keeps the full size lists of [`sizes`] in quick mode: `cargo xtask
/// bench` sets it for the paired rounds of a full run, which time with quick settings but must
/// measure the rows (1M proposals, 100k stages) the full run's targets compare.
pub const FULL_SIZES_ENV: &str = "HIVEKIT_BENCH_FULL_SIZES";

/// True when `HIVEKIT_BENCH_QUICK=1` (or any value but `0` and the empty string) is set.
pub fn is_quick() -> bool {
    std::env::var(QUICK_ENV).is_ok_and(|value| !value.is_empty() && value != "0")
}

/// The criterion configuration every hivekit suite uses.
///
/// Full mode: [`timing::FULL`] (50 samples, 0.3 s warm-up, 1.2 s measurement), sized so that a full
/// `cargo xtask bench` stays within 30 minutes on a 2-core machine. Quick mode
/// (`HIVEKIT_BENCH_QUICK=1`): [`timing::QUICK`] (10 samples, 150 ms warm-up, 350 ms measurement). Both bootstrap the confidence
/// intervals from 20,000 resamples instead of criterion's 100,000: the interval of a median moves in
/// its third digit, and the analysis no longer costs a noticeable share of a full run. Rows slower
/// than the measurement time allows get criterion's flat sampling (its default `Auto` mode), and the
/// suites cut the sample size of their multi-second rows to 10. Command-line arguments (filters,
/// `--save-baseline`) still apply on top.
pub fn criterion() -> Criterion {
    let base = Criterion::default()
        .noise_threshold(0.03)
        .confidence_level(0.95)
        .nresamples(RESAMPLES);
    let timing = if is_quick() {
        timing::QUICK
    } else {
        timing::FULL
    };
    base.sample_size(usize::try_from(timing.samples).unwrap_or(usize::MAX))
        .warm_up_time(timing.warm_up)
        .measurement_time(timing.measurement)
        .configure_from_args()
}

/// Bootstrap resamples per analysis (criterion's default is 100,000).
const RESAMPLES: usize = 20_000;

/// Picks the quick or the full variant of a size list: large inputs are kept out of quick runs
/// (unless [`FULL_SIZES_ENV`] is set).
///
/// # Examples
///
/// ```
/// let sizes = benches_common::sizes(&[10, 1_000], &[10, 1_000, 100_000]);
/// assert!(sizes.len() >= 2);
/// ```
pub fn sizes<'a, T>(quick: &'a [T], full: &'a [T]) -> &'a [T] {
    let full_sizes = std::env::var(FULL_SIZES_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    if is_quick() && !full_sizes {
        quick
    } else {
        full
    }
}

/// A compact label for a size parameter: `100`, `1k`, `100k`, `1m` (exact multiples only).
///
/// # Examples
///
/// ```
/// assert_eq!(benches_common::size_label(100), "100");
/// assert_eq!(benches_common::size_label(10_000), "10k");
/// assert_eq!(benches_common::size_label(1_000_000), "1m");
/// assert_eq!(benches_common::size_label(1_500), "1500");
/// ```
pub fn size_label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
