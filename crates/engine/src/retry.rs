//! Retry policy for [`Retryable`](crate::step::StepErrorKind::Retryable) step errors:
//! exponential backoff with full jitter, as plain data and pure functions.
//!
//! The executor draws the random factor and sleeps; this module only decides.

use std::time::Duration;

/// How often and how patiently a step is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Ceiling of the first delay.
    pub base: Duration,
    /// No delay is ever longer than this.
    pub cap: Duration,
    /// Attempts per step per process, the first included. Counted per execution
    /// (not per run) so a resumed run gets a fresh budget; the attempt number that
    /// fences side effects keeps growing across resumes.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// 200 ms base, 10 s cap, 5 attempts: long enough to ride out an API server
    /// restart or a leader election, short enough that an operator sees a real failure
    /// within a minute. Steps that talk to the arbiter add their own plan-configured
    /// retries (`arbiter.retries`) inside the step.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(10),
        max_attempts: 5,
    };

    /// Whether a step that has failed `tries` times in this process may run again.
    pub fn may_retry(&self, tries: u32) -> bool {
        tries < self.max_attempts
    }

    /// The largest delay after the `tries`-th failure (1-based): `min(cap, base * 2^(tries-1))`.
    pub fn ceiling(&self, tries: u32) -> Duration {
        let exponent = tries.saturating_sub(1).min(31);
        let factor = 1u32 << exponent;
        self.base
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// The delay after the `tries`-th failure, given a uniform random `unit` in `[0, 1)`
    /// ("full jitter": anywhere between zero and the ceiling, so retrying clients spread out).
    pub fn delay(&self, tries: u32, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.ceiling(tries).mul_f64(unit)
    }
}

impl RetryPolicy {
    /// The policy of a caller asking the cluster again before it gives up with an error
    /// the operator sees (the preflight reads, taking the Lease): 200 ms doubling, 5 tries.
    pub const CALLER: RetryPolicy = RetryPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(2),
        max_attempts: 5,
    };
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_the_base_and_stop_at_the_cap() {
        let p = RetryPolicy::DEFAULT;
        let table = [
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1600),
            (6, 6400),
            (7, 10_000),
            (40, 10_000),
        ];
        for (tries, ms) in table {
            assert_eq!(
                p.ceiling(tries),
                Duration::from_millis(ms),
                "tries = {tries}"
            );
        }
    }

    #[test]
    fn full_jitter_scales_the_ceiling_and_tolerates_bad_random_input() {
        let p = RetryPolicy::DEFAULT;
        let table = [
            (3, 0.0, 0),
            (3, 0.5, 400),
            (3, 1.0, 800),
            (3, 7.0, 800),
            (3, -1.0, 0),
            (3, f64::NAN, 0),
        ];
        for (tries, unit, ms) in table {
            assert_eq!(
                p.delay(tries, unit),
                Duration::from_millis(ms),
                "tries = {tries}, unit = {unit}"
            );
        }
    }

    #[test]
    fn the_budget_counts_the_first_attempt() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::DEFAULT
        };
        let allowed: Vec<bool> = (1..=4).map(|t| p.may_retry(t)).collect();
        assert_eq!(allowed, [true, true, false, false]);
    }
}
