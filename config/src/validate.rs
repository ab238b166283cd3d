//! Semantic rules checked after the layers are merged and deserialized.
//!
//! Every rule that fails adds a [`Problem`] naming the key and the layer its value came from
//! (looked up in the merged figment), so one start reports every bad key at once. Rules that
//! concern secrets describe the secret (its length) but never print it.

use std::collections::HashMap;

use secrecy::ExposeSecret;
use tracing_subscriber::EnvFilter;

use crate::error::Problem;
use crate::load::Program;
use crate::mode::Mode;
use crate::settings::{AuthMode, Settings};

/// Shortest accepted `auth.jwt_secret`, in bytes (HS256 wants at least the hash size).
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// Largest accepted `lobby.quick_join_scan`: one quick join reads at most this many game
/// hashes inside one Redis script.
pub const MAX_QUICK_JOIN_SCAN: u32 = 1000;
/// Smallest accepted `lobby.list_scan_max`: the largest page (100 games) and the one after
/// it that says whether more follow, so a page without filters always fills.
pub const MIN_LIST_SCAN: u32 = 101;
/// Largest accepted `lobby.list_scan_max`.
pub const MAX_LIST_SCAN: u32 = 1_000_000;
/// Largest accepted `lobby.quick_join_attempts`: each attempt may wait for a game server.
pub const MAX_QUICK_JOIN_ATTEMPTS: u32 = 10;
/// Largest accepted `lobby.max_capacity`.
pub const MAX_LOBBY_CAPACITY: u32 = 1024;
/// Largest accepted `consumer.apply_batch_size`: one script call must not hold Redis long.
pub const MAX_APPLY_BATCH: usize = 256;
/// Largest accepted `consumer.batch_size`.
pub const MAX_CONSUMER_BATCH: usize = 10_000;
/// Largest accepted `events.retain_secs` (30 days).
pub const MAX_EVENTS_RETAIN_SECS: u64 = 30 * 24 * 3600;
/// Smallest accepted `auth.max_token_bytes` (a minimal signed token with `sub` and `exp`).
pub const MIN_TOKEN_BYTES: usize = 128;
/// Largest accepted `auth.max_token_bytes`.
pub const MAX_TOKEN_BYTES: usize = 65536;
/// Smallest accepted `console.refresh_ms`.
pub const MIN_CONSOLE_REFRESH_MS: u64 = 100;

const REDIS_SCHEMES: [&str; 4] = ["redis", "rediss", "redis+unix", "unix"];

struct Checker<'a> {
    origin: &'a dyn Fn(&str) -> String,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        let origin = (self.origin)(&key);
        self.problems.push(Problem {
            key,
            origin,
            message: message.into(),
        });
    }

    fn positive(&mut self, key: &str, value: u64) {
        if value == 0 {
            self.fail(key, "must be greater than 0");
        }
    }

    fn range(&mut self, key: &str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.fail(key, format!("must be between {min} and {max}, got {value}"));
        }
    }
}

/// The longest a game can exist on its server before its record does: every attempt of a
/// game-server call (`request_timeout_ms × (1 + retries)`, generous for a create, which is sent
/// once) plus the Redis write of the record (`redis.command_timeout_ms`, resent within
/// `redis.retry_budget_ms`).
pub fn longest_create_ms(settings: &Settings) -> u64 {
    let client = &settings.game_server_client;
    client
        .request_timeout_ms
        .saturating_mul(1 + u64::from(client.retries))
        .saturating_add(settings.redis.command_timeout_ms)
        .saturating_add(settings.redis.retry_budget_ms)
}

