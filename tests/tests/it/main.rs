//! The integration tests of the workspace: one binary, one module per area.

mod gameserver;
