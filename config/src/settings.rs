//! The typed settings tree and its built-in defaults.
//!
//! Every section has a `Default` that matches the contract's defaults (contract section 7); serde fills any key a
//! layer leaves out from it, so the mode files only set what differs. Every struct refuses
//! unknown keys, so a typo in a file or in an `MM_` variable is an error, not a silent no-op.
//!
//! Secrets (`auth.jwt_secret`, `game_servers[].api_key`) are [`SecretString`]s: their `Debug`
//! prints `[REDACTED]`, so `{:?}` of a whole [`Settings`] is safe to log.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use mm_common::limits::PlayerLimits;
use mm_common::{ProductId, ServerId};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::load::Provenance;

/// The whole configuration of `matchmakerd` and `mm-console`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the shared state lives.
    pub redis: RedisSettings,
    /// The lobby HTTP API listener.
    pub http: HttpSettings,
    /// How players are identified.
    pub auth: AuthSettings,
    /// Game-record rules.
    pub lobby: LobbySettings,
    /// The curator: which stale games get deleted, and how often it looks.
    pub curation: CurationSettings,
    /// The event-stream consumer.
    pub consumer: ConsumerSettings,
    /// The product event streams: how much history is kept.
    pub events: EventsSettings,
    /// Calls to game servers' management APIs.
    pub game_server_client: GameServerClientSettings,
    /// Logging output.
    pub log: LogSettings,
    /// The operator console.
    pub console: ConsoleSettings,
    /// The operator audit stream `P:audit`.
    pub audit: AuditSettings,
    /// Per-player quotas and rates (contract section 7, `[limits]`).
    pub limits: LimitsSettings,
    /// Registered game servers (`[[game_servers]]` tables).
    pub game_servers: Vec<GameServerSettings>,
    /// Which layers these settings came from (not a configuration key).
    #[serde(skip)]
    pub(crate) provenance: Provenance,
}

/// `[redis]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:port/db`, `rediss://…`, `redis+unix:///path` or `unix:///path`.
    pub url: String,
    /// The `P` of every key (`P:{product}:lobby`, …).
    pub key_prefix: String,
    /// Connection establishment timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Per-command response timeout, in milliseconds.
    pub command_timeout_ms: u64,
    /// Seed nodes of a Redis Cluster (`redis://host:port`); empty (the default): the single
    /// Redis at `url`. When set, `url` is not used. From the environment, a comma-separated
    /// list (`MM_REDIS__CLUSTER_NODES=redis://a:7000,redis://b:7000`).
    #[serde(deserialize_with = "de_string_list")]
    pub cluster_nodes: Vec<String>,
    /// Replicas a create or seat reservation waits for (`WAIT`) before it is answered; 0 (the
    /// default): replication stays asynchronous.
    pub wait_replicas: u32,
    /// How long such a wait may take, in milliseconds.
    pub wait_timeout_ms: u64,
    /// Dedicated connections kept for writes that wait for replicas (a write and its `WAIT`
    /// share one), opened on first use while `wait_replicas` > 0.
    pub wait_connections: usize,
    /// How long after a command's first attempt the store may still resend it after a
    /// transient failure (a failover, a slot migration, a restart), in milliseconds; 0: never.
    pub retry_budget_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".into(),
            key_prefix: "mm".into(),
            connect_timeout_ms: 2000,
            command_timeout_ms: 2000,
            cluster_nodes: Vec::new(),
            wait_replicas: 0,
            wait_timeout_ms: 100,
            retry_budget_ms: 5000,
            wait_connections: 4,
        }
    }
}

