//! Scenario `soak`: the whole daemon (`api,worker,curator`) under steady mixed load for
//! minutes, sampling what could grow without bound — Redis's `used_memory`, the length of
//! every stream (events, dead letters, audit), the number of keys, the game sets and the
//! daemon's resident memory. After a warm-up (long enough for the stream's retained tail,
//! pending curation and tombstone expiry to reach their steady state) each must stay flat:
//! growth under 10 % from the warm-up window to the final window.
//!
//! The load, all at once and each at a fixed rate:
//! - events written to the product stream as game servers write them (heartbeats, a player
//!   joining and leaving) about lobby games whose creators are in, at [`EVENT_RATE`];
//! - creates through the API on two reference game servers, whose creators never connect:
//!   every one is curated after the pending timeout (deleted on its server, tombstoned,
//!   then expired);
//! - first-page listings through the API.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use mm_common::ServerId;
use mm_common::model::Phase;
use redis::aio::MultiplexedConnection;

use super::Bench;
use super::fixtures::{self, EventFields};
use super::procs::{
    CpuMark, DaemonProcess, DaemonSpec, GameServerProcess, GameServerSpec, RegisteredServer,
};
use super::report::{Row, Scenario, Series};

const PRODUCT: &str = "soak";
/// The server id of the lobby games the written events are about (not registered: the
/// events are written by the benchmark, not by a game server).
const FIXTURE_SERVER: &str = "gs-soak-fixture";
/// Events per second written to the stream.
const EVENT_RATE: u64 = 5_000;
/// Lobby games those events are about.
const EVENT_GAMES: u64 = 1_000;
/// Creates per second through the API.
const CREATE_RATE: u64 = 20;
/// First-page listings per second through the API.
const LIST_RATE: u64 = 50;
/// Growth allowed from the warm-up window to the final window.
const MAX_GROWTH: f64 = 0.10;

/// Durations of a soak run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// The whole load phase.
    total: Duration,
    /// Until the steady state: the retained stream tail, pending curation and tombstone
    /// expiry have each run at least once.
    warm_up: Duration,
    /// The windows compared: the first `window` after warm-up, and the last `window`.
    window: Duration,
    /// Time between samples.
    every: Duration,
    /// `events.retain_secs`.
    retain_secs: u64,
    /// `curation.pending_timeout_secs`.
    pending_timeout_secs: u64,
    /// `lobby.tombstone_ttl_secs`.
    tombstone_ttl_secs: u64,
}

impl Plan {
    fn of(bench: &Bench) -> Plan {
        let total = bench.sizes.soak;
        // The settings scale with the run, so a short run still reaches a steady state.
        let retain_secs = (total.as_secs() / 10).clamp(10, 60);
        let pending_timeout_secs = (total.as_secs() / 20).clamp(5, 30);
        let tombstone_ttl_secs = retain_secs;
        let warm_up =
            Duration::from_secs((retain_secs.max(pending_timeout_secs + tombstone_ttl_secs)) * 2)
                .min(total / 3);
        let window = (total / 6).max(Duration::from_secs(10));
        Plan {
            total,
            warm_up,
            window,
            every: (total / 60).max(Duration::from_secs(2)),
            retain_secs,
            pending_timeout_secs,
            tombstone_ttl_secs,
        }
    }
}

/// Reads one figure of a sample.
type Measure = fn(&Sample) -> f64;

/// One sample of everything that could grow.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at_secs: f64,
    used_memory: f64,
    stream_len: f64,
    dead_letters: f64,
    audit_len: f64,
    keys: f64,
    pending: f64,
    lobby: f64,
    daemon_rss_mib: f64,
}

impl Sample {
    const COLUMNS: [&'static str; 9] = [
        "t (s)",
        "Redis used_memory (MiB)",
        "event stream length",
        "dead letters",
        "audit stream length",
        "keys",
        "pending games",
        "lobby games",
        "daemon RSS (MiB)",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            format!("{:.0}", self.at_secs),
            format!("{:.1}", self.used_memory / 1024.0 / 1024.0),
            format!("{:.0}", self.stream_len),
            format!("{:.0}", self.dead_letters),
            format!("{:.0}", self.audit_len),
            format!("{:.0}", self.keys),
            format!("{:.0}", self.pending),
            format!("{:.0}", self.lobby),
            format!("{:.1}", self.daemon_rss_mib),
        ]
    }
}

