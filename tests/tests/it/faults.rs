//! Fault tests against real `matchmakerd` processes (see `mm_testkit::daemon_process`) and a
//! real redis-server with AOF on: SIGKILL mid-stream and restart, a daemon dying for good
//! while another claims its entries, Redis restarting mid-stream, poison events, and a game
//! server that is down while its games go stale. Each test prints its measured figures
//! (run with `--nocapture` to see them).

use std::time::{Duration, Instant};

use matchmakerd::instance::InstanceIdentity;
use mm_common::gameserver::{ClientOptions, CreateGameRequest, GameServerClient};
use mm_common::keys::CONSUMER_GROUP;
use mm_common::time::now_ms;
use mm_common::{Game, GameId, GameState, PlayerId, ServerId};
use mm_testkit::daemon_process::{DaemonProcess, DaemonSpec};
use mm_testkit::fake_gameserver::{Behaviour, FakeGameServer, Route};
use mm_testkit::{RedisOptions, RedisServer, poll};
use redis::AsyncCommands;

use crate::consumer::{
    Fixture, Workload, assert_poison_reasons, fully_consumed, group_figures, write_poison,
};

/// Consumer settings of the fault tests: short blocking reads, claims after 1 s idle.
const CONSUMER_TOML: &str = "[consumer]\nbatch_size = 128\nblock_ms = 200\nclaim_idle_secs = 1\n";

impl Fixture {
    /// The consumer tests' fixture over a redis-server with AOF on.
    async fn durable() -> Fixture {
        let redis = RedisServer::start_with(RedisOptions { aof: true }).expect("redis-server");
        Fixture::with_redis(redis).await
    }

    fn worker(&self, instance: &str) -> DaemonProcess {
        let mut spec = DaemonSpec::worker(instance, &self.redis.url());
        spec.extra_toml = CONSUMER_TOML.into();
        DaemonProcess::start(spec).expect("starting matchmakerd")
    }

    async fn conn(&self) -> mm_testkit::app::TestConnection {
        self.redis.connection().await
    }

    /// Waits until at least `count` entries were read by the group.
    async fn wait_read(&self, count: u64, total_written: u64) {
        let conn = self.conn().await;
        poll::until(
            "the daemon to read entries",
            Duration::from_secs(30),
            || {
                let mut conn = conn.clone();
                let stream = self.stream.clone();
                async move {
                    let info = group_figures(&mut conn, &stream).await?;
                    let read = total_written - info.lag?;
                    (read >= count).then_some(())
                }
            },
        )
        .await;
    }

    /// Waits until every entry was delivered and acknowledged; returns how long it took.
    async fn wait_consumed_by(&self, what: &str, daemons: &mut [&mut DaemonProcess]) -> Duration {
        let started = Instant::now();
        let conn = self.conn().await;
        let stream = self.stream.clone();
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            poll::until(what, Duration::from_secs(60), || {
                let mut conn = conn.clone();
                let stream = stream.clone();
                async move { fully_consumed(&mut conn, &stream).await.then_some(()) }
            }),
        )
        .await;
        if outcome.is_err() {
            for daemon in daemons.iter() {
                eprintln!("daemon log:\n{}", daemon.log());
            }
            panic!("timed out waiting for {what}");
        }
        started.elapsed()
    }

    async fn pending_of(&self, consumer: &str) -> u64 {
        let mut conn = self.conn().await;
        let reply: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(CONSUMER_GROUP)
            .arg("-")
            .arg("+")
            .arg(100_000)
            .arg(consumer)
            .query_async(&mut conn)
            .await
            .unwrap();
        reply.ids.len() as u64
    }
}

