//! The workspace's integration tests, in one binary: each module drives real processes or
//! in-process servers against a private redis-server from the testkit.

mod gameserver;
mod store;