impl RedisSettings {
    /// `connect_timeout_ms` as a [`Duration`].
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// `command_timeout_ms` as a [`Duration`].
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }
    /// `wait_timeout_ms` as a [`Duration`].
    pub fn wait_timeout(&self) -> Duration {
        Duration::from_millis(self.wait_timeout_ms)
    }
    /// `retry_budget_ms` as a [`Duration`].
    pub fn retry_budget(&self) -> Duration {
        Duration::from_millis(self.retry_budget_ms)
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address the lobby API listens on.
    pub bind: SocketAddr,
    /// A request that takes longer is answered with an error.
    pub request_timeout_secs: u64,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// How long in-flight requests may finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`), served by every
    /// process whatever its roles; port 0 picks a free port (tests).
    pub admin_bind: SocketAddr,
    /// Whether the lobby API's port (`bind`) also serves `/metrics` (development and test);
    /// production keeps metrics off the public port.
    pub public_metrics: bool,
    /// Whether the lobby API's port (`bind`) also serves `/openapi.json` (development and
    /// test); the admin listener always serves it, and production keeps it off the public port.
    pub public_openapi: bool,
    /// Networks (`10.0.0.0/8`) or addresses of reverse proxies: only when a request's peer is
    /// one of them is its client address taken from `X-Forwarded-For` / `Forwarded`.
    pub trusted_proxies: Vec<String>,
    /// A connection must deliver a complete request head within this long of being accepted
    /// or of its previous answer, or it is closed (slowloris).
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request in flight for this long is closed.
    pub keepalive_idle_timeout_ms: u64,
    /// Most connections open at once on each listener; beyond it new connections wait in the
    /// listen backlog until one closes.
    pub max_connections: usize,
    /// Largest request head (header names and values) accepted; a larger one is answered
    /// `431 header_too_large`.
    pub max_header_bytes: usize,
    /// Origins (`https://play.example.com`) whose browser pages may call the lobby API (CORS);
    /// empty (the default) turns CORS off; `["*"]` allows any origin (refused in production
    /// unless `cors_allow_any_origin_in_production`).
    pub cors_origins: Vec<String>,
    /// Lets production run with `cors_origins = ["*"]`.
    pub cors_allow_any_origin_in_production: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)),
            request_timeout_secs: 10,
            body_limit_bytes: 65536,
            shutdown_grace_secs: 10,
            admin_bind: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090)),
            public_metrics: false,
            public_openapi: false,
            trusted_proxies: Vec::new(),
            header_read_timeout_ms: 10_000,
            keepalive_idle_timeout_ms: 5_000,
            max_connections: 4096,
            max_header_bytes: 16_384,
            cors_origins: Vec::new(),
            cors_allow_any_origin_in_production: false,
        }
    }
}

impl HttpSettings {
    /// `request_timeout_secs` as a [`Duration`].
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
    /// `shutdown_grace_secs` as a [`Duration`].
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
    /// `header_read_timeout_ms` as a [`Duration`].
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    /// `keepalive_idle_timeout_ms` as a [`Duration`].
    pub fn keepalive_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.keepalive_idle_timeout_ms)
    }
}

/// How the lobby API identifies players.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Trust the `X-Player-Id` header (development and test only).
    #[default]
    Header,
    /// `Authorization: Bearer <JWT>`, HS256 with `auth.jwt_secret`; `sub` is the player.
    Jwt,
}

/// Default of `auth.max_token_bytes`.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 4096;

