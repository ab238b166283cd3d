//! Reconciliation (contract section 6.5) against a real redis-server and the reference game
//! server: the optional `GET /games`, orphans deleted on their server and live records their
//! server lost ended `lost_on_server`, each only after its grace; then the fault tests over
//! the whole in-process daemon — a create that timed out, Redis restarted empty under load,
//! a server that lost a live game. The fault tests print their measured figures (run with
//! `--nocapture` to see them).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use matchmakerd::curator::reconcile::LOST_ON_SERVER;
use matchmakerd::curator::{ReconcileOptions, Reconciler};
use matchmakerd::registry::Registry;
use mm_common::gameserver::{
    ClientOptions, CreateGameRequest, GameServerClient, GameServerEndpoint, ListOutcome,
};
use mm_common::store::{Store, StoreOptions};
use mm_common::time::now_ms;
use mm_common::{Game, GameId, GameState, PlayerId, ProductId, ServerId};
use mm_config::{GameServerSettings, SecretString, Settings};
use mm_gameserver::{GameServerConfig, RunningGameServer};
use mm_testkit::app::{ServerSpec, TestApp, TestAppOptions};
use mm_testkit::fake_gameserver::{FAKE_API_KEY, FakeGameServer};
use mm_testkit::{RedisServer, invariants, poll};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

const SECOND: u64 = 1000;

fn client() -> GameServerClient {
    GameServerClient::new(ClientOptions {
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(1),
        retries: 0,
        retry_backoff: Duration::from_millis(10),
        breaker_failures: 0,
        breaker_cooldown: Duration::from_millis(200),
    })
    .unwrap()
}

fn registered(endpoint: &GameServerEndpoint, product: &ProductId, key: &str) -> GameServerSettings {
    GameServerSettings {
        id: endpoint.id.clone(),
        product: product.clone(),
        api_url: endpoint.api_url.to_string(),
        socket_url: String::new(),
        region: None,
        max_games: 100,
        api_key: SecretString::from(key),
    }
}

/// A reference server `gs-1` of `chess` (its events go to another prefix: nothing here
/// consumes them), a fake `gs-fake` of `chess` that has no `GET /games`, and a reconciler
/// over both with explicit times.
struct Fixture {
    redis: RedisServer,
    store: Store,
    product: ProductId,
    server: RunningGameServer,
    fake: FakeGameServer,
    client: GameServerClient,
    reconciler: Reconciler,
}

impl Fixture {
    async fn new(orphan_grace: Duration, lost_grace: Duration) -> Fixture {
        Self::with_dry_run(orphan_grace, lost_grace, false).await
    }

    async fn with_dry_run(orphan_grace: Duration, lost_grace: Duration, dry_run: bool) -> Fixture {
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
        config.key_prefix = "elsewhere".into();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = mm_gameserver::spawn(config, listener).await.unwrap();
        let fake = FakeGameServer::start().await.unwrap();
        let registry = Registry::from_settings(&[
            registered(&server.endpoint(), &product, "key-1"),
            registered(&fake.endpoint("gs-fake"), &product, FAKE_API_KEY),
        ])
        .unwrap();
        let reconciler = Reconciler::new(
            store.clone(),
            registry,
            client(),
            ReconcileOptions {
                interval: Duration::from_secs(1),
                orphan_grace,
                lost_grace,
                // Small, so the scan and the lookups take several batches.
                batch_size: 2,
                dry_run,
            },
        );
        Fixture {
            redis,
            store,
            product,
            server,
            fake,
            client: client(),
            reconciler,
        }
    }

    fn game(&self, id: &str, server: &ServerId) -> Game {
        Game::new(
            GameId::new(id).unwrap(),
            self.product.clone(),
            server.clone(),
            None,
            2,
            PlayerId::new("creator").unwrap(),
            "ws://127.0.0.1:1/ws".into(),
            "{}".into(),
            now_ms(),
        )
    }

    /// `POST /games` on the reference server.
    async fn on_server(&self, id: &str) {
        let request = CreateGameRequest {
            game_id: GameId::new(id).unwrap(),
            product: self.product.clone(),
            capacity: 2,
            creator_id: PlayerId::new("creator").unwrap(),
            settings: serde_json::json!({}),
        };
        self.client
            .create_game(&self.server.endpoint(), &request)
            .await
            .unwrap();
    }

