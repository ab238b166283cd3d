//! The Redis store: every read and every atomic write of game state.
//!
//! Each mutation is one Lua script (see `lua/`), run with `EVALSHA` and reloaded
//! automatically when Redis answers `NOSCRIPT` (after a restart or `SCRIPT FLUSH`). A script
//! changes a game's hash, its set membership, the open-games index and seat reservations
//! together, so a crash can never leave a game half-moved. Applying a stream entry and
//! acknowledging it (`XACK`) are one script too: an entry is applied exactly once.
//!
//! Every call has a timeout: the connection manager's response timeout (configured
//! `command_timeout`), and an explicit, longer one on connections made for blocking reads.

mod codec;

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncCommands, AsyncConnectionConfig, Script};

pub use codec::{CodecError, game_from_hash, game_to_fields};

use crate::ids::{GameId, PlayerId, ProductId};
use crate::keys::{CONSUMER_GROUP, Keys, ProductKeys, RESERVATION_SEPARATOR};
use crate::model::{Event, Game, GameSet, GameState, JoinRefusal};

/// How to reach Redis and what to keep.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `redis://host:port/db` or `redis+unix:///path`.
    pub url: String,
    /// Key prefix (`P` of the design).
    pub key_prefix: String,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for any one command's reply.
    pub command_timeout: Duration,
    /// How long an ended game's hash is kept.
    pub tombstone_ttl: Duration,
}

impl StoreOptions {
    /// Options with the design's defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "mm".into(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            tombstone_ttl: Duration::from_secs(3600),
        }
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused, failed or timed out.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A key holds something the store did not write.
    #[error("corrupt record at {key}: {source}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        source: CodecError,
    },
    /// A script answered something it never returns (a bug, or a foreign script).
    #[error("unexpected reply from script {script}: {reply:?}")]
    UnexpectedReply {
        /// The script.
        script: &'static str,
        /// Its reply.
        reply: Vec<String>,
    },
}

impl StoreError {
    /// Whether Redis could not be reached or answered too late (worth retrying later), as
    /// opposed to a bug or corrupt data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis(err) => {
                err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_io_error()
            }
            _ => false,
        }
    }
}

/// Result alias of the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// What became of one stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    /// Applied; the game's state afterwards.
    Applied(GameState),
    /// Duplicate or out-of-date for its game; acknowledged, nothing changed.
    Stale(GameState),
    /// The entry was no longer pending for the group (already applied): nothing changed.
    Duplicate,
    /// Unparseable, for an unknown game, or refused: copied to the dead-letter stream with
    /// this reason and acknowledged.
    DeadLettered(String),
}

/// What a join attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// A new seat, held until the given time (Unix ms).
    Reserved {
        /// Expiry of the reservation.
        expires_at_ms: u64,
    },
    /// The player already holds a seat (creator, joined, or reserved: the expiry is renewed).
    AlreadyHeld,
    /// The join rules refuse it.
    Refused(JoinRefusal),
    /// No such game.
    NotFound,
}

/// When [`Store::remove_game`] may remove a game.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveGuard {
    /// Always (operator force-delete).
    Any,
    /// Only before the game started (the creator's cancel).
    Cancellable,
    /// Only while the game is still in `set` with a score at or before `cutoff_ms` (the
    /// curator's check: a game that came alive since it was picked is left alone).
    StaleIn {
        /// The set the curator found it in.
        set: GameSet,
        /// The staleness cutoff (Unix ms).
        cutoff_ms: u64,
    },
}

/// What [`Store::remove_game`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// Removed from every set; the hash is now a tombstone. The state it had before.
    Removed {
        /// State before removal.
        previous: GameState,
    },
    /// The guard did not hold; the game's current state.
    Refused {
        /// Current state.
        state: GameState,
    },
    /// No such game.
    NotFound,
    /// It had already ended.
    AlreadyEnded,
}

/// A position in the open-games listing: the `created_at` and id of the last game returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCursor {
    /// The last game's creation time (its score in the open index).
    pub created_at_ms: u64,
    /// The last game's id (tie-breaker for equal times).
    pub game_id: GameId,
}

