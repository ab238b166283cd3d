//! The curator (`matchmakerd::curator`) in-process against a real redis-server and the
//! reference game server (the misbehaving fake where a failing server is needed): stale
//! games are deleted on their server before leaving the record, a failing server keeps its
//! games until it recovers, a game that came alive is left alone, dry runs change nothing,
//! unregistered servers are skipped, one instance holds the lease, reservations expire, and
//! nothing is curated on the strength of events not yet applied (cutoffs stop at the applied
//! watermark).
//!
//! Passes are run with an explicit `now`, so no test waits for timeouts to elapse — except
//! the fault test of issue 12 at the end, which runs real `matchmakerd` processes
//! (`--roles api,curator`, later `--roles worker`) and the reference game server, scaled down
//! to a 3 s pending timeout, and prints its figures (`--nocapture`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use matchmakerd::curator::{
    Curator, CuratorOptions, DeleteAttempt, EndpointLookup, GameServers, RegisteredServers,
};
use mm_common::gameserver::{
    ClientOptions, CreateGameRequest, GameServerClient, GameServerEndpoint,
};
use mm_common::keys::CONSUMER_GROUP;
use mm_common::model::JoinRefusal;
use mm_common::store::{MarkOutcome, RemoveGuard, ReserveOutcome, Store, StoreOptions};
use mm_common::time::now_ms;
use mm_common::{Game, GameId, GameSet, GameState, PlayerId, ProductId, ServerId};
use mm_gameserver::{GameServerConfig, RunningGameServer};
use mm_testkit::app::TestRedis;
use mm_testkit::fake_gameserver::{Behaviour, FakeGameServer, Route};
use mm_testkit::scenario::Placement;
use mm_testkit::{RedisServer, invariants};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

const MINUTE: u64 = 60_000;

/// Writes one event to the product stream, delivers it through the group and applies it, as
/// the consumer would.
async fn apply_event(
    store: &Store,
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    product: &ProductId,
    fields: &[(&str, &str)],
) {
    let stream = store.keys().product(product).events();
    let id: String = conn.xadd(&stream, "*", fields).await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(CONSUMER_GROUP)
        .arg("tester")
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    let owned: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    store
        .apply_entry(product, &id, &owned, now_ms())
        .await
        .unwrap();
}

struct Fixture {
    redis: TestRedis,
    store: Store,
    product: ProductId,
    server: RunningGameServer,
    client: GameServerClient,
    next: u32,
}

fn client() -> GameServerClient {
    GameServerClient::new(ClientOptions {
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(1),
        retries: 0,
        retry_backoff: Duration::from_millis(10),
        breaker_failures: 3,
        breaker_cooldown: Duration::from_millis(200),
    })
    .unwrap()
}

/// Curation options: pending 5 min, lobby 10 min, active 20 min.
fn options(instance: &str) -> CuratorOptions {
    CuratorOptions {
        interval: Duration::from_secs(1),
        pending_timeout: Duration::from_secs(300),
        lobby_idle_timeout: Duration::from_secs(600),
        active_idle_timeout: Duration::from_secs(1200),
        dry_run: false,
        concurrency: 4,
        batch_size: 2,
        lease: Duration::from_secs(5),
        instance_name: instance.into(),
        max_retry_delay: Duration::from_secs(60),
        stuck_ending_after: Duration::from_secs(30),
    }
}

