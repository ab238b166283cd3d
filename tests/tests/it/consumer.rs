//! The event consumer (`matchmakerd::consumer`) in-process against a real redis-server:
//! applying, draining its own pending entries after a crash, claiming a dead consumer's,
//! dead-lettering, data-loss accounting, recovering a deleted group, and the order proof —
//! three consumers over interleaved events end exactly where the sequential model does. Also
//! the store's stream figures the consumer and curator rely on: the applied watermark, and
//! trimming behind the group.

use std::collections::HashMap;
use std::time::Duration;

use matchmakerd::consumer::{Consumer, ConsumerOptions, MAX_DELIVERIES_REASON};
use mm_common::keys::CONSUMER_GROUP;
use mm_common::store::{DeadConsumerSweep, GroupInfo, Store, Watermark};
use mm_common::time::now_ms;
use mm_common::{Event, EventKind, Game, GameId, GameState, PlayerId, ProductId, ServerId};
use mm_testkit::app::TestRedis;
use mm_testkit::scenario::Placement;
use mm_testkit::{RedisServer, invariants, poll};
use redis::AsyncCommands;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A deterministic history of many games' events, interleaved, plus the reference model.
pub struct Workload {
    /// The product.
    pub product: ProductId,
    /// The games as created (before any event).
    pub games: Vec<Game>,
    /// Every event's fields, in the order they are written to the stream.
    pub events: Vec<Vec<(String, String)>>,
}

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

impl Workload {
    /// `games` games of `product` with about `events` events in all. Game 0 always has a
    /// player (`p1`) who joins and then leaves, and nothing else about them.
    pub fn generate(product: &ProductId, games: usize, events: usize, seed: u64) -> Workload {
        let mut rng = Rng(seed | 1);
        let base = now_ms() - 3_600_000;
        let server = ServerId::new("gs-1").unwrap();
        let created: Vec<Game> = (0..games)
            .map(|n| {
                Game::new(
                    GameId::new(format!("{product}.g{n:05}")).unwrap(),
                    product.clone(),
                    server.clone(),
                    None,
                    4,
                    PlayerId::new(format!("c{n}")).unwrap(),
                    "ws://127.0.0.1:1/ws".into(),
                    "{}".into(),
                    base,
                )
            })
            .collect();
        let mut per_game: Vec<Vec<(EventKind, Option<String>)>> = vec![Vec::new(); games];
        for (n, script) in per_game.iter_mut().enumerate() {
            script.push((EventKind::CreatorJoined, None));
            if n == 0 {
                script.push((EventKind::PlayerJoined, Some("p1".into())));
                script.push((EventKind::PlayerJoined, Some("p2".into())));
                script.push((EventKind::PlayerLeft, Some("p1".into())));
            }
        }
        let mut total: usize = per_game.iter().map(Vec::len).sum();
        while total < events {
            let n = rng.below(games as u64) as usize;
            let player = || format!("p{}", 2 + n % 3);
            let step = match rng.below(100) {
                0..=34 => (
                    EventKind::PlayerJoined,
                    Some(format!("p{}", 2 + rng.below(5))),
                ),
                35..=59 => (
                    EventKind::PlayerLeft,
                    Some(format!("p{}", 2 + rng.below(5))),
                ),
                60..=79 => (EventKind::Heartbeat, None),
                80..=86 => (EventKind::AllPlayersJoined, None),
                87..=94 => (EventKind::GameStarted, None),
                95..=97 => (EventKind::PlayerJoined, Some(player())),
                _ => (EventKind::GameEnded, None),
            };
            if n == 0 && step.1.as_deref() == Some("p1") {
                continue;
            }
            per_game[n].push(step);
            total += 1;
        }
        // Interleave: repeatedly take the next event of a random game that has one left.
        let mut cursors = vec![0usize; games];
        let mut events_out = Vec::with_capacity(total);
        let mut remaining: Vec<usize> = (0..games).collect();
        let mut ts = base;
        while !remaining.is_empty() {
            let pick = rng.below(remaining.len() as u64) as usize;
            let n = remaining[pick];
            let (kind, player) = per_game[n][cursors[n]].clone();
            cursors[n] += 1;
            if cursors[n] == per_game[n].len() {
                remaining.swap_remove(pick);
            }
            ts += 1;
            let mut fields = vec![
                ("type".to_string(), kind.as_str().to_string()),
                ("game_id".to_string(), created[n].id.to_string()),
                ("server_id".to_string(), "gs-1".to_string()),
                ("ts".to_string(), ts.to_string()),
            ];
            if let Some(player) = player {
                fields.push(("player_id".to_string(), player));
            }
            events_out.push(fields);
        }
        Workload {
            product: product.clone(),
            games: created,
            events: events_out,
        }
    }

    /// Records every game (state `created`) and the product.
    pub async fn create_games(&self, store: &Store) {
        store
            .register_products(std::slice::from_ref(&self.product))
            .await
            .unwrap();
        for game in &self.games {
            assert!(store.create_game(game).await.unwrap());
        }
    }

