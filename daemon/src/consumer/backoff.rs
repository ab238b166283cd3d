//! Capped exponential backoff with jitter, for retrying after Redis or a game server failed.

use std::time::Duration;

/// Delays that double from `min` up to `max`, each shortened by up to a quarter at random so
/// that many daemons restarted together do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff starting at `min`, never longer than `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay to wait now; the following one is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = base.mul_f64(rand_fraction() * 0.25);
        base.saturating_sub(jitter)
    }

    /// Back to the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// A cheap pseudo-random fraction in `[0, 1)` from the clock; good enough for jitter.
fn rand_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<Duration> = (0..5).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays[0] >= Duration::from_millis(75));
        assert!(delays[1] >= Duration::from_millis(150));
        for delay in &delays[2..] {
            assert!(*delay <= Duration::from_millis(350));
            assert!(*delay >= Duration::from_millis(262));
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
