//! `matchmakerd`: the matchmaker daemon, as a library so tests can run it in-process.
//!
//! - [`cli`]: the command line (`-m`, `-c`, `--roles`, `--instance`).
//! - [`startup`]: [`startup::Daemon`] builds the configured roles and runs them until a
//!   shutdown signal.
//! - [`consumer`]: the event-stream consumer (applies game servers' events).
//! - [`curator`]: deletes stale games on their game servers and removes them from the record.
//! - [`instance`]: this instance's identity (consumer name) and its heartbeat in Redis.

pub mod cli;
pub mod consumer;
pub mod curator;
pub mod instance;
pub mod startup;
