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
//! The same store runs over one Redis or a Redis Cluster (`connection`: [`StoreOptions::
//! cluster_nodes`]); every command and script touches one slot only.
//!
//! # Modules
//!
//! - `games`: one game's record (create, read, reserve and release seats, remove);
//!   `admission`: create admissions under the per-player limits, `joins`: joins' seat
//!   reservations, and `tickets`: keeping join tickets, each sent in groups per product
//!   through `lanes`.
//! - `seats`: rejoining a game one is in, and quick join (a seat in the best matching open
//!   game of a product).
//! - `events`: applying stream entries to games (the consumer's hot path), dead letters.
//! - `listing`: the open-games listing, set sizes and windows, the curator's stale scan.
//! - `streams`: the consumer group (reads, claims, pending entries, group figures), the
//!   applied watermark and trimming behind the group.
//! - `feed`: the change feed of open games (full loads, the position checks, [`FeedReader`]
//!   for the view's blocking tail).
//! - `tail`: the console's group-free stream reads; `inspect`: its dead-letter reads.
//! - `coordination`: products, game servers, leases, instance heartbeats, the audit trail.
//! - `reconcile`: the reconciliation reads (each set's members with their servers; whether
//!   the games a server lists have a live record).
//! - `outcomes`: the typed results; `error`: [`StoreError`]; `scripts`: the Lua registry;
//!   `codec`: the game hash's layout; `reply`: decoding stream replies.

mod admission;
mod codec;
mod connection;
mod coordination;
mod error;
mod events;
mod feed;
mod games;
mod inspect;
mod joins;
mod lanes;
mod listing;
mod outcomes;
mod reconcile;
mod reply;
mod scripts;
mod seats;
mod streams;
mod tail;
mod tickets;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use connection::{Backend, RedisConn};
use lanes::GroupedCall;

pub use codec::{CodecError, game_from_hash, game_to_fields, record_fields};
pub use coordination::InstanceHeartbeat;
pub use error::{StoreError, StoreResult};
pub use feed::{FeedChange, FeedEntry, FeedReader, FeedState, FeedUpdate, OpenSnapshot, ReadEntry};
pub use lanes::GroupCounts;
pub use outcomes::{
    ApplyResult, MarkOutcome, OpenCursor, OpenPage, RemoveGuard, RemoveOutcome, ReserveOutcome,
    SeatGrant, Window, WindowRow,
};
pub use reconcile::{LiveGame, LiveGamesPage, RecordPresence};
pub use reply::{AutoClaim, DeliveredEntry, GroupInfo, PendingRow, ReplyError};
pub use seats::{QuickJoinFilter, QuickJoinOutcome, RejoinOutcome};
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
    /// Seed nodes of a Redis Cluster (`redis://host:port`); empty: the single Redis at `url`.
    pub cluster_nodes: Vec<String>,
    /// Replicas a create or a seat reservation waits for (`WAIT`) before it is answered; 0:
    /// none (replication stays asynchronous).
    pub wait_replicas: u32,
    /// How long such a `WAIT` may take; a write not replicated in time is still answered
    /// (it is applied on the master) and counted as such.
    pub wait_timeout: Duration,
    /// Dedicated connections kept for writes that `WAIT` for replicas (a write and its `WAIT`
    /// share one, taken in turn); 0: they use the shared connection, where a `WAIT` holds up
    /// every command queued behind it at that node (only for measuring that cost).
    pub wait_connections: usize,
    /// How long after a command's first attempt it may still be resent after a transient
    /// failure (a failover, a slot migration, a restart: `connection`'s module docs); zero:
    /// never resent by the store.
    pub retry_budget: Duration,
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
    /// Approximate cap of each product's change feed `P:{product}:feed` (`XADD … MAXLEN ~`).
    pub feed_max_len: u64,
}

impl StoreOptions {
    /// Options for a Redis Cluster reached through `nodes`, defaults for everything else.
    pub fn cluster(nodes: Vec<String>) -> Self {
        Self {
            cluster_nodes: nodes,
            ..Self::new(String::new())
        }
    }
}

