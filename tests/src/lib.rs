//! The matchmaker's test kit.
//!
//! Everything a test needs to run the real system on one machine:
//!
//! - [`redis_server`]: a private `redis-server` per test (unix socket, temp dir, killed on drop).
//! - [`invariants`]: the checker every test calls at its end — each live game is in exactly
//!   the one sorted set its hash's state names.
//! - [`loadgen`]: the traffic generator behind `mm-loadgen` (simulated players).
//! - [`app`]: the lobby API in-process with its Redis and reference game servers.
//! - [`bench`]: the benchmark driver behind `mm-bench` (hot paths beside their ceilings).
//! - [`gameserver`]: the reference game server `mm-gameserver`, in-process or as a binary.
//! - [`fake_gameserver`]: a misbehaving game server for client timeout/retry/breaker tests.
//! - [`daemon_process`]: real `matchmakerd` processes (built on demand) for fault tests.
//! - [`poll`]: waiting for a condition with a deadline (tests never sleep to synchronise).
//!
//! The integration tests of the whole workspace live in `tests/it/` (one test binary).

pub mod app;
pub mod bench;
pub mod daemon_process;
pub mod fake_gameserver;
pub mod gameserver;
pub mod invariants;
pub mod loadgen;
pub mod poll;
pub mod redis_server;

pub use redis_server::{RedisOptions, RedisServer};