/// Smallest `http.max_header_bytes`: a browser's ordinary request head fits.
pub const MIN_HEADER_BYTES: usize = 1024;
/// Largest `http.max_header_bytes` (the HTTP stack's own ceiling is twice the setting).
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// `http.cors_origins`: each entry an origin (`scheme://host[:port]`, no path), or `"*"` alone;
/// `"*"` in production only with `http.cors_allow_any_origin_in_production`.
fn check_cors(c: &mut Checker<'_>, http: &crate::settings::HttpSettings, mode: Mode) {
    let origins = &http.cors_origins;
    let any = origins.iter().any(|origin| origin == "*");
    if any && origins.len() > 1 {
        c.fail(
            "http.cors_origins",
            "\"*\" must be the only entry (it already allows every origin)",
        );
    }
    if any
        && origins.len() == 1
        && mode == Mode::Production
        && !http.cors_allow_any_origin_in_production
    {
        c.fail(
            "http.cors_origins",
            "must not be [\"*\"] in production: list the origins of your game's pages \
             (set http.cors_allow_any_origin_in_production = true to allow any origin anyway)",
        );
    }
    for (index, origin) in origins.iter().enumerate() {
        if origin != "*" && !is_origin(origin) {
            c.fail(
                format!("http.cors_origins[{index}]"),
                format!(
                    "must be an origin like \"https://play.example.com\" or \
                     \"http://localhost:5173\" (scheme http or https, a host, an optional port, \
                     no path or trailing slash), or \"*\", got {origin:?}"
                ),
            );
        }
    }
}

/// Whether `text` is a serialised origin: `http(s)://host[:port]` with no path, query, user
/// info or whitespace (the host a name, an IPv4 address or a bracketed IPv6 address).
fn is_origin(text: &str) -> bool {
    let Some(authority) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, tail)) => (
                address.parse::<std::net::Ipv6Addr>().is_ok(),
                if tail.is_empty() {
                    None
                } else {
                    Some(tail.strip_prefix(':').unwrap_or("not a port"))
                },
            ),
            None => (false, None),
        },
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let name_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-'));
            (name_ok, port)
        }
    };
    host_ok && port.is_none_or(|port| port.parse::<u16>().is_ok_and(|p| p > 0))
}