    /// A game on the reference server and in the record.
    async fn recorded(&self, id: &str) -> Game {
        self.on_server(id).await;
        let game = self.game(id, &self.server.endpoint().id);
        assert!(self.store.create_game(&game).await.unwrap());
        game
    }

    async fn server_ids(&self) -> BTreeSet<String> {
        match self
            .client
            .list_games(&self.server.endpoint())
            .await
            .unwrap()
        {
            ListOutcome::Listed(ids) => ids.into_iter().collect(),
            ListOutcome::Unsupported => panic!("the reference server lists its games"),
        }
    }

    async fn record(&self, id: &str) -> Game {
        self.store
            .game(&GameId::new(id).unwrap())
            .await
            .unwrap()
            .expect("a record")
    }
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `GET /games` lists exactly the reference server's games; a server without the route
/// (405 from the fake) is "unsupported", not an error.
#[tokio::test]
async fn list_games_lists_the_held_ids_and_a_server_without_it_is_unsupported() {
    let fx = Fixture::new(Duration::from_secs(60), Duration::from_secs(60)).await;
    assert_eq!(fx.server_ids().await, BTreeSet::new());
    fx.on_server("chess.a").await;
    fx.on_server("chess.b").await;
    assert_eq!(fx.server_ids().await, ids(&["chess.a", "chess.b"]));
    fx.client
        .delete_game(&fx.server.endpoint(), &GameId::new("chess.a").unwrap())
        .await
        .unwrap();
    assert_eq!(fx.server_ids().await, ids(&["chess.b"]));
    let unsupported = fx
        .client
        .list_games(&fx.fake.endpoint("gs-fake"))
        .await
        .unwrap();
    assert_eq!(unsupported, ListOutcome::Unsupported);
}

/// With explicit times: an orphan is deleted on its server exactly when its grace is over,
/// a live record its server lost ends `lost_on_server` exactly when its grace is over (not on
/// first sight, not a millisecond before), a game on both is left alone, a listed id of
/// another product is left alone, a server without `GET /games` is skipped (its records are
/// never judged), and every pass republishes `P:servers` and `P:products`.
#[tokio::test]
async fn orphans_and_lost_games_are_handled_exactly_after_their_grace() {
    let (orphan_grace, lost_grace) = (60 * SECOND, 90 * SECOND);
    let fx = Fixture::new(
        Duration::from_millis(orphan_grace),
        Duration::from_millis(lost_grace),
    )
    .await;
    let none = CancellationToken::new();
    let kept = fx.recorded("chess.kept").await;
    fx.on_server("chess.orphan").await;
    fx.on_server("other.foreign").await;
    let lost = fx.recorded("chess.lost").await;
    fx.client
        .delete_game(&fx.server.endpoint(), &lost.id)
        .await
        .unwrap();
    // A record on the server without GET /games: never judged.
    let on_fake = fx.game("chess.onfake", &ServerId::new("gs-fake").unwrap());
    assert!(fx.store.create_game(&on_fake).await.unwrap());
    // A tombstone whose game the server still holds is an orphan too.
    let ended = fx.recorded("chess.ended").await;
    fx.store
        .remove_game(
            &ended.id,
            "cancelled",
            mm_common::store::RemoveGuard::Any,
            now_ms(),
        )
        .await
        .unwrap();

    let t0 = now_ms();
    let first = fx.reconciler.pass(t0, &none).await.unwrap();
    assert_eq!(
        (
            first.servers_listed,
            first.servers_unsupported,
            first.servers_failed
        ),
        (1, 1, 0)
    );
    assert_eq!(
        (first.orphans_waiting, first.lost_waiting),
        (2, 1),
        "{first:?}"
    );
    assert_eq!(first.foreign_ids, 1);
    assert!(first.published);

    let before_orphans = fx
        .reconciler
        .pass(t0 + orphan_grace - 1, &none)
        .await
        .unwrap();
    assert_eq!(before_orphans.orphans_deleted, 0, "{before_orphans:?}");
    assert_eq!(
        fx.server_ids().await,
        ids(&["chess.ended", "chess.kept", "chess.orphan", "other.foreign"])
    );

    let orphans_due = fx.reconciler.pass(t0 + orphan_grace, &none).await.unwrap();
    assert_eq!(orphans_due.orphans_deleted, 2, "{orphans_due:?}");
    assert_eq!(fx.server_ids().await, ids(&["chess.kept", "other.foreign"]));
    assert_eq!(
        fx.record(lost.id.as_str()).await.state(),
        GameState::Created
    );

    // P:servers and P:products vanish (Redis lost its data); the next pass puts them back.
    let mut conn = fx.redis.connection().await;
    let _: () = conn.del(&["mm:servers", "mm:products"]).await.unwrap();
    let before_lost = fx
        .reconciler
        .pass(t0 + lost_grace - 1, &none)
        .await
        .unwrap();
    assert_eq!(before_lost.lost_ended, 0, "{before_lost:?}");
    assert_eq!(
        fx.record(lost.id.as_str()).await.state(),
        GameState::Created
    );
    let servers: HashMap<String, String> = conn.hgetall("mm:servers").await.unwrap();
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert!(!servers.values().any(|json| json.contains("key-1")));
    let products: Vec<String> = conn.smembers("mm:products").await.unwrap();
    assert_eq!(products, vec!["chess".to_string()]);

    let lost_due = fx.reconciler.pass(t0 + lost_grace, &none).await.unwrap();
    assert_eq!(lost_due.lost_ended, 1, "{lost_due:?}");
    let lost_record = fx.record(lost.id.as_str()).await;
    assert_eq!(lost_record.state(), GameState::Ended);
    assert_eq!(lost_record.end_reason.as_deref(), Some(LOST_ON_SERVER));
    assert_eq!(
        fx.record(kept.id.as_str()).await.state(),
        GameState::Created
    );
    assert_eq!(
        fx.record(on_fake.id.as_str()).await.state(),
        GameState::Created
    );
    assert_eq!(fx.server_ids().await, ids(&["chess.kept", "other.foreign"]));

    let mut conn = fx.redis.connection().await;
    invariants::check_all(&mut conn, "mm", std::slice::from_ref(&fx.product), now_ms())
        .await
        .unwrap();
}

/// A record its server lists again before the grace is over starts its grace afresh when it
/// goes missing again, and a lost game that ended by another path meanwhile is left alone.
#[tokio::test]
async fn a_game_listed_again_restarts_its_grace_and_a_changed_record_is_left_alone() {
    let lost_grace = 10 * SECOND;
    let fx = Fixture::new(Duration::from_secs(60), Duration::from_millis(lost_grace)).await;
    let none = CancellationToken::new();
    let game = fx.recorded("chess.flaky").await;
    let endpoint = fx.server.endpoint();
    fx.client.delete_game(&endpoint, &game.id).await.unwrap();
    let t0 = now_ms();
    fx.reconciler.pass(t0, &none).await.unwrap();
    // Back on the server (listed), then gone again: its clock restarts at the new sighting.
    fx.on_server("chess.flaky").await;
    fx.reconciler.pass(t0 + SECOND, &none).await.unwrap();
    fx.client.delete_game(&endpoint, &game.id).await.unwrap();
    let t1 = t0 + 2 * SECOND;
    fx.reconciler.pass(t1, &none).await.unwrap();
    let early = fx.reconciler.pass(t0 + lost_grace, &none).await.unwrap();
    assert_eq!((early.lost_ended, early.lost_waiting), (0, 1), "{early:?}");
    assert_eq!(fx.record("chess.flaky").await.state(), GameState::Created);
    // Cancelled by its creator meanwhile: nothing left to end.
    fx.store
        .remove_game(
            &game.id,
            "cancelled",
            mm_common::store::RemoveGuard::Any,
            now_ms(),
        )
        .await
        .unwrap();
    let after = fx.reconciler.pass(t1 + lost_grace, &none).await.unwrap();
    assert_eq!((after.lost_ended, after.lost_waiting), (0, 0), "{after:?}");
    assert_eq!(
        fx.record("chess.flaky").await.end_reason.as_deref(),
        Some("cancelled")
    );
}

/// Lost games are judged at the applied watermark (contract section 6.5): while an event
/// written before the game went missing waits in the stream unapplied (it could be the game's
/// own `game_ended`), the grace does not run out; once the worker has caught up, it does.
#[tokio::test]
async fn a_lost_game_is_judged_only_once_the_events_before_it_are_applied() {
    let lost_grace = 10 * SECOND;
    let fx = Fixture::new(Duration::from_secs(60), Duration::from_millis(lost_grace)).await;
    let none = CancellationToken::new();
    let game = fx.recorded("chess.behind").await;
    fx.client
        .delete_game(&fx.server.endpoint(), &game.id)
        .await
        .unwrap();
    // An entry written a second ago that no consumer group has applied.
    let stream = fx.store.keys().product(&fx.product).events();
    let mut conn = fx.redis.connection().await;
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg(format!("{}-0", now_ms() - SECOND))
        .arg("type")
        .arg("heartbeat")
        .query_async(&mut conn)
        .await
        .unwrap();
    let t0 = now_ms();
    fx.reconciler.pass(t0, &none).await.unwrap();
    let behind = fx.reconciler.pass(t0 + lost_grace, &none).await.unwrap();
    assert_eq!(
        (behind.lost_ended, behind.lost_waiting),
        (0, 1),
        "{behind:?}"
    );
    assert_eq!(fx.record("chess.behind").await.state(), GameState::Created);
    // Caught up: the group exists past the entry, nothing pending.
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg(mm_common::keys::CONSUMER_GROUP)
        .arg("$")
        .query_async(&mut conn)
        .await
        .unwrap();
    let caught_up = fx.reconciler.pass(t0 + lost_grace, &none).await.unwrap();
    assert_eq!(caught_up.lost_ended, 1, "{caught_up:?}");
    assert_eq!(
        fx.record("chess.behind").await.end_reason.as_deref(),
        Some(LOST_ON_SERVER)
    );
}

/// `curation.dry_run`: past every grace, the pass only reports what it would do.
#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let fx = Fixture::with_dry_run(Duration::from_secs(1), Duration::from_secs(1), true).await;
    let none = CancellationToken::new();
    fx.on_server("chess.orphan").await;
    let lost = fx.recorded("chess.lost").await;
    fx.client
        .delete_game(&fx.server.endpoint(), &lost.id)
        .await
        .unwrap();
    let t0 = now_ms();
    fx.reconciler.pass(t0, &none).await.unwrap();
    let due = fx.reconciler.pass(t0 + 60 * SECOND, &none).await.unwrap();
    assert_eq!(
        (due.dry_run, due.orphans_deleted, due.lost_ended),
        (2, 0, 0),
        "{due:?}"
    );
    assert_eq!(fx.server_ids().await, ids(&["chess.orphan"]));
    assert_eq!(fx.record("chess.lost").await.state(), GameState::Created);
}

