//! The workspace's integration tests, in one binary: each module drives real processes or
//! in-process servers against a private redis-server from the testkit.

mod consumer;
mod store;
//! The integration tests of the workspace: one binary, one module per area.

mod gameserver;
