//! The run's clock: times from the run's start, as the report gives them.
//!
//! `Instant::now().saturating_duration_since(start)` costs about 80 instructions, more than half
//! of them in the subtraction (`Timespec::sub_timespec` normalising seconds and nanoseconds, then
//! `Duration::new`), and a run takes one such reading per stage. Here the run's start and every
//! reading are whole nanoseconds on the same monotonic clock `Instant` reads on Linux
//! (`CLOCK_MONOTONIC`), so a reading is one `clock_gettime`, one multiply-add and one
//! subtraction. Elsewhere the readings go through `Instant`.
//!
//! On x86-64 Linux with an invariant time-stamp counter that the kernel itself uses as its clock
//! source, a reading in the first second of a run
//! is the counter itself (`rdtsc`), scaled to nanoseconds: `clock_gettime` reads the counter too,
//! but fenced and through the kernel's data page, about 29 ns a call on the 2-core VM the targets
//! are set on against 11.5 ns for the bare counter, and a no-op chain reads the clock once per
//! stage (about a quarter of its time). Callgrind does not see this: under Valgrind the call is
//! a system call it counts as ten instructions. The scale is calibrated against `CLOCK_MONOTONIC`
//! from the first run's start to a later run's start at least [`CALIBRATION_SPAN`] after it
//! (measured again whenever that span has doubled), so a process's first runs read the
//! kernel's clock. A run's counter origin is taken together with its `CLOCK_MONOTONIC` origin,
//! so readings of one run from any thread share one zero; past [`FAST_WINDOW`] a reading goes
//! back to `clock_gettime`, which bounds the counter's drift from the (NTP-slewed) monotonic
//! clock to the calibration's error over that window: a paired reading is off by at most 0.4 us
//! (see `PAIR_TICKS`), so over the first 20 ms span the scale is within 0.004% and a reading one
//! second into a run within 40 us (typically 2 us), less as the span grows. Readings a run takes
//! on either side of the window's end may step back by that much; durations saturate at zero.

use std::time::Duration;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use ticks::Ticks;

/// How long after the first run's start the counter's scale is first measured.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const CALIBRATION_SPAN: Duration = Duration::from_millis(20);

/// How long into a run its readings come from the counter.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const FAST_WINDOW: Duration = Duration::from_secs(1);

/// Measures durations from the moment it was created.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunClock {
    origin: u64,
    /// The counter's origin and scale for this run (disabled before calibration).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    ticks: Ticks,
}

impl RunClock {
    /// A clock whose zero is now.
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    pub(crate) fn start() -> Self {
        Self {
            origin: monotonic_nanos(),
        }
    }

