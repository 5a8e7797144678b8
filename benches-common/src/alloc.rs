//! A counting global allocator: allocations and bytes per operation, across every thread.
//!
//! Counting is off until a measurement turns it on, so a bench binary that installs the allocator pays
//! one relaxed load per allocation while it is timing. Counts are global (not per thread) on purpose:
//! work a future hands to runtime worker threads is part of its cost.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

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

/// Times `op` like `Bencher::iter` and, once per benchmark, records its allocations per operation.
///
/// `key` must name the benchmark as criterion does (group, function id, parameter; `""` when there is
/// no parameter) so that `cargo xtask bench` can put the figures in the same row. The allocation run
/// happens once per benchmark and process, on the first call from criterion (during warm-up),
/// outside the timed loop.
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
            AllocationStats::measure(iterations.clamp(100, 10_000), &mut op).record(key.clone());
        }
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(op());
        }
        start.elapsed()
    });
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
