//! Shared core of the matchmaker: the domain model, the Redis store and the game-server API
//! client.
//!
//! This crate knows nothing of HTTP servers or terminals: `matchmakerd` (axum) and
//! `mm-console` (ratatui) are both built on it.
//!
//! - [`ids`]: validated identifiers.
//! - [`model`]: game states, events and the transition rules, as pure code.
//! - [`keys`]: the Redis key schema.
//! - [`limits`]: the per-player limits (quotas and rates) the store enforces.
//! - [`store`]: every read and atomic write of game state in Redis.
//! - [`flows`]: the game lifecycle flows (create, join, cancel, and the end step shared by
//!   cancel, the curator and force-delete), each with its undo.
//! - [`admin`]: operator actions (the force-delete flow).
//! - [`audit`]: the operator audit trail (`P:audit`).
//! - [`time`]: Unix-millisecond clock helpers.
//! - [`gameserver`]: the client of the game servers' API (timeouts, retries, breakers).
//! - [`backoff`]: the capped exponential retry schedule every retry loop waits by.

pub mod admin;
pub mod audit;
pub mod backoff;
pub mod flows;
pub mod gameserver;
pub mod ids;
pub mod keys;
pub mod labels;
pub mod limits;
pub mod model;
pub mod store;
pub mod time;

pub use ids::{GameId, IdError, PlayerId, ProductId, ServerId};
pub use keys::{Keys, ProductKeys};
pub use model::{EntryId, Event, EventKind, Game, GameSet, GameState};
