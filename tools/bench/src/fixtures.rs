//! Bulk set-up of benchmark data: game records written with pipelines, games created on
//! reference game servers, events appended as a game server would, and waiting on Redis.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use mm_common::keys::{Keys, ProductKeys};
use mm_common::model::{EntryId, Game, Phase, RosterEntry};
use mm_common::store::game_to_fields;
use mm_common::{GameId, PlayerId, ProductId, ServerId};
use redis::aio::MultiplexedConnection;

/// Commands per pipeline when writing in bulk.
const PIPELINE: usize = 2_000;

/// A scenario's private Redis: the server, a connection, its process id (for its CPU figures)
/// and the keys of the scenario's product.
pub struct ScenarioRedis {
    /// The server (stopped when dropped).
    pub redis: mm_testkit::RedisServer,
    /// A connection to it.
    pub conn: MultiplexedConnection,
    /// Its process id.
    pub pid: u32,
    /// The key schema under the bench's prefix.
    pub keys: Keys,
    /// The scenario's product.
    pub product: ProductId,
    /// That product's keys.
    pub product_keys: ProductKeys,
}

impl ScenarioRedis {
    /// Starts a private redis-server for `product` under `key_prefix`.
    pub async fn start(key_prefix: &str, product: &str) -> anyhow::Result<ScenarioRedis> {
        let redis = mm_testkit::RedisServer::start()?;
        let mut conn = redis.connection().await;
        let pid = redis_pid(&mut conn).await?;
        let keys = Keys::new(key_prefix);
        let product = ProductId::new(product)?;
        let product_keys = keys.product(&product);
        Ok(ScenarioRedis {
            redis,
            conn,
            pid,
            keys,
            product,
            product_keys,
        })
    }
}

/// The process id of a Redis (from `INFO server`), for its CPU figures.
pub async fn redis_pid(conn: &mut MultiplexedConnection) -> anyhow::Result<u32> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .context("INFO server has no process_id")
}

/// A game of `product` on `server` in `phase`, created at `created_at_ms`, with its creator
/// (and, past `created`, the creator present in the roster).
pub fn game(
    product: &ProductId,
    server: &ServerId,
    index: u64,
    phase: Phase,
    capacity: u32,
    created_at_ms: u64,
) -> anyhow::Result<Game> {
    let creator = PlayerId::new(format!("bench-creator-{index}"))?;
    let mut game = Game::new(
        GameId::generate(product),
        product.clone(),
        server.clone(),
        Some("local".to_string()),
        capacity,
        creator.clone(),
        String::new(),
        "{}".to_string(),
        created_at_ms,
    );
    game.phase = phase;
    if phase >= Phase::Lobby {
        game.roster.insert(
            creator,
            RosterEntry {
                entry_id: EntryId::new(created_at_ms, 0),
                present: true,
            },
        );
    }
    Ok(game)
}

/// Writes games straight into the record with pipelines (hash, set, open index) — the layout
/// the store's scripts keep, without paying one script call per game. For set-up only.
pub async fn write_games(
    conn: &mut MultiplexedConnection,
    keys: &ProductKeys,
    games: &[Game],
    now_ms: u64,
) -> anyhow::Result<()> {
    for chunk in games.chunks(PIPELINE / 3) {
        let mut pipe = redis::pipe();
        for game in chunk {
            let key = keys.game(&game.id);
            let fields = game_to_fields(game);
            pipe.hset_multiple(&key, &fields).ignore();
            if let Some((set, score)) = game.set_and_score() {
                pipe.zadd(keys.set(set), game.id.as_str(), score).ignore();
            }
            if game.is_open(now_ms) {
                pipe.zadd(keys.open(), game.id.as_str(), game.created_at_ms)
                    .ignore();
            }
        }
        let () = pipe
            .query_async(conn)
            .await
            .context("writing games in bulk")?;
    }
    Ok(())
}

