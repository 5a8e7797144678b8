//! A counting global allocator: allocations and bytes per operation, across every thread.
//!
//! Counting is off until a measurement turns it on, so a bench binary that installs the allocator pays
//! one relaxed load per allocation while it is timing. Counts are global (not per thread) on purpose:
//! work a future hands to runtime worker threads is part of its cost.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::Bencher;

use crate::extras::{record_extra, BenchKey};

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Only one measurement may count at a time, or two would read each other's allocations.
static MEASURING: Mutex<()> = Mutex::new(());
/// Benchmarks whose allocations were recorded in this process: criterion calls a bench routine once
/// per warm-up and sample batch, and the figures need measuring only once.
static RECORDED: Mutex<Option<HashSet<BenchKey>>> = Mutex::new(None);

/// The system allocator with allocation counting; install it with [`install_counting_allocator!`].
///
/// [`install_counting_allocator!`]: crate::install_counting_allocator
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters are
// plain atomics and never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `System` through this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as for `dealloc`; `new_size` comes from the caller unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[inline]
fn count(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Installs [`CountingAllocator`] as the global allocator of a bench binary.
#[macro_export]
macro_rules! install_counting_allocator {
    () => {
        #[global_allocator]
        static HIVEKIT_COUNTING_ALLOCATOR: $crate::CountingAllocator = $crate::CountingAllocator;
    };
}

/// Allocations and bytes per operation, averaged over a measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllocationStats {
    /// Allocation calls (including reallocations) per operation.
    pub allocations_per_op: f64,
    /// Bytes requested per operation.
    pub bytes_per_op: f64,
}

impl AllocationStats {
    /// Runs `op` `iterations` times with counting on and returns the per-operation averages.
    ///
    /// Returns zeros when [`CountingAllocator`] is not the global allocator of this binary.
    pub fn measure<O>(iterations: u64, mut op: impl FnMut() -> O) -> Self {
        let _exclusive = MEASURING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let iterations = iterations.max(1);
        ALLOCATIONS.store(0, Ordering::Relaxed);
        BYTES.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::SeqCst);
        for _ in 0..iterations {
            std::hint::black_box(op());
        }
        COUNTING.store(false, Ordering::SeqCst);
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) as f64;
        let bytes = BYTES.load(Ordering::Relaxed) as f64;
        Self {
            allocations_per_op: allocations / iterations as f64,
            bytes_per_op: bytes / iterations as f64,
        }
    }

    /// Writes these figures as `allocs_per_op` and `bytes_per_op` for the bench `key`.
    pub fn record(&self, key: impl Into<BenchKey>) {
        let key = key.into();
        record_extra(&key, "allocs_per_op", self.allocations_per_op);
        record_extra(&key, "bytes_per_op", self.bytes_per_op);
    }
}

/// Time the allocation count of one benchmark may take, at most (beyond one probe operation): enough
/// for thousands of operations of a fast row, and one or two of a row of tens of milliseconds.
pub const ALLOCATION_BUDGET: Duration = Duration::from_millis(20);

/// The most operations an allocation count runs.
const MAX_COUNTED_OPS: u64 = 10_000;

/// How many operations to count when one takes `probe`: as many as fit in [`ALLOCATION_BUDGET`],
/// at least 1 and at most 10,000. A row of tens of milliseconds counts one operation, not 100.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use benches_common::alloc::counted_ops;
///
/// assert_eq!(counted_ops(Duration::from_millis(30)), 1);
/// assert_eq!(counted_ops(Duration::from_micros(100)), 200);
/// assert_eq!(counted_ops(Duration::from_nanos(5)), 10_000);
/// ```
pub fn counted_ops(probe: Duration) -> u64 {
    let per_op = probe.as_nanos().max(1);
    let fit = ALLOCATION_BUDGET.as_nanos() / per_op;
    u64::try_from(fit)
        .unwrap_or(MAX_COUNTED_OPS)
        .clamp(1, MAX_COUNTED_OPS)
}