    /// Writes events `range` to the stream as game servers would; returns their entry ids.
    pub async fn write(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
        stream: &str,
        range: std::ops::Range<usize>,
    ) -> Vec<String> {
        let mut ids = Vec::with_capacity(range.len());
        for chunk in self.events[range].chunks(500) {
            let mut pipe = redis::pipe();
            for fields in chunk {
                pipe.xadd(stream, "*", fields);
            }
            let chunk_ids: Vec<String> = pipe.query_async(conn).await.unwrap();
            ids.extend(chunk_ids);
        }
        ids
    }

    /// The reference: every game after applying `written` (id, event index) in stream order
    /// with the pure model.
    pub fn expected(&self, ids: &[String]) -> HashMap<GameId, Game> {
        let mut games: HashMap<GameId, Game> = self
            .games
            .iter()
            .map(|g| (g.id.clone(), g.clone()))
            .collect();
        for (id, fields) in ids.iter().zip(&self.events) {
            let event =
                Event::from_fields(id, fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .unwrap();
            games
                .get_mut(&event.game_id)
                .unwrap()
                .apply(&event, u64::MAX / 2)
                .unwrap();
        }
        games
    }

    /// Asserts the store holds exactly the reference games.
    pub async fn assert_matches(&self, store: &Store, ids: &[String]) {
        let expected = self.expected(ids);
        let mut mismatches = Vec::new();
        for (id, want) in &expected {
            let got = store.game(id).await.unwrap();
            if got.as_ref() != Some(want) {
                mismatches.push(format!("{id}: store {got:?}\n  model {want:?}"));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} of {} games differ from the sequential model; first: {}",
            mismatches.len(),
            expected.len(),
            mismatches[0]
        );
    }
}

/// The group's pending count and lag on `stream` (read here with `XINFO GROUPS`, not through
/// the store whose figures the consumer's gauges report).
pub async fn group_figures(
    conn: &mut impl redis::aio::ConnectionLike,
    stream: &str,
) -> Option<GroupInfo> {
    let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await
        .ok()?;
    let group = groups.into_iter().find(|group| {
        group
            .get("name")
            .and_then(|name| redis::from_redis_value_ref::<String>(name).ok())
            .as_deref()
            == Some(CONSUMER_GROUP)
    })?;
    let number = |name: &str| -> Option<u64> {
        redis::from_redis_value_ref::<Option<u64>>(group.get(name)?).ok()?
    };
    Some(GroupInfo {
        pending: number("pending").unwrap_or(0),
        lag: number("lag"),
        consumers: number("consumers").unwrap_or(0),
    })
}

/// Whether every entry of `stream` was delivered and acknowledged.
pub async fn fully_consumed(conn: &mut impl redis::aio::ConnectionLike, stream: &str) -> bool {
    matches!(
        group_figures(conn, stream).await,
        Some(GroupInfo {
            pending: 0,
            lag: Some(0),
            ..
        })
    )
}

/// Writes three poison entries to `stream`: an unknown type for `game`, a missing game id,
/// and an unknown game.
pub async fn write_poison(conn: &mut impl redis::aio::ConnectionLike, stream: &str, game: &GameId) {
    let poison: [&[(&str, &str)]; 3] = [
        &[
            ("type", "teleported"),
            ("game_id", game.as_str()),
            ("server_id", "gs-1"),
        ],
        &[("type", "heartbeat"), ("server_id", "gs-1")],
        &[
            ("type", "heartbeat"),
            ("game_id", "chess.ghost"),
            ("server_id", "gs-1"),
        ],
    ];
    for fields in poison {
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg(fields)
            .query_async(conn)
            .await
            .unwrap();
    }
}

/// The dead-letter reasons of [`write_poison`]'s entries, in any order (entries of one batch
/// are applied concurrently).
pub fn assert_poison_reasons(mut reasons: Vec<String>) {
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].starts_with("missing_field"), "{reasons:?}");
    assert_eq!(reasons[1], "unknown_game");
    assert!(reasons[2].starts_with("unknown_type"), "{reasons:?}");
}

/// Consumer options for tests: small batches, short blocking, fast refresh.
fn options(name: &str) -> ConsumerOptions {
    ConsumerOptions {
        name: name.into(),
        batch_size: 32,
        block: Duration::from_millis(100),
        claim_idle: Duration::from_secs(30),
        max_deliveries: 3,
        apply_concurrency: 16,
        apply_batch_size: 4,
        refresh_interval: Duration::from_millis(100),
        retain: Duration::from_secs(3600),
        trim_interval: Duration::from_millis(100),
        dead_consumer_idle: Duration::from_secs(3600),
    }
}

struct Running {
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the consumer stops promptly on cancellation")
            .unwrap();
    }
}

