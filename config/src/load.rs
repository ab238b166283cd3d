//! Layered loading: defaults, mode file, extra file, `MM_` environment.
//!
//! Layers, lowest first:
//!
//! 1. the serde defaults of [`crate::settings`] (and the caller's `log.file_prefix`);
//! 2. the mode file `<config_dir>/<mode>.toml` (`config_dir` defaults to `./config`); when the
//!    default directory has no such file, the copy compiled into the binary is used, so an
//!    installed binary works from any directory;
//! 3. the extra file (`-c FILE`), which must exist;
//! 4. environment variables `MM_<SECTION>__<KEY>` (`MM_REDIS__URL`, `MM_LOBBY__MAX_CAPACITY`).
//!    Only variables with the `MM_` prefix and a `__` separator are read; the rest of the
//!    name is lowercased into the key path. Values are strings that are read as numbers or
//!    booleans where the key wants one.
//!
//! Each layer is a figment provider that records its origin, so errors from deserializing
//! and from [`crate::validate`] can say which file or variable holds the bad value.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::error::{ConfigError, Problem};
use crate::mode::Mode;
use crate::settings::Settings;

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "MM_";
/// Separator between section and key in those variables.
pub const ENV_SEPARATOR: &str = "__";
/// Directory searched for `<mode>.toml` when [`LoadOptions::config_dir`] is not set.
pub const DEFAULT_CONFIG_DIR: &str = "config";

const ENV_METADATA_NAME: &str = "MM_ environment variables";
const DEFAULT_ORIGIN: &str = "built-in default";

/// What to load: the CLI's `-m`, `-c` and friends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Selects the mode file.
    pub mode: Mode,
    /// `-c FILE`: a file layered over the mode file. Must exist.
    pub extra_file: Option<PathBuf>,
    /// Where `<mode>.toml` is looked for. `None`: `./config`, falling back to the built-in
    /// copy when absent. `Some(dir)`: the file must exist there.
    pub config_dir: Option<PathBuf>,
    /// Default of `log.file_prefix` (usually the binary's name); `None`: `matchmaker`.
    pub app_name: Option<String>,
    /// The program the settings are for: validation skips the sections it does not read.
    pub program: Program,
}

/// The program settings are loaded for (contract section 7.3): each is checked only on the
/// sections it reads, so a console host needs no JWT secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Program {
    /// `matchmakerd`: every rule is checked.
    #[default]
    Matchmakerd,
    /// `mm-console`: the rules of `[auth]`, `[http]` and `[limits]`, which it never reads,
    /// are skipped; every other section is checked as for the daemon.
    Console,
}

impl Program {
    /// Whether this program reads the sections `[auth]`, `[http]` and `[limits]` (the lobby
    /// API's own settings).
    pub fn serves_the_api(self) -> bool {
        self == Program::Matchmakerd
    }
}

impl LoadOptions {
    /// Options for `mode` with every other field at its default.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }
}

/// Where the mode layer was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ModeFile {
    /// A file on disk.
    Disk(PathBuf),
    /// The copy compiled into the binary (no `<mode>.toml` in `./config`).
    Builtin(Mode),
    /// Settings not produced by [`Settings::load`] (e.g. `Settings::default()`).
    #[default]
    None,
}

impl ModeFile {
    fn origin(&self) -> String {
        match self {
            ModeFile::Disk(path) => format!("file {}", path.display()),
            ModeFile::Builtin(mode) => format!("built-in {}", mode.file_name()),
            ModeFile::None => "no mode file".into(),
        }
    }
}

impl fmt::Display for ModeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin())
    }
}

/// Which layers produced a [`Settings`]: names only, never values, so it is safe to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The selected mode.
    pub mode: Mode,
    /// Where the mode layer came from.
    pub mode_file: ModeFile,
    /// The `-c` file, if any.
    pub extra_file: Option<PathBuf>,
    /// Names of the `MM_` variables that were applied, sorted.
    pub env_vars: Vec<String>,
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mode {} from {}", self.mode, self.mode_file)?;
        if let Some(extra) = &self.extra_file {
            write!(f, ", then file {}", extra.display())?;
        }
        if !self.env_vars.is_empty() {
            write!(f, ", then environment {}", self.env_vars.join(", "))?;
        }
        Ok(())
    }
}

impl Settings {
    /// Loads and validates settings with the process environment as the top layer.
    pub fn load(options: &LoadOptions) -> Result<Settings, ConfigError> {
        let vars = process_env_vars()?;
        Self::load_with_env(options, vars)
    }

    /// Like [`Settings::load`], but the top layer is `env` instead of the process
    /// environment: tests use it to stay parallel-safe. Entries without the `MM_` prefix
    /// or without a `__` are ignored, exactly as for the real environment.
    pub fn load_with_env<I, K, V>(options: &LoadOptions, env: I) -> Result<Settings, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        load_layers(options, env).map(|(settings, _)| settings)
    }
}

