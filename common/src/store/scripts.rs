//! The script registry: every Lua script the store runs, loaded once per process.
//!
//! A game script is the shared `lua/prelude.lua` (load a game, derive its state, save what
//! changed and keep it in exactly one set) followed by its own body; the lease scripts and
//! the dead-consumer sweep stand alone. `redis::Script` runs a script with `EVALSHA` and reloads it when Redis answers
//! `NOSCRIPT` (after a restart or `SCRIPT FLUSH`).

use std::sync::LazyLock;

use redis::Script;

/// The store's scripts.
pub(crate) struct Scripts {
    pub create_game: Script,
    pub apply_events: Script,
    pub dead_letter: Script,
    pub reserve_seat: Script,
    pub release_seat: Script,
    pub remove_game: Script,
    pub lease_acquire: Script,
    pub lease_release: Script,
    pub remove_dead_consumers: Script,
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

/// Every script, hashed once.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create_game: game_script!("create_game.lua"),
    apply_events: game_script!("apply_events.lua"),
    dead_letter: game_script!("dead_letter.lua"),
    reserve_seat: game_script!("reserve_seat.lua"),
    release_seat: game_script!("release_seat.lua"),
    remove_game: game_script!("remove_game.lua"),
    lease_acquire: Script::new(include_str!("lua/lease_acquire.lua")),
    lease_release: Script::new(include_str!("lua/lease_release.lua")),
    remove_dead_consumers: Script::new(include_str!("lua/remove_dead_consumers.lua")),
});
