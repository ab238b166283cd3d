//! `matchmakerd`: the lobby HTTP API, the event-stream consumer and the curator, as a library
//! (the binary's `main.rs` only parses arguments and starts them).

pub mod api;
pub mod registry;
pub mod telemetry;
