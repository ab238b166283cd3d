//! `mm-config`: the typed settings of `matchmakerd` and `mm-console`, their layered loading,
//! and logging setup.
//!
//! - [`Settings`] is the whole configuration, one struct per `[section]`, with the contract's
//!   defaults in code; unknown keys are errors.
//! - [`Settings::load`] layers, lowest first: defaults, the mode file `config/<mode>.toml`
//!   (or its built-in copy), the `-c` file, and `MM_<SECTION>__<KEY>` environment variables;
//!   then it checks every rule of the sections the [`Program`] reads. A failure is a
//!   [`ConfigError`] naming the key (`lobby.max_capacity`, `game_servers[1].api_url`) and the
//!   file or variable it came from.
//! - [`Settings::store_options`] and [`GameServerClientSettings::client_options`] build the
//!   options of `mm-common`'s store and game-server client.
//! - [`logging::init`] installs the `tracing` subscriber described by `[log]`.
//!
//! The shipped mode files are this crate's `development.toml`, `test.toml` and
//! `production.toml`; they are also compiled in, so an installed binary runs from anywhere.
//!
//! ```no_run
//! use mm_config::{LoadOptions, Mode, Program, Settings};
//! let settings = Settings::load(&LoadOptions {
//!     mode: Mode::Production,
//!     extra_file: Some("/etc/matchmaker/local.toml".into()),
//!     config_dir: None,
//!     app_name: Some("matchmakerd".into()),
//!     program: Program::Matchmakerd,
//! })?;
//! println!("settings: {}", settings.source_description());
//! # Ok::<(), mm_config::ConfigError>(())
//! ```

mod effective;
mod error;
mod load;
pub mod logging;
mod mode;
mod options;
mod settings;
mod validate;

#[cfg(test)]
mod tests;

pub use effective::{EffectiveConfig, EffectiveValue};
pub use error::{ConfigError, Problem};
pub use load::{
    DEFAULT_CONFIG_DIR, ENV_PREFIX, ENV_SEPARATOR, LoadOptions, ModeFile, Program, Provenance,
};
pub use mode::{Mode, UnknownMode};
pub use settings::{
    AuditSettings, AuthMode, AuthSettings, ConsoleSettings, ConsumerSettings, CurationSettings,
    DEFAULT_LOG_FILE_PREFIX, EventsSettings, GameServerClientSettings, GameServerSettings,
    HttpSettings, LimitsSettings, LobbySettings, LogFormat, LogSettings, RedisSettings, Settings,
};
pub use settings::{DEFAULT_MAX_TOKEN_BYTES, REDACTED};
pub use validate::{
    MAX_APPLY_BATCH, MAX_CONSUMER_BATCH, MAX_EVENTS_RETAIN_SECS, MAX_LOBBY_CAPACITY,
    MIN_CONSOLE_REFRESH_MS, MIN_JWT_SECRET_BYTES, longest_create_ms,
};
pub use validate::{MAX_TOKEN_BYTES, MIN_TOKEN_BYTES};

/// Re-exported so callers can read secrets (`ExposeSecret::expose_secret`) without
/// depending on `secrecy` themselves.
pub use secrecy::{ExposeSecret, SecretString};