/// Registers `product` in `P:products` and creates the consumer group at id 0, so a daemon
/// started later reads every event already in the stream.
pub async fn prepare_product(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    product: &ProductId,
) -> anyhow::Result<()> {
    register_product(conn, keys, product).await?;
    create_group(conn, keys, product).await
}

/// Registers `product` in `P:products` (a global key: on a cluster, send it through a cluster
/// connection).
pub async fn register_product(
    conn: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    product: &ProductId,
) -> anyhow::Result<()> {
    let () = redis::cmd("SADD")
        .arg(keys.products())
        .arg(product.as_str())
        .query_async(conn)
        .await?;
    Ok(())
}

/// Creates the consumer group of `product`'s stream at id 0 (kept if it exists), on a
/// connection to the node holding the product's slot.
pub async fn create_group(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    product: &ProductId,
) -> anyhow::Result<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys.product(product).events())
        .arg(mm_common::keys::CONSUMER_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
        Err(err) => Err(err).context("creating the consumer group"),
    }
}

/// One event as a game server writes it: `(type, game_id, player_id, server_id)`.
pub type EventFields = [(&'static str, String); 4];

/// Appends events with pipelined `XADD`s; returns the id of the last one.
pub async fn append_events(
    conn: &mut MultiplexedConnection,
    stream: &str,
    events: impl IntoIterator<Item = EventFields>,
) -> anyhow::Result<Option<String>> {
    let mut last = None;
    let mut pipe = redis::pipe();
    let mut queued = 0;
    for fields in events {
        pipe.xadd(stream, "*", &fields);
        queued += 1;
        if queued == PIPELINE {
            let ids: Vec<String> = pipe.query_async(conn).await.context("XADD in bulk")?;
            last = ids.last().cloned().or(last);
            pipe = redis::pipe();
            queued = 0;
        }
    }
    if queued > 0 {
        let ids: Vec<String> = pipe.query_async(conn).await.context("XADD in bulk")?;
        last = ids.last().cloned().or(last);
    }
    Ok(last)
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ZCARD` of a key.
pub async fn zcard(conn: &mut MultiplexedConnection, key: &str) -> anyhow::Result<u64> {
    Ok(redis::cmd("ZCARD").arg(key).query_async(conn).await?)
}

/// Creates games on a reference game server through its API (`POST /games`), `concurrency`
/// at a time. Fails on the first refusal.
pub async fn create_on_game_server(
    http: &reqwest::Client,
    api_url: &str,
    api_key: &str,
    games: &[Game],
    concurrency: usize,
) -> anyhow::Result<()> {
    let url = format!("{api_url}/games");
    let mut calls = futures::stream::iter(games.iter().map(|game| {
        let request = http
            .post(&url)
            .bearer_auth(api_key)
            .json(&serde_json::json!({
                "game_id": game.id.as_str(),
                "product": game.product.as_str(),
                "capacity": game.capacity,
                "creator_id": game.creator_id.as_str(),
                "settings": {},
            }));
        async move {
            let response = request.send().await?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                bail!("game server refused POST /games: {status} {body}");
            }
            Ok(())
        }
    }))
    .buffer_unordered(concurrency);
    while let Some(result) = calls.next().await {
        result?;
    }
    Ok(())
}

/// `POST /v1/games` as `player`, retried while the daemon answers 503 (its registry takes
/// games only after a server's first health check); fails after 20 s or on another error.
/// Returns the created game's JSON.
pub async fn create_via_api(
    http: &reqwest::Client,
    base_url: &str,
    player: &str,
    product: &str,
    capacity: u32,
) -> anyhow::Result<serde_json::Value> {
    let body = serde_json::json!({ "product": product, "capacity": capacity });
    create_body_via_api(http, base_url, player, &body).await
}

/// [`create_via_api`] with any create body (labels, region, …).
pub async fn create_body_via_api(
    http: &reqwest::Client,
    base_url: &str,
    player: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = http
            .post(format!("{base_url}/v1/games"))
            .header("x-player-id", player)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            return Ok(body);
        }
        if status.as_u16() != 503 || Instant::now() > deadline {
            bail!("POST /v1/games answered {status}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
