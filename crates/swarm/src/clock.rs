//! The run's clock: times from the run's start, as the report gives them.
//!
//! A run reads this clock once per stage. Through `Instant`, a reading is a `clock_gettime`
//! (about 29 ns on the 2-core VM the targets are set on: the kernel reads the time-stamp counter
//! fenced and through its data page) and a subtraction that normalises seconds and nanoseconds
//! (about 80 instructions): together about a quarter of a no-op chain's time. `quanta` reads the
//! time-stamp counter directly where the processor has an invariant one, scaled by a calibration
//! against the OS's monotonic clock made once per process, and falls back to the OS clock
//! elsewhere; its readings are whole nanoseconds, so a reading is the counter, a multiply-shift
//! and a subtraction. The calibration runs at the process's first reading, so the first run of a
//! process pays it once: 0.6-2.5 ms measured on that VM under load, at most 200 ms by `quanta`'s
//! own bound.
//!
//! Callgrind does not see the difference: under Valgrind `clock_gettime` is a system call it
//! counts as about ten instructions.
//!
//! The clock is read through a `quanta::Clock` of the process's own, not `quanta::Instant::now`,
//! which at every reading first checks a thread-local override (a `RefCell` in thread-local
//! storage, for tests that mock the clock) and then a global once-cell. A reading here is the
//! counter and one multiply-shift of the difference from the run's start. `quanta` calibrates once
//! per process whichever way it is read.

use std::sync::OnceLock;
use std::time::Duration;

/// Measures durations from the moment it was created.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunClock {
    source: &'static quanta::Clock,
    /// The source's raw reading at the clock's zero.
    origin: u64,
}

/// The process's clock, calibrated at its first use.
fn source() -> &'static quanta::Clock {
    static SOURCE: OnceLock<quanta::Clock> = OnceLock::new();
    SOURCE.get_or_init(quanta::Clock::new)
}

impl RunClock {
    /// A clock whose zero is now.
    pub(crate) fn start() -> Self {
        let source = source();
        Self {
            source,
            origin: source.raw(),
        }
    }

    /// The time since the clock's zero (zero if the counter reads earlier, as it may across
    /// cores).
    #[inline]
    pub(crate) fn now(&self) -> Duration {
        Duration::from_nanos(self.source.delta_as_nanos(self.origin, self.source.raw()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn the_run_clock_measures_what_instant_measures_around_it() {
        // The clock starts between `outer` and `inner` and is read between the two readings
        // below. Its source may be the time-stamp counter calibrated against the monotonic
        // clock `Instant` reads, so the bounds allow the calibration's error: 1% and 20 us.
        let outer = Instant::now();
        let clock = RunClock::start();
        let inner = Instant::now();
        while outer.elapsed() < Duration::from_millis(5) {
            std::hint::spin_loop();
        }
        let least = inner.elapsed();
        let measured = clock.now();
        let most = outer.elapsed();
        let slack = Duration::from_micros(20);
        assert!(
            least.mul_f64(0.99).saturating_sub(slack) <= measured
                && measured <= most.mul_f64(1.01) + slack,
            "{least:?} <= {measured:?} <= {most:?}"
        );
        assert!(clock.now() >= measured, "monotonic");
    }
}