impl StoreOptions {
    /// Options with the contract's defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster_nodes: Vec::new(),
            wait_replicas: 0,
            wait_timeout: Duration::from_millis(100),
            retry_budget: Duration::from_millis(5000),
            wait_connections: 4,
            key_prefix: "mm".into(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            tombstone_ttl: Duration::from_secs(3600),
            dead_letter_max_len: 100_000,
            audit_max_len: 100_000,
            feed_max_len: 10_000,
        }
    }
}

/// The Redis store. Cheap to clone: clones share one multiplexed, self-reconnecting connection
/// (on a cluster, one per node), and the pool of writes under `WAIT`.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    conn: RedisConn,
    /// Create admissions, joins' and quick joins' seats and join tickets, each sent in groups
    /// per product
    /// (`lanes`).
    admissions: Arc<lanes::Lanes<admission::AdmitCreates>>,
    joins: Arc<lanes::Lanes<joins::ReserveSeats>>,
    quick_joins: Arc<lanes::Lanes<joins::QuickJoins>>,
    tickets: Arc<lanes::Lanes<tickets::KeepTickets>>,
    waiting: Arc<WaitPool>,
    keys: Keys,
    options: StoreOptions,
    /// Commands resent after a transient failure, by every connection of this store.
    resends: Arc<AtomicU64>,
}

/// The connections of the writes that wait for replicas (`WAIT`). `WAIT` blocks the connection
/// it is sent on until the replicas have that connection's writes, so on the shared connection
/// it would hold up every command queued behind it at that node; and it only counts the
/// writes of the connection that sent it, so a write and its `WAIT` must share one. Each
/// such write therefore takes one of a few dedicated connections, opened on first use, in
/// turn: a `WAIT` holds up at most the waited writes that share its connection.
struct WaitPool {
    slots: Vec<tokio::sync::OnceCell<RedisConn>>,
    next: AtomicUsize,
}

impl WaitPool {
    fn new(size: usize) -> WaitPool {
        WaitPool {
            slots: (0..size).map(|_| tokio::sync::OnceCell::new()).collect(),
            next: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.keys.prefix())
            .field("cluster", &self.backend.is_cluster())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects now; fails if Redis cannot be reached within the connect timeout, or if it is
    /// not what the options say (a cluster node named by `url`, or a single Redis named by
    /// `cluster_nodes`: [`StoreError::Misconfigured`]).
    pub async fn connect(options: StoreOptions) -> StoreResult<Store> {
        let backend = Backend::open(&options)?;
        let conn = backend.connect(&options).await?;
        let store = Self::with_parts(backend, conn, options);
        store.check_mode().await?;
        Ok(store)
    }

    /// Returns at once and connects on first use, reconnecting by itself whenever Redis comes
    /// back (for programs that must start and keep running while Redis is down).
    pub fn connect_lazy(options: StoreOptions) -> StoreResult<Store> {
        let backend = Backend::open(&options)?;
        let conn = backend.connect_lazy(&options)?;
        Ok(Self::with_parts(backend, conn, options))
    }

    fn with_parts(backend: Backend, conn: RedisConn, options: StoreOptions) -> Store {
        let resends = Arc::new(AtomicU64::new(0));
        Store {
            backend,
            conn: conn.counting(resends.clone()),
            resends,
            admissions: Default::default(),
            joins: Default::default(),
            quick_joins: Default::default(),
            tickets: Default::default(),
            waiting: Arc::new(WaitPool::new(options.wait_connections)),
            keys: Keys::new(options.key_prefix.clone()),
            options,
        }
    }

    /// Whether the store runs over a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.backend.is_cluster()
    }

    /// Fails with [`StoreError::Misconfigured`] unless the Redis reached is in the mode the
    /// options name (`INFO cluster`'s `cluster_enabled`).
    /// Asked once, not resent within the retry budget.
    pub async fn check_mode(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone().once();
        let mut cmd = redis::cmd("INFO");
        cmd.arg("cluster");
        let info: String = match conn.query_at_key(&self.keys.products(), cmd).await {
            Ok(info) => info,
            Err(StoreError::Redis(err)) if err.to_string().contains("cluster support disabled") => {
                return Err(connection::mode_mismatch(true, false));
            }
            Err(err) => return Err(err),
        };
        let node_is_cluster = info.lines().any(|line| line.trim() == "cluster_enabled:1");
        if node_is_cluster != self.conn.is_cluster() {
            return Err(connection::mode_mismatch(
                self.conn.is_cluster(),
                node_is_cluster,
            ));
        }
        Ok(())
    }