/// `[auth]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// `header` or `jwt`.
    pub mode: AuthMode,
    /// HS256 secret for `jwt` mode; at least 32 bytes.
    #[serde(
        deserialize_with = "de_opt_secret",
        serialize_with = "ser_opt_redacted"
    )]
    pub jwt_secret: Option<SecretString>,
    /// Lets production run with `mode = "header"` (anyone can name any player); the daemon
    /// then warns at every start. Without it, header auth in production is refused.
    pub allow_header_auth_in_production: bool,
    /// When set, a token's `iss` must be this value (a token without `iss` is refused).
    pub jwt_issuer: Option<String>,
    /// When set, a token's `aud` must be (or contain) this value (a token without `aud` is
    /// refused).
    pub jwt_audience: Option<String>,
    /// Longest accepted `Authorization` header value in `jwt` mode, in bytes; a longer one is
    /// refused before any decoding.
    pub max_token_bytes: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            mode: AuthMode::default(),
            jwt_secret: None,
            allow_header_auth_in_production: false,
            jwt_issuer: None,
            jwt_audience: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// `[lobby]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LobbySettings {
    /// Largest capacity a player may ask for (1..=1024).
    pub max_capacity: u32,
    /// How long a seat reserved by `join` waits for its player's `player_joined`.
    pub reservation_ttl_secs: u64,
    /// How long an ended game's hash is kept.
    pub tombstone_ttl_secs: u64,
    /// Deprecated and ignored since listings are answered from the in-memory view of open
    /// games (contract 5.4); still accepted so existing files load.
    pub list_max_staleness_ms: u64,
    /// Most labels a create may attach to a game (0..=32; 0 refuses any label).
    pub max_labels: u32,
    /// How many of a product's oldest open games one quick join considers (1..=1000).
    pub quick_join_scan: u32,
    /// How many games one quick join tries when the game server of the one it got fails
    /// or refuses the player (1..=10).
    pub quick_join_attempts: u32,
    /// Most open games one listing page examines for its filters (101..=1000000): a filter
    /// that matches few games is paged through, a page at most this much work, instead of
    /// searched through every open game in one request.
    pub list_scan_max: u32,
    /// Approximate cap of each product's change feed `P:{product}:feed` (entries).
    pub feed_maxlen: u64,
    /// How long one blocking read of a product's change feed waits (ms); also how often an
    /// idle feed is checked for trims and data loss.
    pub view_block_ms: u64,
}

impl Default for LobbySettings {
    fn default() -> Self {
        Self {
            max_capacity: 16,
            reservation_ttl_secs: 30,
            tombstone_ttl_secs: 3600,
            list_max_staleness_ms: 250,
            max_labels: mm_common::labels::DEFAULT_MAX_LABELS,
            quick_join_scan: 64,
            quick_join_attempts: 3,
            list_scan_max: 1_000,
            feed_maxlen: 10_000,
            view_block_ms: 1_000,
        }
    }
}

impl LobbySettings {
    /// `reservation_ttl_secs` as a [`Duration`].
    pub fn reservation_ttl(&self) -> Duration {
        Duration::from_secs(self.reservation_ttl_secs)
    }
    /// `tombstone_ttl_secs` as a [`Duration`].
    pub fn tombstone_ttl(&self) -> Duration {
        Duration::from_secs(self.tombstone_ttl_secs)
    }
    /// `view_block_ms` as a [`Duration`].
    pub fn view_block(&self) -> Duration {
        Duration::from_millis(self.view_block_ms)
    }
}

/// `[limits]`: per-player quotas and rates, kept in Redis and shared by every daemon. A `0`
/// disables that limit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSettings {
    /// Live (not ended) games one player may have created per product; 0 = no quota.
    pub max_live_games_per_player: u32,
    /// Open seat reservations one player may hold per product; 0 = no quota.
    pub max_reservations_per_player: u32,
    /// Creates per player per minute, sustained (token bucket rate); 0 = no rate limit.
    pub creates_per_minute: u32,
    /// Creates per player at once (token bucket size); at least 1 when the rate is on.
    pub create_burst: u32,
    /// Joins per player per minute, sustained; 0 = no rate limit.
    pub joins_per_minute: u32,
    /// Joins per player at once; at least 1 when the rate is on.
    pub join_burst: u32,
    /// Failing requests (4xx but 409 and 429) per client address per minute, sustained; 0 =
    /// no limit. Kept in each process's memory.
    pub client_failures_per_minute: u32,
    /// Failing requests per client address at once; at least 1 when the rate is on.
    pub client_failure_burst: u32,
    /// Client addresses whose failure buckets a process keeps (least recently seen dropped).
    pub max_tracked_clients: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_live_games_per_player: 3,
            max_reservations_per_player: 3,
            creates_per_minute: 60,
            create_burst: 3,
            joins_per_minute: 120,
            join_burst: 10,
            client_failures_per_minute: 60,
            client_failure_burst: 20,
            max_tracked_clients: 65536,
        }
    }
}

