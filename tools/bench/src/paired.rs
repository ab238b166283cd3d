//! Paired comparisons on a shared, noisy machine: the `[limits]` off beside on.
//!
//! Measuring one side for 15 s and then the other lets a neighbour's burst (a compiler on the
//! other core) land on one side only; on these 2-core machines that alone moved a figure by
//! ±20 %. So both sides are set up together and measured in alternating rounds, in the order
//! off, on, on, off, off, on, … (ABBA: a steady drift burdens both sides alike), each round a
//! fraction of the load phase; a side's figure is the sum of its rounds.

use std::time::Duration;

/// Rounds per side.
pub const ROUNDS: usize = 3;

/// Whether a run has the `[limits]` on (at their defaults) or off (the `test` mode's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// Every limit off.
    Off,
    /// Every limit on, at its default.
    On,
}

impl Limits {
    /// Both sides, in index order (`Off` = 0, `On` = 1).
    pub const BOTH: [Limits; 2] = [Limits::Off, Limits::On];

    /// How reports name the side.
    pub fn label(self) -> &'static str {
        match self {
            Limits::Off => "limits off",
            Limits::On => "limits on",
        }
    }

    /// The side's index in `[off, on]` arrays.
    pub fn index(self) -> usize {
        match self {
            Limits::Off => 0,
            Limits::On => 1,
        }
    }
}

/// The order of the two sides in `round` (ABBA).
pub fn order(round: usize) -> [Limits; 2] {
    if round.is_multiple_of(2) {
        [Limits::Off, Limits::On]
    } else {
        [Limits::On, Limits::Off]
    }
}

/// One round's share of a load phase (at least one second, wrk's resolution).
pub fn round_length(load: Duration) -> Duration {
    (load / ROUNDS as u32).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_goes_first_as_often_as_the_other() {
        let firsts: Vec<Limits> = (0..4).map(|round| order(round)[0]).collect();
        assert_eq!(
            firsts,
            vec![Limits::Off, Limits::On, Limits::Off, Limits::On]
        );
        for round in 0..4 {
            let [a, b] = order(round);
            assert_ne!(a, b, "both sides run in every round");
        }
        assert_eq!(
            round_length(Duration::from_secs(15)),
            Duration::from_secs(5)
        );
        assert_eq!(round_length(Duration::from_secs(2)), Duration::from_secs(1));
    }
}
