//! The run mode (`-m/--mode`), which selects the mode file `config/<mode>.toml`.

use std::fmt;
use std::str::FromStr;

/// A run mode. Parses from and prints as its lowercase name, so it works as a clap value
/// (`value_parser = clap::value_parser!(Mode)` through [`FromStr`], or
/// `PossibleValuesParser::new(Mode::ALL.map(Mode::as_str))`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Local development and the demo: header auth, pretty logs, two demo game servers.
    #[default]
    Development,
    /// Automated tests: header auth, JSON logs, short timeouts, no game servers.
    Test,
    /// Production: JWT auth (the secret comes from the environment or a `-c` file).
    Production,
}

impl Mode {
    /// Every mode, in a stable order.
    pub const ALL: [Mode; 3] = [Mode::Development, Mode::Test, Mode::Production];

    /// The lowercase name (`development`, `test`, `production`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Development => "development",
            Mode::Test => "test",
            Mode::Production => "production",
        }
    }

    /// File name of this mode's settings file (`<mode>.toml`).
    pub fn file_name(self) -> String {
        format!("{}.toml", self.as_str())
    }

    /// The copy of this mode's file compiled into the binary.
    pub(crate) const fn builtin_toml(self) -> &'static str {
        match self {
            Mode::Development => include_str!("../development.toml"),
            Mode::Test => include_str!("../test.toml"),
            Mode::Production => include_str!("../production.toml"),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not the name of a [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?} (expected one of: development, test, production)")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_display_and_from_str() {
        for mode in Mode::ALL {
            assert_eq!(mode.to_string().parse::<Mode>(), Ok(mode));
        }
        assert_eq!("production".parse::<Mode>(), Ok(Mode::Production));
    }

    #[test]
    fn refuses_unknown_names() {
        let err = "Production".parse::<Mode>().unwrap_err();
        assert!(err.to_string().contains("\"Production\""), "{err}");
        assert!("prod".parse::<Mode>().is_err());
    }
}
