//! The command line of `matchmakerd` (contract section 10): the flags that run the daemon,
//! and the subcommands `config` (print the effective configuration) and `completions`
//! (print a shell completion script).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use mm_config::{LoadOptions, Mode, Program};

/// A part of the daemon that can run on its own (`--roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Role {
    /// The lobby HTTP API (`http.bind`), `/metrics`, `/healthz`, `/readyz`.
    Api,
    /// The event-stream consumer (applies game servers' events to the record).
    Worker,
    /// The curator (deletes stale games; one instance at a time through a lease).
    Curator,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const ALL: [Role; 3] = [Role::Api, Role::Worker, Role::Curator];

    /// The role's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Worker => "worker",
            Role::Curator => "curator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles (never empty when it comes from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(BTreeSet<Role>);

impl Roles {
    /// Every role.
    pub fn all() -> Self {
        Self(Role::ALL.into_iter().collect())
    }

    /// Exactly `roles`.
    pub fn of(roles: impl IntoIterator<Item = Role>) -> Self {
        Self(roles.into_iter().collect())
    }

    /// Whether `role` is in the set.
    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// Whether no role is selected.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|r| r.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

/// `matchmakerd`: the matchmaker daemon — lobby HTTP API, event consumer and curator.
#[derive(Debug, Clone, Parser)]
#[command(name = "matchmakerd", version, about, long_about = None)]
pub struct Cli {
    /// Run mode: selects the settings file `<config dir>/<mode>.toml` (or its built-in copy).
    #[arg(
        short = 'm',
        long,
        default_value = "development",
        value_parser = parse_mode,
        global = true
    )]
    pub mode: Mode,

    /// A settings file layered over the mode file (environment variables
    /// `MM_<SECTION>__<KEY>` override both).
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Directory holding the mode files, which must then exist there (default: ./config,
    /// else the built-in copies). The Debian package's service passes /etc/matchmaker.
    #[arg(long, env = "MM_CONFIG_DIR", value_name = "DIR", global = true)]
    pub config_dir: Option<PathBuf>,

    /// Roles to run, comma-separated: api (lobby HTTP API), worker (event consumer),
    /// curator (stale-game deletion). Default: all three.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "api,worker,curator",
        required = false
    )]
    pub roles: Vec<Role>,

    /// Stable name suffix of this instance: the consumer name is `consumer.name` if set,
    /// otherwise `<hostname>-<INSTANCE>`. Give each daemon on one host its own value and keep
    /// it across restarts, so a restarted daemon drains its own unacknowledged events.
    #[arg(long, env = "MM_INSTANCE", default_value = "1", value_name = "NAME")]
    pub instance: String,

    /// What to do instead of running the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `matchmakerd <COMMAND>`: tools around the daemon. Without one, the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Print the effective configuration and the layer each value came from.
    ///
    /// The output is TOML: every key with its value and, in a comment, the layer it came from
    /// (built-in default, mode file, -c file, MM_ variable). Secrets and credentials in URLs
    /// are redacted. Exits 2, naming each bad key, when the configuration is invalid.
    Config,
    /// Print a shell completion script.
    ///
    /// For example `matchmakerd completions bash > /etc/bash_completion.d/matchmakerd`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Writes the completion script of `matchmakerd` for `shell` to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "matchmakerd", out);
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    text.parse::<Mode>().map_err(|err| err.to_string())
}

impl Cli {
    /// What to load the settings from.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            mode: self.mode,
            extra_file: self.config.clone(),
            config_dir: self.config_dir.clone(),
            app_name: Some("matchmakerd".into()),
            program: Program::Matchmakerd,
        }
    }

    /// The selected roles.
    pub fn roles(&self) -> Roles {
        Roles::of(self.roles.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_every_role_in_development() {
        let cli = Cli::try_parse_from(["matchmakerd"]).unwrap();
        assert_eq!(cli.mode, Mode::Development);
        assert_eq!(cli.roles(), Roles::all());
    }

    #[test]
    fn roles_and_mode_parse() {
        let cli = Cli::try_parse_from([
            "matchmakerd",
            "-m",
            "test",
            "--roles",
            "worker,curator",
            "--instance",
            "b",
            "-c",
            "x.toml",
        ])
        .unwrap();
        assert_eq!(cli.mode, Mode::Test);
        assert!(!cli.roles().has(Role::Api));
        assert!(cli.roles().has(Role::Worker) && cli.roles().has(Role::Curator));
        assert_eq!(cli.instance, "b");
        assert_eq!(cli.load_options().extra_file, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn subcommands_take_the_settings_flags_before_or_after_them() {
        let cli = Cli::try_parse_from([
            "matchmakerd",
            "config",
            "-m",
            "production",
            "--config-dir",
            "/etc/mm",
        ])
        .unwrap();
        assert_eq!(cli.command, Some(Command::Config));
        assert_eq!(cli.mode, Mode::Production);
        assert_eq!(
            cli.load_options().config_dir,
            Some(PathBuf::from("/etc/mm"))
        );
        let cli = Cli::try_parse_from(["matchmakerd", "-m", "test", "completions", "zsh"]).unwrap();
        assert_eq!(
            cli.command,
            Some(Command::Completions { shell: Shell::Zsh })
        );
        assert!(Cli::try_parse_from(["matchmakerd", "completions", "tcsh"]).is_err());
    }

    #[test]
    fn completions_name_the_subcommands_and_flags() {
        let mut out = Vec::new();
        write_completions(Shell::Bash, &mut out);
        let script = String::from_utf8(out).unwrap();
        for word in [
            "matchmakerd",
            "completions",
            "config",
            "--config-dir",
            "--roles",
        ] {
            assert!(
                script.contains(word),
                "{word} missing from the bash completions"
            );
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_mode_and_role_are_refused() {
        assert!(Cli::try_parse_from(["matchmakerd", "-m", "staging"]).is_err());
        assert!(Cli::try_parse_from(["matchmakerd", "--roles", "api,cook"]).is_err());
    }
}