impl LimitsSettings {
    /// Every limit off.
    pub fn disabled() -> Self {
        Self {
            max_live_games_per_player: 0,
            max_reservations_per_player: 0,
            creates_per_minute: 0,
            create_burst: 0,
            joins_per_minute: 0,
            join_burst: 0,
            client_failures_per_minute: 0,
            client_failure_burst: 0,
            max_tracked_clients: 65536,
        }
    }

    /// The limits as the store enforces them.
    pub fn player_limits(&self) -> PlayerLimits {
        PlayerLimits {
            max_live_games: self.max_live_games_per_player,
            max_reservations: self.max_reservations_per_player,
            creates_per_sec: f64::from(self.creates_per_minute) / 60.0,
            create_burst: self.create_burst,
            joins_per_sec: f64::from(self.joins_per_minute) / 60.0,
            join_burst: self.join_burst,
        }
    }
}

/// `[curation]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurationSettings {
    /// How often the curator runs.
    pub interval_secs: u64,
    /// A game whose creator never joined is curated after this.
    pub pending_timeout_secs: u64,
    /// A lobby with no activity is curated after this.
    pub lobby_idle_timeout_secs: u64,
    /// An active game with no event is curated after this.
    pub active_idle_timeout_secs: u64,
    /// Log what would be curated, change nothing.
    pub dry_run: bool,
    /// How many games are deleted on game servers at the same time.
    pub concurrency: usize,
    /// How many stale games one pass reads from a sorted set at a time.
    pub batch_size: usize,
    /// How long one instance holds the curation lease.
    pub lease_secs: u64,
    /// How often the lease holder reconciles the record with the game servers' `GET /games`.
    pub reconcile_interval_secs: u64,
    /// A game a server holds with no live record for this long is deleted on the server.
    pub orphan_grace_secs: u64,
    /// A live record whose server has not listed the game for this long ends `lost_on_server`.
    pub lost_grace_secs: u64,
}

impl Default for CurationSettings {
    fn default() -> Self {
        Self {
            interval_secs: 5,
            pending_timeout_secs: 300,
            lobby_idle_timeout_secs: 1800,
            active_idle_timeout_secs: 14400,
            dry_run: false,
            concurrency: 16,
            batch_size: 500,
            lease_secs: 30,
            reconcile_interval_secs: 60,
            orphan_grace_secs: 120,
            lost_grace_secs: 120,
        }
    }
}

impl CurationSettings {
    /// `interval_secs` as a [`Duration`].
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
    /// `pending_timeout_secs` as a [`Duration`].
    pub fn pending_timeout(&self) -> Duration {
        Duration::from_secs(self.pending_timeout_secs)
    }
    /// `lobby_idle_timeout_secs` as a [`Duration`].
    pub fn lobby_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.lobby_idle_timeout_secs)
    }
    /// `active_idle_timeout_secs` as a [`Duration`].
    pub fn active_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.active_idle_timeout_secs)
    }
    /// `lease_secs` as a [`Duration`].
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    /// `reconcile_interval_secs` as a [`Duration`].
    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_secs(self.reconcile_interval_secs)
    }
    /// `orphan_grace_secs` as a [`Duration`].
    pub fn orphan_grace(&self) -> Duration {
        Duration::from_secs(self.orphan_grace_secs)
    }
    /// `lost_grace_secs` as a [`Duration`].
    pub fn lost_grace(&self) -> Duration {
        Duration::from_secs(self.lost_grace_secs)
    }
}