fn spawn(store: &Store, options: ConsumerOptions, products: Vec<ProductId>) -> Running {
    let token = CancellationToken::new();
    let consumer = Consumer::new(store.clone(), options, products);
    let task = tokio::spawn(consumer.run(token.clone()));
    Running { token, task }
}

pub struct Fixture {
    pub redis: TestRedis,
    pub store: Store,
    pub product: ProductId,
    pub stream: String,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with_redis(RedisServer::start().expect("redis-server")).await
    }

    /// A fixture over `redis` (the fault tests start theirs with AOF on).
    pub async fn with_redis(redis: RedisServer) -> Fixture {
        Fixture::over(&Placement::node(), TestRedis::Node(redis)).await
    }

    /// On the scenario's Redis, with its product and key prefix.
    async fn on(at: &Placement) -> Fixture {
        Fixture::over(at, at.redis().expect("redis")).await
    }

    async fn over(at: &Placement, redis: TestRedis) -> Fixture {
        let store = Store::connect(at.store_options(&redis)).await.unwrap();
        let product = ProductId::new(&at.product).unwrap();
        let stream = store.keys().product(&product).events();
        Fixture {
            redis,
            store,
            product,
            stream,
        }
    }

    async fn create_group(&self) {
        self.store.ensure_group(&self.product).await.unwrap();
    }

    /// Delivers every new entry to consumer `name` without acknowledging (a crash after the
    /// read).
    async fn deliver_to(&self, name: &str) -> usize {
        let mut conn = self.redis.connection().await;
        let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(CONSUMER_GROUP)
            .arg(name)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut conn)
            .await
            .unwrap();
        reply.map_or(0, |reply| reply.keys.iter().map(|key| key.ids.len()).sum())
    }

    /// Creates the games of a generated workload and writes all its events to the stream;
    /// returns the workload and the entry ids.
    async fn write_workload(
        &self,
        games: usize,
        events: usize,
        seed: u64,
    ) -> (Workload, Vec<String>) {
        let workload = Workload::generate(&self.product, games, events, seed);
        workload.create_games(&self.store).await;
        let mut conn = self.redis.connection().await;
        let ids = workload
            .write(&mut conn, &self.stream, 0..workload.events.len())
            .await;
        (workload, ids)
    }

    async fn wait_consumed(&self, what: &str) {
        let conn = self.redis.connection().await;
        poll::until(what, Duration::from_secs(20), || {
            let stream = self.stream.clone();
            let mut conn = conn.clone();
            async move { fully_consumed(&mut conn, &stream).await.then_some(()) }
        })
        .await;
    }

    async fn dead_letters(&self) -> Vec<HashMap<String, String>> {
        let mut conn = self.redis.connection().await;
        let reply: redis::streams::StreamRangeReply = conn
            .xrange_all(self.store.keys().product(&self.product).dead_letters())
            .await
            .unwrap();
        reply
            .ids
            .into_iter()
            .map(|entry| {
                entry
                    .map
                    .into_iter()
                    .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                    .collect()
            })
            .collect()
    }

    pub async fn check_invariants(&self) {
        let mut conn = self.redis.connection().await;
        invariants::check_all(
            &mut conn,
            self.store.keys().prefix(),
            std::slice::from_ref(&self.product),
            now_ms(),
        )
        .await
        .unwrap();
    }
}

