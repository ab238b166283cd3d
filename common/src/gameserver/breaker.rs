//! A circuit breaker per game server.
//!
//! A server that keeps failing (unreachable, timing out, answering 5xx) is not called for a
//! while: callers fail fast with [`CallError::CircuitOpen`](super::CallError::CircuitOpen)
//! instead of each waiting for a timeout. The state machine:
//!
//! - **closed**: calls go through; `failures` consecutive failures open it. A success or a
//!   refusal (4xx: the server is up) resets the count.
//! - **open**: calls are refused until `cooldown` has passed since it opened.
//! - **half-open**: after the cooldown, exactly one trial call goes through; its success
//!   closes the breaker, its failure opens it for another cooldown. Other calls are refused
//!   while the trial is in flight; a trial that is abandoned (its future dropped) frees the
//!   slot for the next caller.
//!
//! Time is `tokio::time::Instant`, so tests drive it with `tokio::time::pause`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::ServerId;

/// The public view of one server's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// The cooldown is over: the next call is a trial (or one is in flight).
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// How a call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The server answered (2xx or 4xx, or an unparsable success body).
    Healthy,
    /// Connect error, timeout or 5xx.
    Failure,
}

/// Breakers of all servers, shared by every clone of the client.
#[derive(Debug, Clone)]
pub(crate) struct Breakers {
    failures: u32,
    cooldown: Duration,
    states: Arc<Mutex<HashMap<ServerId, State>>>,
}

/// Permission to make one call; report its verdict with [`Permit::record`]. Dropping it
/// unrecorded (a cancelled call) frees a half-open trial slot and records nothing.
#[derive(Debug)]
pub(crate) struct Permit {
    breakers: Breakers,
    server: ServerId,
    trial: bool,
    recorded: bool,
}

