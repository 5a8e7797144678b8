//! Retry policies: how many attempts a stage gets and how long it waits between them.

use std::time::Duration;

use serde::Serialize;

use crate::seed::mix;

/// How long to wait before each retry: exponential from `initial`, multiplied by `multiplier` after
/// each failed attempt, capped at `max`, then shortened by a seeded random fraction of at most
/// `jitter` (so that stages failing together do not retry in lock step, yet a run with a given seed
/// always waits the same).
///
/// Edges: a zero `initial` or `max` waits not at all; `Duration::MAX` waits indefinitely (use a
/// run deadline to bound it); `multiplier` must be finite and at least 1 and `jitter` within 0 to 1,
/// else the pipeline's build fails with
/// [`BuildError::InvalidRetryPolicy`](crate::BuildError::InvalidRetryPolicy) (NaN, infinities,
/// negatives and subnormals included). [`delay`](Self::delay) saturates: however large the attempt
/// number or the product, it never exceeds `max`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hivekit_swarm::Backoff;
///
/// let backoff = Backoff {
///     initial: Duration::from_millis(10),
///     multiplier: 2.0,
///     max: Duration::from_millis(50),
///     jitter: 0.0,
/// };
/// assert_eq!(backoff.delay(1, 0), Duration::from_millis(10));
/// assert_eq!(backoff.delay(2, 0), Duration::from_millis(20));
/// assert_eq!(backoff.delay(4, 0), Duration::from_millis(50)); // capped
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[must_use = "a backoff does nothing until a retry policy uses it"]
pub struct Backoff {
    /// The wait after the first failed attempt.
    pub initial: Duration,
    /// The growth factor per failed attempt; finite and at least 1.
    pub multiplier: f64,
    /// The longest wait.
    pub max: Duration,
    /// The largest fraction (0 to 1) by which a wait is shortened at random.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 100 ms, doubling, capped at 10 s, up to 20 % jitter.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// No wait between attempts.
    pub const NONE: Backoff = Backoff {
        initial: Duration::ZERO,
        multiplier: 1.0,
        max: Duration::ZERO,
        jitter: 0.0,
    };

    /// A fixed wait between attempts, without jitter.
    pub fn fixed(delay: Duration) -> Self {
        Self {
            initial: delay,
            multiplier: 1.0,
            max: delay,
            jitter: 0.0,
        }
    }

    /// The wait after failed attempt number `failed_attempt` (1-based), for jitter drawn from
    /// `jitter_seed`. Never longer than `max`.
    pub fn delay(&self, failed_attempt: u32, jitter_seed: u64) -> Duration {
        // A zero `initial` waits not at all, however many attempts failed: the growth factor alone
        // overflows to infinity past about a thousand of them, and zero times infinity is NaN.
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let exponent = failed_attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let raw = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = match Duration::try_from_secs_f64(raw) {
            Ok(delay) => delay.min(self.max),
            // Overflowed or not finite: the cap applies.
            Err(_) => self.max,
        };
        if self.jitter <= 0.0 || capped.is_zero() {
            return capped;
        }
        let unit =
            (mix(jitter_seed ^ u64::from(failed_attempt)) >> 11) as f64 / (1u64 << 53) as f64;
        let fraction = 1.0 - self.jitter.min(1.0) * unit;
        Duration::try_from_secs_f64(capped.as_secs_f64() * fraction).unwrap_or(capped)
    }

    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err("backoff multiplier must be finite and at least 1");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err("backoff jitter must be between 0 and 1");
        }
        Ok(())
    }
}

/// How many attempts a stage gets and the [`Backoff`] between them. A stage that succeeds on a retry
/// is `Succeeded`; its dependents run as if it had succeeded the first time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hivekit_swarm::{Backoff, RetryPolicy};
///
/// let policy = RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(5)));
/// assert_eq!(policy.max_attempts, 3);
/// assert_eq!(RetryPolicy::default().max_attempts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[must_use = "a retry policy does nothing until a stage or fan-out uses it"]
pub struct RetryPolicy {
    /// Attempts in total, the first included; at least 1 (0 fails the build with
    /// [`BuildError::InvalidRetryPolicy`](crate::BuildError::InvalidRetryPolicy)); `u32::MAX` is that
    /// many attempts.
    pub max_attempts: u32,
    /// The waits between attempts.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    /// One attempt, no retry.
    fn default() -> Self {
        Self::NONE
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        backoff: Backoff::NONE,
    };

    /// `max_attempts` attempts in total with the default [`Backoff`].
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            backoff: Backoff::default(),
        }
    }

    /// This policy with another backoff.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        Self { backoff, ..self }
    }

    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1");
        }
        self.backoff.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_then_caps() {
        let backoff = Backoff {
            initial: Duration::from_millis(1),
            multiplier: 3.0,
            max: Duration::from_millis(20),
            jitter: 0.0,
        };
        let delays: Vec<_> = (1..=5).map(|attempt| backoff.delay(attempt, 7)).collect();
        assert_eq!(
            delays,
            [1, 3, 9, 20, 20].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn huge_attempt_counts_stay_at_the_cap() {
        let backoff = Backoff {
            multiplier: 10.0,
            ..Backoff::default()
        };
        assert!(backoff.delay(u32::MAX, 1) <= backoff.max);
        assert!(backoff.delay(u32::MAX, 1) >= backoff.max.mul_f64(0.8));
    }

    #[test]
    fn jitter_is_seeded_and_bounded() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            multiplier: 1.0,
            max: Duration::from_millis(100),
            jitter: 0.5,
        };
        for seed in 0..200 {
            let delay = backoff.delay(1, seed);
            assert_eq!(delay, backoff.delay(1, seed));
            assert!(delay <= Duration::from_millis(100));
            assert!(delay >= Duration::from_millis(50));
        }
        let distinct: std::collections::HashSet<_> =
            (0..50).map(|seed| backoff.delay(1, seed)).collect();
        assert!(distinct.len() > 10);
    }

    #[test]
    fn invalid_policies_are_rejected() {
        assert!(RetryPolicy::attempts(0).validate().is_err());
        let nan = RetryPolicy::attempts(2).with_backoff(Backoff {
            multiplier: f64::NAN,
            ..Backoff::default()
        });
        assert!(nan.validate().is_err());
        let jitter = RetryPolicy::attempts(2).with_backoff(Backoff {
            jitter: 1.5,
            ..Backoff::default()
        });
        assert!(jitter.validate().is_err());
        assert!(RetryPolicy::attempts(2).validate().is_ok());
    }
}
