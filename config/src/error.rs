//! [`ConfigError`]: every way loading or validating settings, or setting up logging, fails.
//!
//! Messages name the offending key as a dotted path (`lobby.max_capacity`,
//! `game_servers[1].api_url`) and where its value came from (`file config/test.toml`,
//! `environment variable MM_LOBBY__MAX_CAPACITY`, `built-in default`), so an operator can fix
//! a bad start without reading code. Secret values never appear in a message.

use std::fmt;
use std::path::PathBuf;

/// Why settings could not be loaded, or logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file that was asked for (`-c FILE`, or the mode file in an explicit config dir)
    /// does not exist.
    #[error("configuration file {} does not exist", .path.display())]
    FileNotFound {
        /// The missing path, as given.
        path: PathBuf,
    },
    /// A file exists but could not be read.
    #[error("cannot read configuration file {}: {source}", .path.display())]
    Read {
        /// The unreadable path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid TOML.
    #[error("TOML syntax error in {origin}: {message}")]
    Syntax {
        /// Where the text came from (`file …` or `built-in <mode>.toml`).
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An `MM_` environment variable could not be read (not UTF-8).
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable's name (lossily decoded).
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// One or more keys have a wrong type, an unknown name or a value that breaks a rule.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
    /// The logging subscriber could not be installed.
    #[error("logging setup failed: {0}")]
    Logging(String),
}

impl ConfigError {
    /// The individual problems of an [`ConfigError::Invalid`]; empty for other kinds.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

/// One bad key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the key: `lobby.max_capacity`, `game_servers[1].api_url`.
    pub key: String,
    /// Where its value came from: `file <path>`, `built-in <mode>.toml`,
    /// `environment variable MM_…`, `built-in default`.
    pub origin: String,
    /// What is wrong, in words (never containing a secret value).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` (from {}): {}", self.key, self.origin, self.message)
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration ({} problems):", many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}
