//! The workspace's integration tests, in one binary: each module drives real processes or
//! in-process servers against a private redis-server from the testkit.

mod consumer;
mod curator;
mod faults;
mod gameserver;
mod store;
