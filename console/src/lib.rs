//! `mm-console`: the operator's live view of the matchmaker and its scripted admin.
//!
//! - [`cli`]: flags and exit codes; [`run`] is the whole program behind `main`.
//! - [`app`]: the TUI's global state and the pure `update` (The Elm Architecture);
//!   [`screens`]: one component per screen (its state, keys, update, drawing); [`keymap`]:
//!   the key-table type and the global keys, used for dispatch and help; [`view`]: drawing
//!   of what screens share, pure.
//! - [`tui`]: the runtime loop (terminal, ticks, background tasks).
//! - [`fetch`]: read-only Redis queries (windows, header statistics, detail, `XREAD` tail);
//!   [`data`]: the plain data they return.
//! - [`scripted`]: `--delete`, `--list`, `--tail`.
//! - [`context`]: store, game-server client and thresholds built from the settings;
//!   [`operator`]: who acts, for the audit entries.
//!
//! Force-deletes go through [`mm_common::admin`], shared by the TUI and `--delete`.

pub mod app;
pub mod cli;
pub mod context;
pub mod data;
pub mod fetch;
pub mod keymap;
pub mod operator;
pub mod screens;
pub mod scripted;
pub mod tui;
pub mod view;

#[cfg(test)]
mod tests;

/// The terminal crates this console is built on, for tests and tools that drive it.
pub use crossterm;
pub use ratatui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mm_config::logging::{self, LogTarget};
use mm_config::{LoadOptions, Program, Settings};

use crate::cli::{Cli, exit};
use crate::context::Console;

/// Where logs go when `log.dir` is not set: never the terminal.
pub fn fallback_log_dir() -> PathBuf {
    match std::env::var_os("XDG_STATE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("mm-console"),
        _ => match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home).join(".local/state/mm-console"),
            _ => std::env::temp_dir().join("mm-console"),
        },
    }
}

/// The whole program: parses the command line, loads the settings, runs the asked mode.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    if let Some(cli::Command::Completions { shell }) = cli.command {
        return ExitCode::from(cli::print_completions(shell));
    }
    ExitCode::from(run_cli(cli))
}

/// Runs a parsed command line; returns the exit code.
pub fn run_cli(cli: Cli) -> u8 {
    let settings = match Settings::load(&LoadOptions {
        mode: cli.mode,
        extra_file: cli.config.clone(),
        config_dir: cli.config_dir.clone(),
        app_name: Some("mm-console".into()),
        program: Program::Console,
    }) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("mm-console: configuration error: {err}");
            return exit::USAGE;
        }
    };
    let _log_guard = match logging::init(
        &settings.log,
        LogTarget::FileOnly {
            fallback_dir: fallback_log_dir(),
        },
    ) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("mm-console: logging: {err}");
            return exit::USAGE;
        }
    };
    tracing::info!(source = %settings.source_description(), "mm-console starting");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mm-console: starting the runtime: {err}");
            return exit::FAILURE;
        }
    };
    let operator = operator::resolve(
        cli.operator.as_deref(),
        settings.console.operator.as_deref(),
    );
    runtime.block_on(async move {
        // The lazy store spawns its reconnect task: it must be built inside the runtime.
        let console = match Console::from_settings(&settings) {
            Ok(console) => console,
            Err(err) => {
                eprintln!("mm-console: configuration error: {err}");
                return exit::USAGE;
            }
        };
        if let Some(game) = &cli.delete {
            let args = scripted::DeleteArgs {
                game: game.clone(),
                force: cli.force,
                reason: cli.reason.clone().unwrap_or_default(),
                operator,
                json: cli.json,
            };
            return scripted::delete(&console, &args).await;
        }
        if let Some(set) = cli.list {
            return scripted::list(&console, set, cli.product.as_ref(), cli.json).await;
        }
        if cli.tail {
            return scripted::tail(&console, cli.product.as_ref(), cli.json).await;
        }
        let options = tui::TuiOptions {
            refresh_ms: settings.console.refresh_ms,
            tail_len: settings.console.tail_len,
            read_only: cli.read_only || settings.console.read_only,
            operator,
        };
        match tui::run(console, options).await {
            Ok(()) => exit::OK,
            Err(err) => {
                eprintln!("mm-console: terminal: {err}");
                exit::FAILURE
            }
        }
    })
}