    /// A clock whose zero is now.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    pub(crate) fn start() -> Self {
        match ticks::paired_reading() {
            Some((origin, counter)) => Self {
                origin,
                ticks: ticks::calibrated(origin, counter),
            },
            None => Self {
                origin: monotonic_nanos(),
                ticks: Ticks::DISABLED,
            },
        }
    }

    /// The time since the clock's zero.
    #[inline]
    pub(crate) fn now(&self) -> Duration {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if let Some(elapsed) = self.ticks.elapsed() {
            return elapsed;
        }
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

/// The time-stamp counter as a clock: its calibration against `CLOCK_MONOTONIC` and a run's
/// readings of it.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod ticks {
    use std::arch::x86_64::{__cpuid, _rdtsc};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::Duration;

    use super::{monotonic_nanos, CALIBRATION_SPAN, FAST_WINDOW};

    /// Nanoseconds per counter tick, as a 32.32 fixed-point number; 0 until calibrated.
    static SCALE: AtomicU64 = AtomicU64::new(0);
    /// [`FAST_WINDOW`] in ticks at [`SCALE`].
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    /// The span (nanoseconds from the anchor) over which [`SCALE`] was measured; 0 before.
    static MEASURED_SPAN: AtomicU64 = AtomicU64::new(0);
    /// The first good paired reading (`CLOCK_MONOTONIC` nanoseconds, counter), if the counter
    /// is usable at all.
    static ANCHOR: OnceLock<Option<(u64, u64)>> = OnceLock::new();

    /// A paired reading whose two counter reads lie further apart than this was interrupted
    /// (preempted, say) and is not used: a call takes about 70 ticks, and half this spread (about
    /// 0.4 us at 2.4 GHz) bounds the error of the pairing.
    const PAIR_TICKS: u64 = 2_000;

    /// A run's counter origin, scale and window.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Ticks {
        origin: u64,
        /// 32.32 fixed-point nanoseconds per tick; 0: read `clock_gettime` instead.
        scale: u64,
        /// Ticks past `origin` read from the counter ([`FAST_WINDOW`]).
        window: u64,
    }

    impl Ticks {
        pub(super) const DISABLED: Self = Self {
            origin: 0,
            scale: 0,
            window: 0,
        };

        /// The time since `origin`, if the counter may be read for it.
        #[inline]
        pub(super) fn elapsed(&self) -> Option<Duration> {
            if self.scale == 0 {
                return None;
            }
            // A counter behind the origin (which a synchronised invariant counter never is)
            // wraps to a huge difference and falls back as well.
            let ticks = counter().wrapping_sub(self.origin);
            if ticks > self.window {
                return None;
            }
            Some(Duration::from_nanos(to_nanos(ticks, self.scale)))
        }
    }

    /// `ticks` in nanoseconds at `scale`.
    #[inline]
    fn to_nanos(ticks: u64, scale: u64) -> u64 {
        ((u128::from(ticks) * u128::from(scale)) >> 32) as u64
    }

    #[inline]
    fn counter() -> u64 {
        // SAFETY: `rdtsc` exists on every x86-64 processor and has no preconditions.
        #[allow(unused_unsafe)]
        unsafe {
            _rdtsc()
        }
    }

    /// Whether the counter may stand in for `CLOCK_MONOTONIC`: the processor says it runs at a
    /// constant rate in every power state (the invariant TSC bit, CPUID 0x8000_0007 EDX bit 8),
    /// and the kernel reads it for `CLOCK_MONOTONIC` itself (its current clock source is `tsc`,
    /// which it picks only when the counters of all cores are synchronised): readings taken on
    /// different threads of one run are then as consistent as the kernel's. Asked once per
    /// process; where the file cannot be read the kernel's clock is used.
    pub(super) fn usable_counter() -> bool {
        // SAFETY: `cpuid` exists on every x86-64 processor; leaves past the highest one reported
        // are not queried.
        #[allow(unused_unsafe)]
        let invariant = unsafe {
            __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
        };
        invariant
            && std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|source| source.trim() == "tsc")
    }

    /// `CLOCK_MONOTONIC` nanoseconds and the counter at the same moment (the counter read on both
    /// sides of the call, its midpoint kept), or `None` if the reading was interrupted.
    pub(super) fn paired_reading() -> Option<(u64, u64)> {
        let before = counter();
        let nanos = monotonic_nanos();
        let after = counter();
        let spread = after.wrapping_sub(before);
        (spread <= PAIR_TICKS).then(|| (nanos, before + spread / 2))
    }

    /// The counter's scale from two paired readings, if they are far enough apart and the scale
    /// is plausible (a counter between 100 MHz and 20 GHz).
    pub(super) fn scale_between(anchor: (u64, u64), now: (u64, u64)) -> Option<u64> {
        let nanos = now.0.checked_sub(anchor.0)?;
        let ticks = now.1.checked_sub(anchor.1)?;
        if nanos < CALIBRATION_SPAN.as_nanos() as u64 || ticks == 0 {
            return None;
        }
        let scale = u64::try_from((u128::from(nanos) << 32) / u128::from(ticks)).ok()?;
        ((1u64 << 32) / 20..=(1u64 << 32) * 10)
            .contains(&scale)
            .then_some(scale)
    }

    /// The counter for a run whose origin is the paired reading (`nanos`, `counter`): calibrates
    /// the scale on the way (see the module docs).
    pub(super) fn calibrated(nanos: u64, counter: u64) -> Ticks {
        let anchor = *ANCHOR.get_or_init(|| usable_counter().then_some((nanos, counter)));
        let Some(anchor) = anchor else {
            return Ticks::DISABLED;
        };
        // Measured again once the span since the anchor has doubled since the last measurement
        // (each time twice as precise), not at every start: the two 128-bit divisions cost about
        // as much as the counter saves on a three-stage chain.
        let span = nanos.saturating_sub(anchor.0);
        if span >= MEASURED_SPAN.load(Ordering::Relaxed).saturating_mul(2) {
            if let Some(scale) = scale_between(anchor, (nanos, counter)) {
                let window = (u128::from(FAST_WINDOW.as_nanos() as u64) << 32) / u128::from(scale);
                // A start on another thread may read a window of the previous scale with this
                // scale (or the reverse): the window is only where readings fall back, and the
                // two scales differ by a fraction of a percent.
                WINDOW.store(window as u64, Ordering::Relaxed);
                SCALE.store(scale, Ordering::Relaxed);
                MEASURED_SPAN.store(span, Ordering::Relaxed);
            }
        }
        let scale = SCALE.load(Ordering::Relaxed);
        if scale == 0 {
            return Ticks::DISABLED;
        }
        Ticks {
            origin: counter,
            scale,
            window: WINDOW.load(Ordering::Relaxed),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_scale_is_measured_only_over_a_long_enough_span_and_must_be_plausible() {
            let span = CALIBRATION_SPAN.as_nanos() as u64;
            // 2.5 ticks per nanosecond: 0.4 ns per tick.
            let scale = scale_between((1_000, 10_000), (1_000 + span, 10_000 + span * 5 / 2));
            let expected = (1u64 << 32) * 2 / 5;
            assert!(scale.is_some_and(|scale| scale.abs_diff(expected) <= 1));
            assert_eq!(
                scale_between((1_000, 10_000), (1_000 + span - 1, 20_000)),
                None
            );
            assert_eq!(scale_between((1_000, 10_000), (1_000 + span, 10_000)), None);
            assert_eq!(scale_between((1_000, 10_000), (1_000 + span, 9_000)), None);
            // One tick per 100 ns (a 10 MHz counter) is not a time-stamp counter.
            assert_eq!(scale_between((0, 0), (span, span / 100)), None);
        }

        #[test]
        fn a_reading_converts_ticks_at_the_scale_and_falls_back_outside_the_window() {
            assert_eq!(to_nanos(2_500, (1u64 << 32) * 2 / 5), 999);
            assert_eq!(to_nanos(0, 1u64 << 32), 0);
            let now = counter();
            let past = Ticks {
                origin: now.wrapping_sub(1_000_000),
                scale: 1u64 << 32,
                window: 10,
            };
            assert_eq!(past.elapsed(), None, "past its window");
            let ahead = Ticks {
                origin: now.wrapping_add(1_000_000_000),
                scale: 1u64 << 32,
                window: u64::MAX / 2,
            };
            assert_eq!(ahead.elapsed(), None, "a counter behind the origin");
            assert_eq!(Ticks::DISABLED.elapsed(), None);
            let current = Ticks {
                origin: now,
                scale: 1u64 << 32,
                window: u64::MAX / 2,
            };
            assert!(current.elapsed().is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// How far a reading may stray from `Instant`'s bounds: none on the kernel's clock, a few
    /// microseconds on the counter (its origin's pairing and its scale's calibration).
    fn slack(clock: &RunClock) -> Duration {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if clock.ticks.elapsed().is_some() {
            return Duration::from_micros(20);
        }
        let _ = clock;
        Duration::ZERO
    }

    /// Starts `clock`, spins for 1 ms, and checks a reading against `Instant` readings around it.
    fn reads_between_instant_readings(start: impl Fn() -> RunClock) {
        // The clock starts between `outer` and `inner` and is read between the two readings
        // below, so on the same monotonic clock its reading is bounded exactly by them.
        let outer = Instant::now();
        let clock = start();
        let inner = Instant::now();
        while outer.elapsed() < Duration::from_millis(1) {
            std::hint::spin_loop();
        }
        let least = inner.elapsed();
        let measured = clock.now();
        let most = outer.elapsed();
        let slack = slack(&clock);
        assert!(
            least.saturating_sub(slack) <= measured && measured <= most + slack,
            "{least:?} <= {measured:?} <= {most:?} (slack {slack:?})"
        );
        assert!(clock.now() >= measured, "monotonic");
    }

    #[test]
    fn the_run_clock_reads_between_two_instant_readings_around_it() {
        reads_between_instant_readings(RunClock::start);
    }

    #[test]
    fn a_clock_started_after_calibration_reads_like_the_kernel_clock() {
        // The first start anchors the calibration; one started the calibration span later
        // measures the counter's scale and reads the counter (where it is invariant).
        let anchor = Instant::now();
        let _first = RunClock::start();
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        while anchor.elapsed() < CALIBRATION_SPAN + Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let _ = anchor;
        // Where the kernel reads the counter, a clock started now reads it too (a few tries: a
        // start whose paired reading was interrupted reads the kernel's clock).
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if ticks::usable_counter() {
            let counting = (0..100).any(|_| RunClock::start().ticks.elapsed().is_some());
            assert!(counting, "a calibrated clock reads the counter");
        }
        reads_between_instant_readings(RunClock::start);
    }
}