/// Times `op` like `Bencher::iter` and, once per benchmark, records its allocations per operation.
///
/// `key` must name the benchmark as criterion does (group, function id, parameter; `""` when there is
/// no parameter) so that `cargo xtask bench` can put the figures in the same row. The allocation count
/// happens once per benchmark and process, on the first call from criterion (during warm-up), outside
/// the timed loop: one uncounted probe operation (which also takes one-time allocations out of the
/// count) sizes it to [`counted_ops`] operations, so it costs about [`ALLOCATION_BUDGET`] plus one
/// operation whatever the row's speed.
pub fn iter_with_allocations<O>(
    bencher: &mut Bencher<'_>,
    key: impl Into<BenchKey>,
    mut op: impl FnMut() -> O,
) {
    let key = key.into();
    let mut pending = first_time(&key);
    bencher.iter_custom(|iterations| {
        if pending {
            pending = false;
            let probe = Instant::now();
            std::hint::black_box(op());
            let ops = counted_ops(probe.elapsed());
            AllocationStats::measure(ops, &mut op).record(key.clone());
        }
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(op());
        }
        planted_slowdown(&key, start.elapsed())
    });
}

/// `HIVEKIT_BENCH_SLOWDOWN=<id>=<factor>`: the measured time of the benchmark whose id
/// (`group/function/parameter`) is `<id>` is multiplied by `<factor>`. A test-only knob: it plants a
/// known regression in a real row so that the regression verdict of `cargo xtask bench` can be
/// tested end to end (see docs/BENCHMARKS.md). Unset, it costs one cached lookup per sample.
pub const SLOWDOWN_ENV: &str = "HIVEKIT_BENCH_SLOWDOWN";

/// The `(id, factor)` of [`SLOWDOWN_ENV`], read once; `None` when unset or malformed.
fn slowdown() -> Option<&'static (String, f64)> {
    static PLANTED: OnceLock<Option<(String, f64)>> = OnceLock::new();
    PLANTED
        .get_or_init(|| {
            let text = std::env::var(SLOWDOWN_ENV).ok()?;
            parse_slowdown(&text)
        })
        .as_ref()
}

/// `id=factor` with a positive finite factor.
fn parse_slowdown(text: &str) -> Option<(String, f64)> {
    let (id, factor) = text.rsplit_once('=')?;
    let factor: f64 = factor.trim().parse().ok()?;
    (factor.is_finite() && factor > 0.0 && !id.is_empty()).then(|| (id.to_owned(), factor))
}

fn planted_slowdown(key: &BenchKey, elapsed: Duration) -> Duration {
    match slowdown() {
        Some((id, factor)) if *id == key.id() => elapsed.mul_f64(*factor),
        _ => elapsed,
    }
}

/// True the first time `key` is seen in this process.
fn first_time(key: &BenchKey) -> bool {
    let mut recorded = RECORDED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    recorded
        .get_or_insert_with(HashSet::new)
        .insert(key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_rows_count_one_operation_fast_rows_thousands() {
        assert_eq!(counted_ops(Duration::from_secs(2)), 1);
        assert_eq!(counted_ops(Duration::from_millis(10)), 2);
        assert_eq!(counted_ops(Duration::ZERO), MAX_COUNTED_OPS);
    }

    #[test]
    fn the_slowdown_knob_parses_id_and_factor() {
        assert_eq!(
            parse_slowdown("snapshot_reads/hivekit/1r=1.25"),
            Some(("snapshot_reads/hivekit/1r".to_owned(), 1.25))
        );
        assert_eq!(
            parse_slowdown("g/f/a=b=2"),
            Some(("g/f/a=b".to_owned(), 2.0))
        );
        for bad in [
            "",
            "g/f/1",
            "g/f/1=",
            "=2",
            "g/f/1=-1",
            "g/f/1=NaN",
            "g/f/1=x",
        ] {
            assert_eq!(parse_slowdown(bad), None, "{bad}");
        }
    }

    #[test]
    fn counting_sees_allocations_per_operation() {
        // Without the counting allocator installed (unit tests), figures are zero, never garbage.
        let stats = AllocationStats::measure(10, || vec![1u8; 16]);
        assert!(stats.allocations_per_op == 0.0 || stats.allocations_per_op >= 1.0);
    }
}