/// The sum of every series of counter `name` in a Prometheus text exposition.
fn metric_sum(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn consumer_name(instance: &str) -> String {
    InstanceIdentity::resolve(None, instance).name
}

/// SIGKILL in the middle of a 10,000-event stream, restart with the same instance name:
/// every event is applied exactly once (the records equal the sequential model's) and the
/// pending list ends empty.
#[tokio::test]
async fn a_daemon_killed_mid_stream_restarts_and_applies_every_event_once() {
    let fx = Fixture::durable().await;
    let workload = Workload::generate(&fx.product, 200, 10_000, 101);
    workload.create_games(&fx.store).await;
    let total = workload.events.len();
    let mut conn = fx.conn().await;
    let mut ids = workload.write(&mut conn, &fx.stream, 0..total / 2).await;
    // The api role too, on a known port, so the restarted run's counters can be read.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut spec = DaemonSpec::worker("a", &fx.redis.url());
    spec.roles = "worker,api".into();
    spec.extra_toml = format!("{CONSUMER_TOML}\n[http]\nbind = \"127.0.0.1:{port}\"\n");
    let mut daemon = DaemonProcess::start(spec).unwrap();
    let written_at_kill = ids.len() as u64;
    fx.wait_read(1000, written_at_kill).await;
    daemon.kill();
    let at_kill = group_figures(&mut conn, &fx.stream).await.unwrap();
    let read_at_kill = written_at_kill - at_kill.lag.unwrap();
    let pending_at_kill = fx.pending_of(&consumer_name("a")).await;
    let acked_before_kill = read_at_kill - pending_at_kill;
    ids.extend(
        workload
            .write(&mut conn, &fx.stream, total / 2..total)
            .await,
    );
    let restarted = Instant::now();
    daemon.restart().unwrap();
    let drain = fx
        .wait_consumed_by("the restarted daemon to finish", &mut [&mut daemon])
        .await;
    workload.assert_matches(&fx.store, &ids).await;
    assert_eq!(fx.pending_of(&consumer_name("a")).await, 0);
    // Exactly once: the restarted run handled precisely what the killed one had not
    // acknowledged, and found no entry already applied.
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let handled = metric_sum(&metrics, "mm_events_applied_total")
        + metric_sum(&metrics, "mm_events_stale_total")
        + metric_sum(&metrics, "mm_events_dead_lettered_total");
    let duplicates = metric_sum(&metrics, "mm_events_duplicate_total");
    assert_eq!(handled, total as u64 - acked_before_kill, "{metrics}");
    assert_eq!(duplicates, 0);
    let status = daemon.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    println!(
        "FIGURES kill-9: events={total} acked_before_kill={acked_before_kill} \
         pending_at_kill={pending_at_kill} handled_after_restart={handled} duplicates={duplicates} \
         lost=0 restart_to_drained={:?} drain={drain:?}",
        restarted.elapsed()
    );
    fx.check_invariants().await;
}

/// Two daemons share the stream; one is killed for good. The survivor claims the dead one's
/// unacknowledged entries (XAUTOCLAIM after 1 s idle) and finishes everything.
#[tokio::test]
async fn the_survivor_claims_a_dead_daemons_entries() {
    let fx = Fixture::durable().await;
    let workload = Workload::generate(&fx.product, 50, 3000, 202);
    workload.create_games(&fx.store).await;
    let total = workload.events.len();
    let mut conn = fx.conn().await;
    let mut ids = workload.write(&mut conn, &fx.stream, 0..total / 2).await;
    let mut doomed = fx.worker("doomed");
    let mut survivor = fx.worker("survivor");
    fx.wait_read(500, ids.len() as u64).await;
    doomed.kill();
    // As if it had read a batch just before dying: entries only it holds.
    let doomed_name = consumer_name("doomed");
    ids.extend(
        workload
            .write(&mut conn, &fx.stream, total / 2..total)
            .await,
    );
    let handed: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(CONSUMER_GROUP)
        .arg(&doomed_name)
        .arg("COUNT")
        .arg(200)
        .arg("STREAMS")
        .arg(&fx.stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let orphaned: usize =
        handed.map_or(0, |reply| reply.keys.iter().map(|key| key.ids.len()).sum());
    let pending_of_dead = fx.pending_of(&doomed_name).await;
    assert!(pending_of_dead >= orphaned as u64);
    let started = Instant::now();
    fx.wait_consumed_by("the survivor to claim and finish", &mut [&mut survivor])
        .await;
    assert_eq!(fx.pending_of(&doomed_name).await, 0, "claimed away");
    workload.assert_matches(&fx.store, &ids).await;
    assert!(
        survivor.log().contains("claimed idle pending entries"),
        "the survivor logs its claims"
    );
    println!(
        "FIGURES claim: events={total} orphaned_pending={pending_of_dead} lost=0 \
         time_to_finish_after_kill={:?}",
        started.elapsed()
    );
    drop(doomed);
    fx.check_invariants().await;
}

/// Redis is killed and restarted (AOF on) mid-stream: the daemon recovers by itself and no
/// acknowledged event is lost.
#[tokio::test]
async fn the_daemon_recovers_from_a_redis_restart_without_losing_events() {
    let mut fx = Fixture::durable().await;
    let workload = Workload::generate(&fx.product, 100, 4000, 303);
    workload.create_games(&fx.store).await;
    let total = workload.events.len();
    let mut conn = fx.conn().await;
    let mut ids = workload.write(&mut conn, &fx.stream, 0..total / 2).await;
    let mut daemon = fx.worker("a");
    fx.wait_read(500, ids.len() as u64).await;
    let restarted = Instant::now();
    fx.redis.restart().unwrap();
    let mut conn = fx.conn().await;
    ids.extend(
        workload
            .write(&mut conn, &fx.stream, total / 2..total)
            .await,
    );
    fx.wait_consumed_by("the daemon to recover and finish", &mut [&mut daemon])
        .await;
    let recovery = restarted.elapsed();
    assert!(
        daemon.is_running(),
        "the daemon never exits on a Redis error"
    );
    // The store's own connection reconnects too.
    poll::until(
        "the test store to reconnect",
        Duration::from_secs(10),
        || async { fx.store.ping().await.ok() },
    )
    .await;
    workload.assert_matches(&fx.store, &ids).await;
    println!("FIGURES redis-restart: events={total} lost=0 restart_to_all_applied={recovery:?}");
    fx.check_invariants().await;
}

/// Poison events (unknown type, missing game id, unknown game) are dead-lettered with their
/// reasons by a running daemon; every other event is applied.
#[tokio::test]
async fn a_daemon_dead_letters_poison_and_applies_the_rest() {
    let fx = Fixture::durable().await;
    let workload = Workload::generate(&fx.product, 10, 300, 404);
    workload.create_games(&fx.store).await;
    let mut daemon = fx.worker("a");
    let mut conn = fx.conn().await;
    let half = workload.events.len() / 2;
    let mut ids = workload.write(&mut conn, &fx.stream, 0..half).await;
    write_poison(&mut conn, &fx.stream, &workload.games[0].id).await;
    ids.extend(
        workload
            .write(&mut conn, &fx.stream, half..workload.events.len())
            .await,
    );
    fx.wait_consumed_by("poison and good events to be handled", &mut [&mut daemon])
        .await;
    let dead: redis::streams::StreamRangeReply = conn
        .xrange_all(fx.store.keys().product(&fx.product).dead_letters())
        .await
        .unwrap();
    let reasons = dead
        .ids
        .iter()
        .map(|entry| entry.get::<String>("reason").unwrap());
    assert_poison_reasons(reasons.collect());
    workload.assert_matches(&fx.store, &ids).await;
    fx.check_invariants().await;
}

/// The game server answers 503 while its games go stale: the curating daemon removes none;
/// when the server answers again they are curated.
#[tokio::test]
async fn stale_games_survive_a_game_server_outage_and_are_curated_after() {
    let fx = Fixture::durable().await;
    let fake = FakeGameServer::start().await.unwrap();
    let endpoint = fake.endpoint("gs-1");
    let client = GameServerClient::new(ClientOptions::default()).unwrap();
    fx.store
        .register_products(std::slice::from_ref(&fx.product))
        .await
        .unwrap();
    let mut games = Vec::new();
    for n in 0..5 {
        let game = Game::new(
            GameId::new(format!("chess.stale{n}")).unwrap(),
            fx.product.clone(),
            ServerId::new("gs-1").unwrap(),
            None,
            2,
            PlayerId::new(format!("c{n}")).unwrap(),
            "ws://127.0.0.1:1/ws".into(),
            "{}".into(),
            now_ms() - 60_000,
        );
        let request = CreateGameRequest {
            game_id: game.id.clone(),
            product: fx.product.clone(),
            capacity: 2,
            creator_id: game.creator_id.clone(),
            settings: serde_json::json!({}),
        };
        client.create_game(&endpoint, &request).await.unwrap();
        assert!(fx.store.create_game(&game).await.unwrap());
        games.push(game);
    }
    fake.set(Route::DeleteGame, Behaviour::Status(503));
    let mut spec = DaemonSpec::worker("curator", &fx.redis.url());
    spec.roles = "worker,curator".into();
    spec.extra_toml = format!(
        "{CONSUMER_TOML}\n[curation]\ninterval_secs = 1\npending_timeout_secs = 5\n\n\
         [game_server_client]\nretries = 0\nbreaker_failures = 3\nbreaker_cooldown_secs = 1\n\n\
         [[game_servers]]\nid = \"gs-1\"\nproduct = \"chess\"\napi_url = \"{}\"\n\
         max_games = 100\napi_key = \"fake-api-key\"\n",
        fake.api_url()
    );
    let mut daemon = DaemonProcess::start(spec).unwrap();
    // Several failing passes (the fake counts the delete calls it refused).
    poll::until("failing delete calls", Duration::from_secs(30), || async {
        (fake.calls(Route::DeleteGame) >= 5).then_some(())
    })
    .await;
    let outage_calls = fake.calls(Route::DeleteGame);
    for game in &games {
        let state = fx.store.game(&game.id).await.unwrap().unwrap().state();
        assert_eq!(state, GameState::Created, "kept during the outage");
    }
    let recovered = Instant::now();
    fake.set(Route::DeleteGame, Behaviour::Normal);
    let store = fx.store.clone();
    let ids: Vec<GameId> = games.iter().map(|g| g.id.clone()).collect();
    let wait = tokio::time::timeout(
        Duration::from_secs(30),
        poll::until("the games to be curated", Duration::from_secs(30), || {
            let (store, ids) = (store.clone(), ids.clone());
            async move {
                for id in &ids {
                    let game = store.game(id).await.ok()??;
                    if game.state() != GameState::Ended {
                        return None;
                    }
                }
                Some(())
            }
        }),
    )
    .await;
    if wait.is_err() {
        panic!("not curated after recovery; log:\n{}", daemon.log());
    }
    for game in &games {
        let record = fx.store.game(&game.id).await.unwrap().unwrap();
        assert_eq!(record.end_reason.as_deref(), Some("curated_pending"));
    }
    let status = daemon.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}");
    println!(
        "FIGURES gameserver-outage: games=5 removed_during_outage=0 refused_calls={outage_calls} \
         recovery_to_curated={:?}",
        recovered.elapsed()
    );
    fx.check_invariants().await;
}

/// A bad setting stops the daemon at start with exit code 2 and a message naming the key.
#[tokio::test]
async fn a_bad_setting_exits_2_naming_the_key() {
    let binary = mm_testkit::daemon_process::matchmakerd_binary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[consumer]\nbatch_size = 0\n").unwrap();
    let output = tokio::process::Command::new(binary)
        .args(["-m", "test", "-c"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("consumer.batch_size"), "{stderr}");
}

/// A running daemon is listed in `P:instances` with its description; SIGTERM removes it and
/// exits 0.
#[tokio::test]
async fn a_running_daemon_heartbeats_and_a_clean_stop_removes_it() {
    let fx = Fixture::durable().await;
    let mut daemon = fx.worker("hb");
    let name = consumer_name("hb");
    let conn = fx.conn().await;
    let keys = fx.store.keys().clone();
    let description: std::collections::HashMap<String, String> =
        poll::until("the heartbeat", Duration::from_secs(20), || {
            let (mut conn, keys, name) = (conn.clone(), keys.clone(), name.clone());
            async move {
                let score: Option<f64> = conn.zscore(keys.instances(), &name).await.ok()?;
                score?;
                let hash: std::collections::HashMap<String, String> =
                    conn.hgetall(keys.instance(&name)).await.ok()?;
                (!hash.is_empty()).then_some(hash)
            }
        })
        .await;
    assert_eq!(description["roles"], "worker");
    assert_eq!(description["pid"], daemon.pid().unwrap().to_string());
    let stopping = Instant::now();
    let status = daemon.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "{status}");
    let mut conn = fx.conn().await;
    let score: Option<f64> = conn.zscore(keys.instances(), &name).await.unwrap();
    assert_eq!(score, None, "removed on clean shutdown");
    let exists: bool = conn.exists(keys.instance(&name)).await.unwrap();
    assert!(!exists);
    println!("FIGURES sigterm: exit_after={:?}", stopping.elapsed());
}

/// The daemon runs in-process with every role (API on port 0): events written to the stream
/// are applied and show up in `/metrics`; shutdown completes within the grace time.
#[tokio::test]
async fn an_in_process_daemon_applies_events_and_exposes_metrics() {
    use matchmakerd::cli::Roles;
    use matchmakerd::startup::{Daemon, DaemonOptions};
    use mm_config::{LoadOptions, Mode, Settings};

    let fx = Fixture::durable().await;
    let settings = Settings::load_with_env(
        &LoadOptions::new(Mode::Test),
        [
            ("MM_REDIS__URL", fx.redis.url()),
            ("MM_CONSUMER__BLOCK_MS", "100".to_string()),
            // The workload's games look idle (their events carry old times) and their server
            // does not exist: a curating curator would mark them as ending while it tries to
            // delete them, and the record would differ from the model meanwhile. The curator
            // role still runs, in dry run.
            ("MM_CURATION__DRY_RUN", "true".to_string()),
        ],
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut options = DaemonOptions::new(Roles::all());
    options.instance = "inproc".into();
    options.api_listener = Some(listener);
    let daemon = Daemon::build(settings, options).await.unwrap();
    let addr = daemon.api_addr().expect("the api role listens");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.run_until(async move {
        let _ = stopped.await;
    }));
    let workload = Workload::generate(&fx.product, 5, 100, 505);
    workload.create_games(&fx.store).await;
    let mut conn = fx.conn().await;
    let ids = workload
        .write(&mut conn, &fx.stream, 0..workload.events.len())
        .await;
    poll::until(
        "the in-process daemon to consume",
        Duration::from_secs(20),
        || {
            let mut conn = conn.clone();
            let stream = fx.stream.clone();
            async move { fully_consumed(&mut conn, &stream).await.then_some(()) }
        },
    )
    .await;
    workload.assert_matches(&fx.store, &ids).await;
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "mm_events_applied_total",
        "mm_event_apply_duration_seconds",
        "mm_games",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    let stopping = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("shutdown within the grace time")
        .unwrap()
        .unwrap();
    println!("FIGURES in-process shutdown={:?}", stopping.elapsed());
    fx.check_invariants().await;
}

/// A daemon started while Redis is down keeps running and starts consuming once Redis is up.
#[tokio::test]
async fn a_daemon_started_before_redis_waits_for_it() {
    let mut fx = Fixture::durable().await;
    let workload = Workload::generate(&fx.product, 5, 200, 606);
    workload.create_games(&fx.store).await;
    let mut conn = fx.conn().await;
    let ids = workload
        .write(&mut conn, &fx.stream, 0..workload.events.len())
        .await;
    fx.redis.kill();
    let mut daemon = fx.worker("early");
    // The daemon is up and retrying (its log shows it) while Redis is away.
    poll::until("the daemon to start", Duration::from_secs(20), || async {
        daemon.log().contains("matchmakerd starting").then_some(())
    })
    .await;
    assert!(daemon.is_running(), "Redis being down is not fatal");
    let back = Instant::now();
    fx.redis.restart().unwrap();
    fx.wait_consumed_by("consumption after Redis came up", &mut [&mut daemon])
        .await;
    let elapsed = back.elapsed();
    poll::until(
        "the test store to reconnect",
        Duration::from_secs(10),
        || async { fx.store.ping().await.ok() },
    )
    .await;
    workload.assert_matches(&fx.store, &ids).await;
    println!("FIGURES redis-late: redis_up_to_all_applied={elapsed:?}");
    fx.check_invariants().await;
}

/// The event counters of one daemon, scraped from its admin listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EventCounts {
    applied: u64,
    stale: u64,
    duplicate: u64,
    dead: u64,
    lost: u64,
}

