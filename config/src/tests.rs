//! Loader and validation tests. None touches the process environment or the current
//! directory: environment layers are passed as data and files live in temp dirs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use crate::*;

const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-prod";

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn opts(mode: Mode, config_dir: &Path) -> LoadOptions {
    LoadOptions {
        mode,
        config_dir: Some(config_dir.to_owned()),
        ..LoadOptions::default()
    }
}

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A temp config dir holding `test.toml` with `mode_toml`.
fn config_dir(mode_toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test.toml"), mode_toml).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Loads `test` mode from a temp dir whose `test.toml` is `mode_toml`; expects an error.
fn load_err(mode_toml: &str, vars: &[(&str, &str)]) -> (ConfigError, PathBuf) {
    let dir = config_dir(mode_toml);
    let err = Settings::load_with_env(&opts(Mode::Test, dir.path()), env(vars))
        .expect_err("loading should fail");
    (err, dir.path().join("test.toml"))
}

fn assert_problem(err: &ConfigError, key: &str, origin: &str, words: &str) {
    let text = err.to_string();
    let found = err
        .problems()
        .iter()
        .any(|p| p.key == key && p.origin == origin && p.message.contains(words));
    assert!(
        found,
        "expected a problem at `{key}` from {origin:?} mentioning {words:?}; got: {text}"
    );
    assert!(text.contains(&format!("`{key}`")), "{text}");
    assert!(text.contains(origin), "{text}");
}

const GAME_SERVER: &str = r#"
[[game_servers]]
id = "gs-a"
product = "chess"
api_url = "http://127.0.0.1:7101"
max_games = 10
api_key = "key-a"
"#;

// ---------------------------------------------------------------- defaults and modes

#[test]
fn defaults_are_the_contracts() {
    let dir = config_dir("");
    let s = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    assert_eq!(s.redis.url, "redis://127.0.0.1:6379/0");
    assert_eq!(s.redis.key_prefix, "mm");
    assert_eq!(s.redis.connect_timeout_ms, 2000);
    assert_eq!(s.redis.command_timeout_ms, 2000);
    assert_eq!(s.http.bind, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(s.http.request_timeout_secs, 10);
    assert_eq!(s.http.body_limit_bytes, 65536);
    assert_eq!(s.http.shutdown_grace_secs, 10);
    assert_eq!(
        s.http.admin_bind,
        "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
    );
    assert!(!s.http.public_metrics);
    assert!(!s.http.public_openapi);
    assert!(!s.auth.allow_header_auth_in_production);
    assert_eq!(s.auth.max_token_bytes, 4096);
    assert_eq!(s.auth.jwt_issuer, None);
    assert_eq!(s.auth.jwt_audience, None);
    assert_eq!(
        (
            s.consumer.dead_letter_max_len,
            s.consumer.dead_consumer_idle_secs
        ),
        (100_000, 3600)
    );
    assert_eq!(s.audit.max_len, 100_000);
    assert_eq!(s.log.max_files, 14);
    assert_eq!(s.auth.mode, AuthMode::Header);
    assert!(s.auth.jwt_secret.is_none());
    assert_eq!(s.lobby, LobbySettings::default());
    assert_eq!(s.lobby.max_capacity, 16);
    assert_eq!(s.lobby.reservation_ttl_secs, 30);
    assert_eq!(s.lobby.tombstone_ttl_secs, 3600);
    assert_eq!(s.lobby.list_max_staleness_ms, 250);
    assert_eq!(s.lobby.quick_join_scan, 64);
    assert_eq!(s.lobby.quick_join_attempts, 3);
    assert_eq!(s.lobby.list_scan_max, 1_000);
    assert_eq!(s.lobby.feed_maxlen, 10_000);
    assert_eq!(s.lobby.view_block_ms, 1_000);
    let c = &s.curation;
    assert_eq!(
        (
            c.interval_secs,
            c.pending_timeout_secs,
            c.lobby_idle_timeout_secs
        ),
        (5, 300, 1800)
    );
    assert_eq!(c.active_idle_timeout_secs, 14400);
    assert!(!c.dry_run);
    assert_eq!((c.concurrency, c.batch_size, c.lease_secs), (16, 500, 30));
    assert_eq!(
        (
            c.reconcile_interval_secs,
            c.orphan_grace_secs,
            c.lost_grace_secs
        ),
        (60, 120, 120)
    );
    let k = &s.consumer;
    assert_eq!(k.name, None);
    assert_eq!(
        (
            k.batch_size,
            k.block_ms,
            k.claim_idle_secs,
            k.max_deliveries
        ),
        (256, 2000, 60, 5)
    );
    assert_eq!(s.events.retain_secs, 3600);
    let g = &s.game_server_client;
    assert_eq!(
        (g.connect_timeout_ms, g.request_timeout_ms, g.retries),
        (1000, 3000, 2)
    );
    assert_eq!(
        (
            g.breaker_failures,
            g.breaker_cooldown_secs,
            g.health_interval_secs
        ),
        (5, 10, 5)
    );
    assert_eq!(s.log.dir, None);
    assert_eq!(s.log.format, LogFormat::Pretty);
    assert_eq!(s.log.level, "info");
    assert_eq!(s.log.file_prefix, "matchmaker");
    assert_eq!(s.console.refresh_ms, 1000);
    assert!(!s.console.read_only);
    assert_eq!(s.console.tail_len, 500);
    assert_eq!(s.console.operator, None);
    assert!(s.game_servers.is_empty());
    assert_eq!(
        s.curation.pending_timeout(),
        std::time::Duration::from_secs(300)
    );
}

#[test]
fn shipped_development_file_is_valid_and_has_the_demo_servers() {
    let s = Settings::load_with_env(&opts(Mode::Development, &shipped_dir()), no_env()).unwrap();
    assert_eq!(s.redis.url, "redis://127.0.0.1:6390/0");
    assert_eq!(s.auth.mode, AuthMode::Header);
    assert_eq!(s.log.format, LogFormat::Pretty);
    assert_eq!(
        (
            s.curation.pending_timeout_secs,
            s.curation.lobby_idle_timeout_secs,
            s.curation.active_idle_timeout_secs
        ),
        (60, 120, 300)
    );
    let servers: Vec<_> = s
        .game_servers
        .iter()
        .map(|g| {
            (
                g.id.as_str(),
                g.product.as_str(),
                g.api_url.as_str(),
                g.socket_url.as_str(),
                g.region.as_deref(),
                g.max_games,
                g.api_key.expose_secret(),
            )
        })
        .collect();
    assert_eq!(
        servers,
        vec![
            (
                "gs-chess-1",
                "chess",
                "http://127.0.0.1:7101",
                "",
                Some("eu"),
                1000,
                "dev-chess-key-change-me"
            ),
            (
                "gs-poker-1",
                "poker",
                "http://127.0.0.1:7102",
                "",
                Some("us"),
                1000,
                "dev-poker-key-change-me"
            ),
        ]
    );
    let chess = mm_common::ProductId::new("chess").unwrap();
    assert_eq!(s.game_servers_for(&chess).count(), 1);
}

#[test]
fn shipped_test_file_is_valid_and_short() {
    let s = Settings::load_with_env(&opts(Mode::Test, &shipped_dir()), no_env()).unwrap();
    assert_eq!(s.redis.url, "redis://127.0.0.1:6399/0");
    assert_eq!(s.auth.mode, AuthMode::Header);
    assert_eq!(s.log.format, LogFormat::Json);
    assert!(s.game_servers.is_empty());
    let c = &s.curation;
    assert_eq!(
        (
            c.interval_secs,
            c.pending_timeout_secs,
            c.lobby_idle_timeout_secs,
            c.active_idle_timeout_secs
        ),
        (1, 5, 10, 20)
    );
    assert_eq!(s.lobby.reservation_ttl_secs, 2);
    assert_eq!(
        s.http.admin_bind.port(),
        0,
        "each test daemon takes a free admin port"
    );
    assert!(s.http.public_metrics);
    assert!(
        s.http.public_openapi,
        "Schemathesis reads /openapi.json on the lobby port"
    );
    assert!(!s.header_auth_in_production());
}

#[test]
fn shipped_production_file_is_valid_with_a_secret() {
    let s = Settings::load_with_env(
        &opts(Mode::Production, &shipped_dir()),
        env(&[("MM_AUTH__JWT_SECRET", JWT_SECRET)]),
    )
    .unwrap();
    assert_eq!(s.auth.mode, AuthMode::Jwt);
    assert_eq!(
        s.auth.jwt_secret.as_ref().map(|x| x.expose_secret()),
        Some(JWT_SECRET)
    );
    assert_eq!(s.http.bind, "0.0.0.0:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(s.log.format, LogFormat::Json);
    assert!(s.game_servers.is_empty());
    assert_eq!(s.curation, CurationSettings::default());
    assert_eq!(s.lobby, LobbySettings::default());
    assert!(!s.http.public_metrics && !s.http.public_openapi);
    assert!(!s.auth.allow_header_auth_in_production);
    assert_eq!(s.auth.max_token_bytes, DEFAULT_MAX_TOKEN_BYTES);
    assert_eq!(
        (s.auth.jwt_issuer.as_deref(), s.auth.jwt_audience.as_deref()),
        (None, None)
    );
}

// ---------------------------------------------------------------- the stricter production mode

#[test]
fn production_refuses_header_auth_and_names_the_key_and_variable() {
    let err = Settings::load_with_env(
        &opts(Mode::Production, &shipped_dir()),
        env(&[("MM_AUTH__MODE", "header")]),
    )
    .unwrap_err();
    assert_problem(
        &err,
        "auth.mode",
        "environment variable MM_AUTH__MODE",
        "auth.allow_header_auth_in_production",
    );
    assert_eq!(err.problems().len(), 1, "{err}");
    // The same in a -c file.
    let dir = tempfile::tempdir().unwrap();
    let extra = write(dir.path(), "extra.toml", "[auth]\nmode = \"header\"\n");
    let options = LoadOptions {
        extra_file: Some(extra.clone()),
        ..opts(Mode::Production, &shipped_dir())
    };
    let err = Settings::load_with_env(&options, no_env()).unwrap_err();
    assert_problem(
        &err,
        "auth.mode",
        &format!("file {}", extra.display()),
        "must be \"jwt\" in production",
    );
}

#[test]
fn production_runs_header_auth_only_when_explicitly_allowed() {
    let s = Settings::load_with_env(
        &opts(Mode::Production, &shipped_dir()),
        env(&[
            ("MM_AUTH__MODE", "header"),
            ("MM_AUTH__ALLOW_HEADER_AUTH_IN_PRODUCTION", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(s.auth.mode, AuthMode::Header);
    assert!(s.header_auth_in_production(), "the daemon warns at start");
    // Development and test never need the flag.
    for mode in [Mode::Development, Mode::Test] {
        let s = Settings::load_with_env(&opts(mode, &shipped_dir()), no_env()).unwrap();
        assert_eq!(s.auth.mode, AuthMode::Header, "{mode}");
        assert!(!s.header_auth_in_production(), "{mode}");
    }
    // With jwt, the flag changes nothing.
    let s = Settings::load_with_env(
        &opts(Mode::Production, &shipped_dir()),
        env(&[
            ("MM_AUTH__JWT_SECRET", JWT_SECRET),
            ("MM_AUTH__ALLOW_HEADER_AUTH_IN_PRODUCTION", "true"),
        ]),
    )
    .unwrap();
    assert!(!s.header_auth_in_production());
}

#[test]
fn token_rules_are_validated() {
    let (err, file) = load_err(
        "[auth]\nmax_token_bytes = 64\njwt_issuer = \" \"\n",
        &[("MM_AUTH__JWT_AUDIENCE", "")],
    );
    let file = format!("file {}", file.display());
    assert_problem(
        &err,
        "auth.max_token_bytes",
        &file,
        "between 128 and 65536, got 64",
    );
    assert_problem(&err, "auth.jwt_issuer", &file, "must not be empty");
    assert_problem(
        &err,
        "auth.jwt_audience",
        "environment variable MM_AUTH__JWT_AUDIENCE",
        "must not be empty",
    );
    let (err, _) = load_err("", &[("MM_AUTH__MAX_TOKEN_BYTES", "70000")]);
    assert_problem(
        &err,
        "auth.max_token_bytes",
        "environment variable MM_AUTH__MAX_TOKEN_BYTES",
        "got 70000",
    );
    let dir =
        config_dir("[auth]\njwt_issuer = \"https://auth.example.com/\"\njwt_audience = \"mm\"\n");
    let s = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    assert_eq!(
        s.auth.jwt_issuer.as_deref(),
        Some("https://auth.example.com/")
    );
    assert_eq!(s.auth.jwt_audience.as_deref(), Some("mm"));
}

#[test]
fn debug_output_hides_credentials_inside_api_urls() {
    let dir = config_dir(
        "[[game_servers]]\nid = \"gs-a\"\nproduct = \"chess\"\n\
         api_url = \"https://gs-user:gs-pass@gs1.internal/api/?token=tok-123\"\n\
         max_games = 10\napi_key = \"key-a\"\n",
    );
    let s = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    assert!(
        s.game_servers[0].api_url.contains("gs-pass"),
        "calls keep it"
    );
    let debug = format!("{s:?}");
    for secret in ["gs-user", "gs-pass", "tok-123", "key-a"] {
        assert!(!debug.contains(secret), "{secret}: {debug}");
    }
    assert!(debug.contains("https://gs1.internal/api/"), "{debug}");
}

#[test]
fn production_without_a_secret_fails_clearly() {
    let err =
        Settings::load_with_env(&opts(Mode::Production, &shipped_dir()), no_env()).unwrap_err();
    let prod = format!("file {}", shipped_dir().join("production.toml").display());
    let text = err.to_string();
    assert_eq!(err.problems().len(), 1, "{text}");
    assert_eq!(err.problems()[0].key, "auth.jwt_secret");
    assert!(text.contains("MM_AUTH__JWT_SECRET"), "{text}");
    assert!(
        text.contains(&prod),
        "blames the file that set jwt mode: {text}"
    );
}

#[test]
fn the_console_loads_production_without_the_api_sections_it_never_reads() {
    let console = |vars: &[(&str, &str)]| {
        Settings::load_with_env(
            &LoadOptions {
                program: Program::Console,
                ..opts(Mode::Production, &shipped_dir())
            },
            env(vars),
        )
    };
    // No JWT secret, and [auth], [http], [limits] values the daemon refuses: the console
    // neither reads nor checks them (contract section 7.3).
    let api_only = [
        ("MM_AUTH__MAX_TOKEN_BYTES", "1"),
        ("MM_HTTP__MAX_CONNECTIONS", "0"),
        ("MM_HTTP__MAX_HEADER_BYTES", "10"),
        ("MM_LIMITS__MAX_TRACKED_CLIENTS", "0"),
        ("MM_REDIS__RETRY_BUDGET_MS", "40000"),
    ];
    let settings = console(&api_only).expect("the console ignores the API's sections");
    assert!(settings.auth.jwt_secret.is_none());

    // The daemon, with the same layers, refuses each of them.
    let err = Settings::load_with_env(&opts(Mode::Production, &shipped_dir()), env(&api_only))
        .unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    for key in [
        "auth.jwt_secret",
        "auth.max_token_bytes",
        "http.max_connections",
        "http.max_header_bytes",
        "limits.max_tracked_clients",
        "redis.retry_budget_ms",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }

    // What the console does read is still checked, naming the key and the layer.
    let err = console(&[
        ("MM_REDIS__URL", "http://not-redis"),
        ("MM_CONSOLE__REFRESH_MS", "1"),
        ("MM_CURATION__PENDING_TIMEOUT_SECS", "0"),
    ])
    .unwrap_err();
    assert_problem(
        &err,
        "redis.url",
        "environment variable MM_REDIS__URL",
        "scheme",
    );
    assert_problem(
        &err,
        "console.refresh_ms",
        "environment variable MM_CONSOLE__REFRESH_MS",
        "at least",
    );
    assert_problem(
        &err,
        "curation.pending_timeout_secs",
        "environment variable MM_CURATION__PENDING_TIMEOUT_SECS",
        "greater than 0",
    );
    assert_eq!(err.problems().len(), 3, "{err}");
}

#[test]
fn short_jwt_secret_is_refused_without_echoing_it() {
    let err = Settings::load_with_env(
        &opts(Mode::Production, &shipped_dir()),
        env(&[("MM_AUTH__JWT_SECRET", "too-short-secret")]),
    )
    .unwrap_err();
    assert_problem(
        &err,
        "auth.jwt_secret",
        "environment variable MM_AUTH__JWT_SECRET",
        "at least 32 bytes",
    );
    assert!(!err.to_string().contains("too-short-secret"), "{err}");
}

#[test]
fn builtin_copies_are_the_shipped_files() {
    for mode in Mode::ALL {
        let on_disk = std::fs::read_to_string(shipped_dir().join(mode.file_name())).unwrap();
        assert_eq!(mode.builtin_toml(), on_disk, "{mode}");
    }
}

#[test]
fn missing_mode_file_in_default_dir_falls_back_to_builtin() {
    // `cargo test` runs in the package directory, which has no `config/` subdirectory.
    assert!(!Path::new(DEFAULT_CONFIG_DIR).join("test.toml").exists());
    let s = Settings::load_with_env(&LoadOptions::new(Mode::Test), no_env()).unwrap();
    assert_eq!(s.provenance().mode_file, ModeFile::Builtin(Mode::Test));
    assert_eq!(s.redis.url, "redis://127.0.0.1:6399/0");
    assert!(
        s.source_description().contains("built-in test.toml"),
        "{}",
        s.source_description()
    );
}

#[test]
fn builtin_origin_is_named_in_errors() {
    let err = Settings::load_with_env(&LoadOptions::new(Mode::Production), no_env()).unwrap_err();
    assert!(
        err.to_string().contains("built-in production.toml"),
        "{err}"
    );
}

#[test]
fn explicit_config_dir_must_hold_the_mode_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Settings::load_with_env(&opts(Mode::Production, dir.path()), no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::FileNotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&dir.path().join("production.toml").display().to_string()),
        "{err}"
    );
}

// ---------------------------------------------------------------- layering

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = config_dir("[lobby]\nmax_capacity = 10\n[curation]\ninterval_secs = 7\n");
    let extra = write(
        dir.path(),
        "extra.toml",
        "[lobby]\nmax_capacity = 20\n[http]\nbind = \"0.0.0.0:9000\"\n",
    );

    let mode_only = opts(Mode::Test, dir.path());
    let s = Settings::load_with_env(&mode_only, no_env()).unwrap();
    assert_eq!(s.lobby.max_capacity, 10);
    assert_eq!(
        s.provenance().mode_file,
        ModeFile::Disk(dir.path().join("test.toml"))
    );

    let with_extra = LoadOptions {
        extra_file: Some(extra.clone()),
        ..mode_only
    };
    let s = Settings::load_with_env(&with_extra, no_env()).unwrap();
    assert_eq!(s.lobby.max_capacity, 20);
    assert_eq!(
        s.curation.interval_secs, 7,
        "mode-file key survives the extra file"
    );
    assert_eq!(s.http.bind.port(), 9000);
    assert_eq!(
        s.lobby.tombstone_ttl_secs, 3600,
        "untouched keys keep the default"
    );

    let s = Settings::load_with_env(
        &with_extra,
        env(&[
            ("MM_LOBBY__MAX_CAPACITY", "30"),
            ("MM_HTTP__BIND", "127.0.0.1:9100"),
            ("MM_REDIS__URL", "redis+unix:///tmp/redis.sock"),
            ("MM_REDIS__KEY_PREFIX", "mmtest"),
            ("MM_CURATION__DRY_RUN", "true"),
            ("MM_CONSUMER__NAME", "12345"),
            ("MM_LOG__DIR", "/tmp/mm-logs"),
        ]),
    )
    .unwrap();
    assert_eq!(s.lobby.max_capacity, 30);
    assert_eq!(s.http.bind, "127.0.0.1:9100".parse::<SocketAddr>().unwrap());
    assert_eq!(s.redis.url, "redis+unix:///tmp/redis.sock");
    assert_eq!(s.redis.key_prefix, "mmtest");
    assert!(s.curation.dry_run);
    assert_eq!(
        s.consumer.name.as_deref(),
        Some("12345"),
        "digits stay a string"
    );
    assert_eq!(s.log.dir.as_deref(), Some(Path::new("/tmp/mm-logs")));
    assert_eq!(s.curation.interval_secs, 7);

    let p = s.provenance();
    assert_eq!(p.extra_file.as_deref(), Some(extra.as_path()));
    assert_eq!(p.env_vars.len(), 7);
    let described = s.source_description();
    assert!(described.starts_with("mode test from file "), "{described}");
    assert!(
        described.contains(&extra.display().to_string()),
        "{described}"
    );
    assert!(described.contains("MM_LOBBY__MAX_CAPACITY"), "{described}");
    assert!(
        !described.contains("mmtest"),
        "names only, no values: {described}"
    );
}

#[test]
fn extra_file_can_add_game_servers_and_a_secret() {
    let dir = config_dir("");
    let extra = write(
        dir.path(),
        "local.toml",
        &format!("[auth]\nmode = \"jwt\"\njwt_secret = \"{JWT_SECRET}\"\n{GAME_SERVER}"),
    );
    let s = Settings::load_with_env(
        &LoadOptions {
            extra_file: Some(extra),
            ..opts(Mode::Test, dir.path())
        },
        no_env(),
    )
    .unwrap();
    assert_eq!(s.auth.mode, AuthMode::Jwt);
    assert_eq!(s.game_servers.len(), 1);
    assert_eq!(
        s.game_servers[0].socket_url, "",
        "socket_url defaults to empty"
    );
    assert_eq!(s.game_servers[0].region, None);
}

#[test]
fn env_entries_without_prefix_or_separator_are_ignored() {
    let dir = config_dir("");
    let s = Settings::load_with_env(
        &opts(Mode::Test, dir.path()),
        env(&[
            ("PATH", "/bin"),
            ("MM_TEST_REDIS_URL", "not a config key"),
            ("mm_lobby__max_capacity", "3"),
        ]),
    )
    .unwrap();
    assert_eq!(s.lobby.max_capacity, 16);
    assert!(s.provenance().env_vars.is_empty());
}

#[test]
fn malformed_env_names_are_refused() {
    let dir = config_dir("");
    let err = Settings::load_with_env(
        &opts(Mode::Test, dir.path()),
        env(&[("MM_LOBBY____MAX_CAPACITY", "3")]),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Env { .. }), "{err}");
    assert!(
        err.to_string().contains("MM_LOBBY____MAX_CAPACITY"),
        "{err}"
    );
}

#[test]
fn missing_extra_file_names_the_path() {
    let dir = config_dir("");
    let missing = dir.path().join("nope.toml");
    let err = Settings::load_with_env(
        &LoadOptions {
            extra_file: Some(missing.clone()),
            ..opts(Mode::Test, dir.path())
        },
        no_env(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::FileNotFound { .. }), "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn app_name_is_the_default_file_prefix_and_files_win() {
    let dir = config_dir("");
    let options = LoadOptions {
        app_name: Some("mm-console".into()),
        ..opts(Mode::Test, dir.path())
    };
    let s = Settings::load_with_env(&options, no_env()).unwrap();
    assert_eq!(s.log.file_prefix, "mm-console");

    let dir = config_dir("[log]\nfile_prefix = \"custom\"\n");
    let options = LoadOptions {
        config_dir: Some(dir.path().to_owned()),
        ..options
    };
    let s = Settings::load_with_env(&options, no_env()).unwrap();
    assert_eq!(s.log.file_prefix, "custom");
}

// ---------------------------------------------------------------- errors: what and where

#[test]
fn env_type_error_names_key_and_variable() {
    let (err, _) = load_err("", &[("MM_LOBBY__MAX_CAPACITY", "abc")]);
    assert_problem(
        &err,
        "lobby.max_capacity",
        "environment variable MM_LOBBY__MAX_CAPACITY",
        "abc",
    );
}

#[test]
fn file_type_error_names_key_and_file() {
    let (err, file) = load_err("[http]\nbind = \"localhost\"\n", &[]);
    assert_problem(&err, "http.bind", &format!("file {}", file.display()), "");
    let (err, file) = load_err("[curation]\ndry_run = \"maybe\"\n", &[]);
    assert_problem(
        &err,
        "curation.dry_run",
        &format!("file {}", file.display()),
        "",
    );
    let (err, file) = load_err("[auth]\nmode = \"oauth\"\n", &[]);
    assert_problem(
        &err,
        "auth.mode",
        &format!("file {}", file.display()),
        "oauth",
    );
}

#[test]
fn unknown_keys_are_refused() {
    let (err, file) = load_err("[lobby]\nmax_capacty = 3\n", &[]);
    assert_problem(
        &err,
        "lobby.max_capacty",
        &format!("file {}", file.display()),
        "unknown key",
    );
    let (err, file) = load_err("[lobbby]\nmax_capacity = 3\n", &[]);
    assert_problem(
        &err,
        "lobbby",
        &format!("file {}", file.display()),
        "unknown key",
    );
    let (err, _) = load_err("", &[("MM_REDIS__URI", "redis://x/0")]);
    assert_problem(
        &err,
        "redis.uri",
        "environment variable MM_REDIS__URI",
        "unknown key",
    );
    let (err, file) = load_err(&format!("{GAME_SERVER}prodcut = \"x\"\n"), &[]);
    assert_problem(
        &err,
        "game_servers[0].prodcut",
        &format!("file {}", file.display()),
        "unknown key",
    );
}

#[test]
fn toml_syntax_errors_name_the_file_and_line() {
    let (err, file) = load_err("[lobby]\nmax_capacity = = 3\n", &[]);
    match &err {
        ConfigError::Syntax { origin, message } => {
            assert_eq!(origin, &format!("file {}", file.display()));
            assert!(message.contains("line 2"), "{message}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn game_server_errors_name_the_index() {
    let two = format!(
        "{GAME_SERVER}\n[[game_servers]]\nid = \"gs-b\"\nproduct = \"chess\"\n\
         api_url = \"ftp://example.com\"\nmax_games = 10\napi_key = \"key-b\"\n"
    );
    let (err, file) = load_err(&two, &[]);
    assert_problem(
        &err,
        "game_servers[1].api_url",
        &format!("file {}", file.display()),
        "scheme \"ftp\"",
    );

    let missing_key = GAME_SERVER.replace("api_key = \"key-a\"\n", "");
    let (err, file) = load_err(&missing_key, &[]);
    assert_problem(
        &err,
        "game_servers[0].api_key",
        &format!("file {}", file.display()),
        "missing field",
    );

    let bad_product = GAME_SERVER.replace("\"chess\"", "\"Chess!\"");
    let (err, file) = load_err(&bad_product, &[]);
    assert_problem(
        &err,
        "game_servers[0].product",
        &format!("file {}", file.display()),
        "product id",
    );
}

#[test]
fn game_server_rules() {
    let dup = format!("{GAME_SERVER}{GAME_SERVER}");
    let (err, file) = load_err(&dup, &[]);
    assert_problem(
        &err,
        "game_servers[1].id",
        &format!("file {}", file.display()),
        "duplicate server id \"gs-a\"",
    );

    let origin = |f: &Path| format!("file {}", f.display());
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            "socket_url = \"\"",
            "socket_url = \"http://x:1/\"",
            "game_servers[0].socket_url",
            "scheme \"http\"",
        ),
        (
            "max_games = 10",
            "max_games = 0",
            "game_servers[0].max_games",
            "greater than 0",
        ),
        (
            "api_key = \"key-a\"",
            "api_key = \"\"",
            "game_servers[0].api_key",
            "empty",
        ),
        (
            "api_url = \"http://127.0.0.1:7101\"",
            "api_url = \"not a url\"",
            "game_servers[0].api_url",
            "not a valid URL",
        ),
        (
            "socket_url = \"\"",
            "region = \" \"",
            "game_servers[0].region",
            "empty",
        ),
    ];
    let base = format!("{GAME_SERVER}socket_url = \"\"\n");
    // Sanity: the base is valid, so each failure below is caused by its one change.
    let dir = config_dir(&base);
    Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    for (from, to, key, words) in cases {
        let (err, file) = load_err(&base.replace(from, to), &[]);
        assert_problem(&err, key, &origin(&file), words);
    }
}

#[test]
fn secret_type_errors_do_not_echo_the_value() {
    let bad = GAME_SERVER.replace("\"key-a\"", "987654321");
    let (err, file) = load_err(&bad, &[]);
    assert_problem(
        &err,
        "game_servers[0].api_key",
        &format!("file {}", file.display()),
        "secret",
    );
    assert!(!err.to_string().contains("987654321"), "{err}");
}

#[test]
fn section_rules_name_key_and_source() {
    let f = |file: &Path| format!("file {}", file.display());
    let file_cases: [(&str, &str, &str); 27] = [
        (
            "[lobby]\nfeed_maxlen = 5",
            "lobby.feed_maxlen",
            "between 100 and 10000000",
        ),
        (
            "[lobby]\nview_block_ms = 0",
            "lobby.view_block_ms",
            "between 10 and 60000",
        ),
        (
            "[consumer]\ndead_letter_max_len = 0",
            "consumer.dead_letter_max_len",
            "greater than 0",
        ),
        (
            "[consumer]\ndead_consumer_idle_secs = 0",
            "consumer.dead_consumer_idle_secs",
            "greater than 0",
        ),
        ("[audit]\nmax_len = 0", "audit.max_len", "greater than 0"),
        ("[log]\nmax_files = 0", "log.max_files", "greater than 0"),
        (
            "[http]\nbind = \"127.0.0.1:7000\"\nadmin_bind = \"127.0.0.1:7000\"",
            "http.admin_bind",
            "must differ from http.bind",
        ),
        (
            "[lobby]\nmax_capacity = 0",
            "lobby.max_capacity",
            "between 1 and 1024",
        ),
        (
            "[lobby]\nmax_capacity = 1025",
            "lobby.max_capacity",
            "got 1025",
        ),
        (
            "[lobby]\nmax_labels = 33",
            "lobby.max_labels",
            "between 0 and 32, got 33",
        ),
        (
            "[lobby]\nreservation_ttl_secs = 0",
            "lobby.reservation_ttl_secs",
            "greater than 0",
        ),
        (
            "[lobby]\ntombstone_ttl_secs = 0",
            "lobby.tombstone_ttl_secs",
            "greater than 0",
        ),
        (
            "[lobby]\nquick_join_scan = 0",
            "lobby.quick_join_scan",
            "between 1 and 1000",
        ),
        (
            "[lobby]\nquick_join_scan = 1001",
            "lobby.quick_join_scan",
            "got 1001",
        ),
        (
            "[lobby]\nquick_join_attempts = 0",
            "lobby.quick_join_attempts",
            "between 1 and 10",
        ),
        (
            "[lobby]\nquick_join_attempts = 11",
            "lobby.quick_join_attempts",
            "got 11",
        ),
        (
            "[lobby]\nlist_scan_max = 100",
            "lobby.list_scan_max",
            "between 101 and 1000000",
        ),
        (
            "[lobby]\nlist_scan_max = 1000001",
            "lobby.list_scan_max",
            "got 1000001",
        ),
        (
            "[curation]\ninterval_secs = 0",
            "curation.interval_secs",
            "greater than 0",
        ),
        (
            "[curation]\nconcurrency = 0",
            "curation.concurrency",
            "greater than 0",
        ),
        (
            "[curation]\nbatch_size = 0",
            "curation.batch_size",
            "greater than 0",
        ),
        (
            "[consumer]\nbatch_size = 10001",
            "consumer.batch_size",
            "between 1 and 10000",
        ),
        (
            "[consumer]\napply_batch_size = 257",
            "consumer.apply_batch_size",
            "between 1 and 256",
        ),
        (
            "[consumer]\nmax_deliveries = 0",
            "consumer.max_deliveries",
            "greater than 0",
        ),
        (
            "[events]\nretain_secs = 0",
            "events.retain_secs",
            "between 1 and 2592000",
        ),
        (
            "[console]\nrefresh_ms = 99",
            "console.refresh_ms",
            "at least 100",
        ),
        (
            "[console]\noperator = \" \"",
            "console.operator",
            "non-empty name",
        ),
    ];
    for (toml, key, words) in file_cases {
        let (err, file) = load_err(toml, &[]);
        assert_problem(&err, key, &f(&file), words);
    }

    let env_cases: [(&str, &str, &str, &str); 5] = [
        (
            "MM_REDIS__URL",
            "http://127.0.0.1:6379",
            "redis.url",
            "scheme \"http\"",
        ),
        ("MM_REDIS__URL", "redis+unix://", "redis.url", "socket path"),
        ("MM_REDIS__KEY_PREFIX", "mm{x}", "redis.key_prefix", "'{'"),
        ("MM_REDIS__KEY_PREFIX", "", "redis.key_prefix", "empty"),
        ("MM_LOG__LEVEL", "info,=[", "log.level", "filter directive"),
    ];
    for (var, value, key, words) in env_cases {
        let (err, _) = load_err("", &[(var, value)]);
        assert_problem(&err, key, &format!("environment variable {var}"), words);
    }
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let (err, file) = load_err(
        "[lobby]\nmax_capacity = 0\n[console]\nrefresh_ms = 1\n",
        &[("MM_REDIS__KEY_PREFIX", "a b")],
    );
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "redis.key_prefix",
            "lobby.max_capacity",
            "console.refresh_ms"
        ],
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("invalid configuration (3 problems):"),
        "{text}"
    );
    assert!(text.contains(&file.display().to_string()), "{text}");
}

#[test]
fn a_missing_secret_blames_the_layer_that_chose_jwt() {
    // jwt mode from the environment, secret nowhere: the key itself has no layer.
    let (err, _) = load_err("", &[("MM_AUTH__MODE", "jwt")]);
    assert_problem(
        &err,
        "auth.jwt_secret",
        "no layer: it is not set",
        "environment variable MM_AUTH__MODE",
    );
}

// ---------------------------------------------------------------- secrets

#[test]
fn debug_output_redacts_secrets() {
    let s = Settings::load_with_env(
        &opts(Mode::Development, &shipped_dir()),
        env(&[
            ("MM_AUTH__JWT_SECRET", JWT_SECRET),
            ("MM_AUTH__MODE", "jwt"),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.game_servers[0].api_key.expose_secret(),
        "dev-chess-key-change-me"
    );
    let debug = format!("{s:?}");
    let pretty = format!("{s:#?}");
    for text in [&debug, &pretty] {
        assert!(!text.contains("dev-chess-key-change-me"), "{text}");
        assert!(!text.contains("dev-poker-key-change-me"), "{text}");
        assert!(!text.contains(JWT_SECRET), "{text}");
        assert!(text.contains("REDACTED"), "{text}");
    }
    assert!(
        debug.contains("gs-chess-1"),
        "non-secrets stay visible: {debug}"
    );
    assert!(!s.source_description().contains(JWT_SECRET));
}

/// `deploy/matchmakerd.example.toml`, the operators' commented example, loads on top of the
/// production mode file and documents every key it sets.
#[test]
fn deploy_example_is_valid_and_every_key_is_commented() {
    let example = shipped_dir().join("../deploy/matchmakerd.example.toml");
    let options = LoadOptions {
        extra_file: Some(example.clone()),
        ..opts(Mode::Production, &shipped_dir())
    };
    let s = Settings::load_with_env(&options, env(&[("MM_AUTH__JWT_SECRET", JWT_SECRET)])).unwrap();
    assert_eq!(s.game_servers.len(), 1);
    assert_eq!(s.game_servers[0].id.as_str(), "gs-eu-1");
    assert_eq!(s.redis.url, "redis://10.0.0.5:6379/0");
    let text = std::fs::read_to_string(&example).unwrap();
    let mut previous = "";
    let mut keys = 0;
    for line in text.lines() {
        let trimmed = line.trim();
        let is_key = !trimmed.is_empty() && !trimmed.starts_with('#') && !trimmed.starts_with('[');
        if is_key {
            keys += 1;
            assert!(
                previous.starts_with('#'),
                "key line {trimmed:?} has no comment above it"
            );
        }
        previous = trimmed;
    }
    assert!(keys >= 40, "the example should set every key, found {keys}");
}

#[test]
fn reconciliation_rules_name_key_and_source() {
    let f = |file: &Path| format!("file {}", file.display());
    let cases: [(&str, &str, &str); 4] = [
        (
            "[curation]\nreconcile_interval_secs = 0",
            "curation.reconcile_interval_secs",
            "greater than 0",
        ),
        (
            "[curation]\nlost_grace_secs = 0",
            "curation.lost_grace_secs",
            "greater than 0",
        ),
        (
            "[curation]\norphan_grace_secs = 0",
            "curation.orphan_grace_secs",
            "longest create",
        ),
        // 3000 ms × (1 + 2 retries) + 2000 ms + a 5000 ms retry budget = 16 s with the
        // defaults.
        (
            "[curation]\norphan_grace_secs = 16",
            "curation.orphan_grace_secs",
            "16000 ms",
        ),
    ];
    for (toml, key, words) in cases {
        let (err, file) = load_err(toml, &[]);
        assert_problem(&err, key, &f(&file), words);
    }
    let dir = config_dir("[curation]\norphan_grace_secs = 17\n");
    let settings = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env())
        .expect("17 s outlasts the longest create");
    assert_eq!(settings.curation.orphan_grace_secs, 17);
    assert_eq!(crate::longest_create_ms(&settings), 16_000);
}

#[test]
fn limits_default_on_and_an_empty_bucket_is_refused() {
    let limits = LimitsSettings::default();
    assert_eq!(limits.max_live_games_per_player, 3);
    assert_eq!(limits.player_limits().creates_per_sec, 1.0);
    let (err, file) = load_err(
        "[limits]\ncreates_per_minute = 30\ncreate_burst = 0\n",
        &[
            ("MM_LIMITS__JOIN_BURST", "0"),
            ("MM_LIMITS__JOINS_PER_MINUTE", "5"),
        ],
    );
    assert_problem(
        &err,
        "limits.create_burst",
        &format!("file {}", file.display()),
        "at least 1 while limits.creates_per_minute = 30",
    );
    assert_problem(
        &err,
        "limits.join_burst",
        "environment variable MM_LIMITS__JOIN_BURST",
        "at least 1 while limits.joins_per_minute = 5",
    );
    // 0 turns a rate limit off, and then no burst is needed.
    let dir = config_dir("[limits]\ncreates_per_minute = 0\ncreate_burst = 0\n");
    let settings = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    assert_eq!(settings.limits.player_limits().creates_per_sec, 0.0);
}

#[test]
fn trusted_proxies_must_be_networks_or_addresses() {
    let (err, _) = load_err(
        "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\", \"proxy.local\"]\n",
        &[],
    );
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(problems[0].key, "http.trusted_proxies[2]");
    assert!(problems[0].message.contains("\"proxy.local\""), "{err}");
}

#[test]
fn connection_hygiene_defaults_and_rules() {
    let dir = config_dir("");
    let s = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    assert_eq!(s.http.header_read_timeout_ms, 10_000);
    assert_eq!(s.http.keepalive_idle_timeout_ms, 5_000);
    assert_eq!(s.http.max_connections, 4096);
    assert_eq!(s.http.max_header_bytes, 16_384);
    let f = |file: &Path| format!("file {}", file.display());
    for (toml, key, words) in [
        (
            "[http]\nheader_read_timeout_ms = 0\nkeepalive_idle_timeout_ms = 0",
            "http.header_read_timeout_ms",
            "greater than 0",
        ),
        (
            "[http]\nkeepalive_idle_timeout_ms = 0",
            "http.keepalive_idle_timeout_ms",
            "greater than 0",
        ),
        (
            "[http]\nheader_read_timeout_ms = 1000\nkeepalive_idle_timeout_ms = 2000",
            "http.keepalive_idle_timeout_ms",
            "must not exceed http.header_read_timeout_ms",
        ),
        (
            "[http]\nmax_connections = 0",
            "http.max_connections",
            "greater than 0",
        ),
        (
            "[http]\nmax_header_bytes = 100",
            "http.max_header_bytes",
            "between 1024 and 1048576",
        ),
    ] {
        let (err, file) = load_err(toml, &[]);
        assert_problem(&err, key, &f(&file), words);
    }
    let (err, _) = load_err("", &[("MM_HTTP__MAX_CONNECTIONS", "0")]);
    assert_problem(
        &err,
        "http.max_connections",
        "environment variable MM_HTTP__MAX_CONNECTIONS",
        "greater than 0",
    );
}

#[test]
fn cors_origins_default_off_and_accept_origins() {
    let dir = config_dir("");
    let s = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    assert!(s.http.cors_origins.is_empty(), "CORS is off by default");
    assert!(!s.http.cors_allow_any_origin_in_production);
    let dir = config_dir(
        "[http]\ncors_origins = [\"https://play.example.com\", \"http://localhost:5173\", \
         \"http://[::1]:8000\", \"http://192.0.2.7\"]\n",
    );
    let s = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    assert_eq!(s.http.cors_origins.len(), 4);
    let dir = config_dir("[http]\ncors_origins = [\"*\"]\n");
    let s = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    assert_eq!(s.http.cors_origins, ["*"]);
}

#[test]
fn cors_origins_must_be_origins_and_star_alone() {
    for (bad, index) in [
        ("https://play.example.com/", 0),
        ("play.example.com", 0),
        ("https://play.example.com/game", 0),
        ("ftp://play.example.com", 0),
        ("https://play.example.com:0", 0),
        ("https://user@play.example.com", 0),
        ("https://", 0),
    ] {
        let (err, _) = load_err(&format!("[http]\ncors_origins = [{bad:?}]\n"), &[]);
        let problems = err.problems();
        assert_eq!(problems.len(), 1, "{bad}: {err}");
        assert_eq!(problems[0].key, format!("http.cors_origins[{index}]"));
        assert!(problems[0].message.contains(&format!("{bad:?}")), "{err}");
    }
    let (err, _) = load_err(
        "[http]\ncors_origins = [\"*\", \"https://play.example.com\"]\n",
        &[],
    );
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.problems()[0].key, "http.cors_origins");
    assert!(err.problems()[0].message.contains("only entry"), "{err}");
}

#[test]
fn production_refuses_any_origin_unless_explicitly_allowed() {
    let extra = tempfile::tempdir().unwrap();
    let file = extra.path().join("cors.toml");
    let load = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        let options = LoadOptions {
            extra_file: Some(file.clone()),
            ..opts(Mode::Production, &shipped_dir())
        };
        Settings::load_with_env(&options, env(&[("MM_AUTH__JWT_SECRET", JWT_SECRET)]))
    };
    let err = load("[http]\ncors_origins = [\"*\"]\n").unwrap_err();
    let problem = err
        .problems()
        .iter()
        .find(|p| p.key == "http.cors_origins")
        .unwrap_or_else(|| panic!("no http.cors_origins problem: {err}"));
    assert!(
        problem
            .message
            .contains("http.cors_allow_any_origin_in_production"),
        "{err}"
    );
    assert!(problem.origin.contains("cors.toml"), "{err}");
    let s = load("[http]\ncors_origins = [\"*\"]\ncors_allow_any_origin_in_production = true\n")
        .unwrap();
    assert_eq!(s.http.cors_origins, ["*"]);
    let s = load("[http]\ncors_origins = [\"https://play.example.com\"]\n").unwrap();
    assert_eq!(s.http.cors_origins, ["https://play.example.com"]);
}

#[test]
fn cluster_nodes_and_wait_replicas_are_validated() {
    let dir = config_dir("");
    let s = Settings::load_with_env(&opts(Mode::Test, dir.path()), no_env()).unwrap();
    assert!(s.redis.cluster_nodes.is_empty(), "single Redis by default");
    assert_eq!(s.redis.wait_replicas, 0);
    assert_eq!(s.redis.wait_timeout_ms, 100);
    assert_eq!(s.redis.retry_budget_ms, 5000);
    assert_eq!(s.store_options().wait_connections, 4);
    assert_eq!(
        s.store_options().retry_budget,
        std::time::Duration::from_secs(5)
    );

    let ok = Settings::load_with_env(
        &opts(Mode::Test, config_dir("").path()),
        env(&[(
            "MM_REDIS__CLUSTER_NODES",
            "redis://10.0.0.1:7000, redis://10.0.0.2:7000",
        )]),
    )
    .unwrap();
    assert_eq!(ok.redis.cluster_nodes.len(), 2);
    assert_eq!(ok.store_options().cluster_nodes, ok.redis.cluster_nodes);

    let cases: [(&str, &str, &str); 11] = [
        (
            "[redis]\ncluster_nodes = [\"redis://u:Hunter2-first@a:7000\", \"redis://u:Hunter2-second@b:7000\"]",
            "redis.cluster_nodes",
            "one set of credentials",
        ),
        (
            "[redis]\ncluster_nodes = [\"redis+unix:///tmp/r.sock\"]",
            "redis.cluster_nodes",
            "over TCP",
        ),
        (
            "[redis]\ncluster_nodes = [\"redis://10.0.0.1\"]",
            "redis.cluster_nodes",
            "host and a port",
        ),
        (
            "[redis]\ncluster_nodes = [\"redis://10.0.0.1:7000/3\"]",
            "redis.cluster_nodes",
            "only database 0",
        ),
        (
            "[redis]\ncluster_nodes = [\"redis://a:7000\", \"rediss://b:7000\"]",
            "redis.cluster_nodes",
            "mixes redis:// and rediss://",
        ),
        (
            "[redis]\ncluster_nodes = [\"redis://a:7000\", \"redis://a:7000\"]",
            "redis.cluster_nodes",
            "listed twice",
        ),
        (
            "[redis]\nwait_replicas = 17",
            "redis.wait_replicas",
            "at most 16",
        ),
        (
            "[redis]\nwait_replicas = 1\nwait_timeout_ms = 2000",
            "redis.wait_timeout_ms",
            "shorter than redis.command_timeout_ms",
        ),
        (
            "[redis]\nwait_connections = 0",
            "redis.wait_connections",
            "between 1 and 64",
        ),
        (
            "[redis]\nretry_budget_ms = 60001",
            "redis.retry_budget_ms",
            "at most 60000 ms",
        ),
        (
            "[redis]\nretry_budget_ms = 9000\n[http]\nrequest_timeout_secs = 10",
            "redis.retry_budget_ms",
            "shorter than http.request_timeout_secs",
        ),
    ];
    for (toml, key, words) in cases {
        let (err, file) = load_err(toml, &[]);
        assert_problem(&err, key, &format!("file {}", file.display()), words);
        // A password of the cases, never a fragment a temporary file's random name could hold.
        assert!(
            !err.to_string().contains("Hunter2"),
            "a password is shown: {err}"
        );
    }
    // A refused entry is shown without its credentials.
    let (err, _) = load_err(
        "[redis]\ncluster_nodes = [\"redis://u:s3cret@10.0.0.1\"]",
        &[],
    );
    let text = err.to_string();
    assert!(text.contains("\"redis://10.0.0.1\""), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
