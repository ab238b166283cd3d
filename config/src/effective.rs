//! The effective configuration (`matchmakerd config`): every key of the loaded [`Settings`]
//! with its value and the layer it came from, rendered as TOML with the layer in a comment.
//!
//! Values come from the validated settings themselves (serialized), so keys no layer set show
//! their built-in defaults. Nothing secret is shown: `auth.jwt_secret` and
//! `game_servers[].api_key` serialize as [`REDACTED`], the password of `redis.url` and the
//! user name, password and query of `game_servers[].api_url` are replaced by it too.

use std::fmt::{self, Write as _};

use figment::Figment;
use figment::value::{Empty, Num, Value};

use crate::error::{ConfigError, Problem};
use crate::load::{LoadOptions, Provenance, load_layers, origin_of, process_env_vars};
use crate::settings::{REDACTED, Settings};

/// One key of the effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveValue {
    /// Dotted key, with indexes for lists of tables: `redis.url`, `game_servers[0].id`.
    pub key: String,
    /// The value as TOML (`"text"`, `42`, `true`, `["a", "b"]`); `None` for an unset optional
    /// key.
    pub value: Option<String>,
    /// The layer it came from: `built-in default`, `built-in development.toml`,
    /// `file /etc/matchmaker/production.toml`, `environment variable MM_REDIS__URL`.
    pub origin: String,
}

/// The effective configuration: the loaded settings, and each key's value and origin.
#[derive(Debug, Clone)]
pub struct EffectiveConfig {
    /// The validated settings.
    pub settings: Settings,
    /// Every key, in the order they are printed.
    pub values: Vec<EffectiveValue>,
    /// The layers, for the header line.
    pub provenance: Provenance,
}

impl Settings {
    /// Loads and validates settings like [`Settings::load`], keeping where each value came
    /// from.
    pub fn load_effective(options: &LoadOptions) -> Result<EffectiveConfig, ConfigError> {
        Self::load_effective_with_env(options, process_env_vars()?)
    }

    /// [`Settings::load_effective`] with `env` as the top layer (see
    /// [`Settings::load_with_env`]).
    pub fn load_effective_with_env<I, K, V>(
        options: &LoadOptions,
        env: I,
    ) -> Result<EffectiveConfig, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let (settings, figment) = load_layers(options, env)?;
        let tree = Value::serialize(&settings).map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                key: "(top level)".into(),
                origin: "the loaded settings".into(),
                message: format!("cannot be shown: {e}"),
            }])
        })?;
        let mut values = Vec::new();
        if let Value::Dict(_, sections) = &tree {
            // Plain keys first: TOML puts them before any table.
            let (tables, plain): (Vec<_>, Vec<_>) = sections
                .iter()
                .partition(|(_, v)| is_table(v) || is_table_list(v));
            for (key, value) in plain {
                collect(&figment, key, value, &mut values);
            }
            for (key, value) in tables {
                collect(&figment, key, value, &mut values);
            }
        }
        let provenance = settings.provenance().clone();
        Ok(EffectiveConfig {
            settings,
            values,
            provenance,
        })
    }
}

fn is_table(value: &Value) -> bool {
    matches!(value, Value::Dict(..))
}

fn is_table_list(value: &Value) -> bool {
    matches!(value, Value::Array(_, items) if !items.is_empty() && items.iter().all(is_table))
}

/// Adds `value` at `key`, one entry per leaf (tables and lists of tables are walked).
fn collect(figment: &Figment, key: &str, value: &Value, out: &mut Vec<EffectiveValue>) {
    match value {
        Value::Dict(_, dict) => {
            for (name, inner) in dict {
                collect(figment, &format!("{key}.{name}"), inner, out);
            }
        }
        Value::Array(_, items) if is_table_list(value) => {
            for (index, item) in items.iter().enumerate() {
                collect(figment, &format!("{key}[{index}]"), item, out);
            }
        }
        leaf => out.push(EffectiveValue {
            key: key.to_owned(),
            value: toml_value(&without_url_credentials(key, leaf)),
            origin: origin_of(figment, key),
        }),
    }
}

/// `value` as a TOML value; `None` when it is empty (an unset optional key).
fn toml_value(value: &Value) -> Option<String> {
    match value {
        Value::String(_, text) => Some(toml_string(text)),
        Value::Char(_, c) => Some(toml_string(&c.to_string())),
        Value::Bool(_, b) => Some(b.to_string()),
        Value::Num(_, num) => Some(toml_number(*num)),
        Value::Empty(_, Empty::None | Empty::Unit) => None,
        Value::Array(_, items) => {
            let shown: Vec<String> = items
                .iter()
                .map(|item| toml_value(item).unwrap_or_else(|| "\"\"".into()))
                .collect();
            Some(format!("[{}]", shown.join(", ")))
        }
        Value::Dict(_, dict) => {
            let shown: Vec<String> = dict
                .iter()
                .filter_map(|(k, v)| toml_value(v).map(|v| format!("{k} = {v}")))
                .collect();
            Some(format!("{{ {} }}", shown.join(", ")))
        }
    }
}

