//! The command line (contract sections 7 and 8) and the exit codes.

use std::path::PathBuf;

use clap::{ArgGroup, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use mm_common::ProductId;
use mm_common::model::GameSet;
use mm_config::Mode;

/// Exit codes of `mm-console` (contract section 8, plus 1 for failures the contract does not
/// name).
pub mod exit {
    /// Done: the game was deleted; the listing or tail ended normally.
    pub const OK: u8 = 0;
    /// Redis could not be reached, or another unexpected failure.
    pub const FAILURE: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// No such live game (`--delete`), or no such product (`--list`/`--tail --product`).
    pub const NOT_FOUND: u8 = 3;
    /// The game server refused the delete or could not be reached.
    pub const SERVER_FAILED: u8 = 4;
}

const AFTER_HELP: &str = "\
Without --delete, --list or --tail, mm-console opens the full-screen console (? inside for keys).

Exit codes of --delete:
  0  deleted on the game server (or the server no longer had it) and removed from the record
  3  no such live game: never existed, already ended, or a well-formed id without a product
     prefix (`notanid`), which names no game
  4  the game server refused the delete or could not be reached; the record is kept.
     With --force the record is removed anyway and the audit entry says the server was not
     reached (or refused) - the exit code is still 4, because the game may still be running
     on its server.
  2  usage or configuration error (bad flags, bad config file, a malformed game id: empty,
     longer than 64 bytes, or characters other than A-Z a-z 0-9 - _ .)
  1  Redis unreachable or another unexpected failure (nothing is known to have changed unless
     the message says so); the message names the Redis URL (without credentials)

Exit codes of --list and --tail: 0 done; 1 Redis unreachable (--tail: at start; once it has
read, --tail waits out an outage with one warning and goes on); 2 usage or configuration
error; 3 --product names a product Redis and the configuration do not know (a warning on
stderr, nothing on stdout).

--json prints one JSON object for --delete and --list, and one JSON object per line for --tail.";

/// The operator console of the matchmaker.
#[derive(Debug, Clone, Parser)]
#[command(name = "mm-console", version, about, after_help = AFTER_HELP)]
#[command(group(ArgGroup::new("action").args(["delete", "list", "tail"]).multiple(false)))]
#[command(group(ArgGroup::new("streams").args(["list", "tail"]).multiple(false)))]
pub struct Cli {
    /// Mode: selects config/<mode>.toml (development, test, production).
    #[arg(short = 'm', long, default_value = "development", value_parser = parse_mode)]
    pub mode: Mode,
    /// A settings file layered over the mode file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding the mode files, which must then exist there (default: ./config,
    /// else the built-in copies), as for matchmakerd: on a packaged host, /etc/matchmaker.
    #[arg(long, env = "MM_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Disable force-delete in the console (also `console.read_only`).
    #[arg(long)]
    pub read_only: bool,
    /// Delete this game on its game server, remove its record, and audit it; then exit.
    #[arg(long, value_name = "GAME_ID")]
    pub delete: Option<String>,
    /// With --delete: remove the record even if the game server refuses or cannot be reached.
    #[arg(long, requires = "delete")]
    pub force: bool,
    /// With --delete: why, for the audit entry.
    #[arg(long, value_name = "TEXT", requires = "delete")]
    pub reason: Option<String>,
    /// Who is acting, for the audit entry (default: `console.operator`, else the login).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Print every game of a set (stalest first), then exit.
    #[arg(long, value_name = "SET", value_parser = parse_set)]
    pub list: Option<GameSet>,
    /// With --list or --tail: only this product.
    #[arg(long, value_name = "PRODUCT", requires = "streams", value_parser = parse_product)]
    pub product: Option<ProductId>,
    /// Follow every product's event stream (plain XREAD), one line per event.
    #[arg(long)]
    pub tail: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// A tool instead of the console (`completions`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `mm-console <COMMAND>`: tools that run instead of the console.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Print a shell completion script.
    ///
    /// For example `mm-console completions bash > /etc/bash_completion.d/mm-console`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Prints the completion script of `mm-console` for `shell`; a reader that stops early
/// (`| head`) is no failure.
pub fn print_completions(shell: Shell) -> u8 {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "mm-console", &mut script);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => exit::OK,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(err) => {
            eprintln!("mm-console: cannot write to stdout: {err}");
            exit::FAILURE
        }
    }
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    text.parse::<Mode>().map_err(|e| e.to_string())
}

fn parse_set(text: &str) -> Result<GameSet, String> {
    text.parse::<GameSet>()
}

fn parse_product(text: &str) -> Result<ProductId, String> {
    ProductId::new(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_flags_parse() {
        let cli = Cli::try_parse_from([
            "mm-console",
            "--delete",
            "chess.1",
            "--force",
            "--reason",
            "x",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.delete.as_deref(), Some("chess.1"));
        assert!(cli.force && cli.json);
    }

    #[test]
    fn force_without_delete_is_a_usage_error() {
        let err = Cli::try_parse_from(["mm-console", "--force"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn product_goes_with_list_or_tail_only() {
        for args in [
            &["--tail", "--product", "chess"][..],
            &["--list", "lobby", "--product", "chess"],
        ] {
            let cli =
                Cli::try_parse_from(std::iter::once("mm-console").chain(args.iter().copied()))
                    .unwrap();
            assert_eq!(cli.product.unwrap().as_str(), "chess");
        }
        let err = Cli::try_parse_from(["mm-console", "--product", "chess"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn config_dir_is_read_like_the_daemons() {
        let cli = Cli::try_parse_from(["mm-console", "--config-dir", "/etc/matchmaker"]).unwrap();
        assert_eq!(
            cli.config_dir.as_deref(),
            Some(std::path::Path::new("/etc/matchmaker"))
        );
    }

    #[test]
    fn completions_is_a_subcommand() {
        let cli = Cli::try_parse_from(["mm-console", "completions", "fish"]).unwrap();
        assert_eq!(
            cli.command,
            Some(Command::Completions { shell: Shell::Fish })
        );
        Cli::command().debug_assert();
    }

    #[test]
    fn two_actions_are_a_usage_error() {
        let err = Cli::try_parse_from(["mm-console", "--tail", "--list", "lobby"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