// ---------------------------------------------------------------- fault tests

/// Reconciliation every second, graces of 3 s, game-server calls timing out after 500 ms
/// (so the longest create, 500 ms + the 2 s Redis timeout with no resends, is within the
/// orphan grace).
fn fast_reconciliation(settings: &mut Settings) {
    settings.redis.retry_budget_ms = 0;
    settings.curation.reconcile_interval_secs = 1;
    settings.curation.orphan_grace_secs = 3;
    settings.curation.lost_grace_secs = 3;
    settings.game_server_client.request_timeout_ms = 500;
    assert!(mm_config::longest_create_ms(settings) < 3 * SECOND);
}

const GRACE: Duration = Duration::from_secs(3);
/// Slack for the observation of "appeared"/"lost" made by polling, not by the daemon.
const POLL_SLACK: Duration = Duration::from_millis(100);

/// The game ids `server` holds (its `GET /games`).
async fn held(server: &RunningGameServer) -> BTreeSet<String> {
    match client().list_games(&server.endpoint()).await.unwrap() {
        ListOutcome::Listed(ids) => ids.into_iter().collect(),
        ListOutcome::Unsupported => panic!("the reference server lists its games"),
    }
}

/// The live records naming `server`; `None` while the test's store reconnects.
async fn live_on(app: &TestApp, server: &ServerId) -> Option<BTreeSet<String>> {
    let product = ProductId::new("chess").unwrap();
    let mut ids = BTreeSet::new();
    for set in mm_common::GameSet::ALL {
        let mut cursor = 0;
        loop {
            let page = app
                .store
                .live_games_scan(&product, set, cursor, 100)
                .await
                .ok()?;
            for game in page.games {
                if game.server_id.as_deref() == Some(server.as_str()) {
                    ids.insert(game.id);
                }
            }
            cursor = page.next_cursor;
            if cursor == 0 {
                break;
            }
        }
    }
    Some(ids)
}

