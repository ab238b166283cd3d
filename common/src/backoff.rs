//! Capped exponential backoff: the one retry schedule of the matchmaker.
//!
//! The consumer (after Redis failed), the game-server client (between attempts of an
//! idempotent call) and the curator (before trying a game whose server failed again) all wait
//! by a [`Backoff`]: a first delay that doubles up to a cap, optionally scaled by a random
//! factor so that many daemons restarted together do not retry in lockstep. The doubling and
//! the cap are `backon`'s [`ExponentialBuilder`]; the jitter is applied here because backon's
//! own only lengthens delays (up to twice), which would change the schedules and exceed the
//! caps.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// A retry schedule: `first`, doubling per retry, never longer than `cap`, each delay
/// multiplied by a random factor in `[low, high)` (1 by default: no jitter).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    exponential: ExponentialBuilder,
    cap: Duration,
    jitter_low: f64,
    jitter_high: f64,
}

impl Backoff {
    /// Delays from `first` (at most `cap`), doubling up to `cap`, without jitter.
    pub const fn new(first: Duration, cap: Duration) -> Backoff {
        let first = if first.as_nanos() > cap.as_nanos() {
            cap
        } else {
            first
        };
        Backoff {
            exponential: ExponentialBuilder::new()
                .with_min_delay(first)
                .with_max_delay(cap)
                .with_factor(2.0)
                .without_max_times(),
            cap,
            jitter_low: 1.0,
            jitter_high: 1.0,
        }
    }

    /// The same schedule with each delay multiplied by a random factor in `[low, high)`
    /// (after the cap: `high` above 1 may lengthen a capped delay).
    pub const fn with_jitter(mut self, low: f64, high: f64) -> Backoff {
        self.jitter_low = low;
        self.jitter_high = high;
        self
    }

    /// The delays of this schedule, from the first.
    pub fn delays(&self) -> Delays {
        Delays {
            schedule: *self,
            exponential: self.exponential.build(),
        }
    }
}

/// A running [`Backoff`]: each [`Delays::next_delay`] is the next wait. Never runs out.
#[derive(Debug)]
pub struct Delays {
    schedule: Backoff,
    exponential: <ExponentialBuilder as BackoffBuilder>::Backoff,
}

impl Delays {
    /// The delay to wait now; the following one is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let Backoff {
            cap,
            jitter_low,
            jitter_high,
            ..
        } = self.schedule;
        // Built without a maximum number of retries, backon's sequence does not end; should it
        // ever, the cap is the right answer.
        let base = self.exponential.next().unwrap_or(cap);
        if jitter_low == jitter_high {
            return base.mul_f64(jitter_low);
        }
        base.mul_f64(jitter_low + fastrand::f64() * (jitter_high - jitter_low))
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.exponential = self.schedule.exponential.build();
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Within a microsecond of `expected` (backon multiplies in `f32`).
    fn about(actual: Duration, expected: Duration) -> bool {
        actual.abs_diff(expected) < Duration::from_micros(1)
    }

    #[test]
    fn doubles_from_the_first_delay_up_to_the_cap_without_jitter() {
        let delays: Vec<Duration> = Backoff::new(MS * 100, MS * 350).delays().take(5).collect();
        let expected = [100, 200, 350, 350, 350].map(|ms| MS * ms);
        for (actual, expected) in delays.iter().zip(expected) {
            assert!(about(*actual, expected), "{delays:?}");
        }
    }

    #[test]
    fn jitter_stays_within_its_factors_of_the_schedule() {
        let schedule = Backoff::new(MS * 100, MS * 350).with_jitter(0.75, 1.0);
        for _ in 0..50 {
            let mut delays = schedule.delays();
            let first = delays.next_delay();
            assert!(first <= MS * 100 && first >= MS * 75, "{first:?}");
            assert!(delays.next_delay() >= MS * 150);
            for _ in 0..3 {
                let capped = delays.next_delay();
                assert!(capped <= MS * 350 && capped >= MS * 262, "{capped:?}");
            }
            delays.reset();
            assert!(delays.next_delay() <= MS * 100, "reset starts over");
        }
    }

    #[test]
    fn a_first_delay_above_the_cap_is_capped() {
        let mut delays = Backoff::new(MS * 500, MS * 300).delays();
        assert!(about(delays.next_delay(), MS * 300));
        assert!(about(delays.next_delay(), MS * 300));
    }

    #[test]
    fn the_sequence_never_runs_out() {
        let mut delays = Backoff::new(MS, MS * 4).delays();
        assert!(about(delays.nth(10_000).unwrap(), MS * 4));
    }
}