fn toml_number(num: Num) -> String {
    match num {
        Num::F32(f) => format!("{f:?}"),
        Num::F64(f) => format!("{f:?}"),
        other => other
            .to_i128()
            .map(|n| n.to_string())
            .or_else(|| other.to_u128().map(|n| n.to_string()))
            .unwrap_or_default(),
    }
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What of a URL setting is hidden: the password of a Redis URL (`redis.url`, each of
/// `redis.cluster_nodes`); the user name, password and query of a game server's `api_url` (a
/// token may sit in any of them). `None`: the key holds no URL with credentials.
fn url_secrets(key: &str) -> Option<UrlSecrets> {
    if key == "redis.url" || key == "redis.cluster_nodes" {
        Some(UrlSecrets::Password)
    } else if key.starts_with("game_servers[") && key.ends_with("].api_url") {
        Some(UrlSecrets::UserPasswordQuery)
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlSecrets {
    Password,
    UserPasswordQuery,
}

/// `value`, the setting at `key`, with the credentials of its URL (or of each URL of a list)
/// replaced by [`REDACTED_IN_URL`].
fn without_url_credentials(key: &str, value: &Value) -> Value {
    let Some(secrets) = url_secrets(key) else {
        return value.clone();
    };
    match value {
        Value::String(tag, text) => Value::String(*tag, redact_url(text, secrets)),
        Value::Array(tag, items) => Value::Array(
            *tag,
            items
                .iter()
                .map(|item| match item {
                    Value::String(tag, text) => Value::String(*tag, redact_url(text, secrets)),
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `text` with its `secrets` hidden; unchanged when it holds none (or is not a URL, which
/// validation has refused already).
fn redact_url(text: &str, secrets: UrlSecrets) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return text.to_owned();
    };
    let mut changed = false;
    if url.password().is_some() {
        changed |= url.set_password(Some(REDACTED_IN_URL)).is_ok();
    }
    if secrets == UrlSecrets::UserPasswordQuery {
        if !url.username().is_empty() {
            changed |= url.set_username(REDACTED_IN_URL).is_ok();
        }
        if url.query().is_some() {
            url.set_query(Some(REDACTED_IN_URL));
            changed = true;
        }
    }
    if changed { url.into() } else { text.to_owned() }
}

/// [`REDACTED`] as it can stand in a URL without percent-encoding.
const REDACTED_IN_URL: &str = "REDACTED";

impl fmt::Display for EffectiveConfig {
    /// TOML that could be read back as a `-c` file (but for the redacted secrets), each value
    /// followed by a comment naming its layer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# Effective configuration: {}.", self.provenance)?;
        writeln!(
            f,
            "# Each value's comment names the layer it came from; secrets show as \"{REDACTED}\"."
        )?;
        let mut table = String::new();
        for entry in &self.values {
            let (heading, key) = split_table(&entry.key);
            if heading != table {
                writeln!(f)?;
                match heading.split_once("[]") {
                    Some((list, _)) => writeln!(f, "[[{list}]]")?,
                    None => writeln!(f, "[{heading}]")?,
                }
                table = heading;
            }
            match &entry.value {
                Some(value) => writeln!(f, "{key} = {value}  # {}", entry.origin)?,
                None => writeln!(f, "# {key} is not set  # {}", entry.origin)?,
            }
        }
        Ok(())
    }
}

/// Splits `game_servers[1].api_url` into a heading `game_servers[]1]` (one per element, each
/// printed `[[game_servers]]`) and the key `api_url`; `redis.url` into `redis` and `url`.
fn split_table(key: &str) -> (String, &str) {
    match key.rsplit_once('.') {
        Some((table, name)) => {
            let heading = match table.split_once('[') {
                // Each element of a list of tables is its own `[[list]]` heading.
                Some((list, index)) => format!("{list}[]{index}"),
                None => table.to_owned(),
            };
            (heading, name)
        }
        None => (String::new(), key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;

    fn effective(mode: Mode, env: &[(&str, &str)]) -> EffectiveConfig {
        Settings::load_effective_with_env(&LoadOptions::new(mode), env.iter().copied()).unwrap()
    }

    fn entry<'a>(config: &'a EffectiveConfig, key: &str) -> &'a EffectiveValue {
        config
            .values
            .iter()
            .find(|v| v.key == key)
            .unwrap_or_else(|| panic!("no key {key}"))
    }

    #[test]
    fn each_value_names_its_layer() {
        let config = effective(Mode::Development, &[("MM_LOBBY__MAX_CAPACITY", "8")]);
        let capacity = entry(&config, "lobby.max_capacity");
        assert_eq!(capacity.value.as_deref(), Some("8"));
        assert_eq!(
            capacity.origin,
            "environment variable MM_LOBBY__MAX_CAPACITY"
        );
        let url = entry(&config, "redis.url");
        assert_eq!(url.value.as_deref(), Some("\"redis://127.0.0.1:6390/0\""));
        assert_eq!(url.origin, "built-in development.toml");
        let timeout = entry(&config, "redis.connect_timeout_ms");
        assert_eq!(timeout.value.as_deref(), Some("2000"));
        assert_eq!(timeout.origin, "built-in default");
        assert_eq!(
            entry(&config, "game_servers[1].id").value.as_deref(),
            Some("\"gs-poker-1\"")
        );
        assert_eq!(entry(&config, "auth.jwt_issuer").value, None);
    }

    #[test]
    fn secrets_and_url_credentials_are_redacted() {
        let config = effective(
            Mode::Development,
            &[
                ("MM_REDIS__URL", "redis://admin:hunter2@10.0.0.5:6379/0"),
                (
                    "MM_AUTH__JWT_SECRET",
                    "a-jwt-secret-that-is-long-enough-0123456789",
                ),
            ],
        );
        let text = config.to_string();
        for secret in ["hunter2", "a-jwt-secret", "dev-chess-key-change-me"] {
            assert!(!text.contains(secret), "{secret} shown in:\n{text}");
        }
        assert_eq!(
            entry(&config, "redis.url").value.as_deref(),
            Some("\"redis://admin:REDACTED@10.0.0.5:6379/0\"")
        );
        assert_eq!(
            entry(&config, "auth.jwt_secret").value.as_deref(),
            Some("\"[redacted]\"")
        );
        assert_eq!(
            entry(&config, "game_servers[0].api_key").value.as_deref(),
            Some("\"[redacted]\"")
        );
    }

    #[test]
    fn game_server_url_credentials_are_redacted() {
        let url = Value::from("https://user:pass@gs1.example/api/?token=abc");
        assert_eq!(
            toml_value(&without_url_credentials("game_servers[3].api_url", &url)).as_deref(),
            Some("\"https://REDACTED:REDACTED@gs1.example/api/?REDACTED\"")
        );
    }

    #[test]
    fn every_cluster_node_password_is_redacted() {
        let config = effective(
            Mode::Development,
            &[(
                "MM_REDIS__CLUSTER_NODES",
                "redis://u:pw1secret@a:7000,redis://u:pw1secret@b:7000",
            )],
        );
        let nodes = entry(&config, "redis.cluster_nodes");
        assert_eq!(
            nodes.value.as_deref(),
            Some("[\"redis://u:REDACTED@a:7000\", \"redis://u:REDACTED@b:7000\"]")
        );
        assert_eq!(nodes.origin, "environment variable MM_REDIS__CLUSTER_NODES");
        let text = config.to_string();
        assert!(
            !text.contains("pw1secret"),
            "the password shown in:\n{text}"
        );
        // The settings themselves keep the passwords: the store needs them.
        assert!(config.settings.redis.cluster_nodes[0].contains("pw1secret"));
    }

    #[test]
    fn the_output_is_toml_with_one_heading_per_table() {
        let text = effective(Mode::Development, &[]).to_string();
        assert!(text.starts_with(
            "# Effective configuration: mode development from built-in development.toml."
        ));
        assert_eq!(text.matches("\n[redis]\n").count(), 1, "{text}");
        // It reads back as TOML, with both game servers.
        use figment::providers::{Format, Toml};
        let parsed = Toml::from_str::<figment::value::Dict>(&text).unwrap();
        let servers = parsed["game_servers"].as_array().unwrap();
        assert_eq!(servers.len(), 2, "{text}");
        assert_eq!(text.matches("\n[[game_servers]]\n").count(), 2, "{text}");
        assert!(
            text.contains("\nconnect_timeout_ms = 2000  # built-in default\n"),
            "{text}"
        );
        assert!(
            text.contains("\n# jwt_issuer is not set  # built-in default\n"),
            "{text}"
        );
    }

    #[test]
    fn invalid_settings_are_the_usual_error() {
        let err = Settings::load_effective_with_env(
            &LoadOptions::new(Mode::Development),
            [("MM_LOBBY__MAX_CAPACITY", "many")],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lobby.max_capacity"), "{text}");
        assert!(text.contains("MM_LOBBY__MAX_CAPACITY"), "{text}");
    }
}
