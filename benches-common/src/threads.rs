//! Timing N threads that run the same operation at once, for `Bencher::iter_custom`.
//!
//! Each thread is pinned to one of the CPUs the process may use (thread `i` to the `i`-th, round
//! robin; Linux only), so that threads up to the number of CPUs really run at the same time. Left
//! to the OS, two fresh threads on this 2-vCPU VM often ran one after the other on one vCPU (its
//! idle vCPU is halted: the guest does no halt polling, `guest_halt_poll_ns` = 0, so the scheduler
//! keeps woken threads where they are): the scheduler's `mpmc-2t` rows then took exactly twice
//! their one-thread pair (42.2 ns against 20.8 ns in the quiet run of 2e16992) with no contention
//! at all, and two to five times more in the runs where the threads did overlap, so every
//! multi-thread row was bimodal. A probe pinning the two threads of a push-pop loop (depth 1k)
//! to one vCPU measured the fast mode (36-37 ns a pair), to two vCPUs the contended one (71-99 ns).
//! A row of `threads` above the CPU count (`mpmc-4t` on 2 CPUs) shares each CPU between the same
//! threads on every run.

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
    let cpus = affinity::allowed_cpus();
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let barrier = &barrier;
                let op = &op;
                let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
                scope.spawn(move || {
                    if let Some(cpu) = cpu {
                        affinity::pin_current_thread(cpu);
                    }
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

/// CPU affinity through `sched_getaffinity` and `sched_setaffinity` (Linux); elsewhere no CPU is
/// known and nothing is pinned.
mod affinity {
    /// The CPUs the calling thread may run on, in increasing order; empty if unknown.
    #[cfg(target_os = "linux")]
    pub(super) fn allowed_cpus() -> Vec<usize> {
        // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the size passed is the set's own, and the call writes only within it.
        let got = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if got != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below `CPU_SETSIZE`, the set's capacity.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect()
    }

    /// Pins the calling thread to `cpu`; a refusal leaves it where it was (the row then runs
    /// unpinned, as it would elsewhere).
    #[cfg(target_os = "linux")]
    pub(super) fn pin_current_thread(cpu: usize) {
        // SAFETY: as above, a zeroed set is valid.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` came from `allowed_cpus`, so it is below `CPU_SETSIZE`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: the size passed is the set's own; 0 names the calling thread.
        let _ = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn allowed_cpus() -> Vec<usize> {
        Vec::new()
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn pin_current_thread(_cpu: usize) {}
}