/// Runs the scenario.
pub async fn run(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("soak", "soak (bounded growth)");
    let plan = Plan::of(bench);
    let fixtures::ScenarioRedis {
        redis,
        mut conn,
        pid: redis_pid,
        keys,
        product,
        product_keys,
    } = fixtures::ScenarioRedis::start(bench.key_prefix, PRODUCT).await?;

    // Lobby games for the written events, in the record only.
    let fixture_server = ServerId::new(FIXTURE_SERVER)?;
    let now = mm_common::time::now_ms();
    let lobbies: Vec<_> = (0..EVENT_GAMES)
        .map(|i| fixtures::game(&product, &fixture_server, i, Phase::Lobby, 4, now))
        .collect::<Result<_, _>>()?;
    fixtures::write_games(&mut conn, &product_keys, &lobbies, now).await?;
    fixtures::prepare_product(&mut conn, &keys, &product).await?;
    let lobby_ids: Vec<String> = lobbies.iter().map(|g| g.id.to_string()).collect();
    drop(lobbies);

    // Two reference game servers with room for every create of the run.
    let room = (CREATE_RATE * plan.total.as_secs()) as u32 + 100;
    let mut servers = Vec::new();
    for index in 0..2 {
        servers.push(
            GameServerProcess::start(
                &bench.binaries,
                bench.work_dir(),
                &GameServerSpec {
                    id: format!("gs-soak-{index}"),
                    product: PRODUCT.into(),
                    redis_url: redis.url(),
                    key_prefix: bench.key_prefix.into(),
                    max_games: room,
                    start_delay_ms: 3_600_000,
                    play_time_ms: 3_600_000,
                    heartbeat_ms: 0,
                },
            )
            .await?,
        );
    }
    let mut spec = DaemonSpec::new(&redis.url(), bench.key_prefix, "api,worker,curator");
    for server in &servers {
        spec.game_servers
            .push(RegisteredServer::of(server, PRODUCT, room));
    }
    let spec = spec
        .set("curation", "interval_secs", 1)
        .set(
            "curation",
            "pending_timeout_secs",
            plan.pending_timeout_secs,
        )
        .set("lobby", "tombstone_ttl_secs", plan.tombstone_ttl_secs)
        .set("events", "retain_secs", plan.retain_secs);
    let daemon = DaemonProcess::start(&bench.binaries, bench.work_dir(), "soak", &spec).await?;
    let daemon_pid = daemon.pid();
    let daemon_mark = CpuMark::start(daemon_pid)?;
    let redis_mark = CpuMark::start(redis_pid)?;
    scenario.note(format!(
        "{} s of steady load on one `matchmakerd --roles api,worker,curator`: {EVENT_RATE} \
         events/s written to the stream (heartbeats, a player joining and leaving) about \
         {EVENT_GAMES} lobby games, {CREATE_RATE} creates/s through the API on 2 reference game \
         servers (creators never connect, so every game is curated after the pending timeout \
         of {} s, deleted on its server and tombstoned for {} s), {LIST_RATE} first-page \
         listings/s; `events.retain_secs` = {}; a sample every {} s",
        plan.total.as_secs(),
        plan.pending_timeout_secs,
        plan.tombstone_ttl_secs,
        plan.retain_secs,
        plan.every.as_secs()
    ));

    let started = Instant::now();
    let deadline = started + plan.total;
    let events = write_events(conn.clone(), product_keys.events(), lobby_ids, deadline);
    let creates = drive_api(
        daemon.base_url.clone(),
        deadline,
        CREATE_RATE,
        ApiCall::Create,
    );
    let listings = drive_api(daemon.base_url.clone(), deadline, LIST_RATE, ApiCall::List);
    let sampler = async {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(plan.every);
        loop {
            tick.tick().await;
            samples.push(
                sample(&mut conn, &keys, &product_keys, daemon_pid, started)
                    .await
                    .context("sampling")?,
            );
            if Instant::now() >= deadline {
                return anyhow::Ok(samples);
            }
        }
    };
    let (events, creates, listings, samples) = tokio::join!(events, creates, listings, sampler);
    let (written, creates, listings, samples) = (events?, creates?, listings?, samples?);
    let daemon_use = daemon_mark.finish()?;
    let redis_use = redis_mark.finish()?;
    let elapsed = started.elapsed();

    let mut row = Row::new(
        format!("events written over {} s", plan.total.as_secs()),
        "events/s",
    );
    row.throughput = Some(written as f64 / elapsed.as_secs_f64());
    row.daemon = Some(daemon_use);
    row.redis_cores = Some(redis_use.cores);
    scenario.rows.push(row);
    for (label, driven) in [
        ("creates through the API", creates),
        ("first-page listings", listings),
    ] {
        let mut row = Row::new(label, "req/s");
        row.throughput = Some(driven.ok as f64 / elapsed.as_secs_f64());
        row.errors = driven.errors;
        scenario.rows.push(row);
    }

    let steady_from = plan.warm_up.as_secs_f64();
    let early = window_mean(
        &samples,
        steady_from,
        steady_from + plan.window.as_secs_f64(),
    );
    let end = elapsed.as_secs_f64();
    let late = window_mean(&samples, end - plan.window.as_secs_f64(), end + 1.0);
    let (Some(early), Some(late)) = (early, late) else {
        anyhow::bail!("the run was too short to compare a warm-up window with a final one");
    };
    scenario.note(format!(
        "growth is the mean of the last {} s of samples over the mean of the {} s after a \
         {} s warm-up (the retained tail, pending curation and tombstone expiry each reach \
         their steady state within it)",
        plan.window.as_secs(),
        plan.window.as_secs(),
        plan.warm_up.as_secs()
    ));
    let checks: [(&str, Measure); 3] = [
        ("Redis used_memory", |s| s.used_memory),
        ("event stream length", |s| s.stream_len),
        ("daemon RSS", |s| s.daemon_rss_mib),
    ];
    for (what, value) in checks {
        let (from, to) = (value(&early), value(&late));
        let growth = if from > 0.0 {
            to / from - 1.0
        } else {
            f64::INFINITY
        };
        scenario.target(
            &format!(
                "{what} flat after warm-up (growth < {:.0} %)",
                MAX_GROWTH * 100.0
            ),
            Some(growth < MAX_GROWTH),
            format!("{from:.0} → {to:.0} ({:+.1} %)", growth * 100.0),
        );
    }
    let last = samples.last().copied().unwrap_or_default();
    ensure!(
        last.dead_letters == 0.0,
        "the soak's events were dead-lettered ({}), so its load was not what it claims",
        last.dead_letters
    );
    scenario.series.push(Series {
        title: "soak samples".into(),
        columns: Sample::COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows: samples.iter().map(Sample::cells).collect(),
    });
    drop(daemon);
    drop(servers);
    Ok(scenario)
}