fn lookup(endpoints: Vec<GameServerEndpoint>) -> EndpointLookup {
    let map: HashMap<ServerId, GameServerEndpoint> =
        endpoints.into_iter().map(|e| (e.id.clone(), e)).collect();
    Arc::new(move |id: &ServerId| map.get(id).cloned())
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::on(&Placement::node()).await
    }

    /// On the scenario's Redis, with its product and key prefix.
    async fn on(at: &Placement) -> Fixture {
        let redis = at.redis().expect("redis");
        let store = Store::connect(at.store_options(&redis)).await.unwrap();
        let product = ProductId::new(&at.product).unwrap();
        store
            .register_products(std::slice::from_ref(&product))
            .await
            .unwrap();
        let mut config = GameServerConfig::new(
            ServerId::new("gs-1").unwrap(),
            product.clone(),
            "key-1",
            redis.url(),
        );
        // The reference server's own events go elsewhere: these tests write events by hand.
        config.key_prefix = "elsewhere".into();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = mm_gameserver::spawn(config, listener).await.unwrap();
        store.ensure_group(&product).await.unwrap();
        Fixture {
            redis,
            store,
            product,
            server,
            client: client(),
            next: 0,
        }
    }

    fn servers(&self) -> RegisteredServers {
        RegisteredServers::new(self.client.clone(), lookup(vec![self.server.endpoint()]))
    }

    fn curator(&self, options: CuratorOptions) -> Curator<RegisteredServers> {
        Curator::new(self.store.clone(), self.servers(), options, Vec::new())
    }

    /// A game created `age_ms` ago on `endpoint` (and in the record), optionally moved to the
    /// lobby or active set by events as old as its creation.
    async fn game_on(&mut self, endpoint: &GameServerEndpoint, age_ms: u64, set: GameSet) -> Game {
        self.next += 1;
        let created = now_ms() - age_ms;
        let game = Game::new(
            GameId::new(format!("{}.t{:04}", self.product, self.next)).unwrap(),
            self.product.clone(),
            endpoint.id.clone(),
            None,
            2,
            PlayerId::new(format!("c{}", self.next)).unwrap(),
            "ws://127.0.0.1:1/ws".into(),
            "{}".into(),
            created,
        );
        let request = CreateGameRequest {
            game_id: game.id.clone(),
            product: self.product.clone(),
            capacity: 2,
            creator_id: game.creator_id.clone(),
            settings: serde_json::json!({}),
        };
        // The fake answers anything; the reference server really creates the game.
        self.client.create_game(endpoint, &request).await.unwrap();
        assert!(self.store.create_game(&game).await.unwrap());
        if set != GameSet::Pending {
            self.event(&game, "creator_joined", created).await;
        }
        if set == GameSet::Active {
            self.event(&game, "game_started", created).await;
        }
        game
    }

    async fn game(&mut self, age_ms: u64, set: GameSet) -> Game {
        let endpoint = self.server.endpoint();
        self.game_on(&endpoint, age_ms, set).await
    }

    /// Applies one event to `game` as the consumer would.
    async fn event(&self, game: &Game, kind: &str, ts: u64) {
        let mut conn = self.redis.connection().await;
        apply_event(
            &self.store,
            &mut conn,
            &self.product,
            &[
                ("type", kind),
                ("game_id", game.id.as_str()),
                ("server_id", game.server_id.as_str()),
                ("ts", &ts.to_string()),
            ],
        )
        .await;
    }

    async fn state(&self, game: &Game) -> GameState {
        self.store.game(&game.id).await.unwrap().unwrap().state()
    }

    async fn check_invariants(&self) {
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

/// Stale pending, lobby and active games are deleted on their server and then removed with
/// the reason of their set; fresh ones stay on both.
#[tokio::test]
async fn stale_games_are_deleted_on_their_server_then_removed() {
    stale_games_are_deleted_on_their_server_then_removed_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn stale_games_are_deleted_on_their_server_then_removed_on(at: Placement) {
    let mut fx = Fixture::on(&at).await;
    let stale = [
        fx.game(6 * MINUTE, GameSet::Pending).await,
        fx.game(11 * MINUTE, GameSet::Lobby).await,
        fx.game(21 * MINUTE, GameSet::Active).await,
    ];
    let fresh = [
        fx.game(4 * MINUTE, GameSet::Pending).await,
        fx.game(9 * MINUTE, GameSet::Lobby).await,
        fx.game(19 * MINUTE, GameSet::Active).await,
    ];
    assert_eq!(fx.server.game_count(), 6);
    let curator = fx.curator(options("a"));
    let report = curator
        .pass(now_ms(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.removed, 3, "{report:?}");
    assert_eq!(
        fx.server.game_count(),
        3,
        "stale games deleted on the server"
    );
    let reasons = [
        "curated_pending",
        "curated_lobby_idle",
        "curated_active_idle",
    ];
    for (game, reason) in stale.iter().zip(reasons) {
        let record = fx.store.game(&game.id).await.unwrap().unwrap();
        assert_eq!(record.state(), GameState::Ended);
        assert_eq!(record.end_reason.as_deref(), Some(reason));
    }
    for game in &fresh {
        assert_ne!(
            fx.state(game).await,
            GameState::Ended,
            "{} is fresh",
            game.id
        );
    }
    // Nothing left to do: a second pass is a no-op.
    let again = curator
        .pass(now_ms(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    fx.check_invariants().await;
}

/// A server answering 503 keeps its games in the record (retried later with backoff); once
/// it answers again they are curated.
#[tokio::test]
async fn a_failing_server_keeps_its_games_until_it_recovers() {
    a_failing_server_keeps_its_games_until_it_recovers_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn a_failing_server_keeps_its_games_until_it_recovers_on(at: Placement) {
    let mut fx = Fixture::on(&at).await;
    let fake = FakeGameServer::start().await.unwrap();
    let endpoint = fake.endpoint("gs-fake");
    let games = [
        fx.game_on(&endpoint, 6 * MINUTE, GameSet::Pending).await,
        fx.game_on(&endpoint, 7 * MINUTE, GameSet::Pending).await,
        fx.game_on(&endpoint, 8 * MINUTE, GameSet::Pending).await,
    ];
    fake.set(Route::DeleteGame, Behaviour::Status(503));
    let servers = RegisteredServers::new(fx.client.clone(), lookup(vec![endpoint]));
    let curator = Curator::new(fx.store.clone(), servers, options("a"), Vec::new());
    let now = now_ms();
    let report = curator.pass(now, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.removed, 0, "{report:?}");
    assert_eq!(report.server_unreachable, 3, "{report:?}");
    let calls_after_first = fake.calls(Route::DeleteGame);
    assert!(
        calls_after_first <= 3,
        "the breaker stops calls after 3 failures"
    );
    for game in &games {
        assert_eq!(
            fx.state(game).await,
            GameState::Created,
            "kept while failing"
        );
    }
    // Immediately again: every game waits for its retry delay; no call is made.
    let report = curator
        .pass(now + 10, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.deferred, 3, "{report:?}");
    assert_eq!(fake.calls(Route::DeleteGame), calls_after_first);
    // The server recovers. Once the breaker's cool-down has passed (real time: a half-open
    // breaker lets one trial call through) and each game's retry delay (pass time), later
    // passes curate every game.
    fake.set(Route::DeleteGame, Behaviour::Normal);
    let pass_time = std::sync::atomic::AtomicU64::new(now + 10 * MINUTE);
    mm_testkit::poll::until(
        "every game curated after recovery",
        Duration::from_secs(10),
        || {
            let at = pass_time.fetch_add(10 * MINUTE, std::sync::atomic::Ordering::Relaxed);
            let (curator, store, games) = (&curator, &fx.store, &games);
            async move {
                curator.pass(at, &CancellationToken::new()).await.unwrap();
                for game in games {
                    let state = store.game(&game.id).await.unwrap().unwrap().state();
                    if state != GameState::Ended {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
    for game in &games {
        assert_eq!(fx.state(game).await, GameState::Ended);
    }
    fx.check_invariants().await;
}

/// Wraps the real servers and makes the game come alive (an event) while its delete is in
/// flight, as a player connecting at that moment would.
struct AliveDuringDelete {
    inner: RegisteredServers,
    store: Store,
    redis: mm_testkit::app::TestConnection,
    product: ProductId,
}

impl GameServers for AliveDuringDelete {
    async fn delete_game(&self, server: &ServerId, game: &GameId) -> DeleteAttempt {
        let mut conn = self.redis.clone();
        apply_event(
            &self.store,
            &mut conn,
            &self.product,
            &[
                ("type", "creator_joined"),
                ("game_id", game.as_str()),
                ("server_id", server.as_str()),
            ],
        )
        .await;
        self.inner.delete_game(server, game).await
    }
}

/// A game that receives an event (its creator connecting) while its delete is in flight is
/// still ended in the record: it was marked as ending before the server was called, and the
/// server no longer has it. Before the end step marked first, the record stayed listed open
/// for a game its server had deleted (issue 12, found-item 2).
#[tokio::test]
async fn a_game_that_comes_alive_while_its_delete_is_in_flight_is_still_ended() {
    a_game_that_comes_alive_while_its_delete_is_in_flight_is_still_ended_on(Placement::node())
        .await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn a_game_that_comes_alive_while_its_delete_is_in_flight_is_still_ended_on(
    at: Placement,
) {
    let mut fx = Fixture::on(&at).await;
    let game = fx.game(6 * MINUTE, GameSet::Pending).await;
    let servers = AliveDuringDelete {
        inner: fx.servers(),
        store: fx.store.clone(),
        redis: fx.redis.connection().await,
        product: fx.product.clone(),
    };
    let curator = Curator::new(fx.store.clone(), servers, options("a"), Vec::new());
    let report = curator
        .pass(now_ms(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.removed, 1, "{report:?}");
    assert_eq!(report.skipped_alive, 0);
    assert_eq!(fx.server.game_count(), 0, "deleted on the server");
    let record = fx.store.game(&game.id).await.unwrap().unwrap();
    assert_eq!(record.state(), GameState::Ended);
    assert_eq!(record.end_reason.as_deref(), Some("curated_pending"));
    fx.check_invariants().await;
}

/// A dry run reports what it would curate and changes nothing, on the server or the record.
#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let mut fx = Fixture::new().await;
    let game = fx.game(6 * MINUTE, GameSet::Pending).await;
    let mut opts = options("a");
    opts.dry_run = true;
    let report = fx
        .curator(opts)
        .pass(now_ms(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.dry_run, 1, "{report:?}");
    assert_eq!(report.removed, 0);
    assert_eq!(fx.server.game_count(), 1, "still on the server");
    assert_eq!(fx.state(&game).await, GameState::Created);
    fx.check_invariants().await;
}

/// A stale game whose server is not registered is skipped, never removed blindly.
#[tokio::test]
async fn games_of_unregistered_servers_are_skipped() {
    let mut fx = Fixture::new().await;
    let game = fx.game(6 * MINUTE, GameSet::Pending).await;
    let unregistered = RegisteredServers::new(fx.client.clone(), lookup(Vec::new()));
    let curator = Curator::new(fx.store.clone(), unregistered, options("a"), Vec::new());
    let report = curator
        .pass(now_ms(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.unknown_server, 1, "{report:?}");
    assert_eq!(fx.state(&game).await, GameState::Created);
    fx.check_invariants().await;
}

/// Only one instance holds the curation lease; it renews it, and after release another
/// instance takes it.
#[tokio::test]
async fn only_one_instance_holds_the_curation_lease() {
    let fx = Fixture::new().await;
    let a = fx.curator(options("a"));
    let b = fx.curator(options("b"));
    assert!(a.try_lease().await.unwrap());
    assert!(!b.try_lease().await.unwrap());
    assert!(a.try_lease().await.unwrap(), "the holder renews");
    b.release_lease().await.unwrap();
    assert!(!b.try_lease().await.unwrap(), "a non-holder cannot release");
    a.release_lease().await.unwrap();
    assert!(b.try_lease().await.unwrap());
    let mut conn = fx.redis.connection().await;
    let holder: String = conn.get("mm:lease:curator").await.unwrap();
    assert_eq!(holder, "b");
}

/// A seat reserved through the join API and not taken within its time is released by a pass.
#[tokio::test]
async fn expired_reservations_are_released() {
    expired_reservations_are_released_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn expired_reservations_are_released_on(at: Placement) {
    let mut fx = Fixture::on(&at).await;
    let game = fx.game(MINUTE, GameSet::Lobby).await;
    let player = PlayerId::new("late").unwrap();
    let reserved = fx
        .store
        .reserve_seat(&game.id, &player, now_ms(), Duration::from_secs(1))
        .await
        .unwrap();
    assert!(matches!(reserved, ReserveOutcome::Reserved { .. }));
    let report = fx
        .curator(options("a"))
        .pass(now_ms() + 5_000, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.reservations_released, 1, "{report:?}");
    let record = fx.store.game(&game.id).await.unwrap().unwrap();
    assert!(record.reservations.is_empty());
    fx.check_invariants().await;
}

/// Appends `fields` to the product stream with the explicit entry id `<ms>-0`, as a game
/// server would have at time `ms`, without applying it (the worker is behind).
async fn append_unapplied(fx: &Fixture, ms: u64, fields: &[(&str, &str)]) -> String {
    let mut conn = fx.redis.connection().await;
    let stream = fx.store.keys().product(&fx.product).events();
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&stream).arg(format!("{ms}-0"));
    for (name, value) in fields {
        cmd.arg(name).arg(value);
    }
    cmd.query_async(&mut conn).await.unwrap()
}

/// While the stream holds an entry the group has not applied, every cutoff stops at that
/// entry's time: a pending game whose `creator_joined` waits in the stream is not curated
/// however late `now` is, nor a lobby that was idle long enough at `now` but not at the
/// watermark; a game already stale at the watermark still is. Once the entry is applied,
/// curation judges at `now` again.
#[tokio::test]
async fn nothing_is_curated_on_the_strength_of_unapplied_events() {
    nothing_is_curated_on_the_strength_of_unapplied_events_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn nothing_is_curated_on_the_strength_of_unapplied_events_on(at: Placement) {
    let mut fx = Fixture::on(&at).await;
    // Stale at now (pending 300 s), not at the watermark (1 s after its creation).
    let joined = fx.game(20 * MINUTE, GameSet::Pending).await;
    // Stale even at the watermark: created 20 min before it, never joined.
    let abandoned = fx.game(40 * MINUTE, GameSet::Pending).await;
    let watermark_ms = joined.created_at_ms + 1000;
    let creator = joined.creator_id.to_string();
    append_unapplied(
        &fx,
        watermark_ms,
        &[
            ("type", "creator_joined"),
            ("game_id", joined.id.as_str()),
            ("server_id", "gs-1"),
            ("player_id", &creator),
        ],
    )
    .await;
    // Idle 25 min at now (lobby timeout 600 s), only 6 min at the watermark. Making it
    // delivers the entry above to the consumer `tester` too, unacknowledged.
    let lobby = fx.game(25 * MINUTE, GameSet::Lobby).await;
    let watermark = fx.store.watermark(&fx.product).await.unwrap();
    let expected = format!("{watermark_ms}-0");
    assert_eq!(watermark.oldest_id(), Some(expected.as_str()));
    let curator = fx.curator(options("a"));
    let report = curator
        .pass(now_ms(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.removed, 1, "{report:?}");
    assert_eq!(fx.state(&abandoned).await, GameState::Ended);
    assert_eq!(
        fx.state(&joined).await,
        GameState::Created,
        "judged at the watermark"
    );
    assert_eq!(
        fx.state(&lobby).await,
        GameState::CreatorJoined,
        "judged at the watermark"
    );
    // The worker catches up: `tester` drains its own pending entry, the creator's join.
    let consumer = matchmakerd::consumer::Consumer::new(
        fx.store.clone(),
        matchmakerd::consumer::ConsumerOptions::from_settings(&Default::default(), "tester"),
        vec![fx.product.clone()],
    );
    let stop = CancellationToken::new();
    let worker = tokio::spawn(consumer.run(stop.clone()));
    let store = fx.store.clone();
    let product = fx.product.clone();
    mm_testkit::poll::until("the worker to catch up", Duration::from_secs(20), || {
        let (store, product) = (store.clone(), product.clone());
        async move {
            let caught_up = store.watermark(&product).await.ok()?;
            (caught_up == mm_common::store::Watermark::CaughtUp).then_some(())
        }
    })
    .await;
    stop.cancel();
    worker.await.unwrap();
    assert_eq!(fx.state(&joined).await, GameState::CreatorJoined);
    // Dated by its entry id (19 min ago), the join leaves that lobby idle for longer than
    // 600 s at `now`, like the other one: both are curated as before.
    let report = curator
        .pass(now_ms(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.removed, 2, "{report:?}");
    assert_eq!(fx.state(&joined).await, GameState::Ended);
    fx.check_invariants().await;
}

/// The sum of the samples of metric `name` whose labels contain every one of `labels` in a
/// Prometheus text exposition (0 when there is none).
fn metric_sum(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let matches = (rest.is_empty() || rest.starts_with('{'))
                && labels.iter().all(|label| rest.contains(label));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// `GET /metrics` of the daemon listening on `port`.
async fn scrape(http: &reqwest::Client, port: u16) -> Option<String> {
    let answer = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?;
    answer.text().await.ok()
}

/// The states of `ids` in the record.
async fn states(store: &Store, ids: &[GameId]) -> Vec<GameState> {
    let mut states = Vec::with_capacity(ids.len());
    for id in ids {
        states.push(store.game(id).await.unwrap().unwrap().state());
    }
    states
}

/// The fault test of issue 12, against real processes: `matchmakerd --roles api,curator` with
/// no worker anywhere, a short pending timeout, 200 games whose creators connect to the real
/// reference game server (which writes their `creator_joined` and heartbeats to the stream)
/// and 20 whose creators never come. The worker stays away until the watermark is three
/// timeouts old and two more curation passes have run: no game is curated, none is deleted on
/// its server. Then a worker starts (a second process, `--roles worker`): every joined game
/// becomes a lobby, every never-joined one is curated. Times are scaled down from the issue's
/// (pending timeout 300 s → 3 s, worker stopped 60 s → at least 9 s of watermark age).
#[tokio::test]
async fn with_the_worker_stopped_no_joined_game_is_curated_and_stale_ones_are_after() {
    use mm_testkit::app::WsPlayer;
    use mm_testkit::daemon_process::{DaemonProcess, DaemonSpec};
    use mm_testkit::poll;

    const JOINED: usize = 200;
    const NEVER_JOINED: usize = 20;
    const PENDING_TIMEOUT_SECS: u64 = 3;

    let redis = RedisServer::start().expect("redis-server");
    let store = Store::connect(StoreOptions::new(redis.url()))
        .await
        .unwrap();
    let product = ProductId::new("chess").unwrap();
    let mut config = GameServerConfig::new(
        ServerId::new("gs-1").unwrap(),
        product.clone(),
        "key-1",
        redis.url(),
    );
    config.max_games = 1000;
    config.heartbeat_interval = Duration::from_millis(500);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = mm_gameserver::spawn(config, listener).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let servers_toml = format!(
        "[[game_servers]]\nid = \"gs-1\"\nproduct = \"chess\"\napi_url = \"{}\"\n\
         max_games = 1000\napi_key = \"key-1\"\n",
        server.api_url()
    );
    let mut spec = DaemonSpec::worker("front", &redis.url());
    spec.roles = "api,curator".into();
    spec.extra_toml = format!(
        "[http]\nbind = \"127.0.0.1:{port}\"\n\n[curation]\ninterval_secs = 1\n\
         pending_timeout_secs = {PENDING_TIMEOUT_SECS}\n\n{servers_toml}"
    );
    let mut front = DaemonProcess::start(spec).unwrap();
    let http = reqwest::Client::new();
    let create = |player: String| {
        let http = http.clone();
        async move {
            let answer = http
                .post(format!("http://127.0.0.1:{port}/v1/games"))
                .header("X-Player-Id", player)
                .json(&serde_json::json!({"product": "chess", "capacity": 2}))
                .send()
                .await
                .ok()?;
            if answer.status() != 201 {
                return None;
            }
            answer.json::<serde_json::Value>().await.ok()
        }
    };
    // The first create succeeds once the daemon listens and has found its server healthy.
    let first = poll::until("the daemon to take games", Duration::from_secs(30), || {
        create("c0".into())
    })
    .await;
    let started = std::time::Instant::now();
    let mut joined_ids = Vec::new();
    let mut creators = Vec::new();
    for n in 0..JOINED {
        let game = match n {
            0 => first.clone(),
            _ => create(format!("c{n}")).await.expect("create"),
        };
        joined_ids.push(GameId::new(game["id"].as_str().unwrap()).unwrap());
        let join = &game["join"];
        let player = WsPlayer::connect(
            join["socket_url"].as_str().unwrap(),
            join["token"].as_str().unwrap(),
        )
        .await
        .unwrap();
        creators.push(player);
    }
    let mut never_ids = Vec::new();
    for n in 0..NEVER_JOINED {
        let game = create(format!("n{n}")).await.expect("create");
        never_ids.push(GameId::new(game["id"].as_str().unwrap()).unwrap());
    }
    let created_in = started.elapsed();
    // Every creator's `creator_joined` is in the stream, unapplied.
    let stream = store.keys().product(&product).events();
    let conn = redis.connection().await;
    poll::until(
        "every creator_joined written",
        Duration::from_secs(30),
        || {
            let (mut conn, stream) = (conn.clone(), stream.clone());
            async move {
                let entries: redis::streams::StreamRangeReply =
                    conn.xrange_all(&stream).await.ok()?;
                let joins = entries
                    .ids
                    .iter()
                    .filter(|entry| {
                        entry.get::<String>("type").as_deref() == Some("creator_joined")
                    })
                    .count();
                (joins == JOINED).then_some(())
            }
        },
    )
    .await;
    // The worker stays away until the watermark is three timeouts old, as the api,curator
    // process itself reports it, and then for two more curation passes.
    let outage = std::time::Instant::now();
    let passes = poll::until("the watermark to age", Duration::from_secs(60), || async {
        let metrics = scrape(&http, port).await?;
        let age = metric_sum(
            &metrics,
            "mm_event_watermark_age_seconds",
            &["product=\"chess\""],
        );
        (age >= (3 * PENDING_TIMEOUT_SECS) as f64)
            .then(|| metric_sum(&metrics, "mm_curation_pass_duration_seconds_count", &[]))
    })
    .await;
    let metrics = poll::until(
        "two more curation passes",
        Duration::from_secs(30),
        || async {
            let metrics = scrape(&http, port).await?;
            (metric_sum(&metrics, "mm_curation_pass_duration_seconds_count", &[]) >= passes + 2.0)
                .then_some(metrics)
        },
    )
    .await;
    let worker_stopped_for = outage.elapsed() + created_in;
    let passes_while_stopped =
        metric_sum(&metrics, "mm_curation_pass_duration_seconds_count", &[]) as u64;
    // The api,curator process exports the stream gauges although no worker runs anywhere.
    let chess = ["product=\"chess\""];
    let lag = metric_sum(&metrics, "mm_consumer_lag", &chess);
    assert!(
        lag >= JOINED as f64,
        "every creator_joined undelivered: lag {lag}"
    );
    assert!(metrics.contains("mm_consumer_pending{product=\"chess\"}"));
    let watermark_age = metric_sum(&metrics, "mm_event_watermark_age_seconds", &chess);
    let curated_during_outage = metric_sum(&metrics, "mm_curated_games_total", &[]);
    assert_eq!(curated_during_outage, 0.0, "nothing curated while behind");
    let all: Vec<GameId> = joined_ids.iter().chain(&never_ids).cloned().collect();
    assert!(
        states(&store, &all)
            .await
            .iter()
            .all(|s| *s == GameState::Created),
        "every game still pending in the record"
    );
    assert_eq!(
        server.game_count(),
        JOINED + NEVER_JOINED,
        "none deleted on its server"
    );

    // The worker comes back.
    let caught_up = std::time::Instant::now();
    let mut spec = DaemonSpec::worker("back", &redis.url());
    spec.extra_toml = servers_toml.clone();
    let mut worker = DaemonProcess::start(spec).unwrap();
    poll::until(
        "every joined game in the lobby",
        Duration::from_secs(60),
        || async {
            let states = states(&store, &joined_ids).await;
            states
                .iter()
                .all(|s| *s == GameState::CreatorJoined)
                .then_some(())
        },
    )
    .await;
    let to_lobby = caught_up.elapsed();
    poll::until(
        "every never-joined game curated",
        Duration::from_secs(60),
        || async {
            let states = states(&store, &never_ids).await;
            states.iter().all(|s| *s == GameState::Ended).then_some(())
        },
    )
    .await;
    let to_curated = caught_up.elapsed();
    for id in &never_ids {
        let record = store.game(id).await.unwrap().unwrap();
        assert_eq!(record.end_reason.as_deref(), Some("curated_pending"));
    }
    let joined_states = states(&store, &joined_ids).await;
    let live = joined_states
        .iter()
        .filter(|s| **s == GameState::CreatorJoined)
        .count();
    assert_eq!(
        live, JOINED,
        "no joined game curated after the catch-up either"
    );
    assert_eq!(
        server.game_count(),
        JOINED,
        "only the never-joined games deleted"
    );
    let metrics = scrape(&http, port).await.unwrap();
    let curated = metric_sum(&metrics, "mm_curated_games_total", &["outcome=\"removed\""]);
    assert_eq!(curated, NEVER_JOINED as f64);
    println!(
        "FIGURES worker-stopped: games_joined={JOINED} games_never_joined={NEVER_JOINED} \
         pending_timeout={PENDING_TIMEOUT_SECS}s created_and_joined_in={created_in:?} \
         worker_stopped_for={worker_stopped_for:?} watermark_age_at_end={watermark_age}s \
         lag_at_end={lag} \
         curation_passes_while_stopped={passes_while_stopped} live_games_curated=0 \
         worker_start_to_all_lobbies={to_lobby:?} worker_start_to_stale_curated={to_curated:?}"
    );
    drop(creators);
    assert!(worker.terminate(Duration::from_secs(10)).unwrap().success());
    assert!(front.terminate(Duration::from_secs(10)).unwrap().success());
    // Checked once nothing writes the record any more: the heartbeats of the connected
    // creators keep moving lobby scores while a worker runs, and the checker reads the hashes
    // and the sets in separate commands.
    let mut conn = redis.connection().await;
    invariants::check_all(&mut conn, "mm", std::slice::from_ref(&product), now_ms())
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

/// An end step interrupted between its mark and its server call (a crash: simulated by
/// marking and not deleting) is finished by the curator once the mark is older than
/// `stuck_ending_after`: deleted on its server, removed with the mark's reason. A younger mark
/// (an end step perhaps still in flight) is left alone, and so is the game meanwhile: not
/// listed, not joinable.
#[tokio::test]
async fn an_end_step_interrupted_after_its_mark_is_finished_by_the_curator() {
    let mut fx = Fixture::new().await;
    // Fresh lobbies: nothing the timeouts would curate.
    let stuck = fx.game(0, GameSet::Lobby).await;
    let young = fx.game(0, GameSet::Lobby).await;
    let now = now_ms();
    let bound = options("a").stuck_ending_after.as_millis() as u64;
    for (game, marked_at) in [(&stuck, now - bound - 1_000), (&young, now - 1_000)] {
        let marked = fx
            .store
            .mark_ending(&game.id, "cancelled", RemoveGuard::Any, marked_at)
            .await
            .unwrap();
        assert!(matches!(marked, MarkOutcome::Marked { .. }), "{marked:?}");
    }
    let listed = fx
        .store
        .open_games(&fx.product, None, 10, None, now)
        .await
        .unwrap();
    assert!(listed.games.is_empty(), "marked games are not listed");
    let join = fx
        .store
        .reserve_seat(
            &stuck.id,
            &PlayerId::new("p1").unwrap(),
            now,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(join, ReserveOutcome::Refused(JoinRefusal::GameNotOpen));
    fx.check_invariants().await;

    let report = fx
        .curator(options("a"))
        .pass(now, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.endings_finished, 1, "{report:?}");
    assert_eq!(report.removed, 0, "{report:?}");
    let record = fx.store.game(&stuck.id).await.unwrap().unwrap();
    assert_eq!(record.state(), GameState::Ended);
    assert_eq!(record.end_reason.as_deref(), Some("cancelled"));
    assert_eq!(record.ending, None);
    let young_record = fx.store.game(&young.id).await.unwrap().unwrap();
    assert_eq!(young_record.state(), GameState::CreatorJoined);
    assert!(young_record.ending.is_some(), "a young mark is left alone");
    assert_eq!(fx.server.game_count(), 1, "only the stuck game was deleted");
    fx.check_invariants().await;
}

/// Finishing an interrupted end step whose server does not confirm clears the mark: the game
/// is listed again (its server still has it).
#[tokio::test]
async fn an_interrupted_end_step_whose_server_fails_is_unmarked() {
    let mut fx = Fixture::new().await;
    let game = fx.game(0, GameSet::Lobby).await;
    let now = now_ms();
    let bound = options("a").stuck_ending_after.as_millis() as u64;
    fx.store
        .mark_ending(&game.id, "cancelled", RemoveGuard::Any, now - bound - 1_000)
        .await
        .unwrap();
    let unregistered = RegisteredServers::new(fx.client.clone(), lookup(Vec::new()));
    let curator = Curator::new(fx.store.clone(), unregistered, options("a"), Vec::new());
    let report = curator.pass(now, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.endings_unmarked, 1, "{report:?}");
    let record = fx.store.game(&game.id).await.unwrap().unwrap();
    assert_eq!(record.ending, None);
    assert!(record.is_open(now), "listed again");
    fx.check_invariants().await;
}