impl OpenCursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.created_at_ms, self.game_id)
    }

    /// Parses [`OpenCursor::encode`]'s output.
    pub fn decode(text: &str) -> Result<OpenCursor, String> {
        let invalid = || format!("cursor {text:?} is not one this API issued");
        let (score, id) = text.split_once(':').ok_or_else(invalid)?;
        Ok(OpenCursor {
            created_at_ms: score.parse().map_err(|_| invalid())?,
            game_id: GameId::new(id).map_err(|_| invalid())?,
        })
    }
}

/// A page of open games.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPage {
    /// Open games, oldest first.
    pub games: Vec<Game>,
    /// Where the next page starts, if there may be one.
    pub next_cursor: Option<OpenCursor>,
}

/// One row of a set window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    /// The member (a game id).
    pub id: String,
    /// Its score (Unix ms).
    pub score: u64,
    /// The game, if its hash still exists and decodes.
    pub game: Option<Game>,
}

/// A window of a sorted set plus the set's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Members in the whole set.
    pub total: u64,
    /// The requested rows.
    pub rows: Vec<WindowRow>,
}

/// The store's scripts, each the shared prelude plus its body.
struct Scripts {
    create_game: Script,
    apply_events: Script,
    dead_letter: Script,
    reserve_seat: Script,
    release_seat: Script,
    remove_game: Script,
}

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!(concat!("lua/", $file))
        ))
    };
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create_game: script!("create_game.lua"),
    apply_events: script!("apply_events.lua"),
    dead_letter: script!("dead_letter.lua"),
    reserve_seat: script!("reserve_seat.lua"),
    release_seat: script!("release_seat.lua"),
    remove_game: script!("remove_game.lua"),
});

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

    /// The key schema in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The shared connection, for reads this module does not offer (streams, audit, …).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A dedicated connection for blocking commands (`XREAD … BLOCK`), whose reply timeout is
    /// `block` plus the command timeout, so a blocking read never trips it.
    pub async fn blocking_connection(&self, block: Duration) -> StoreResult<MultiplexedConnection> {
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

    /// Records products in `P:products` (idempotent).
    pub async fn register_products(&self, products: &[ProductId]) -> StoreResult<()> {
        if products.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let names: Vec<&str> = products.iter().map(ProductId::as_str).collect();
        let _: () = conn.sadd(self.keys.products(), names).await?;
        Ok(())
    }

    /// Every product in `P:products`, sorted; malformed members are skipped with a warning.
    pub async fn products(&self) -> StoreResult<Vec<ProductId>> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = conn.smembers(self.keys.products()).await?;
        let mut products: Vec<ProductId> = raw
            .into_iter()
            .filter_map(|name| match ProductId::new(&name) {
                Ok(product) => Some(product),
                Err(err) => {
                    tracing::warn!(%err, "skipping malformed member of the products set");
                    None
                }
            })
            .collect();
        products.sort();
        Ok(products)
    }

    /// Records a new game in `created`/pending. Returns `false` if the id is already taken.
    pub async fn create_game(&self, game: &Game) -> StoreResult<bool> {
        let keys = self.product_keys(&game.product);
        let mut invocation = SCRIPTS.create_game.prepare_invoke();
        invocation
            .key(keys.game(&game.id))
            .key(keys.pending())
            .arg(game.id.as_str())
            .arg(game.created_at_ms);
        for (field, value) in game_to_fields(game) {
            invocation.arg(field).arg(value);
        }
        let mut conn = self.conn.clone();
        let created: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(created == 1)
    }

    /// One game by id (its product comes from the id's prefix); `None` if there is none.
    pub async fn game(&self, id: &GameId) -> StoreResult<Option<Game>> {
        match id.product() {
            Some(product) => self.game_of(&product, id).await,
            None => Ok(None),
        }
    }

    /// One game of a product; `None` if there is none.
    pub async fn game_of(&self, product: &ProductId, id: &GameId) -> StoreResult<Option<Game>> {
        let key = self.product_keys(product).game(id);
        let mut conn = self.conn.clone();
        let hash: HashMap<String, String> = conn.hgetall(&key).await?;
        decode(&key, &hash)
    }

    /// The keys a game-changing script declares, in the order the scripts expect.
    fn game_script_keys<'a>(
        invocation: &mut redis::ScriptInvocation<'a>,
        keys: &ProductKeys,
        game: &GameId,
    ) {
        invocation
            .key(keys.game(game))
            .key(keys.pending())
            .key(keys.lobby())
            .key(keys.active())
            .key(keys.open())
            .key(keys.reservations());
    }

    /// Applies one stream entry of `product`'s stream and acknowledges it for the consumer
    /// group, in one atomic step: [`Store::apply_entries`] with a batch of one.
    pub async fn apply_entry(
        &self,
        product: &ProductId,
        entry_id: &str,
        fields: &[(String, String)],
        now_ms: u64,
    ) -> StoreResult<ApplyResult> {
        let mut results = self
            .apply_entries(product, &[(entry_id, fields)], now_ms)
            .await?;
        results.pop().ok_or_else(|| unexpected("apply_events", &[]))
    }

    /// Applies a batch of `product`'s stream entries (`(id, fields)`) and acknowledges each
    /// for the consumer group, all in one atomic script; returns what became of each entry,
    /// in order. Every entry has exactly the effect it would have alone (a duplicate of an
    /// entry earlier in the batch is [`ApplyResult::Duplicate`]); one call is cheaper for
    /// Redis than one per entry. Entries that do not parse are dead-lettered, each atomically
    /// with its acknowledgement. `now_ms` caps event times.
    pub async fn apply_entries(
        &self,
        product: &ProductId,
        entries: &[(&str, &[(String, String)])],
        now_ms: u64,
    ) -> StoreResult<Vec<ApplyResult>> {
        let keys = self.product_keys(product);
        let mut results: Vec<Option<ApplyResult>> = vec![None; entries.len()];
        let mut invocation = SCRIPTS.apply_events.prepare_invoke();
        invocation
            .key(keys.pending())
            .key(keys.lobby())
            .key(keys.active())
            .key(keys.open())
            .key(keys.reservations())
            .key(keys.events())
            .key(keys.dead_letters())
            .arg(CONSUMER_GROUP)
            .arg(now_ms)
            .arg(self.options.tombstone_ttl.as_secs().max(1));
        const FIXED_KEYS: usize = 7;
        let mut game_key_index: HashMap<GameId, usize> = HashMap::new();
        let mut in_script = Vec::with_capacity(entries.len());
        for (position, (entry_id, fields)) in entries.iter().enumerate() {
            let parsed = Event::from_fields(
                entry_id,
                fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let event = match parsed {
                Ok(event) => event,
                Err(err) => {
                    let reason = format!("{}: {err}", err.code());
                    let handled = self
                        .dead_letter(product, entry_id, fields, &reason, now_ms)
                        .await?;
                    results[position] = Some(if handled {
                        ApplyResult::DeadLettered(reason)
                    } else {
                        ApplyResult::Duplicate
                    });
                    continue;
                }
            };
            let next_index = FIXED_KEYS + game_key_index.len() + 1;
            let key_index = *game_key_index
                .entry(event.game_id.clone())
                .or_insert_with(|| {
                    invocation.key(keys.game(&event.game_id));
                    next_index
                });
            invocation
                .arg(*entry_id)
                .arg(event.kind.as_str())
                .arg(event.player_id.as_ref().map(PlayerId::as_str).unwrap_or(""))
                .arg(event.server_id.as_str())
                .arg(event.ts_ms)
                .arg(key_index);
            in_script.push(position);
        }
        if !in_script.is_empty() {
            let mut conn = self.conn.clone();
            let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
            if reply.len() != 2 * in_script.len() {
                return Err(unexpected("apply_events", &reply));
            }
            for (pair, position) in reply.chunks_exact(2).zip(in_script) {
                results[position] = Some(apply_result(pair)?);
            }
        }
        Ok(results
            .into_iter()
            .map(|result| result.expect("every entry was dead-lettered or sent to the script"))
            .collect())
    }

    /// Copies an entry to `P:{product}:events:dead` with `reason` and acknowledges it, in one
    /// atomic step. Returns `false` if the entry was no longer pending (already handled).
    pub async fn dead_letter(
        &self,
        product: &ProductId,
        entry_id: &str,
        fields: &[(String, String)],
        reason: &str,
        now_ms: u64,
    ) -> StoreResult<bool> {
        let keys = self.product_keys(product);
        let mut invocation = SCRIPTS.dead_letter.prepare_invoke();
        invocation
            .key(keys.events())
            .key(keys.dead_letters())
            .arg(CONSUMER_GROUP)
            .arg(entry_id)
            .arg(reason)
            .arg(now_ms);
        for (name, value) in fields {
            invocation.arg(name).arg(value);
        }
        let mut conn = self.conn.clone();
        let handled: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(handled == 1)
    }

    /// Reserves a seat for `player` (the join API), held for `ttl`.
    pub async fn reserve_seat(
        &self,
        game: &GameId,
        player: &PlayerId,
        now_ms: u64,
        ttl: Duration,
    ) -> StoreResult<ReserveOutcome> {
        let Some(product) = game.product() else {
            return Ok(ReserveOutcome::NotFound);
        };
        let keys = self.product_keys(&product);
        let mut invocation = SCRIPTS.reserve_seat.prepare_invoke();
        Self::game_script_keys(&mut invocation, &keys, game);
        invocation
            .arg(player.as_str())
            .arg(now_ms)
            .arg(ttl.as_millis() as u64);
        let mut conn = self.conn.clone();
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        match (
            reply.first().map(String::as_str),
            reply.get(1).map(String::as_str),
        ) {
            (Some("reserved"), Some(expiry)) => Ok(ReserveOutcome::Reserved {
                expires_at_ms: expiry
                    .parse()
                    .map_err(|_| unexpected("reserve_seat", &reply))?,
            }),
            (Some("held"), _) => Ok(ReserveOutcome::AlreadyHeld),
            (Some("not_found"), _) => Ok(ReserveOutcome::NotFound),
            (Some("refused"), Some("creator_not_joined")) => {
                Ok(ReserveOutcome::Refused(JoinRefusal::CreatorNotJoined))
            }
            (Some("refused"), Some("game_full")) => {
                Ok(ReserveOutcome::Refused(JoinRefusal::GameFull))
            }
            (Some("refused"), Some("game_not_open")) => {
                Ok(ReserveOutcome::Refused(JoinRefusal::GameNotOpen))
            }
            _ => Err(unexpected("reserve_seat", &reply)),
        }
    }

    /// Releases `player`'s reservation on `game` if it expired by `now_ms`, or at once when
    /// `force` (the game server refused the join). Returns whether a seat was freed.
    pub async fn release_seat(
        &self,
        game: &GameId,
        player: &PlayerId,
        now_ms: u64,
        force: bool,
    ) -> StoreResult<bool> {
        let Some(product) = game.product() else {
            return Ok(false);
        };
        self.release_seat_of(&product, game.as_str(), player.as_str(), now_ms, force)
            .await
    }

    async fn release_seat_of(
        &self,
        product: &ProductId,
        game: &str,
        player: &str,
        now_ms: u64,
        force: bool,
    ) -> StoreResult<bool> {
        let keys = self.product_keys(product);
        let mut invocation = SCRIPTS.release_seat.prepare_invoke();
        invocation
            .key(keys.game_by_raw_id(game))
            .key(keys.pending())
            .key(keys.lobby())
            .key(keys.active())
            .key(keys.open())
            .key(keys.reservations())
            .arg(game)
            .arg(player)
            .arg(now_ms)
            .arg(if force { "1" } else { "0" });
        let mut conn = self.conn.clone();
        let released: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(released == 1)
    }

    /// Releases up to `limit` reservations of `product` that expired by `now_ms`. Returns how
    /// many seats were freed.
    pub async fn release_expired_reservations(
        &self,
        product: &ProductId,
        now_ms: u64,
        limit: usize,
    ) -> StoreResult<usize> {
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let expired: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys.reservations())
            .arg("-inf")
            .arg(now_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        let releases = expired.iter().filter_map(|member| {
            let (game, player) = member.split_once(RESERVATION_SEPARATOR)?;
            Some(self.release_seat_of(product, game, player, now_ms, false))
        });
        let results = futures::future::join_all(releases).await;
        let mut freed = 0;
        for result in results {
            freed += usize::from(result?);
        }
        Ok(freed)
    }

    /// Ends a game outside the event stream (curated, cancelled, force-deleted) if `guard`
    /// holds: out of every set, the hash kept as a tombstone whose `end_reason` is `reason`.
    pub async fn remove_game(
        &self,
        game: &GameId,
        reason: &str,
        guard: RemoveGuard,
        now_ms: u64,
    ) -> StoreResult<RemoveOutcome> {
        let Some(product) = game.product() else {
            return Ok(RemoveOutcome::NotFound);
        };
        let keys = self.product_keys(&product);
        let (guard_name, guard_set, cutoff) = match guard {
            RemoveGuard::Any => ("any", "", 0),
            RemoveGuard::Cancellable => ("cancellable", "", 0),
            RemoveGuard::StaleIn { set, cutoff_ms } => ("stale", set.as_str(), cutoff_ms),
        };
        let mut invocation = SCRIPTS.remove_game.prepare_invoke();
        Self::game_script_keys(&mut invocation, &keys, game);
        invocation
            .arg(reason)
            .arg(now_ms)
            .arg(self.options.tombstone_ttl.as_secs().max(1))
            .arg(guard_name)
            .arg(guard_set)
            .arg(cutoff);
        let mut conn = self.conn.clone();
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        let state = |reply: &[String]| -> StoreResult<GameState> {
            reply[1]
                .parse()
                .map_err(|_| unexpected("remove_game", reply))
        };
        match reply.first().map(String::as_str) {
            Some("removed") => Ok(RemoveOutcome::Removed {
                previous: state(&reply)?,
            }),
            Some("refused") => Ok(RemoveOutcome::Refused {
                state: state(&reply)?,
            }),
            Some("not_found") => Ok(RemoveOutcome::NotFound),
            Some("ended") => Ok(RemoveOutcome::AlreadyEnded),
            _ => Err(unexpected("remove_game", &reply)),
        }
    }

    /// A page of open games of `product` (creator joined, a seat free), oldest first, after
    /// `cursor`, optionally only in `region`. The cursor stays correct while games come and
    /// go: it is a position in creation order, not an offset.
    pub async fn open_games(
        &self,
        product: &ProductId,
        region: Option<&str>,
        limit: usize,
        cursor: Option<&OpenCursor>,
        now_ms: u64,
    ) -> StoreResult<OpenPage> {
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let mut games = Vec::with_capacity(limit);
        let (mut min_score, mut after_id) = match cursor {
            Some(c) => (c.created_at_ms, Some(c.game_id.as_str().to_string())),
            None => (0, None),
        };
        let batch = (limit * 2).clamp(16, 1000);
        // Each batch starts at the last score seen; members with that exact score and an id
        // not after the last one returned are skipped (ZRANGE orders equal scores by member).
        loop {
            let raw: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(keys.open())
                .arg(min_score)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            let exhausted = raw.len() < batch;
            let candidates: Vec<(String, u64)> = raw
                .into_iter()
                .map(|(id, score)| (id, score as u64))
                .filter(|(id, score)| {
                    *score > min_score
                        || after_id.as_deref().is_none_or(|after| id.as_str() > after)
                })
                .collect();
            if candidates.is_empty() {
                return Ok(OpenPage {
                    games,
                    next_cursor: None,
                });
            }
            let mut pipe = redis::pipe();
            for (id, _) in &candidates {
                pipe.cmd("HGETALL").arg(keys.game_by_raw_id(id));
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for ((id, score), hash) in candidates.iter().zip(hashes) {
                min_score = *score;
                after_id = Some(id.clone());
                let key = keys.game_by_raw_id(id);
                let Some(game) = decode(&key, &hash)? else {
                    continue;
                };
                if !game.is_open(now_ms)
                    || region.is_some_and(|r| game.region.as_deref() != Some(r))
                {
                    continue;
                }
                if games.len() == limit {
                    // One more open game exists: the page ends at the previous one.
                    let last: &Game = games.last().expect("limit is at least 1");
                    return Ok(OpenPage {
                        next_cursor: Some(OpenCursor {
                            created_at_ms: last.created_at_ms,
                            game_id: last.id.clone(),
                        }),
                        games,
                    });
                }
                games.push(game);
            }
            if exhausted {
                return Ok(OpenPage {
                    games,
                    next_cursor: None,
                });
            }
        }
    }

    /// Members per set of `product`: `[pending, lobby, active]`.
    pub async fn set_counts(&self, product: &ProductId) -> StoreResult<[u64; 3]> {
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let (pending, lobby, active): (u64, u64, u64) = redis::pipe()
            .zcard(keys.pending())
            .zcard(keys.lobby())
            .zcard(keys.active())
            .query_async(&mut conn)
            .await?;
        Ok([pending, lobby, active])
    }

    /// Rows `offset .. offset + count` of a set, stalest first (or newest first when
    /// `newest_first`), with the games' hashes, plus the set's size: one round trip for the
    /// window and count, one for the hashes. Cost depends on `count`, not the set's size.
    pub async fn set_window(
        &self,
        product: &ProductId,
        set: GameSet,
        offset: u64,
        count: u64,
        newest_first: bool,
    ) -> StoreResult<Window> {
        let keys = self.product_keys(product);
        let set_key = keys.set(set);
        let mut conn = self.conn.clone();
        if count == 0 {
            let total: u64 = conn.zcard(&set_key).await?;
            return Ok(Window {
                total,
                rows: Vec::new(),
            });
        }
        let mut range = redis::cmd("ZRANGE");
        range.arg(&set_key).arg(offset).arg(offset + count - 1);
        if newest_first {
            range.arg("REV");
        }
        range.arg("WITHSCORES");
        let (members, total): (Vec<(String, f64)>, u64) = redis::pipe()
            .add_command(range)
            .zcard(&set_key)
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for (id, _) in &members {
            pipe.cmd("HGETALL").arg(keys.game_by_raw_id(id));
        }
        let hashes: Vec<HashMap<String, String>> = if members.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        let rows = members
            .into_iter()
            .zip(hashes)
            .map(|((id, score), hash)| {
                let key = keys.game_by_raw_id(&id);
                let game = match decode(&key, &hash) {
                    Ok(game) => game,
                    Err(err) => {
                        tracing::warn!(%err, "undecodable game hash in a set window");
                        None
                    }
                };
                WindowRow {
                    id,
                    score: score as u64,
                    game,
                }
            })
            .collect();
        Ok(Window { total, rows })
    }
}

fn decode(key: &str, hash: &HashMap<String, String>) -> StoreResult<Option<Game>> {
    if hash.is_empty() {
        return Ok(None);
    }
    game_from_hash(hash)
        .map(Some)
        .map_err(|source| StoreError::Corrupt {
            key: key.to_string(),
            source,
        })
}

/// One `{outcome, detail}` pair of the `apply_events` script.
fn apply_result(pair: &[String]) -> StoreResult<ApplyResult> {
    let state = || -> StoreResult<GameState> {
        pair[1]
            .parse()
            .map_err(|_| unexpected("apply_events", pair))
    };
    match pair[0].as_str() {
        "applied" => Ok(ApplyResult::Applied(state()?)),
        "stale" => Ok(ApplyResult::Stale(state()?)),
        "duplicate" => Ok(ApplyResult::Duplicate),
        "dead" => Ok(ApplyResult::DeadLettered(pair[1].clone())),
        _ => Err(unexpected("apply_events", pair)),
    }
}

fn unexpected(script: &'static str, reply: &[String]) -> StoreError {
    StoreError::UnexpectedReply {
        script,
        reply: reply.to_vec(),
    }
}