/// Loads and validates like [`Settings::load_with_env`], and also returns the merged layers,
/// which know where each value came from (`matchmakerd config`).
pub(crate) fn load_layers<I, K, V>(
    options: &LoadOptions,
    env: I,
) -> Result<(Settings, Figment), ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    let env = EnvLayer::new(env.into_iter().map(|(k, v)| (k.into(), v.into())))?;
    let mut figment = Figment::new();

    if let Some(name) = &options.app_name {
        let dict = figment::util::nest("log.file_prefix", Value::from(name.clone()))
            .into_dict()
            .unwrap_or_default();
        figment = figment.merge(Layer::new(
            Metadata::named(format!("{DEFAULT_ORIGIN} for {name}")),
            dict,
        ));
    }

    let (mode_layer, mode_file) = mode_layer(options)?;
    figment = figment.merge(mode_layer);

    if let Some(extra) = &options.extra_file {
        if !extra.is_file() {
            return Err(ConfigError::FileNotFound {
                path: extra.clone(),
            });
        }
        figment = figment.merge(file_layer(extra)?);
    }

    let env_vars = env.var_names();
    figment = figment.merge(env);

    let mut settings: Settings = figment
        .extract_lossy()
        .map_err(|e| ConfigError::Invalid(figment_problems(&figment, e)))?;

    let problems = crate::validate::validate(&settings, options.mode, options.program, &|key| {
        origin_of(&figment, key)
    });
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }

    settings.provenance = Provenance {
        mode: options.mode,
        mode_file,
        extra_file: options.extra_file.clone(),
        env_vars,
    };
    Ok((settings, figment))
}

/// The `MM_*` variables of this process. A non-UTF-8 `MM_` variable is an error; others
/// are none of our business.
pub(crate) fn process_env_vars() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (key, value) in std::env::vars_os() {
        if !key.as_encoded_bytes().starts_with(ENV_PREFIX.as_bytes()) {
            continue;
        }
        let not_utf8 = |k: &OsString| ConfigError::Env {
            name: k.to_string_lossy().into_owned(),
            message: "name or value is not valid UTF-8".into(),
        };
        let k = key.to_str().ok_or_else(|| not_utf8(&key))?.to_owned();
        let v = value.into_string().map_err(|_| not_utf8(&key))?;
        vars.push((k, v));
    }
    Ok(vars)
}

fn mode_layer(options: &LoadOptions) -> Result<(Layer, ModeFile), ConfigError> {
    let mode = options.mode;
    let dir = options
        .config_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR));
    let path = dir.join(mode.file_name());
    if path.is_file() {
        return Ok((file_layer(&path)?, ModeFile::Disk(path)));
    }
    if options.config_dir.is_some() {
        return Err(ConfigError::FileNotFound { path });
    }
    let mode_file = ModeFile::Builtin(mode);
    let origin = mode_file.origin();
    let dict = parse_toml(mode.builtin_toml(), &origin)?;
    Ok((Layer::new(Metadata::named(origin), dict), mode_file))
}

fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let dict = parse_toml(&text, &format!("file {}", path.display()))?;
    Ok(Layer::new(Metadata::from("TOML file", path), dict))
}

