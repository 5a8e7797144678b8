//! The run's clock: times from the run's start, as the report gives them.
//!
//! `Instant::now().saturating_duration_since(start)` costs about 80 instructions, more than half
//! of them in the subtraction (`Timespec::sub_timespec` normalising seconds and nanoseconds, then
//! `Duration::new`), and a run takes one such reading per stage. Here the run's start and every
//! reading are whole nanoseconds on the same monotonic clock `Instant` reads on Linux
//! (`CLOCK_MONOTONIC`), so a reading is one `clock_gettime`, one multiply-add and one
//! subtraction. Elsewhere the readings go through `Instant`.

use std::time::Duration;

/// Measures durations from the moment it was created.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunClock {
    origin: u64,
}

impl RunClock {
    /// A clock whose zero is now.
    pub(crate) fn start() -> Self {
        Self {
            origin: monotonic_nanos(),
        }
    }

    /// The time since the clock's zero.
    #[inline]
    pub(crate) fn now(&self) -> Duration {
        Duration::from_nanos(monotonic_nanos().saturating_sub(self.origin))
    }
}

/// Nanoseconds on the monotonic clock, from an arbitrary origin.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` for the call's duration, and CLOCK_MONOTONIC
    // always exists on Linux (it is the one `std::time::Instant` reads there), so the call cannot
    // fail; were it to, `now` stays zero and durations read as zero, never negative.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    // Neither field is negative on the monotonic clock.
    (now.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(now.tv_nsec as u64)
}

/// Nanoseconds on the monotonic clock, from an arbitrary origin.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn monotonic_nanos() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn the_run_clock_reads_between_two_instant_readings_around_it() {
        // The clock starts between `outer` and `inner` and is read between the two readings
        // below, so on the same monotonic clock its reading is bounded exactly by them.
        let outer = Instant::now();
        let clock = RunClock::start();
        let inner = Instant::now();
        while outer.elapsed() < Duration::from_millis(1) {
            std::hint::spin_loop();
        }
        let least = inner.elapsed();
        let measured = clock.now();
        let most = outer.elapsed();
        assert!(
            least <= measured && measured <= most,
            "{least:?} <= {measured:?} <= {most:?}"
        );
        assert!(clock.now() >= measured, "monotonic");
    }
}
