//! Timing N threads that run the same operation at once, for `Bencher::iter_custom`.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `op(thread_index, iterations)` on `threads` threads released together and returns the wall
/// time until the last one finishes.
///
/// Thread start-up is outside the measurement (the clock starts when all threads pass a barrier).
/// Each thread performs `iterations` operations, so criterion's per-iteration figure is the time one
/// operation takes while `threads` threads contend: the per-call cost under contention.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let counter = AtomicU64::new(0);
/// let elapsed = benches_common::threads::time_threads(2, 1_000, |_, iterations| {
///     for _ in 0..iterations {
///         counter.fetch_add(1, Ordering::Relaxed);
///     }
/// });
/// assert_eq!(counter.load(Ordering::Relaxed), 2_000);
/// assert!(elapsed.as_nanos() > 0);
/// ```
pub fn time_threads<F>(threads: usize, iterations: u64, op: F) -> Duration
where
    F: Fn(usize, u64) + Sync,
{
    let threads = threads.max(1);
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let barrier = &barrier;
                let op = &op;
                scope.spawn(move || {
                    barrier.wait();
                    op(index, iterations);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for handle in handles {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        start.elapsed()
    })
}
