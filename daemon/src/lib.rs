//! `matchmakerd`: the lobby HTTP API, the event-stream consumer and the curator, as a library
//! (the binary's `main.rs` only parses arguments and starts them), so tests can run it
//! in-process.
//!
//! - [`process`]: [`run`], the process from its command line to its exit code; [`cli`]: the
//!   command line (`-m`, `-c`, `--roles`, `--instance`).
//! - [`startup`]: [`startup::Daemon`] builds the configured roles and runs them until a
//!   shutdown signal.
//! - [`api`], [`registry`], [`telemetry`]: the lobby HTTP API, the game-server registry and
//!   the Prometheus recorder.
//! - [`consumer`]: the event-stream consumer (applies game servers' events).
//! - [`curator`]: deletes stale games on their game servers and removes them from the record.
//! - [`admin`]: the admin listener (`/metrics`, `/healthz`, `/readyz`) every process serves.
//! - [`instance`]: this instance's identity (consumer name) and its heartbeat in Redis.
//! - [`gauges`]: the gauges of the shared state (lag, pending, watermark age, games), kept by
//!   every process whatever its roles.

pub mod admin;
pub mod api;
pub mod cli;
pub mod consumer;
pub mod curator;
pub mod gauges;
pub mod http_server;
pub mod instance;
pub mod process;
pub mod registry;
pub mod startup;
pub mod telemetry;

pub use process::run;