/// `[consumer]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerSettings {
    /// Consumer name in the group; none: the daemon derives one from the hostname.
    pub name: Option<String>,
    /// Entries read per `XREADGROUP` (1..=10000).
    pub batch_size: usize,
    /// How long one `XREADGROUP` blocks waiting for entries, in milliseconds.
    pub block_ms: u64,
    /// Pending entries idle this long (a crashed consumer's) are claimed.
    pub claim_idle_secs: u64,
    /// An entry delivered this many times is dead-lettered.
    pub max_deliveries: u64,
    /// Entries applied by one script call (1..=256): larger batches cost Redis less per
    /// event but hold it longer per call.
    pub apply_batch_size: usize,
    /// Approximate cap of each product's dead-letter stream (`XADD … MAXLEN ~`).
    pub dead_letter_max_len: u64,
    /// A consumer of the group idle this long with no pending entries, whose instance is not
    /// live, is removed from the group (`XGROUP DELCONSUMER`).
    pub dead_consumer_idle_secs: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            name: None,
            batch_size: 256,
            block_ms: 2000,
            claim_idle_secs: 60,
            max_deliveries: 5,
            apply_batch_size: 16,
            dead_letter_max_len: 100_000,
            dead_consumer_idle_secs: 3600,
        }
    }
}

impl ConsumerSettings {
    /// `block_ms` as a [`Duration`].
    pub fn block(&self) -> Duration {
        Duration::from_millis(self.block_ms)
    }
    /// `claim_idle_secs` as a [`Duration`].
    pub fn claim_idle(&self) -> Duration {
        Duration::from_secs(self.claim_idle_secs)
    }
    /// `dead_consumer_idle_secs` as a [`Duration`].
    pub fn dead_consumer_idle(&self) -> Duration {
        Duration::from_secs(self.dead_consumer_idle_secs)
    }
}

/// `[events]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// Acknowledged entries of a product stream younger than this are kept (for the console's
    /// tail and a game's history); older ones are trimmed. Unacknowledged entries are never
    /// trimmed.
    pub retain_secs: u64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self { retain_secs: 3600 }
    }
}

impl EventsSettings {
    /// `retain_secs` as a [`Duration`].
    pub fn retain(&self) -> Duration {
        Duration::from_secs(self.retain_secs)
    }
}

/// `[game_server_client]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GameServerClientSettings {
    /// TCP/TLS connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, in milliseconds.
    pub request_timeout_ms: u64,
    /// Retries of an idempotent call after the first attempt.
    pub retries: u32,
    /// Consecutive failures that open a server's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before trying again.
    pub breaker_cooldown_secs: u64,
    /// How often each server's `GET /health` is polled.
    pub health_interval_secs: u64,
}

impl Default for GameServerClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 1000,
            request_timeout_ms: 3000,
            retries: 2,
            breaker_failures: 5,
            breaker_cooldown_secs: 10,
            health_interval_secs: 5,
        }
    }
}

impl GameServerClientSettings {
    /// `connect_timeout_ms` as a [`Duration`].
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// `request_timeout_ms` as a [`Duration`].
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    /// `breaker_cooldown_secs` as a [`Duration`].
    pub fn breaker_cooldown(&self) -> Duration {
        Duration::from_secs(self.breaker_cooldown_secs)
    }
    /// `health_interval_secs` as a [`Duration`].
    pub fn health_interval(&self) -> Duration {
        Duration::from_secs(self.health_interval_secs)
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable single lines (colored on a terminal).
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Default of `log.file_prefix` when neither a layer nor the caller sets one.
pub const DEFAULT_LOG_FILE_PREFIX: &str = "matchmaker";

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Directory for daily rolling log files; none: no files.
    pub dir: Option<PathBuf>,
    /// `pretty` or `json`.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `info,matchmakerd=debug`; `RUST_LOG` wins.
    pub level: String,
    /// Log file names are `<file_prefix>.<date>.log`.
    pub file_prefix: String,
    /// How many daily log files are kept in `dir`; older ones are deleted at rotation.
    pub max_files: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            dir: None,
            format: LogFormat::Pretty,
            level: "info".into(),
            file_prefix: DEFAULT_LOG_FILE_PREFIX.into(),
            max_files: 14,
        }
    }
}

