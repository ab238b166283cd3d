//! The per-player limits (contract section 7, `[limits]`): how many live games and open seat
//! reservations a player may hold per product, and how fast they may create and join. The
//! store enforces them in the scripts that create and reserve, so every daemon shares them.

/// The per-player limits a create or join is admitted under. A zero disables that limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayerLimits {
    /// Live (not ended) games a player may have created per product.
    pub max_live_games: u32,
    /// Open seat reservations a player may hold per product.
    pub max_reservations: u32,
    /// Creates a player may make per second, sustained (token bucket refill rate).
    pub creates_per_sec: f64,
    /// Creates a player may make at once (token bucket size).
    pub create_burst: u32,
    /// Joins a player may make per second, sustained.
    pub joins_per_sec: f64,
    /// Joins a player may make at once.
    pub join_burst: u32,
}

impl PlayerLimits {
    /// No limit at all.
    pub const NONE: PlayerLimits = PlayerLimits {
        max_live_games: 0,
        max_reservations: 0,
        creates_per_sec: 0.0,
        create_burst: 0,
        joins_per_sec: 0.0,
        join_burst: 0,
    };
}

/// Why a limit refused a create or a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitRefusal {
    /// The player's token bucket is empty: a token is back after `retry_after_ms`.
    RateLimited {
        /// Milliseconds until the next token.
        retry_after_ms: u64,
    },
    /// The player holds as many live games (or reservations) as allowed; one frees up after
    /// `retry_after_ms` at the earliest (0 when it cannot be known: a game must end).
    QuotaExceeded {
        /// Milliseconds until a slot may free up, 0 if unknown.
        retry_after_ms: u64,
    },
}

impl LimitRefusal {
    /// Decodes a script's refusal reply (`rate_limited` / `quota_exceeded`, milliseconds).
    pub(crate) fn from_reply(kind: &str, millis: &str) -> Option<LimitRefusal> {
        let retry_after_ms = millis.parse().ok()?;
        match kind {
            "rate_limited" => Some(LimitRefusal::RateLimited { retry_after_ms }),
            "quota_exceeded" => Some(LimitRefusal::QuotaExceeded { retry_after_ms }),
            _ => None,
        }
    }

    /// The kind as the refusal metric labels it: `rate_limited` or `quota_exceeded`.
    pub fn kind(&self) -> &'static str {
        match self {
            LimitRefusal::RateLimited { .. } => "rate_limited",
            LimitRefusal::QuotaExceeded { .. } => "quota_exceeded",
        }
    }
}