/// Checks every rule of the sections `program` reads for a process running in `mode`;
/// `origin` names the layer a dotted key's value came from.
pub(crate) fn validate(
    settings: &Settings,
    mode: Mode,
    program: Program,
    origin: &dyn Fn(&str) -> String,
) -> Vec<Problem> {
    let mut c = Checker {
        origin,
        problems: Vec::new(),
    };

    // [redis]
    let redis = &settings.redis;
    if let Err(message) = check_redis_url(&redis.url) {
        c.fail("redis.url", message);
    }
    if redis.key_prefix.is_empty() {
        c.fail("redis.key_prefix", "must not be empty");
    } else if let Some(bad) = redis
        .key_prefix
        .chars()
        .find(|ch| matches!(ch, '{' | '}') || ch.is_whitespace())
    {
        c.fail(
            "redis.key_prefix",
            format!("must not contain {bad:?} (braces are hash tags; no whitespace)"),
        );
    }
    c.positive("redis.connect_timeout_ms", redis.connect_timeout_ms);
    c.positive("redis.command_timeout_ms", redis.command_timeout_ms);
    if let Err(message) = check_cluster_nodes(&redis.cluster_nodes) {
        c.fail("redis.cluster_nodes", message);
    }
    if redis.wait_replicas > MAX_WAIT_REPLICAS {
        c.fail(
            "redis.wait_replicas",
            format!(
                "must be at most {MAX_WAIT_REPLICAS}, got {}",
                redis.wait_replicas
            ),
        );
    }
    if redis.wait_replicas > 0 {
        c.positive("redis.wait_timeout_ms", redis.wait_timeout_ms);
        if redis.wait_timeout_ms >= redis.command_timeout_ms {
            c.fail(
                "redis.wait_timeout_ms",
                format!(
                    "must be shorter than redis.command_timeout_ms ({} ms), got {} ms: \
                     a WAIT longer than the reply timeout would fail the write's answer",
                    redis.command_timeout_ms, redis.wait_timeout_ms
                ),
            );
        }
    }

    c.range(
        "redis.wait_connections",
        redis.wait_connections as u64,
        1,
        MAX_WAIT_CONNECTIONS as u64,
    );
    if redis.retry_budget_ms > MAX_RETRY_BUDGET_MS {
        c.fail(
            "redis.retry_budget_ms",
            format!(
                "must be at most {MAX_RETRY_BUDGET_MS} ms, got {} ms",
                redis.retry_budget_ms
            ),
        );
    } else if program.serves_the_api()
        && redis.retry_budget_ms + redis.command_timeout_ms
            >= settings.http.request_timeout_secs.saturating_mul(1000)
    {
        c.fail(
            "redis.retry_budget_ms",
            format!(
                "with redis.command_timeout_ms ({} ms) it must be shorter than \
                 http.request_timeout_secs ({} s), got {} ms: a request would time out \
                 before the store gives up",
                redis.command_timeout_ms, settings.http.request_timeout_secs, redis.retry_budget_ms
            ),
        );
    }

    if program.serves_the_api() {
        check_api_sections(&mut c, settings, mode);
    }

    // [curation]
    let cur = &settings.curation;
    c.positive("curation.interval_secs", cur.interval_secs);
    c.positive("curation.pending_timeout_secs", cur.pending_timeout_secs);
    c.positive(
        "curation.lobby_idle_timeout_secs",
        cur.lobby_idle_timeout_secs,
    );
    c.positive(
        "curation.active_idle_timeout_secs",
        cur.active_idle_timeout_secs,
    );
    c.positive("curation.concurrency", cur.concurrency as u64);
    c.positive("curation.batch_size", cur.batch_size as u64);
    c.positive("curation.lease_secs", cur.lease_secs);
    c.positive(
        "curation.reconcile_interval_secs",
        cur.reconcile_interval_secs,
    );
    c.positive("curation.lost_grace_secs", cur.lost_grace_secs);
    // An orphan is a game a server holds without a live record. A create in flight looks
    // like one until its record is written, so the grace must outlast the longest create.
    let longest_create_ms = longest_create_ms(settings);
    if cur.orphan_grace_secs.saturating_mul(1000) <= longest_create_ms {
        c.fail(
            "curation.orphan_grace_secs",
            format!(
                "must be longer than the longest create ({longest_create_ms} ms: \
                 game_server_client.request_timeout_ms × (1 + game_server_client.retries) + \
                 redis.command_timeout_ms + redis.retry_budget_ms), got {} s",
                cur.orphan_grace_secs
            ),
        );
    }

    // [consumer]
    let consumer = &settings.consumer;
    if consumer
        .name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        c.fail(
            "consumer.name",
            "must not be empty (leave it unset to derive one from the hostname)",
        );
    }
    c.range(
        "consumer.batch_size",
        consumer.batch_size as u64,
        1,
        MAX_CONSUMER_BATCH as u64,
    );
    c.positive("consumer.max_deliveries", consumer.max_deliveries);
    c.range(
        "consumer.apply_batch_size",
        consumer.apply_batch_size as u64,
        1,
        MAX_APPLY_BATCH as u64,
    );

    c.positive("consumer.dead_letter_max_len", consumer.dead_letter_max_len);
    c.positive(
        "consumer.dead_consumer_idle_secs",
        consumer.dead_consumer_idle_secs,
    );

    // [audit]
    c.positive("audit.max_len", settings.audit.max_len);

    // [events]
    c.range(
        "events.retain_secs",
        settings.events.retain_secs,
        1,
        MAX_EVENTS_RETAIN_SECS,
    );

    // [game_server_client]
    let gsc = &settings.game_server_client;
    c.positive(
        "game_server_client.connect_timeout_ms",
        gsc.connect_timeout_ms,
    );
    c.positive(
        "game_server_client.request_timeout_ms",
        gsc.request_timeout_ms,
    );
    c.positive(
        "game_server_client.breaker_failures",
        gsc.breaker_failures.into(),
    );
    c.positive(
        "game_server_client.health_interval_secs",
        gsc.health_interval_secs,
    );

    // [log]
    let log = &settings.log;
    if log.level.trim().is_empty() {
        c.fail("log.level", "must not be empty (for example \"info\")");
    } else if let Err(e) = EnvFilter::builder().parse(&log.level) {
        c.fail("log.level", format!("is not a valid filter directive: {e}"));
    }
    if log.file_prefix.is_empty()
        || log
            .file_prefix
            .chars()
            .any(|ch| matches!(ch, '/' | '\\') || ch.is_whitespace() || ch.is_control())
    {
        c.fail(
            "log.file_prefix",
            "must be a non-empty file name without path separators or whitespace",
        );
    }

    c.positive("log.max_files", log.max_files as u64);

    // [console]
    if settings.console.refresh_ms < MIN_CONSOLE_REFRESH_MS {
        c.fail(
            "console.refresh_ms",
            format!(
                "must be at least {MIN_CONSOLE_REFRESH_MS}, got {}",
                settings.console.refresh_ms
            ),
        );
    }

    if let Some(operator) = &settings.console.operator
        && (operator.trim().is_empty() || operator.chars().any(char::is_control))
    {
        c.fail(
            "console.operator",
            "must be a non-empty name without control characters (or left unset: the login)",
        );
    }

    // [[game_servers]]
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    for (i, server) in settings.game_servers.iter().enumerate() {
        let key = |field: &str| format!("game_servers[{i}].{field}");
        if let Some(first) = first_index.insert(server.id.as_str(), i) {
            // Keep the first occurrence as the reference for later duplicates.
            first_index.insert(server.id.as_str(), first);
            c.fail(
                key("id"),
                format!(
                    "duplicate server id {:?} (already used by game_servers[{first}])",
                    server.id.as_str()
                ),
            );
        }
        if let Err(message) = check_url(&server.api_url, &["http", "https"]) {
            c.fail(key("api_url"), message);
        }
        if !server.socket_url.is_empty()
            && let Err(message) = check_url(&server.socket_url, &["ws", "wss"])
        {
            c.fail(
                key("socket_url"),
                format!("{message} (or leave it empty: the server answers one per game)"),
            );
        }
        if server
            .region
            .as_deref()
            .is_some_and(|r| r.trim().is_empty())
        {
            c.fail(key("region"), "must not be empty (leave it out instead)");
        }
        if server.max_games == 0 {
            c.fail(key("max_games"), "must be greater than 0");
        }
        if server.api_key.expose_secret().is_empty() {
            c.fail(key("api_key"), "must not be empty");
        }
    }

    c.problems
}

