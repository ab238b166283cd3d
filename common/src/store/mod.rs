//! The Redis store: the only code of the matchmaker that speaks Redis.
//!
//! The store offers operations and typed results, never connections or key names: its callers
//! (the daemon's API, consumer and curator, the console, the admin flow) cannot tell how a
//! game or a stream is laid out in Redis. Each mutation of game state is one Lua script (see
//! `lua/`), so a crash can never leave a game half-moved; applying a stream entry and
//! acknowledging it (`XACK`) are one script too, so an entry is applied exactly once.
//!
//! Every call has a timeout: the connection manager's response timeout (configured
//! `command_timeout`), and an explicit, longer one on the connections of [`GroupReader`] and
//! [`TailReader`], made for blocking reads.
//!
//! # Modules
//!
//! - `games`: one game's record (create, read, reserve and release seats, remove).
//! - `events`: applying stream entries to games (the consumer's hot path), dead letters.
//! - `listing`: the open-games listing, set sizes and windows, the curator's stale scan.
//! - `streams`: the consumer group (reads, claims, pending entries, group figures), the
//!   applied watermark and trimming behind the group.
//! - `tail`: the console's group-free stream reads; `inspect`: its dead-letter reads.
//! - `coordination`: products, game servers, leases, instance heartbeats, the audit trail.
//! - `reconcile`: the reconciliation reads (each set's members with their servers; whether
//!   the games a server lists have a live record).
//! - `outcomes`: the typed results; `error`: [`StoreError`]; `scripts`: the Lua registry;
//!   `codec`: the game hash's layout; `reply`: decoding stream replies.

mod codec;
mod coordination;
mod error;
mod events;
mod games;
mod inspect;
mod listing;
mod outcomes;
mod reconcile;
mod reply;
mod scripts;
mod streams;
mod tail;

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};

pub use codec::{CodecError, game_from_hash, game_to_fields, record_fields};
pub use coordination::InstanceHeartbeat;
pub use error::{StoreError, StoreResult};
pub use outcomes::{
    ApplyResult, MarkOutcome, OpenCursor, OpenPage, RemoveGuard, RemoveOutcome, ReserveOutcome,
    SeatGrant, Window, WindowRow,
};
pub use reconcile::{LiveGame, LiveGamesPage, RecordPresence};
pub use reply::{AutoClaim, DeliveredEntry, GroupInfo, PendingRow, ReplyError};
pub use streams::{DeadConsumerSweep, GroupReader, Watermark};
pub use tail::{GameHistory, StreamEntry, TailReader};

use crate::ids::ProductId;
use crate::keys::{Keys, ProductKeys};
use crate::model::Game;

/// How to reach Redis and what to keep.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `redis://host:port/db` or `redis+unix:///path`.
    pub url: String,
    /// Key prefix (`P` of the contract).
    pub key_prefix: String,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for any one command's reply.
    pub command_timeout: Duration,
    /// How long an ended game's hash is kept.
    pub tombstone_ttl: Duration,
    /// Approximate cap of each product's dead-letter stream (`XADD … MAXLEN ~`).
    pub dead_letter_max_len: u64,
    /// Approximate cap of the audit stream `P:audit` (`XADD … MAXLEN ~`).
    pub audit_max_len: u64,
}

impl StoreOptions {
    /// Options with the contract's defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "mm".into(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            tombstone_ttl: Duration::from_secs(3600),
            dead_letter_max_len: 100_000,
            audit_max_len: 100_000,
        }
    }
}

/// The Redis store. Cheap to clone: clones share one multiplexed, self-reconnecting connection.
#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    options: StoreOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects now; fails if Redis cannot be reached within the connect timeout.
    pub async fn connect(options: StoreOptions) -> StoreResult<Store> {
        let client = redis::Client::open(options.url.as_str())?;
        let conn = client
            .get_connection_manager_with_config(Self::manager_config(&options))
            .await?;
        Ok(Self::with_parts(client, conn, options))
    }

    /// Returns at once and connects on first use, reconnecting by itself whenever Redis comes
    /// back (for programs that must start and keep running while Redis is down).
    pub fn connect_lazy(options: StoreOptions) -> StoreResult<Store> {
        let client = redis::Client::open(options.url.as_str())?;
        let conn = ConnectionManager::new_lazy_with_config(
            client.clone(),
            Self::manager_config(&options),
        )?;
        Ok(Self::with_parts(client, conn, options))
    }

    fn manager_config(options: &StoreOptions) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1))
    }

    fn with_parts(client: redis::Client, conn: ConnectionManager, options: StoreOptions) -> Store {
        Store {
            client,
            conn,
            keys: Keys::new(options.key_prefix.clone()),
            options,
        }
    }

    /// The key schema in use. Only for tests and the test kit, which inspect and prepare Redis
    /// directly; the daemon and the console never need a key name.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// A dedicated connection for blocking commands (`XREAD … BLOCK`), whose reply timeout is
    /// `block` plus the command timeout, so a blocking read never trips it.
    async fn blocking_connection(&self, block: Duration) -> StoreResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.options.connect_timeout))
            .set_response_timeout(Some(block + self.options.command_timeout));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    fn product_keys(&self, product: &ProductId) -> ProductKeys {
        self.keys.product(product)
    }
}

/// A game hash as read (`HGETALL`): `None` when empty (no such game).
fn decode(key: &str, hash: &HashMap<String, String>) -> StoreResult<Option<Game>> {
    if hash.is_empty() {
        return Ok(None);
    }
    codec::game_from_hash(hash)
        .map(Some)
        .map_err(|source| StoreError::Corrupt {
            key: key.to_string(),
            source,
        })
}