    /// The same store, answering a transient failure at once instead of resending the
    /// command for up to `redis.retry_budget_ms`: for a reader that asks again by itself (the
    /// console's screens, its scripted reads), so that an outage shows within one connection
    /// attempt, not after the whole budget.
    pub fn without_resends(&self) -> Store {
        let mut store = self.clone();
        store.conn = store.conn.clone().once();
        store.options.retry_budget = Duration::ZERO;
        store
    }

    /// The key schema in use. Only for tests and the test kit, which inspect and prepare Redis
    /// directly; the daemon and the console never need a key name.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// How many commands (and pipelines) this store has resent after a transient failure
    /// within `redis.retry_budget_ms` since it was opened (metric `mm_redis_resends_total`).
    pub fn resends(&self) -> u64 {
        self.resends.load(Ordering::Relaxed)
    }

    /// The scripts of the grouped writes, in the order [`Store::group_counts`] gives them.
    pub const GROUPED_SCRIPTS: [&'static str; 4] = [
        joins::ReserveSeats::SCRIPT,
        joins::QuickJoins::SCRIPT,
        tickets::KeepTickets::SCRIPT,
        admission::AdmitCreates::SCRIPT,
    ];

    /// The script calls each kind of grouped write (`lanes`) has sent since the store was
    /// opened, and the requests they carried (metrics `mm_store_grouped_calls_total` and
    /// `mm_store_grouped_requests_total`). A request sent alone (under `redis.wait_replicas`)
    /// is not counted.
    pub fn group_counts(&self) -> [GroupCounts; 4] {
        [
            self.joins.counts(),
            self.quick_joins.counts(),
            self.tickets.counts(),
            self.admissions.counts(),
        ]
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// A dedicated connection for blocking commands (`XREAD … BLOCK`), whose reply timeout is
    /// `block` plus the command timeout, so a blocking read never trips it.
    async fn blocking_connection(&self, block: Duration) -> StoreResult<RedisConn> {
        self.backend.blocking(&self.options, block).await
    }

    /// The connection of a write that must be followed by a `WAIT` (`wait_replicas` > 0): one
    /// of the pool's dedicated connections, in turn; otherwise the shared connection.
    async fn write_connection(&self) -> StoreResult<RedisConn> {
        let pool = &self.waiting;
        if self.options.wait_replicas == 0 || pool.slots.is_empty() {
            return Ok(self.conn.clone());
        }
        let slot = &pool.slots[pool.next.fetch_add(1, Ordering::Relaxed) % pool.slots.len()];
        let conn = slot
            .get_or_try_init(|| async {
                let conn = self.backend.dedicated(&self.options).await?;
                Ok::<_, StoreError>(conn.counting(self.resends.clone()))
            })
            .await?;
        Ok(conn.clone())
    }

    /// With `wait_replicas`, waits (`WAIT`, on `conn`, the connection that made the write, at
    /// the node serving `key`) until that many replicas have the writes made so far on it, or
    /// the wait timeout passes. Returns how many replicas acknowledged (`None` when not
    /// configured).
    async fn wait_for_replicas(&self, conn: &mut RedisConn, key: &str) -> StoreResult<Option<u32>> {
        if self.options.wait_replicas == 0 {
            return Ok(None);
        }
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.options.wait_replicas)
            .arg(self.options.wait_timeout.as_millis() as u64);
        let acknowledged: u32 = conn.query_at_key(key, cmd).await?;
        if acknowledged < self.options.wait_replicas {
            tracing::warn!(
                acknowledged,
                wanted = self.options.wait_replicas,
                "write not replicated within redis.wait_timeout_ms"
            );
        }
        Ok(Some(acknowledged))
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