/// `[http]`, `[auth]` and `[limits]`: the lobby API's settings, which only `matchmakerd` reads.
fn check_api_sections(c: &mut Checker<'_>, settings: &Settings, mode: Mode) {
    // [http]
    c.positive(
        "http.request_timeout_secs",
        settings.http.request_timeout_secs,
    );
    c.positive(
        "http.body_limit_bytes",
        settings.http.body_limit_bytes as u64,
    );
    c.positive(
        "http.header_read_timeout_ms",
        settings.http.header_read_timeout_ms,
    );
    c.positive(
        "http.keepalive_idle_timeout_ms",
        settings.http.keepalive_idle_timeout_ms,
    );
    if settings.http.keepalive_idle_timeout_ms > settings.http.header_read_timeout_ms {
        c.fail(
            "http.keepalive_idle_timeout_ms",
            format!(
                "must not exceed http.header_read_timeout_ms ({}): a connection waiting for its \
                 next request is closed at the header-read timeout anyway",
                settings.http.header_read_timeout_ms
            ),
        );
    }
    c.positive("http.max_connections", settings.http.max_connections as u64);
    c.range(
        "http.max_header_bytes",
        settings.http.max_header_bytes as u64,
        MIN_HEADER_BYTES as u64,
        MAX_HEADER_BYTES as u64,
    );
    if settings.http.admin_bind.port() != 0 && settings.http.admin_bind == settings.http.bind {
        c.fail(
            "http.admin_bind",
            format!(
                "must differ from http.bind ({}): the admin listener is a port of its own",
                settings.http.bind
            ),
        );
    }

    // [auth]
    let auth = &settings.auth;
    if auth.mode == AuthMode::Jwt {
        match &auth.jwt_secret {
            None => {
                let mode_origin = (c.origin)("auth.mode");
                c.problems.push(Problem {
                    key: "auth.jwt_secret".into(),
                    origin: "no layer: it is not set".into(),
                    message: format!(
                        "is required because auth.mode = \"jwt\" (set in {mode_origin}); \
                         provide it with MM_AUTH__JWT_SECRET or in a -c file"
                    ),
                });
            }
            Some(secret) if secret.expose_secret().len() < MIN_JWT_SECRET_BYTES => {
                let len = secret.expose_secret().len();
                c.fail(
                    "auth.jwt_secret",
                    format!(
                        "must be at least {MIN_JWT_SECRET_BYTES} bytes long for auth.mode = \
                         \"jwt\", got {len} bytes"
                    ),
                );
            }
            Some(_) => {}
        }
    }
    if mode == Mode::Production
        && auth.mode == AuthMode::Header
        && !auth.allow_header_auth_in_production
    {
        c.fail(
            "auth.mode",
            "must be \"jwt\" in production: \"header\" lets any client act as any player \
             (set auth.allow_header_auth_in_production = true to run it anyway)",
        );
    }
    c.range(
        "auth.max_token_bytes",
        auth.max_token_bytes as u64,
        MIN_TOKEN_BYTES as u64,
        MAX_TOKEN_BYTES as u64,
    );
    for (key, value) in [
        ("auth.jwt_issuer", &auth.jwt_issuer),
        ("auth.jwt_audience", &auth.jwt_audience),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            c.fail(
                key,
                "must not be empty (leave it unset to accept any value)",
            );
        }
    }

    // [lobby]
    let lobby = &settings.lobby;
    c.range(
        "lobby.max_capacity",
        lobby.max_capacity.into(),
        1,
        MAX_LOBBY_CAPACITY.into(),
    );
    c.range(
        "lobby.max_labels",
        lobby.max_labels.into(),
        0,
        mm_common::labels::MAX_LABELS_LIMIT.into(),
    );
    c.positive("lobby.reservation_ttl_secs", lobby.reservation_ttl_secs);
    c.positive("lobby.tombstone_ttl_secs", lobby.tombstone_ttl_secs);
    c.range(
        "lobby.quick_join_scan",
        lobby.quick_join_scan.into(),
        1,
        MAX_QUICK_JOIN_SCAN.into(),
    );
    c.range(
        "lobby.quick_join_attempts",
        lobby.quick_join_attempts.into(),
        1,
        MAX_QUICK_JOIN_ATTEMPTS.into(),
    );
    c.range(
        "lobby.list_scan_max",
        lobby.list_scan_max.into(),
        MIN_LIST_SCAN.into(),
        MAX_LIST_SCAN.into(),
    );
    c.range("lobby.feed_maxlen", lobby.feed_maxlen, 100, 10_000_000);
    c.range("lobby.view_block_ms", lobby.view_block_ms, 10, 60_000);

    // [limits]
    let limits = &settings.limits;
    for (rate_key, rate, burst_key, burst) in [
        (
            "limits.creates_per_minute",
            limits.creates_per_minute,
            "limits.create_burst",
            limits.create_burst,
        ),
        (
            "limits.joins_per_minute",
            limits.joins_per_minute,
            "limits.join_burst",
            limits.join_burst,
        ),
        (
            "limits.client_failures_per_minute",
            limits.client_failures_per_minute,
            "limits.client_failure_burst",
            limits.client_failure_burst,
        ),
    ] {
        if rate > 0 && burst == 0 {
            c.fail(
                burst_key,
                format!(
                    "must be at least 1 while {rate_key} = {rate} (0 turns the rate limit off)"
                ),
            );
        }
    }

    c.positive(
        "limits.max_tracked_clients",
        limits.max_tracked_clients as u64,
    );
    for (index, proxy) in settings.http.trusted_proxies.iter().enumerate() {
        if proxy.parse::<ipnet::IpNet>().is_err() && proxy.parse::<std::net::IpAddr>().is_err() {
            c.fail(
                format!("http.trusted_proxies[{index}]"),
                format!("must be an IP network (10.0.0.0/8) or address, got {proxy:?}"),
            );
        }
    }

    check_cors(c, &settings.http, mode);
}

