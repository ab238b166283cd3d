//! The `matchmakerd` process around the daemon: the command line to an exit code. It parses
//! the command line, loads settings, starts logging and the async runtime, and runs
//! [`crate::startup::Daemon`] until SIGTERM or SIGINT. Exit codes: 0 clean shutdown, 1
//! runtime failure, 2 usage or configuration error. The subcommands `config` and
//! `completions` print and exit instead.

use std::process::ExitCode;

use clap::Parser;
use mm_config::Settings;
use mm_config::logging::{self, LogTarget};

use crate::cli::{Cli, Command, write_completions};
use crate::startup::{Daemon, DaemonOptions};

/// Runs the process with its command line; returns its exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            write_completions(shell, &mut script);
            return print_out(&script);
        }
        Some(Command::Config) => return print_config(&cli),
        None => {}
    }
    let settings = match Settings::load(&cli.load_options()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("matchmakerd: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let _log_guard = match logging::init(&settings.log, LogTarget::Stdout) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("matchmakerd: logging: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("matchmakerd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let options = DaemonOptions {
        roles: cli.roles(),
        instance: cli.instance.clone(),
        api_listener: None,
        admin_listener: None,
    };
    let result = runtime.block_on(async {
        let daemon = Daemon::build(settings, options).await?;
        daemon.run_until(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "matchmakerd failed");
            eprintln!("matchmakerd: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `matchmakerd config`: the effective configuration on stdout; exit 2 when it is invalid.
fn print_config(cli: &Cli) -> ExitCode {
    match Settings::load_effective(&cli.load_options()) {
        Ok(effective) => print_out(effective.to_string().as_bytes()),
        Err(err) => {
            eprintln!("matchmakerd: configuration error: {err}");
            ExitCode::from(2)
        }
    }
}

/// Writes `bytes` to stdout. A reader that stops early (`| head`) is no failure; another
/// write error is (exit 1).
fn print_out(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("matchmakerd: cannot write to stdout: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM; only Ctrl-C stops the daemon");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
