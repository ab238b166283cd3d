//! The workspace's integration tests, in one binary: each module drives real processes or
//! in-process servers against a private redis-server from the testkit.

mod abuse;
mod abuse_connections;
mod api;
mod boundaries;
mod cluster;
mod console;
mod console_tmux;
mod consumer;
mod cors;
mod curator;
mod deploy;
mod ending;
mod faults;
mod gameserver;
mod oracle;
mod reconcile;
mod seats;
mod store;
mod strict_production;
mod view;