/// `[console]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// How often the TUI re-reads Redis, in milliseconds (at least 100).
    pub refresh_ms: u64,
    /// Refuse force-deletes from the TUI.
    pub read_only: bool,
    /// How many recent events the event tail keeps.
    pub tail_len: usize,
    /// Who acts, for the audit entries of force-deletes (`--operator` wins); `None`: the login
    /// (`USER`, `LOGNAME`, `USERNAME`, then the OS user database).
    pub operator: Option<String>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            refresh_ms: 1000,
            read_only: false,
            tail_len: 500,
            operator: None,
        }
    }
}

impl ConsoleSettings {
    /// `refresh_ms` as a [`Duration`].
    pub fn refresh(&self) -> Duration {
        Duration::from_millis(self.refresh_ms)
    }
}

/// `[audit]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Approximate cap of the audit stream `P:audit` (`XADD … MAXLEN ~`).
    pub max_len: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self { max_len: 100_000 }
    }
}

/// One `[[game_servers]]` table: a registered game server. `Debug` shows neither the API key
/// nor credentials inside `api_url` (user name, password, query).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GameServerSettings {
    /// Unique id of the server (what its events carry as `server_id`).
    pub id: ServerId,
    /// The product it hosts.
    pub product: ProductId,
    /// Base URL of its management API (`http` or `https`).
    pub api_url: String,
    /// `ws`/`wss` URL players connect to; empty: the server answers one per game.
    #[serde(default)]
    pub socket_url: String,
    /// Region, matched against a create request's `region`.
    #[serde(default)]
    pub region: Option<String>,
    /// Most games it may hold.
    pub max_games: u32,
    /// Bearer token for its management API.
    #[serde(deserialize_with = "de_secret", serialize_with = "ser_redacted")]
    pub api_key: SecretString,
}

impl std::fmt::Debug for GameServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let api_url = match url::Url::parse(&self.api_url) {
            Ok(mut url) => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.set_query(None);
                url.set_fragment(None);
                url.to_string()
            }
            Err(_) => "[not a URL]".to_owned(),
        };
        f.debug_struct("GameServerSettings")
            .field("id", &self.id)
            .field("product", &self.product)
            .field("api_url", &api_url)
            .field("socket_url", &self.socket_url)
            .field("region", &self.region)
            .field("max_games", &self.max_games)
            .field("api_key", &self.api_key)
            .finish()
    }
}

fn de_secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

/// A list of strings: a sequence, or one comma-separated string (how an environment
/// variable gives a list).
fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        Joined(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(list) => list,
        ListOrString::Joined(joined) => joined
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

fn de_opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Option::<String>::deserialize(d).map(|s| s.map(SecretString::from))
}

/// What a secret serializes as (`matchmakerd config`): never its value.
pub const REDACTED: &str = "[redacted]";

fn ser_redacted<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(REDACTED)
}

fn ser_opt_redacted<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_some(REDACTED),
        None => s.serialize_none(),
    }
}

impl Settings {
    /// Which mode file, extra file and environment variables these settings came from, for
    /// the start-up log line. Holds names only, never values.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// One line describing where these settings came from (see [`Provenance`]).
    pub fn source_description(&self) -> String {
        self.provenance.to_string()
    }

    /// Whether these settings run production with header auth (allowed only by
    /// `auth.allow_header_auth_in_production`; the daemon warns at every start).
    pub fn header_auth_in_production(&self) -> bool {
        self.provenance.mode == crate::Mode::Production && self.auth.mode == AuthMode::Header
    }

    /// The game servers registered for `product`.
    pub fn game_servers_for<'a>(
        &'a self,
        product: &'a ProductId,
    ) -> impl Iterator<Item = &'a GameServerSettings> + 'a {
        self.game_servers
            .iter()
            .filter(move |s| &s.product == product)
    }
}
