//! The integration tests of the workspace: one binary, one module per area.

mod api;
mod gameserver;
mod store;
