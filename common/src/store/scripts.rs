//! The script registry: every Lua script the store runs, loaded once per process.
//!
//! A game script is the shared `lua/prelude.lua` (load a game, derive its state, save what
//! changed and keep it in exactly one set) followed by its own body; the lease scripts and
//! the dead-consumer sweep stand alone; the scripts under the per-player limits
//! (`reserve_seat`, `rejoin`, `quick_join`, and `admit_create`, which needs no game and so no
//! game prelude) share `lua/limits_prelude.lua` (token buckets), and the three that take
//! seats share `lua/seat_prelude.lua` (the join rules and the reservation); the stream
//! scripts (`watermark`, `trim_events`) share `lua/stream_prelude.lua`, which finds the
//! consumer group's oldest unacknowledged entry; `feed_state` (where a product's change feed
//! stands) stands alone.
//! `redis::Script` runs a script with `EVALSHA` and reloads it when Redis answers `NOSCRIPT`
//! (after a restart or `SCRIPT FLUSH`).

use std::sync::LazyLock;

use redis::Script;

/// The store's scripts.
pub(crate) struct Scripts {
    pub create_game: Script,
    pub apply_events: Script,
    pub dead_letter: Script,
    pub reserve_seat: Script,
    pub rejoin: Script,
    pub quick_join: Script,
    pub keep_ticket: Script,
    pub admit_create: Script,
    pub forget_create: Script,
    pub release_seat: Script,
    pub remove_game: Script,
    pub mark_ending: Script,
    pub unmark_ending: Script,
    pub lease_acquire: Script,
    pub lease_release: Script,
    pub watermark: Script,
    pub trim_events: Script,
    pub remove_dead_consumers: Script,
    pub feed_state: Script,
}

/// A game script: the prelude plus the body in `lua/<file>`.
macro_rules! game_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// A game script that takes seats under the per-player limits: the prelude, the limits
/// prelude (token buckets), the seat prelude (the join rules and the reservation, shared by
/// join, rejoin and quick join) and the body in `lua/<file>`.
macro_rules! limited_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!("lua/limits_prelude.lua"),
            "\n",
            include_str!("lua/seat_prelude.lua"),
            "\n",
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// A stream script: the prelude (for its entry-id helpers), the stream prelude (where the
/// consumer group stands) and the body in `lua/<file>`.
macro_rules! stream_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!("lua/stream_prelude.lua"),
            "\n",
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// Every script, hashed once.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create_game: game_script!("create_game.lua"),
    apply_events: game_script!("apply_events.lua"),
    dead_letter: game_script!("dead_letter.lua"),
    reserve_seat: limited_script!("reserve_seat.lua"),
    rejoin: limited_script!("rejoin.lua"),
    quick_join: limited_script!("quick_join.lua"),
    keep_ticket: game_script!("keep_ticket.lua"),
    admit_create: Script::new(concat!(
        include_str!("lua/limits_prelude.lua"),
        "\n",
        include_str!("lua/admit_create.lua")
    )),
    forget_create: Script::new(include_str!("lua/forget_create.lua")),
    release_seat: game_script!("release_seat.lua"),
    remove_game: game_script!("remove_game.lua"),
    mark_ending: game_script!("mark_ending.lua"),
    unmark_ending: game_script!("unmark_ending.lua"),
    lease_acquire: Script::new(include_str!("lua/lease_acquire.lua")),
    lease_release: Script::new(include_str!("lua/lease_release.lua")),
    watermark: stream_script!("watermark.lua"),
    trim_events: stream_script!("trim_events.lua"),
    remove_dead_consumers: Script::new(include_str!("lua/remove_dead_consumers.lua")),
    feed_state: Script::new(include_str!("lua/feed_state.lua")),
});