/// The mean of the samples taken in `[from, to)` seconds.
fn window_mean(samples: &[Sample], from: f64, to: f64) -> Option<Sample> {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_secs >= from && s.at_secs < to)
        .collect();
    if inside.is_empty() {
        return None;
    }
    let n = inside.len() as f64;
    let mean = |f: Measure| inside.iter().map(|s| f(s)).sum::<f64>() / n;
    Some(Sample {
        at_secs: mean(|s| s.at_secs),
        used_memory: mean(|s| s.used_memory),
        stream_len: mean(|s| s.stream_len),
        dead_letters: mean(|s| s.dead_letters),
        audit_len: mean(|s| s.audit_len),
        keys: mean(|s| s.keys),
        pending: mean(|s| s.pending),
        lobby: mean(|s| s.lobby),
        daemon_rss_mib: mean(|s| s.daemon_rss_mib),
    })
}

async fn sample(
    conn: &mut MultiplexedConnection,
    keys: &mm_common::keys::Keys,
    product_keys: &mm_common::keys::ProductKeys,
    daemon_pid: u32,
    started: Instant,
) -> anyhow::Result<Sample> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    let used_memory = info
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context("INFO memory has no used_memory")?;
    let counts: Vec<u64> = redis::pipe()
        .cmd("XLEN")
        .arg(product_keys.events())
        .cmd("XLEN")
        .arg(product_keys.dead_letters())
        .cmd("XLEN")
        .arg(keys.audit())
        .cmd("DBSIZE")
        .cmd("ZCARD")
        .arg(product_keys.pending())
        .cmd("ZCARD")
        .arg(product_keys.lobby())
        .query_async(conn)
        .await?;
    let [
        stream_len,
        dead_letters,
        audit_len,
        keys_count,
        pending,
        lobby,
    ] = counts[..]
    else {
        anyhow::bail!("a pipeline of 6 commands answered {} replies", counts.len());
    };
    Ok(Sample {
        at_secs: started.elapsed().as_secs_f64(),
        used_memory,
        stream_len: stream_len as f64,
        dead_letters: dead_letters as f64,
        audit_len: audit_len as f64,
        keys: keys_count as f64,
        pending: pending as f64,
        lobby: lobby as f64,
        daemon_rss_mib: super::procs::rss_mib(daemon_pid)?,
    })
}