/// Events written before and while the consumer runs are applied; a product registered after
/// the start is picked up without a restart.
#[tokio::test]
async fn applies_events_of_products_that_appear_while_running() {
    applies_events_of_products_that_appear_while_running_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn applies_events_of_products_that_appear_while_running_on(at: Placement) {
    let fx = Fixture::on(&at).await;
    let running = spawn(&fx.store, options("c1"), Vec::new());
    let (workload, ids) = fx.write_workload(5, 60, 7).await;
    fx.wait_consumed("the new product's stream to be consumed")
        .await;
    workload.assert_matches(&fx.store, &ids).await;
    running.stop().await;
    fx.check_invariants().await;
}

/// The order proof: three consumers share one stream of interleaved events of the same games
/// (joins and leaves of the same players, starts, ends), each applying its batches
/// concurrently; the final records equal the sequential model's, and a player who joined and
/// then left is not joined.
#[tokio::test]
async fn three_consumers_reach_the_sequential_models_result() {
    three_consumers_reach_the_sequential_models_result_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn three_consumers_reach_the_sequential_models_result_on(at: Placement) {
    let fx = Fixture::on(&at).await;
    let (workload, ids) = fx.write_workload(40, 3000, 42).await;
    let mut conn = fx.redis.connection().await;
    let consumers: Vec<Running> = ["c1", "c2", "c3"]
        .into_iter()
        .map(|name| {
            let mut opts = options(name);
            opts.batch_size = 8;
            spawn(&fx.store, opts, vec![fx.product.clone()])
        })
        .collect();
    fx.wait_consumed("three consumers to consume the stream")
        .await;
    for running in consumers {
        running.stop().await;
    }
    workload.assert_matches(&fx.store, &ids).await;
    let first = fx.store.game(&workload.games[0].id).await.unwrap().unwrap();
    let p1 = PlayerId::new("p1").unwrap();
    assert!(
        !first.players().contains(&p1),
        "p1 joined then left, yet is listed: {:?}",
        first.players()
    );
    assert!(
        first.roster.contains_key(&p1),
        "p1's join and leave were both applied"
    );
    // Every consumer took part (the group spread the entries).
    let consumers: redis::Value = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&fx.stream)
        .arg(CONSUMER_GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    let listed = format!("{consumers:?}");
    for name in ["c1", "c2", "c3"] {
        assert!(
            listed.contains(name),
            "consumer {name} never read: {listed}"
        );
    }
    fx.check_invariants().await;
}

/// A restarted consumer (same name) first drains what it had received but not acknowledged.
#[tokio::test]
async fn a_restarted_consumer_drains_its_own_pending_entries() {
    a_restarted_consumer_drains_its_own_pending_entries_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn a_restarted_consumer_drains_its_own_pending_entries_on(at: Placement) {
    let fx = Fixture::on(&at).await;
    fx.create_group().await;
    let (workload, ids) = fx.write_workload(3, 40, 3).await;
    assert_eq!(fx.deliver_to("c1").await, ids.len());
    // Claiming is far off (30 s): only draining its own pending list can finish the work.
    let running = spawn(&fx.store, options("c1"), vec![fx.product.clone()]);
    fx.wait_consumed("the restarted consumer to drain its pending entries")
        .await;
    running.stop().await;
    workload.assert_matches(&fx.store, &ids).await;
    fx.check_invariants().await;
}

/// A consumer stopped mid-stream first applies everything it received — the batch in flight
/// and the one read ahead — so nothing is left pending; a restart finishes the stream.
#[tokio::test]
async fn a_consumer_stopped_mid_stream_leaves_nothing_it_received_unapplied() {
    let fx = Fixture::new().await;
    fx.create_group().await;
    let (workload, ids) = fx.write_workload(50, 6_000, 11).await;
    let mut conn = fx.redis.connection().await;
    let running = spawn(&fx.store, options("c1"), vec![fx.product.clone()]);
    poll::until(
        "the consumer to start applying",
        Duration::from_secs(20),
        || {
            let mut conn = conn.clone();
            let stream = fx.stream.clone();
            let total = ids.len() as u64;
            async move {
                let figures = group_figures(&mut conn, &stream).await?;
                figures.lag.filter(|lag| *lag < total).map(|_| ())
            }
        },
    )
    .await;
    running.stop().await;
    let figures = group_figures(&mut conn, &fx.stream).await.unwrap();
    assert_eq!(
        figures.pending, 0,
        "entries delivered before the stop were left unapplied ({figures:?})"
    );
    let running = spawn(&fx.store, options("c1"), vec![fx.product.clone()]);
    fx.wait_consumed("the restarted consumer to finish the stream")
        .await;
    running.stop().await;
    workload.assert_matches(&fx.store, &ids).await;
    fx.check_invariants().await;
}

/// An event the apply script fails on (its game's hash is corrupt) holds up only itself: the
/// other games' events in the same batches are applied, and it is dead-lettered once it has
/// been delivered more than `max_deliveries` times.
#[tokio::test]
async fn an_event_the_script_fails_on_holds_up_only_itself() {
    let fx = Fixture::new().await;
    fx.create_group().await;
    let workload = Workload::generate(&fx.product, 4, 60, 21);
    workload.create_games(&fx.store).await;
    let mut conn = fx.redis.connection().await;
    let broken = workload.games[0].id.clone();
    let broken_key = fx.store.keys().product(&fx.product).game(&broken);
    let () = conn.hset(&broken_key, "roster", "not json").await.unwrap();
    let ids = workload
        .write(&mut conn, &fx.stream, 0..workload.events.len())
        .await;
    let broken_entries: Vec<&String> = ids
        .iter()
        .zip(&workload.events)
        .filter(|(_, fields)| {
            fields
                .iter()
                .any(|(k, v)| k == "game_id" && *v == broken.as_str())
        })
        .map(|(id, _)| id)
        .collect();
    assert!(!broken_entries.is_empty());

    let mut opts = options("c1");
    opts.claim_idle = Duration::from_millis(300);
    opts.max_deliveries = 2;
    // One script call per read batch, so every call holds events of the broken game too.
    opts.apply_batch_size = opts.batch_size;
    opts.apply_concurrency = opts.batch_size;
    let running = spawn(&fx.store, opts, vec![fx.product.clone()]);
    fx.wait_consumed("every entry applied or dead-lettered")
        .await;
    running.stop().await;

    let expected = workload.expected(&ids);
    for game in &workload.games[1..] {
        assert_eq!(
            fx.store.game(&game.id).await.unwrap().as_ref(),
            Some(&expected[&game.id]),
            "{}: a healthy game's events were held up by the broken one",
            game.id
        );
    }
    let mut buried: Vec<(String, String)> = fx
        .dead_letters()
        .await
        .into_iter()
        .map(|d| (d["source_id"].clone(), d["reason"].clone()))
        .collect();
    buried.sort();
    let mut wanted: Vec<(String, String)> = broken_entries
        .iter()
        .map(|id| (id.to_string(), MAX_DELIVERIES_REASON.to_string()))
        .collect();
    wanted.sort();
    assert_eq!(
        buried, wanted,
        "exactly the broken game's events are dead-lettered"
    );
    // Nothing was written for the broken game; repaired, the record is consistent.
    let () = conn.hset(&broken_key, "roster", "{}").await.unwrap();
    let repaired = fx.store.game(&broken).await.unwrap().unwrap();
    assert_eq!(repaired.state(), GameState::Created);
    fx.check_invariants().await;
}

/// Entries a dead consumer received are claimed by another after the idle time.
#[tokio::test]
async fn a_dead_consumers_entries_are_claimed() {
    a_dead_consumers_entries_are_claimed_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn a_dead_consumers_entries_are_claimed_on(at: Placement) {
    let fx = Fixture::on(&at).await;
    fx.create_group().await;
    let (workload, ids) = fx.write_workload(3, 40, 5).await;
    assert_eq!(fx.deliver_to("dead").await, ids.len());
    let mut opts = options("alive");
    opts.claim_idle = Duration::from_millis(300);
    let running = spawn(&fx.store, opts, vec![fx.product.clone()]);
    fx.wait_consumed("the survivor to claim and apply the dead consumer's entries")
        .await;
    running.stop().await;
    workload.assert_matches(&fx.store, &ids).await;
    fx.check_invariants().await;
}

/// An entry delivered more than `max_deliveries` times is dead-lettered with the reason, not
/// retried forever.
#[tokio::test]
async fn an_entry_delivered_too_often_is_dead_lettered() {
    let fx = Fixture::new().await;
    fx.create_group().await;
    let workload = Workload::generate(&fx.product, 1, 1, 9);
    workload.create_games(&fx.store).await;
    let mut conn = fx.redis.connection().await;
    let ids = workload.write(&mut conn, &fx.stream, 0..1).await;
    fx.deliver_to("dead").await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&fx.stream)
        .arg(CONSUMER_GROUP)
        .arg("dead")
        .arg(0)
        .arg(&ids[0])
        .arg("RETRYCOUNT")
        .arg(10)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut opts = options("alive");
    opts.claim_idle = Duration::from_millis(200);
    let running = spawn(&fx.store, opts, vec![fx.product.clone()]);
    fx.wait_consumed("the over-delivered entry to be handled")
        .await;
    running.stop().await;
    let dead = fx.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["reason"], "max_deliveries_exceeded");
    assert_eq!(dead[0]["source_id"], ids[0]);
    let game = fx.store.game(&workload.games[0].id).await.unwrap().unwrap();
    assert_eq!(
        game.state(),
        GameState::Created,
        "the event must not be applied"
    );
    fx.check_invariants().await;
}

/// Poison entries (unknown type, missing game id, unknown game) are dead-lettered with their
/// reasons and never stop the others.
#[tokio::test]
async fn poison_entries_are_dead_lettered_and_the_rest_applied() {
    poison_entries_are_dead_lettered_and_the_rest_applied_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn poison_entries_are_dead_lettered_and_the_rest_applied_on(at: Placement) {
    let fx = Fixture::on(&at).await;
    let workload = Workload::generate(&fx.product, 2, 20, 11);
    workload.create_games(&fx.store).await;
    let mut conn = fx.redis.connection().await;
    write_poison(&mut conn, &fx.stream, &workload.games[0].id).await;
    let ids = workload
        .write(&mut conn, &fx.stream, 0..workload.events.len())
        .await;
    let running = spawn(&fx.store, options("c1"), vec![fx.product.clone()]);
    fx.wait_consumed("poison and good entries to be handled")
        .await;
    running.stop().await;
    let reasons = fx
        .dead_letters()
        .await
        .into_iter()
        .map(|d| d["reason"].clone());
    assert_poison_reasons(reasons.collect());
    workload.assert_matches(&fx.store, &ids).await;
    fx.check_invariants().await;
}

/// Pending entries trimmed away before they were applied are acknowledged (the pending list
/// empties) instead of blocking the consumer.
#[tokio::test]
async fn trimmed_pending_entries_are_acknowledged_as_lost() {
    let fx = Fixture::new().await;
    fx.create_group().await;
    let workload = Workload::generate(&fx.product, 2, 20, 13);
    workload.create_games(&fx.store).await;
    let mut conn = fx.redis.connection().await;
    let ids = workload.write(&mut conn, &fx.stream, 0..10).await;
    fx.deliver_to("c1").await;
    let deleted: u64 = conn.xdel(&fx.stream, &ids[..5]).await.unwrap();
    assert_eq!(deleted, 5);
    let rest = workload
        .write(&mut conn, &fx.stream, 10..workload.events.len())
        .await;
    let running = spawn(&fx.store, options("c1"), vec![fx.product.clone()]);
    poll::until("the pending list to empty", Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let stream = fx.stream.clone();
        async move {
            let info = group_figures(&mut conn, &stream).await?;
            (info.pending == 0 && info.lag.is_none_or(|lag| lag == 0)).then_some(())
        }
    })
    .await;
    running.stop().await;
    // What survived is applied exactly as the model says for the surviving entries.
    let mut survivors: Vec<String> = ids[5..].to_vec();
    survivors.extend(rest);
    let kept = Workload {
        product: workload.product.clone(),
        games: workload.games.clone(),
        events: workload.events[5..].to_vec(),
    };
    kept.assert_matches(&fx.store, &survivors).await;
    fx.check_invariants().await;
}

/// If the consumer group is destroyed while the daemon runs, it is recreated at id 0 and
/// consumption continues: nothing written meanwhile is skipped.
#[tokio::test]
async fn a_destroyed_group_is_recreated_without_skipping_entries() {
    let fx = Fixture::new().await;
    let workload = Workload::generate(&fx.product, 4, 80, 17);
    workload.create_games(&fx.store).await;
    let mut conn = fx.redis.connection().await;
    let running = spawn(&fx.store, options("c1"), vec![fx.product.clone()]);
    let mut ids = workload.write(&mut conn, &fx.stream, 0..40).await;
    fx.wait_consumed("the first half").await;
    let destroyed: u64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&fx.stream)
        .arg(CONSUMER_GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(destroyed, 1);
    ids.extend(
        workload
            .write(&mut conn, &fx.stream, 40..workload.events.len())
            .await,
    );
    fx.wait_consumed("the second half after recreating the group")
        .await;
    running.stop().await;
    workload.assert_matches(&fx.store, &ids).await;
    fx.check_invariants().await;
}

/// Appends an entry with the explicit id `<ms>-0` to `stream`.
async fn append_at(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    stream: &str,
    ms: u64,
) -> String {
    redis::cmd("XADD")
        .arg(stream)
        .arg(format!("{ms}-0"))
        .arg("type")
        .arg("heartbeat")
        .query_async(conn)
        .await
        .unwrap()
}

/// Acknowledges `ids` for the group.
async fn ack(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    stream: &str,
    ids: &[&str],
) {
    let _: u64 = conn.xack(stream, CONSUMER_GROUP, ids).await.unwrap();
}

/// The oldest unacknowledged entry's id the watermark names (`None`: caught up).
async fn oldest(fx: &Fixture) -> Option<String> {
    let watermark = fx.store.watermark(&fx.product).await.unwrap();
    if let Watermark::Behind {
        oldest_id,
        oldest_ms,
        ..
    } = &watermark
    {
        assert!(
            oldest_id.starts_with(&format!("{oldest_ms}-")),
            "{watermark:?}"
        );
    }
    watermark.oldest_id().map(str::to_string)
}

fn behind(ms: u64) -> Option<String> {
    Some(format!("{ms}-0"))
}

/// The applied watermark is the oldest entry the group has not acknowledged, whether it is
/// pending (delivered) or undelivered, and the stream's first entry while there is no group.
#[tokio::test]
async fn the_watermark_is_the_oldest_unacknowledged_entry() {
    let fx = Fixture::new().await;
    let mut conn = fx.redis.connection().await;
    let watermark = || oldest(&fx);
    assert_eq!(watermark().await, None, "no stream");
    // An empty stream with its group.
    fx.create_group().await;
    assert_eq!(watermark().await, None, "empty stream");
    for ms in [1000, 2000, 3000] {
        append_at(&mut conn, &fx.stream, ms).await;
    }
    assert_eq!(watermark().await, behind(1000), "all undelivered");
    // Two delivered, none acknowledged: the oldest pending one.
    let delivered: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(CONSUMER_GROUP)
        .arg("c1")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg(&fx.stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(delivered.unwrap().keys[0].ids.len(), 2);
    assert_eq!(watermark().await, behind(1000), "pending 1000 and 2000");
    ack(&mut conn, &fx.stream, &["1000-0"]).await;
    assert_eq!(watermark().await, behind(2000), "pending 2000");
    ack(&mut conn, &fx.stream, &["2000-0"]).await;
    assert_eq!(watermark().await, behind(3000), "undelivered 3000");
    // Delivered out of order of acknowledgement: 3000 acknowledged, 4000 pending, 5000 new.
    fx.deliver_to("c1").await;
    ack(&mut conn, &fx.stream, &["3000-0"]).await;
    assert_eq!(watermark().await, None, "all acknowledged");
    append_at(&mut conn, &fx.stream, 4000).await;
    fx.deliver_to("c2").await;
    append_at(&mut conn, &fx.stream, 5000).await;
    assert_eq!(
        watermark().await,
        behind(4000),
        "pending older than undelivered"
    );
    ack(&mut conn, &fx.stream, &["4000-0"]).await;
    assert_eq!(watermark().await, behind(5000));
    // A pending entry whose body was trimmed is still unacknowledged.
    fx.deliver_to("c1").await;
    let _: u64 = conn.xdel(&fx.stream, &["5000-0"]).await.unwrap();
    assert_eq!(watermark().await, behind(5000), "pending, body gone");
    ack(&mut conn, &fx.stream, &["5000-0"]).await;
    assert_eq!(watermark().await, None);
    // No group: every entry counts as unacknowledged.
    let _: u64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&fx.stream)
        .arg(CONSUMER_GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(watermark().await, behind(1000), "no group");
    // The age is measured on Redis's clock: the entry at 1000 ms is decades old.
    let watermark = fx.store.watermark(&fx.product).await.unwrap();
    let age = watermark.age();
    assert!(
        age.as_millis() as u64 >= now_ms() - 60_000 - 1000,
        "{watermark:?}"
    );
    assert_eq!(
        watermark.applied_until(1_000_000_000),
        1_000_000_000u64.saturating_sub(age.as_millis() as u64)
    );
    assert_eq!(Watermark::CaughtUp.age(), Duration::ZERO);
    assert_eq!(Watermark::CaughtUp.applied_until(4000), 4000);
}

/// The ids of every entry of `stream`.
async fn entry_ids(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    stream: &str,
) -> Vec<String> {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(stream).await.unwrap();
    reply.ids.into_iter().map(|entry| entry.id).collect()
}

/// Trimming never removes an entry the group has not acknowledged (pending or undelivered) or
/// one younger than the retention floor, removes nothing without a group, and does shorten
/// the stream once entries are acknowledged and older than the floor.
#[tokio::test]
async fn trimming_keeps_every_unacknowledged_entry_and_the_retained_tail() {
    let fx = Fixture::new().await;
    let mut conn = fx.redis.connection().await;
    // 1000 entries at 1..=1000 ms: ten radix-tree nodes of 100 (Redis's default), so `~`
    // has whole nodes to drop.
    for ms in 1..=1000 {
        append_at(&mut conn, &fx.stream, ms).await;
    }
    assert_eq!(
        fx.store
            .trim_events(&fx.product, u64::MAX / 2)
            .await
            .unwrap(),
        0,
        "no group"
    );
    fx.create_group().await;
    assert_eq!(
        fx.store
            .trim_events(&fx.product, u64::MAX / 2)
            .await
            .unwrap(),
        0,
        "nothing delivered"
    );
    // Everything delivered; the first 600 acknowledged, 601..=1000 pending.
    assert_eq!(fx.deliver_to("c1").await, 1000);
    let acked: Vec<String> = (1..=600).map(|ms| format!("{ms}-0")).collect();
    let _: u64 = conn.xack(&fx.stream, CONSUMER_GROUP, &acked).await.unwrap();
    // The retention floor (350 ms) is below the oldest pending entry: it decides.
    let trimmed = fx.store.trim_events(&fx.product, 350).await.unwrap();
    let ids = entry_ids(&mut conn, &fx.stream).await;
    assert!(
        trimmed > 0,
        "acknowledged entries older than the floor are trimmed"
    );
    assert_eq!(ids.len() as u64, 1000 - trimmed);
    assert!(
        ids.contains(&"350-0".to_string()),
        "the retained tail is kept"
    );
    // A floor far in the future: the oldest pending entry (601) decides.
    let trimmed = fx
        .store
        .trim_events(&fx.product, u64::MAX / 2)
        .await
        .unwrap();
    assert!(trimmed > 0);
    let ids = entry_ids(&mut conn, &fx.stream).await;
    let first: u64 = ids[0].split('-').next().unwrap().parse().unwrap();
    assert!(first <= 601, "first entry left: {first}");
    for ms in 601..=1000 {
        assert!(
            ids.contains(&format!("{ms}-0")),
            "pending entry {ms} was trimmed"
        );
    }
    // Acknowledge the rest but write an undelivered one: it bounds the trim too.
    let rest: Vec<String> = (601..=1000).map(|ms| format!("{ms}-0")).collect();
    let _: u64 = conn.xack(&fx.stream, CONSUMER_GROUP, &rest).await.unwrap();
    append_at(&mut conn, &fx.stream, 1001).await;
    fx.store
        .trim_events(&fx.product, u64::MAX / 2)
        .await
        .unwrap();
    let ids = entry_ids(&mut conn, &fx.stream).await;
    assert!(
        ids.contains(&"1001-0".to_string()),
        "an undelivered entry was trimmed"
    );
    assert!(
        ids.len() < 500,
        "acknowledged entries were kept: {}",
        ids.len()
    );
    assert_eq!(oldest(&fx).await, behind(1001));
}

/// A backlog larger than one trim call's limit is trimmed in several calls by one
/// `trim_events`: a busy stream gains more between two trims than Redis's default `XTRIM`
/// limit (100 nodes' worth) removes, so a single call would fall behind for ever.
#[tokio::test]
async fn a_backlog_larger_than_one_trim_call_is_trimmed_in_one_go() {
    let fx = Fixture::new().await;
    let mut conn = fx.redis.connection().await;
    for ms in 1..=1000 {
        append_at(&mut conn, &fx.stream, ms).await;
    }
    fx.create_group().await;
    assert_eq!(fx.deliver_to("c1").await, 1000);
    let all: Vec<String> = (1..=1000).map(|ms| format!("{ms}-0")).collect();
    let _: u64 = conn.xack(&fx.stream, CONSUMER_GROUP, &all).await.unwrap();
    let trimmed = fx
        .store
        .trim_events_in_calls(&fx.product, u64::MAX / 2, 200)
        .await
        .unwrap();
    let left = entry_ids(&mut conn, &fx.stream).await.len() as u64;
    assert_eq!(trimmed + left, 1000);
    assert!(
        trimmed >= 900,
        "only {trimmed} of 1000 acknowledged entries trimmed in calls of 200"
    );
}

/// The running consumer trims its stream behind the group: with a short retention, a stream
/// of applied events shrinks, and every event is still applied.
#[tokio::test]
async fn the_consumer_trims_applied_events_older_than_the_retention() {
    the_consumer_trims_applied_events_older_than_the_retention_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn the_consumer_trims_applied_events_older_than_the_retention_on(at: Placement) {
    let fx = Fixture::on(&at).await;
    fx.create_group().await;
    let (workload, ids) = fx.write_workload(20, 600, 23).await;
    let mut options = options("c1");
    options.retain = Duration::from_millis(1);
    let running = spawn(&fx.store, options, vec![fx.product.clone()]);
    fx.wait_consumed("every event applied").await;
    let written = ids.len() as u64;
    let conn = fx.redis.connection().await;
    let len = poll::until("the stream to be trimmed", Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let stream = fx.stream.clone();
        async move {
            let len: u64 = conn.xlen(&stream).await.ok()?;
            (len < written).then_some(len)
        }
    })
    .await;
    running.stop().await;
    assert!(len < written);
    workload.assert_matches(&fx.store, &ids).await;
    fx.check_invariants().await;
}

/// The dead-consumer sweep (contract section 9) removes only a consumer that is not live,
/// holds no pending entries and has been idle at least the bound; consumers created by hand.
#[tokio::test]
async fn only_idle_empty_consumers_of_gone_instances_are_removed_from_the_group() {
    let fx = Fixture::new().await;
    fx.create_group().await;
    let (_workload, ids) = fx.write_workload(2, 10, 9).await;
    // `holder` receives every entry (and never acknowledges); the others exist, empty.
    assert_eq!(fx.deliver_to("holder").await, ids.len());
    let mut conn = fx.redis.connection().await;
    for name in ["gone", "live"] {
        let created: u64 = redis::cmd("XGROUP")
            .arg("CREATECONSUMER")
            .arg(&fx.stream)
            .arg(CONSUMER_GROUP)
            .arg(name)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(created, 1);
    }
    let consumers = || async {
        let mut conn = fx.redis.connection().await;
        let reply: redis::streams::StreamInfoConsumersReply = conn
            .xinfo_consumers(&fx.stream, CONSUMER_GROUP)
            .await
            .unwrap();
        let mut names: Vec<String> = reply.consumers.into_iter().map(|c| c.name).collect();
        names.sort();
        names
    };
    assert_eq!(consumers().await, ["gone", "holder", "live"]);
    let live = vec!["live".to_string()];

    // Not idle long enough: nothing goes.
    let sweep = fx
        .store
        .remove_dead_consumers(&fx.product, &live, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(sweep, DeadConsumerSweep::default());
    assert_eq!(consumers().await, ["gone", "holder", "live"]);

    // Past the bound (0): the empty one of a gone instance goes; the live one and the one
    // holding pending entries stay, and no pending entry is lost.
    let sweep = fx
        .store
        .remove_dead_consumers(&fx.product, &live, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(sweep.removed, ["gone"]);
    assert_eq!(sweep.kept_with_pending, ["holder"]);
    assert_eq!(consumers().await, ["holder", "live"]);
    let info = fx.store.group_info(&fx.product).await.unwrap().unwrap();
    assert_eq!(info.pending, ids.len() as u64, "pending entries untouched");

    // A missing stream removes nothing and is no error.
    let other = ProductId::new("poker").unwrap();
    let sweep = fx
        .store
        .remove_dead_consumers(&other, &live, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(sweep, DeadConsumerSweep::default());
}