/// A server still busy creating when the matchmaker's create times out: the client gives
/// up (503 to the player), its clean-up DELETE finds nothing (404), and the server creates
/// the game afterwards — an orphan. It is deleted on the server by the first reconciliation
/// after its grace, and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_timed_out_leaves_no_orphan_after_one_reconciliation() {
    let mut slow = ServerSpec::new("gs-slow", "chess");
    slow.create_delay = Duration::from_millis(1500);
    let app = TestApp::spawn(TestAppOptions {
        servers: vec![slow],
        adjust_settings: Some(fast_reconciliation),
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let answer = app
        .create_game(
            "alice",
            serde_json::json!({"product": "chess", "capacity": 2}),
        )
        .await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert_eq!(answer.code(), Some("no_game_server"));
    let server = app.game_server(0).unwrap();

    let appeared = poll::until(
        "the slow server to create the game after all",
        Duration::from_secs(10),
        || async { (server.game_count() == 1).then(Instant::now) },
    )
    .await;
    let orphan = held(server).await.into_iter().next().unwrap();
    assert!(
        app.store
            .game(&GameId::new(&orphan).unwrap())
            .await
            .unwrap()
            .is_none(),
        "the timed-out create left no record"
    );
    poll::until(
        "reconciliation to delete the orphan",
        Duration::from_secs(30),
        || async { (server.game_count() == 0).then_some(()) },
    )
    .await;
    let lived = appeared.elapsed();
    assert!(
        lived + POLL_SLACK >= GRACE,
        "the orphan was deleted {lived:?} after it appeared, before its {GRACE:?} grace"
    );
    println!(
        "FIGURE reconcile/create_timeout: orphan deleted {:.2} s after it appeared on the server \
         (grace {} s, interval 1 s)",
        lived.as_secs_f64(),
        GRACE.as_secs()
    );
    app.check_invariants().await.unwrap();
    app.shutdown().await;
}

/// Redis restarts empty while players keep creating games on two full servers: the servers'
/// games (now orphans) are deleted within the grace plus an interval, creates succeed again,
/// `P:servers`/`P:products` are back within one interval, and in the end every server holds
/// exactly the games with a live record naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_under_load_frees_the_servers_and_republishes() {
    let mut servers = vec![
        ServerSpec::new("gs-1", "chess"),
        ServerSpec::new("gs-2", "chess"),
    ];
    for spec in &mut servers {
        spec.max_games = 10;
    }
    let mut app = TestApp::spawn(TestAppOptions {
        servers,
        adjust_settings: Some(fast_reconciliation),
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    for i in 0..20 {
        let answer = app.create_chess(&format!("p{i}"), 2).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
    let full = app
        .create_game(
            "one-too-many",
            serde_json::json!({"product": "chess", "capacity": 2}),
        )
        .await;
    assert_eq!(full.code(), Some("no_game_server"), "{}", full.text);

    // Load: a create every 50 ms over plain HTTP; the first success after the restart is
    // timed.
    let stop = Arc::new(AtomicBool::new(false));
    let restarted_at_ms = Arc::new(AtomicU64::new(u64::MAX));
    let first_ok_ms = Arc::new(AtomicU64::new(0));
    let created_after = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, restarted_at_ms, first_ok_ms, created_after) = (
            stop.clone(),
            restarted_at_ms.clone(),
            first_ok_ms.clone(),
            created_after.clone(),
        );
        let url = app.url("/v1/games");
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut sent, mut created) = (0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                sent += 1;
                let answer = http
                    .post(&url)
                    .header("X-Player-Id", format!("load{sent}"))
                    .json(&serde_json::json!({"product": "chess", "capacity": 2}))
                    .send()
                    .await;
                if answer.is_ok_and(|a| a.status() == 201) {
                    created += 1;
                    let now = now_ms();
                    if now > restarted_at_ms.load(Ordering::SeqCst) {
                        created_after.fetch_add(1, Ordering::SeqCst);
                        let _ = first_ok_ms.compare_exchange(
                            0,
                            now,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (sent, created)
        })
    };

    let restart_instant = Instant::now();
    restarted_at_ms.store(now_ms(), Ordering::SeqCst);
    app.redis.restart().unwrap();
    let conn = app.redis.connection().await;
    let republished = poll::until(
        "P:servers and P:products to be republished",
        Duration::from_secs(30),
        || {
            let mut conn = conn.clone();
            async move {
                let servers: HashMap<String, String> = conn.hgetall("mm:servers").await.ok()?;
                let products: Vec<String> = conn.smembers("mm:products").await.ok()?;
                (servers.len() == 2 && products == ["chess"]).then(|| restart_instant.elapsed())
            }
        },
    )
    .await;
    let server_ids = [
        ServerId::new("gs-1").unwrap(),
        ServerId::new("gs-2").unwrap(),
    ];
    // Freed: every game a server holds has a live record naming it.
    let freed = poll::until(
        "the servers to be freed of the games Redis forgot",
        Duration::from_secs(60),
        || async {
            let mut total_orphans = 0;
            for (index, id) in server_ids.iter().enumerate() {
                let held = held(app.game_server(index).unwrap()).await;
                let live = live_on(&app, id).await?;
                total_orphans += held.difference(&live).count();
            }
            (total_orphans == 0).then(|| restart_instant.elapsed())
        },
    )
    .await;
    let created_again = poll::until(
        "a create to succeed again",
        Duration::from_secs(30),
        || async {
            let at = first_ok_ms.load(Ordering::SeqCst);
            (at != 0).then(|| Duration::from_millis(at - restarted_at_ms.load(Ordering::SeqCst)))
        },
    )
    .await;
    // And keep succeeding: 10 more creates of the load after the first.
    poll::until(
        "creates to keep succeeding",
        Duration::from_secs(30),
        || async { (created_after.load(Ordering::SeqCst) >= 11).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let (sent, created) = load.await.unwrap();

    // Settled: every server holds exactly the games whose live record names it.
    poll::until(
        "every server to hold exactly its live records",
        Duration::from_secs(30),
        || async {
            for (index, id) in server_ids.iter().enumerate() {
                if Some(held(app.game_server(index).unwrap()).await) != live_on(&app, id).await {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let mut real_load = 0;
    for index in 0..2 {
        real_load += app.game_server(index).unwrap().game_count();
    }
    println!(
        "FIGURE reconcile/redis_restart: registry republished {:.2} s after the restart, the \
         servers freed of the 20 forgotten games {:.2} s after it, the first create succeeded \
         {:.2} s after it (grace {} s, interval 1 s, health checks 1 s); load: {created} of \
         {sent} creates succeeded, {real_load} games held at the end = live records",
        republished.as_secs_f64(),
        freed.as_secs_f64(),
        created_again.as_secs_f64(),
        GRACE.as_secs()
    );
    app.check_invariants().await.unwrap();
    app.shutdown().await;
}

/// A live record whose server lost the game (deleted there behind the matchmaker's back, no
/// event) ends `lost_on_server` after the grace and never before; a game its server still
/// holds is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_game_its_server_lost_ends_lost_on_server_after_the_grace_never_before() {
    let app = TestApp::spawn(TestAppOptions {
        servers: vec![ServerSpec::new("gs-1", "chess")],
        adjust_settings: Some(fast_reconciliation),
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let lost = app.create_chess("alice", 2).await;
    let kept = app.create_chess("bob", 2).await;
    assert_eq!((lost.status, kept.status), (201, 201));
    let (lost_id, kept_id) = (lost.str("id").to_string(), kept.str("id").to_string());
    let server = app.game_server(0).unwrap();
    client()
        .delete_game(&server.endpoint(), &GameId::new(&lost_id).unwrap())
        .await
        .unwrap();
    let lost_at = Instant::now();
    let ended_after = poll::until(
        "the lost game to end lost_on_server",
        Duration::from_secs(30),
        || async {
            let game = app
                .store
                .game(&GameId::new(&lost_id).unwrap())
                .await
                .ok()??;
            (game.state() == GameState::Ended).then(|| (lost_at.elapsed(), game.end_reason))
        },
    )
    .await;
    let (after, reason) = ended_after;
    assert_eq!(reason.as_deref(), Some(LOST_ON_SERVER));
    assert!(
        after + POLL_SLACK >= GRACE,
        "ended {after:?} after the loss, before its {GRACE:?} grace"
    );
    assert_eq!(app.state_of(&kept_id).await.as_deref(), Some("created"));
    assert_eq!(held(server).await, BTreeSet::from([kept_id.clone()]));
    println!(
        "FIGURE reconcile/lost_on_server: the lost game ended {:.2} s after its server lost it \
         (grace {} s, interval 1 s); the game its server kept stayed live",
        after.as_secs_f64(),
        GRACE.as_secs()
    );
    app.check_invariants().await.unwrap();
    app.shutdown().await;
}