impl Breakers {
    /// `failures` consecutive failures open a breaker for `cooldown`; 0 disables breaking.
    pub(crate) fn new(failures: u32, cooldown: Duration) -> Self {
        Self {
            failures,
            cooldown,
            states: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ServerId, State>> {
        // The map holds plain data updated in single statements: a poisoned lock still holds
        // a consistent map.
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The breaker's state for `server` (closed if it was never called).
    pub(crate) fn state(&self, server: &ServerId) -> BreakerState {
        match self.lock().get(server) {
            None | Some(State::Closed { .. }) => BreakerState::Closed,
            Some(State::Open { until }) if Instant::now() >= *until => BreakerState::HalfOpen,
            Some(State::Open { .. }) => BreakerState::Open,
            Some(State::HalfOpen { .. }) => BreakerState::HalfOpen,
        }
    }

    /// Asks to call `server`: `None` when the breaker refuses.
    pub(crate) fn acquire(&self, server: &ServerId) -> Option<Permit> {
        if self.failures == 0 {
            return Some(self.permit(server, false));
        }
        let mut states = self.lock();
        let state = states
            .entry(server.clone())
            .or_insert(State::Closed { failures: 0 });
        let trial = match *state {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
            State::Open { .. } => return None,
            State::HalfOpen {
                trial_in_flight: true,
            } => return None,
            State::HalfOpen {
                trial_in_flight: false,
            } => {
                *state = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
        };
        drop(states);
        Some(self.permit(server, trial))
    }

    fn permit(&self, server: &ServerId, trial: bool) -> Permit {
        Permit {
            breakers: self.clone(),
            server: server.clone(),
            trial,
            recorded: false,
        }
    }

    fn record(&self, server: &ServerId, verdict: Verdict) -> Option<BreakerState> {
        if self.failures == 0 {
            return None;
        }
        let mut states = self.lock();
        let state = states
            .entry(server.clone())
            .or_insert(State::Closed { failures: 0 });
        let before = *state;
        *state = match (before, verdict) {
            (_, Verdict::Healthy) => State::Closed { failures: 0 },
            (State::Closed { failures }, Verdict::Failure) if failures + 1 < self.failures => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            // A late failure of a call made while closed, arriving when the breaker is
            // already open, does not extend the cooldown.
            (State::Open { until }, Verdict::Failure) => State::Open { until },
            (_, Verdict::Failure) => State::Open {
                until: Instant::now() + self.cooldown,
            },
        };
        let opened = !matches!(before, State::Open { .. }) && matches!(*state, State::Open { .. });
        let closed =
            !matches!(before, State::Closed { .. }) && matches!(*state, State::Closed { .. });
        if opened {
            Some(BreakerState::Open)
        } else if closed {
            Some(BreakerState::Closed)
        } else {
            None
        }
    }

    fn abandon_trial(&self, server: &ServerId) {
        let mut states = self.lock();
        if let Some(state @ State::HalfOpen { .. }) = states.get_mut(server) {
            *state = State::HalfOpen {
                trial_in_flight: false,
            };
        }
    }
}

impl Permit {
    /// Records how the call went; logs when this opens or closes the breaker.
    pub(crate) fn record(mut self, verdict: Verdict) {
        self.recorded = true;
        match self.breakers.record(&self.server, verdict) {
            Some(BreakerState::Open) => tracing::warn!(
                server = %self.server,
                cooldown_ms = self.breakers.cooldown.as_millis() as u64,
                "circuit breaker opened: game server keeps failing"
            ),
            Some(BreakerState::Closed) => {
                tracing::info!(server = %self.server, "circuit breaker closed: game server answers again")
            }
            _ => {}
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.trial && !self.recorded {
            self.breakers.abandon_trial(&self.server);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerId {
        ServerId::new("gs-1").unwrap()
    }

    fn fail(breakers: &Breakers) {
        breakers
            .acquire(&server())
            .expect("call allowed")
            .record(Verdict::Failure);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_fails_fast_during_cooldown() {
        let breakers = Breakers::new(3, Duration::from_secs(10));
        fail(&breakers);
        fail(&breakers);
        assert_eq!(breakers.state(&server()), BreakerState::Closed);
        fail(&breakers);
        assert_eq!(breakers.state(&server()), BreakerState::Open);
        assert!(
            breakers.acquire(&server()).is_none(),
            "fails fast while open"
        );
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(
            breakers.acquire(&server()).is_none(),
            "still open before cooldown"
        );
        assert!(
            breakers.acquire(&ServerId::new("gs-2").unwrap()).is_some(),
            "other servers are not affected"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_answer_resets_the_failure_count() {
        let breakers = Breakers::new(2, Duration::from_secs(10));
        fail(&breakers);
        breakers
            .acquire(&server())
            .unwrap()
            .record(Verdict::Healthy);
        fail(&breakers);
        assert_eq!(breakers.state(&server()), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_trial_through_and_its_success_closes() {
        let breakers = Breakers::new(1, Duration::from_secs(10));
        fail(&breakers);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(breakers.state(&server()), BreakerState::HalfOpen);
        let trial = breakers.acquire(&server()).expect("trial allowed");
        assert!(
            breakers.acquire(&server()).is_none(),
            "only one trial at a time"
        );
        trial.record(Verdict::Healthy);
        assert_eq!(breakers.state(&server()), BreakerState::Closed);
        assert!(breakers.acquire(&server()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_for_another_cooldown() {
        let breakers = Breakers::new(1, Duration::from_secs(10));
        fail(&breakers);
        tokio::time::advance(Duration::from_secs(10)).await;
        fail(&breakers);
        assert_eq!(breakers.state(&server()), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(breakers.acquire(&server()).is_none());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(breakers.acquire(&server()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_frees_the_slot() {
        let breakers = Breakers::new(1, Duration::from_secs(1));
        fail(&breakers);
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(breakers.acquire(&server()).expect("trial"));
        assert!(
            breakers.acquire(&server()).is_some(),
            "next caller is the trial"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_failures_disables_the_breaker() {
        let breakers = Breakers::new(0, Duration::from_secs(1));
        for _ in 0..10 {
            fail(&breakers);
        }
        assert_eq!(breakers.state(&server()), BreakerState::Closed);
    }
}
