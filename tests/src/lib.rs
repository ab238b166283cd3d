//! The matchmaker's test kit.
//!
//! Everything a test needs to run the real system on one machine:
//!
//! - [`redis_server`]: a private `redis-server` per test (unix socket, temp dir, killed on drop).
//! - [`redis_cluster`]: a private 3-master, 3-replica Redis Cluster of real `redis-server`s on
//!   free ports, with failover and kill for fault tests.
//! - [`invariants`]: the checker every test calls at its end — each live game is in exactly
//!   the one sorted set its hash's state names.
//! - [`app`]: the lobby API in-process with its Redis and reference game servers (the
//!   `mm-gameserver` crate, started in-process).
//! - [`fake_gameserver`]: a misbehaving game server for client timeout/retry/breaker tests.
//! - [`daemon_process`]: real `matchmakerd` processes (built on demand) for fault tests.
//! - [`scenario`]: one scenario body run on a single Redis and on a shared cluster.
//! - [`poll`]: waiting for a condition with a deadline (tests never sleep to synchronise).
//! - [`redis_stats`]: Redis's command statistics, for tests of how much work a request cost
//!   Redis.
//!
//! The integration tests of the whole workspace live in `tests/it/` (one test binary), and
//! `mm-api-under-test` serves the lobby API for black-box tools (`scripts/schemathesis.sh`).
//! The tools shipped beside the matchmaker — the reference game server, the load generator
//! and the benchmark driver — are their own crates under `tools/`.

pub mod app;
pub mod daemon_process;
pub mod fake_gameserver;
pub mod invariants;
pub mod poll;
pub mod redis_cluster;
pub mod redis_server;
pub mod redis_stats;
pub mod scenario;

pub use redis_cluster::RedisCluster;
pub use redis_server::{RedisOptions, RedisServer};