fn parse_toml(text: &str, origin: &str) -> Result<Dict, ConfigError> {
    use figment::providers::{Format, Toml};
    Toml::from_str::<Dict>(text).map_err(|e| ConfigError::Syntax {
        origin: origin.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// A parsed TOML document (or caller default) with its origin.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Layer {
    fn new(metadata: Metadata, dict: Dict) -> Self {
        Self { metadata, dict }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The `MM_<SECTION>__<KEY>` variables, nested into a dictionary. Unlike figment's `Env`, it
/// takes its variables as data (so tests need not touch the process environment) and its
/// metadata maps a key path back to the exact variable name.
struct EnvLayer {
    /// Dotted key path (`lobby.max_capacity`) → (variable name, value).
    vars: BTreeMap<String, (String, String)>,
    /// Every dotted prefix of every key → the first variable that defines it.
    names: Arc<BTreeMap<String, String>>,
}

impl EnvLayer {
    fn new(vars: impl Iterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut by_key = BTreeMap::new();
        let mut names = BTreeMap::new();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if !rest.contains(ENV_SEPARATOR) {
                continue;
            }
            let parts: Vec<String> = rest
                .split(ENV_SEPARATOR)
                .map(str::to_ascii_lowercase)
                .collect();
            if parts.iter().any(|p| p.is_empty() || p.contains('.')) {
                return Err(ConfigError::Env {
                    name,
                    message: format!(
                        "expected {ENV_PREFIX}<SECTION>{ENV_SEPARATOR}<KEY> with non-empty \
                         section and key names and no '.'"
                    ),
                });
            }
            let key = parts.join(".");
            let mut prefix = String::new();
            for part in key.split('.') {
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(part);
                names.entry(prefix.clone()).or_insert_with(|| name.clone());
            }
            by_key.insert(key, (name, value));
        }
        Ok(Self {
            vars: by_key,
            names: Arc::new(names),
        })
    }

    fn var_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vars.values().map(|(n, _)| n.clone()).collect();
        names.sort();
        names
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        let names = Arc::clone(&self.names);
        Metadata::named(ENV_METADATA_NAME).interpolater(move |_: &Profile, keys: &[&str]| {
            let dotted = keys.join(".");
            match names.get(&dotted) {
                Some(name) => name.clone(),
                None => format!(
                    "{ENV_PREFIX}{}",
                    keys.join(ENV_SEPARATOR).to_ascii_uppercase()
                ),
            }
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, (_, value)) in &self.vars {
            let nested = figment::util::nest(key, Value::from(value.clone()))
                .into_dict()
                .unwrap_or_default();
            dict = merge_dicts(dict, nested);
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn merge_dicts(mut into: Dict, from: Dict) -> Dict {
    for (k, v) in from {
        match (into.remove(&k), v) {
            (Some(Value::Dict(tag, a)), Value::Dict(_, b)) => {
                into.insert(k, Value::Dict(tag, merge_dicts(a, b)));
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
    into
}

/// Splits `game_servers[1].api_url` into `["game_servers", "1", "api_url"]`.
pub(crate) fn key_segments(key: &str) -> Vec<String> {
    key.replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Joins figment path segments back into `game_servers[1].api_url`.
pub(crate) fn render_key(segments: &[String]) -> String {
    let mut out = String::new();
    for seg in segments {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// Describes where the value at `segments` came from. With `exact`, only a value at the full
/// path counts; without, the deepest value found on the path does (a missing field is blamed
/// on the table that lacks it).
fn origin_of_segments(figment: &Figment, segments: &[String], exact: bool) -> Option<String> {
    let (first, rest) = segments.split_first()?;
    let mut value = figment.find_value(first).ok()?;
    let mut found: Vec<&str> = vec![first.as_str()];
    for seg in rest {
        let next = match &value {
            Value::Dict(_, dict) => dict.get(seg).cloned(),
            Value::Array(_, items) => seg
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).cloned()),
            _ => None,
        };
        match next {
            Some(v) => {
                value = v;
                found.push(seg);
            }
            None if exact => return None,
            None => break,
        }
    }
    let metadata = figment.get_metadata(value.tag())?;
    Some(describe(metadata, figment.profile(), &found))
}

/// Where the value of a dotted key came from: the layer that set it, or "built-in default"
/// when no layer did.
pub(crate) fn origin_of(figment: &Figment, key: &str) -> String {
    origin_of_segments(figment, &key_segments(key), true).unwrap_or_else(|| DEFAULT_ORIGIN.into())
}

fn describe(metadata: &Metadata, profile: &Profile, keys: &[&str]) -> String {
    if metadata.name == ENV_METADATA_NAME {
        return format!(
            "environment variable {}",
            metadata.interpolate(profile, keys)
        );
    }
    match &metadata.source {
        Some(Source::File(path)) => format!("file {}", path.display()),
        _ => metadata.name.to_string(),
    }
}

/// Keys whose values must never be echoed in an error message.
const SECRET_KEYS: [&str; 2] = ["jwt_secret", "api_key"];

fn figment_problems(figment: &Figment, error: figment::Error) -> Vec<Problem> {
    error
        .into_iter()
        .map(|e| {
            let mut segments = e.path.clone();
            if let Kind::MissingField(field) = &e.kind {
                segments.push(field.to_string());
            }
            let origin = origin_of_segments(figment, &segments, false)
                .or_else(|| {
                    e.metadata.as_ref().map(|md| {
                        let keys: Vec<&str> = e.path.iter().map(String::as_str).collect();
                        describe(md, figment.profile(), &keys)
                    })
                })
                .unwrap_or_else(|| DEFAULT_ORIGIN.into());
            // Messages about a present value may quote it; those about names may not.
            let quotes_value = !matches!(
                e.kind,
                Kind::MissingField(_) | Kind::UnknownField(..) | Kind::DuplicateField(_)
            );
            let secret = quotes_value
                && segments
                    .last()
                    .is_some_and(|last| SECRET_KEYS.contains(&last.as_str()));
            let message = if secret {
                "invalid value (not shown: it is a secret); expected a string".to_owned()
            } else if let Kind::UnknownField(name, expected) = &e.kind {
                format!(
                    "unknown key `{name}` (expected one of: {})",
                    expected.join(", ")
                )
            } else {
                e.kind.to_string()
            };
            let key = if segments.is_empty() {
                "(top level)".to_owned()
            } else {
                render_key(&segments)
            };
            Problem {
                key,
                origin,
                message,
            }
        })
        .collect()
}
