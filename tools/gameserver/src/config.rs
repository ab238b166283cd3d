//! How a reference game server is configured (the binary maps its flags onto this).

use std::fmt;
use std::time::Duration;

use mm_common::{ProductId, ServerId};

/// Settings of one reference game server.
#[derive(Clone)]
pub struct GameServerConfig {
    /// The server's id: the `server_id` of every event it writes.
    pub id: ServerId,
    /// The one product it hosts; `POST /games` for another product is refused with 400.
    pub product: ProductId,
    /// The key every API call must present as `Authorization: Bearer`.
    pub api_key: String,
    /// Redis the events go to (`redis://…` or `redis+unix://…`), or the nodes of a Redis
    /// Cluster as a comma-separated list of `redis://host:port`.
    pub redis_url: String,
    /// Key prefix (`P` of the contract): events go to `P:{product}:events`.
    pub key_prefix: String,
    /// Base of the socket URLs handed out (`wss://play.example.com`); default
    /// `ws://<bound address>`.
    pub public_ws_base: Option<String>,
    /// Most games held at once; `POST /games` answers 503 beyond it.
    pub max_games: u32,
    /// Time from the game becoming full to `game_started`.
    pub start_delay: Duration,
    /// Time from `game_started` to `game_ended`.
    pub play_time: Duration,
    /// Period of the `heartbeat` events of games with players connected (zero: none).
    pub heartbeat_interval: Duration,
    /// How long a join token stays valid.
    pub token_ttl: Duration,
    /// How long `POST /games` takes before the game exists (zero by default). A test knob: the
    /// game is created after this delay even if the caller gave up waiting, as a real server
    /// still busy creating would.
    pub create_delay: Duration,
}

impl GameServerConfig {
    /// A configuration with demo-friendly defaults: prefix `mm`, 100 games, start 3 s after
    /// the game fills, 60 s of play, a heartbeat every 10 s, tokens valid 30 s.
    pub fn new(
        id: ServerId,
        product: ProductId,
        api_key: impl Into<String>,
        redis_url: impl Into<String>,
    ) -> Self {
        Self {
            id,
            product,
            api_key: api_key.into(),
            redis_url: redis_url.into(),
            key_prefix: "mm".to_string(),
            public_ws_base: None,
            max_games: 100,
            start_delay: Duration::from_secs(3),
            play_time: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(10),
            token_ttl: Duration::from_secs(30),
            create_delay: Duration::ZERO,
        }
    }
}

impl fmt::Debug for GameServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GameServerConfig")
            .field("id", &self.id)
            .field("product", &self.product)
            .field("api_key", &"[REDACTED]")
            .field("redis_url", &self.redis_url)
            .field("key_prefix", &self.key_prefix)
            .field("public_ws_base", &self.public_ws_base)
            .field("max_games", &self.max_games)
            .field("start_delay", &self.start_delay)
            .field("play_time", &self.play_time)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("token_ttl", &self.token_ttl)
            .field("create_delay", &self.create_delay)
            .finish()
    }
}