impl EventCounts {
    async fn scrape(admin: std::net::SocketAddr) -> Option<EventCounts> {
        let text = reqwest::get(format!("http://{admin}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(EventCounts {
            applied: metric_sum(&text, "mm_events_applied_total"),
            stale: metric_sum(&text, "mm_events_stale_total"),
            duplicate: metric_sum(&text, "mm_events_duplicate_total"),
            dead: metric_sum(&text, "mm_events_dead_lettered_total"),
            lost: metric_sum(&text, "mm_events_lost_total"),
        })
    }

    /// Entries handled in any way.
    fn handled(&self) -> u64 {
        self.applied + self.stale + self.duplicate + self.dead + self.lost
    }

    /// Waits until the daemon has handled `count` entries in all.
    async fn wait_handled(admin: std::net::SocketAddr, count: u64, what: &str) -> EventCounts {
        poll::until(what, Duration::from_secs(60), || async move {
            EventCounts::scrape(admin)
                .await
                .filter(|counts| counts.handled() >= count)
        })
        .await
    }
}

/// The consumer group is destroyed while a daemon runs (an operator's `XGROUP DESTROY`, a
/// restore from an old backup): the daemon recreates it at id 0 and every old entry is
/// delivered again. The replays change nothing and are counted as stale, never as applied
/// (contract section 4.3); nothing is lost and the records equal the sequential model's.
#[tokio::test]
async fn replays_after_the_group_is_destroyed_mid_stream_are_not_counted_as_applied() {
    let fx = Fixture::durable().await;
    let workload = Workload::generate(&fx.product, 50, 2000, 707);
    workload.create_games(&fx.store).await;
    let total = workload.events.len();
    let half = total / 2;
    let mut conn = fx.conn().await;
    let mut ids = workload.write(&mut conn, &fx.stream, 0..half).await;
    let mut daemon = fx.worker("replay");
    let admin = daemon.admin_addr().await;
    let before = EventCounts::wait_handled(admin, half as u64, "the first half").await;
    assert_eq!(before.handled(), half as u64, "{before:?}");
    let heartbeats_replayed = workload.events[..half]
        .iter()
        .filter(|fields| fields.iter().any(|(k, v)| k == "type" && v == "heartbeat"))
        .count();

    let destroyed: u64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&fx.stream)
        .arg(CONSUMER_GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(destroyed, 1);
    let replayed = EventCounts::wait_handled(
        admin,
        2 * half as u64,
        "the old entries to be delivered again after the group is recreated",
    )
    .await;
    assert_eq!(
        replayed.handled(),
        2 * half as u64,
        "each old entry handled once more: {replayed:?}"
    );
    assert_eq!(
        replayed.applied, before.applied,
        "replays counted as applied: before {before:?}, after {replayed:?}"
    );
    assert_eq!(replayed.dead, before.dead, "no replay is dead-lettered");
    assert_eq!(replayed.lost, 0);

    ids.extend(workload.write(&mut conn, &fx.stream, half..total).await);
    let end = EventCounts::wait_handled(admin, (total + half) as u64, "the second half").await;
    fx.wait_consumed_by("the second half to be acknowledged", &mut [&mut daemon])
        .await;
    workload.assert_matches(&fx.store, &ids).await;
    assert_eq!(end.lost, 0);
    assert!(
        end.applied - replayed.applied <= (total - half) as u64,
        "only new entries are applied: {end:?}"
    );
    println!(
        "FIGURES group destroyed mid-stream: events={total} replayed={half} \
         (heartbeats among them {heartbeats_replayed}) applied_by_replays={} \
         stale_by_replays={} duplicates={} dead_lettered={} lost={} \
         applied_total={} of {total} events",
        replayed.applied - before.applied,
        replayed.stale - before.stale,
        end.duplicate,
        end.dead,
        end.lost,
        end.applied,
    );
    fx.check_invariants().await;
}