/// Writes [`EVENT_RATE`] events a second (a pipeline every 10 ms) about `games` until
/// `deadline`; returns how many were written.
async fn write_events(
    mut conn: MultiplexedConnection,
    stream: String,
    games: Vec<String>,
    deadline: Instant,
) -> anyhow::Result<u64> {
    const TICK: Duration = Duration::from_millis(10);
    let per_tick = (EVENT_RATE / 100) as usize;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        tick.tick().await;
        let batch = (0..per_tick).map(|_| {
            let index = sent as usize % games.len();
            // Per game: heartbeat, a player joins, heartbeat, the player leaves.
            let (kind, player) = match (sent / games.len() as u64) % 4 {
                1 => ("player_joined", format!("soak-{index}")),
                3 => ("player_left", format!("soak-{index}")),
                _ => ("heartbeat", String::new()),
            };
            sent += 1;
            let fields: EventFields = [
                ("type", kind.to_string()),
                ("game_id", games[index].clone()),
                ("player_id", player),
                ("server_id", FIXTURE_SERVER.to_string()),
            ];
            fields
        });
        let batch: Vec<EventFields> = batch.collect();
        fixtures::append_events(&mut conn, &stream, batch).await?;
    }
    Ok(sent)
}

#[derive(Debug, Clone, Copy)]
enum ApiCall {
    Create,
    List,
}

/// Calls that succeeded and failed.
#[derive(Debug, Clone, Copy, Default)]
struct Driven {
    ok: u64,
    errors: u64,
}

/// Makes `rate` calls a second until `deadline`, each on its own task (an open loop: a slow
/// answer does not lower the rate).
async fn drive_api(
    base_url: String,
    deadline: Instant,
    rate: u64,
    call: ApiCall,
) -> anyhow::Result<Driven> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let mut calls = tokio::task::JoinSet::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        tick.tick().await;
        n += 1;
        let http = http.clone();
        let base_url = base_url.clone();
        calls.spawn(async move {
            let player = format!("soak-player-{n}");
            let request = match call {
                ApiCall::Create => http
                    .post(format!("{base_url}/v1/games"))
                    .json(&serde_json::json!({ "product": PRODUCT, "capacity": 4 })),
                ApiCall::List => http.get(format!("{base_url}/v1/games?product={PRODUCT}")),
            };
            match request.header("x-player-id", player).send().await {
                Ok(response) => response.status().is_success(),
                Err(_) => false,
            }
        });
    }
    let mut driven = Driven::default();
    while let Some(done) = calls.join_next().await {
        if done.unwrap_or(false) {
            driven.ok += 1;
        } else {
            driven.errors += 1;
        }
    }
    Ok(driven)
}
