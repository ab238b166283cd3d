//! How long a product task waits after Redis (or a step) failed.

use std::time::Duration;

use mm_common::backoff::Backoff;

/// 50 ms, doubling up to 5 s, each delay shortened by up to a quarter at random so that many
/// daemons restarted together do not retry in lockstep. Reset after every successful step.
pub const REDIS_RETRY: Backoff =
    Backoff::new(Duration::from_millis(50), Duration::from_secs(5)).with_jitter(0.75, 1.0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis(1);
        let mut delays = REDIS_RETRY.delays();
        let first: Vec<Duration> = (0..9).map(|_| delays.next_delay()).collect();
        assert!(first[0] <= ms * 50 && first[0] >= ms * 37, "{first:?}");
        assert!(first[1] <= ms * 100 && first[1] >= ms * 75, "{first:?}");
        assert!(first[6] <= ms * 3200 && first[6] >= ms * 2400, "{first:?}");
        for delay in &first[7..] {
            assert!(*delay <= ms * 5000 && *delay >= ms * 3750, "{first:?}");
        }
        delays.reset();
        assert!(delays.next_delay() <= ms * 50);
    }
}