/// A daemon is killed for good (SIGKILL): once its entries are claimed by the survivor, its
/// heartbeat has expired and its consumer has been idle past `consumer.dead_consumer_idle_secs`
/// (2 s here), the survivor removes it from the group. The survivor itself, live and busy, is
/// never removed; nothing is lost.
#[tokio::test]
async fn the_consumer_of_a_killed_daemon_is_removed_from_the_group() {
    let fx = Fixture::durable().await;
    let workload = Workload::generate(&fx.product, 20, 1000, 808);
    workload.create_games(&fx.store).await;
    let total = workload.events.len();
    let mut conn = fx.conn().await;
    let mut ids = workload.write(&mut conn, &fx.stream, 0..total / 2).await;
    let toml = format!("{CONSUMER_TOML}dead_consumer_idle_secs = 2\n");
    let start = |instance: &str| {
        let mut spec = DaemonSpec::worker(instance, &fx.redis.url());
        spec.extra_toml = toml.clone();
        DaemonProcess::start(spec).expect("starting matchmakerd")
    };
    let mut doomed = start("doomed");
    let mut survivor = start("survivor");
    let survivor_admin = survivor.admin_addr().await;
    let doomed_name = consumer_name("doomed");
    let survivor_name = consumer_name("survivor");
    let reader = fx.conn().await;
    let consumers = || {
        let conn = reader.clone();
        let stream = fx.stream.clone();
        async move {
            let mut conn = conn;
            let reply: redis::streams::StreamInfoConsumersReply =
                conn.xinfo_consumers(&stream, CONSUMER_GROUP).await.ok()?;
            Some(
                reply
                    .consumers
                    .into_iter()
                    .map(|c| c.name)
                    .collect::<Vec<_>>(),
            )
        }
    };
    poll::until(
        "both daemons to join the group",
        Duration::from_secs(30),
        || async {
            consumers()
                .await
                .filter(|names| names.contains(&doomed_name) && names.contains(&survivor_name))
        },
    )
    .await;
    doomed.kill();
    let killed = Instant::now();
    ids.extend(
        workload
            .write(&mut conn, &fx.stream, total / 2..total)
            .await,
    );
    poll::until(
        "the killed daemon's consumer to be removed from the group",
        Duration::from_secs(90),
        || async {
            consumers()
                .await
                .filter(|names| !names.contains(&doomed_name))
        },
    )
    .await;
    let removed_after = killed.elapsed();
    fx.wait_consumed_by("the survivor to finish", &mut [&mut survivor])
        .await;
    workload.assert_matches(&fx.store, &ids).await;
    let names = consumers().await.unwrap();
    assert_eq!(names, [survivor_name], "the live survivor stays");
    let metrics = reqwest::get(format!("http://{survivor_admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric_sum(&metrics, "mm_consumers_removed_total"),
        1,
        "{metrics}"
    );
    assert_eq!(metric_sum(&metrics, "mm_events_lost_total"), 0);
    assert!(
        survivor
            .log()
            .contains("removed the consumer of an instance that is gone"),
        "the removal is logged"
    );
    println!(
        "FIGURES dead consumer: events={total} removed_after_kill={removed_after:?} \
         (heartbeat expiry 15 s, idle bound 2 s) consumers_left={names:?} lost=0"
    );
    fx.check_invariants().await;
}