/// The most connections `redis.wait_connections` may keep.
const MAX_WAIT_CONNECTIONS: usize = 64;

/// The longest `redis.retry_budget_ms`: a failover that takes longer is an outage.
const MAX_RETRY_BUDGET_MS: u64 = 60_000;

/// The most replicas `redis.wait_replicas` may ask for.
const MAX_WAIT_REPLICAS: u32 = 16;

/// `redis.cluster_nodes`: each a TCP `redis://` or `rediss://` URL with a host and a port,
/// database 0 (a cluster has no other), all of one scheme and of one user name and password
/// (the cluster client uses one set of credentials), none twice. Messages show an entry
/// without its credentials.
fn check_cluster_nodes(nodes: &[String]) -> Result<(), String> {
    let mut schemes = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut first_credentials = None;
    for (index, raw) in nodes.iter().enumerate() {
        let url =
            url::Url::parse(raw).map_err(|e| format!("entry {index} is not a valid URL: {e}"))?;
        let shown = without_credentials(&url);
        let scheme = url.scheme();
        if !matches!(scheme, "redis" | "rediss") {
            return Err(format!(
                "entry {index} ({shown:?}): a cluster node is reached over TCP, \
                 with redis:// or rediss://, not {scheme}://"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) || url.port().is_none() {
            return Err(format!(
                "entry {index} ({shown:?}) needs a host and a port (redis://host:port)"
            ));
        }
        if !matches!(url.path(), "" | "/" | "/0") {
            return Err(format!(
                "entry {index} ({shown:?}): a Redis Cluster has only database 0"
            ));
        }
        let credentials = (url.username().to_owned(), url.password().map(str::to_owned));
        match &first_credentials {
            None => first_credentials = Some(credentials),
            Some(first) if *first != credentials => {
                return Err(format!(
                    "entry {index} ({shown:?}) carries another user name or password than \
                     entry 0: the cluster client uses one set of credentials for every node"
                ));
            }
            Some(_) => {}
        }
        let address = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port().unwrap_or(0)
        );
        if !seen.insert(address) {
            return Err(format!("entry {index} ({shown:?}) is listed twice"));
        }
        schemes.insert(scheme.to_owned());
    }
    if schemes.len() > 1 {
        return Err(
            "mixes redis:// and rediss://: every node of one cluster is reached the same way"
                .to_owned(),
        );
    }
    Ok(())
}

/// `url` as a message may show it: without user name and password.
fn without_credentials(url: &url::Url) -> String {
    let mut shown = url.clone();
    // Both only fail for URLs that cannot carry credentials in the first place.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.into()
}

fn check_redis_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a valid URL: {e}"))?;
    let scheme = url.scheme();
    if !REDIS_SCHEMES.contains(&scheme) {
        return Err(format!(
            "scheme {scheme:?} is not one of {}",
            REDIS_SCHEMES.join(", ")
        ));
    }
    let unix = matches!(scheme, "redis+unix" | "unix");
    if unix && (url.path().is_empty() || url.path() == "/") {
        return Err(format!("a {scheme}:// URL needs a socket path"));
    }
    if !unix && url.host_str().is_none_or(str::is_empty) {
        return Err(format!("a {scheme}:// URL needs a host"));
    }
    Ok(())
}

fn check_url(raw: &str, schemes: &[&str]) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a valid URL: {e}"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "scheme {:?} is not one of {}",
            url.scheme(),
            schemes.join(", ")
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    Ok(())
}
