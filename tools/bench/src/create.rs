//! Scenarios `create` (games created through the lobby API on reference game servers) and
//! `flow` (the whole player flow: create, the creator connects by WebSocket, a second player
//! joins and connects).

use std::sync::Arc;
use std::time::Duration;

use super::driver::{self, Latency};
use super::procs::{
    CpuMark, DaemonProcess, DaemonSpec, GameServerProcess, GameServerSpec, RegisteredServer,
};
use super::report::{Row, Scenario};
use super::{Bench, fixtures};
use mm_loadgen::Recorder;
use mm_loadgen::player::{LobbyClient, Player};
use mm_testkit::RedisServer;

const PRODUCT: &str = "bench";
/// Game servers behind the daemon (the daemon spreads creates over them).
const SERVERS: usize = 2;

struct Setup {
    // Kept alive (dropping it stops Redis) until the scenario ends.
    _redis: RedisServer,
    redis_pid: u32,
    servers: Vec<GameServerProcess>,
    daemon: DaemonProcess,
}

/// Whether a run has the `[limits]` on (at their defaults) or off (the `test` mode's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// Every limit off.
    Off,
    /// Every limit on, at its default.
    On,
}

impl Limits {
    fn label(self) -> &'static str {
        match self {
            Limits::Off => "limits off",
            Limits::On => "limits on",
        }
    }
}

async fn setup(
    bench: &Bench,
    name: &str,
    roles: &str,
    max_games: u32,
    limits: Limits,
) -> anyhow::Result<Setup> {
    let redis = RedisServer::start()?;
    let redis_pid = fixtures::redis_pid(&mut redis.connection().await).await?;
    let mut servers = Vec::new();
    for index in 0..SERVERS {
        servers.push(
            GameServerProcess::start(
                &bench.binaries,
                bench.work_dir(),
                &GameServerSpec {
                    id: format!("gs-{name}-{index}"),
                    product: PRODUCT.into(),
                    redis_url: redis.url(),
                    key_prefix: bench.key_prefix.into(),
                    max_games,
                    // Full games wait before starting: the flow ends when both players are in.
                    start_delay_ms: 3_600_000,
                    play_time_ms: 3_600_000,
                    heartbeat_ms: 5_000,
                },
            )
            .await?,
        );
    }
    let mut spec = DaemonSpec::new(&redis.url(), bench.key_prefix, roles);
    for server in &servers {
        spec.game_servers
            .push(RegisteredServer::of(server, PRODUCT, max_games));
    }
    let spec = spec
        .set("curation", "pending_timeout_secs", 3600)
        .set("curation", "lobby_idle_timeout_secs", 3600)
        .set("lobby", "reservation_ttl_secs", 60);
    let spec = match limits {
        Limits::Off => spec,
        Limits::On => spec.with_default_limits(),
    };
    let daemon = DaemonProcess::start(&bench.binaries, bench.work_dir(), name, &spec).await?;
    // Not measured: waits until the daemon has seen its game servers healthy.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    fixtures::create_via_api(&http, &daemon.base_url, "bench-warm-up", PRODUCT, 2).await?;
    Ok(Setup {
        _redis: redis,
        redis_pid,
        servers,
        daemon,
    })
}

struct Marks {
    daemon: CpuMark,
    redis: CpuMark,
    servers: Vec<CpuMark>,
    driver: CpuMark,
}

impl Marks {
    fn start(setup: &Setup) -> anyhow::Result<Marks> {
        Ok(Marks {
            daemon: CpuMark::start(setup.daemon.pid())?,
            redis: CpuMark::start(setup.redis_pid)?,
            servers: setup
                .servers
                .iter()
                .map(|s| CpuMark::start(s.process.pid()))
                .collect::<Result<_, _>>()?,
            driver: CpuMark::start(std::process::id())?,
        })
    }

    fn finish(&self, row: &mut Row, scenario: &mut Scenario) -> anyhow::Result<()> {
        let daemon = self.daemon.finish()?;
        row.daemon = Some(daemon);
        row.redis_cores = Some(self.redis.finish()?.cores);
        let mut servers = 0.0;
        for mark in &self.servers {
            servers += mark.finish()?.cores;
        }
        scenario.note(format!(
            "CPU on the same 2 cores during the run: daemon {:.2}, Redis {:.2}, game servers \
             {servers:.2}, load driver (mm-bench) {:.2} cores",
            daemon.cores,
            row.redis_cores.unwrap_or(0.0),
            self.driver.finish()?.cores
        ));
        Ok(())
    }
}

fn status_code(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else {
        "connect".into()
    }
}

/// Scenario `create`: with the limits off (the figure the throughput target is judged on),
/// then the same with the limits on.
pub async fn run_create(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("create", "create game");
    let off = measure_create(bench, &mut scenario, Limits::Off).await?;
    let on = measure_create(bench, &mut scenario, Limits::On).await?;
    scenario.limits_cost_target(off, on, "games/s");
    Ok(scenario)
}

/// One create run; returns its throughput (games/s).
async fn measure_create(
    bench: &Bench,
    scenario: &mut Scenario,
    limits: Limits,
) -> anyhow::Result<f64> {
    let total = bench.sizes.create_max;
    let name = format!("create-{}", limits.label().replace(' ', "-"));
    let setup = setup(bench, &name, "api", total as u32, limits).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()?;
    let url = Arc::new(format!("{}/v1/games", setup.daemon.base_url));
    let concurrency = 64;
    let marks = Marks::start(&setup)?;
    let driven = driver::closed_loop(concurrency, total, bench.sizes.load, move |i| {
        let http = http.clone();
        let url = Arc::clone(&url);
        async move {
            let response = http
                .post(url.as_str())
                .header("x-player-id", format!("creator-{i}"))
                .json(&serde_json::json!({ "product": PRODUCT, "capacity": 2 }))
                .send()
                .await
                .map_err(status_code)?;
            let status = response.status();
            let _ = response.bytes().await.map_err(status_code)?;
            if status.as_u16() == 201 {
                Ok(())
            } else {
                Err(format!("http_{}", status.as_u16()))
            }
        }
    })
    .await;
    let mut row = Row::new(
        format!(
            "POST /v1/games → {SERVERS} reference game servers ({concurrency} in flight, {})",
            limits.label()
        ),
        "games/s",
    );
    row.throughput = Some(driven.per_second());
    row.latency = Some(Latency::of_micros(&driven.latency));
    row.errors = driven.error_count();
    marks.finish(&mut row, scenario)?;
    let daemon = row.daemon;
    scenario.rows.push(row);
    scenario.note(format!(
        "{}: {} games created in {:.1} s by a closed loop of {concurrency} HTTP/1.1 keep-alive \
         connections (bounded at {total} games or {:?}), each by another player",
        limits.label(),
        driven.ok,
        driven.elapsed.as_secs_f64(),
        bench.sizes.load
    ));
    if driven.error_count() > 0 {
        scenario.note(format!(
            "create errors ({}): {}",
            limits.label(),
            driven.errors_text()
        ));
    }
    if limits == Limits::Off {
        scenario.target(
            "≥ 4,000 games/s",
            Some(driven.per_second() >= 4000.0),
            format!("{:.0} games/s", driven.per_second()),
        );
        scenario.rss_target(daemon);
    }
    Ok(driven.per_second())
}

/// Scenario `flow` (create and join): with the limits off, then on.
pub async fn run_flow(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("flow", "full player flow");
    let off = measure_flow(bench, &mut scenario, Limits::Off).await?;
    let on = measure_flow(bench, &mut scenario, Limits::On).await?;
    scenario.limits_cost_target(off, on, "games/s");
    Ok(scenario)
}

/// One flow run; returns its throughput (flows/s).
async fn measure_flow(
    bench: &Bench,
    scenario: &mut Scenario,
    limits: Limits,
) -> anyhow::Result<f64> {
    let total = bench.sizes.create_max;
    let name = format!("flow-{}", limits.label().replace(' ', "-"));
    let setup = setup(bench, &name, "api,worker", total as u32, limits).await?;
    let recorder = Arc::new(Recorder::default());
    let lobby = LobbyClient::new(&setup.daemon.base_url, Arc::clone(&recorder))?;
    let concurrency = 32;
    let leavers = Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
    let marks = Marks::start(&setup)?;
    let flow_leavers = Arc::clone(&leavers);
    let driven = driver::closed_loop(concurrency, total, bench.sizes.load, move |i| {
        let lobby = lobby.clone();
        let leavers = Arc::clone(&flow_leavers);
        async move {
            let creator = format!("flow-c{i}");
            let joiner = format!("flow-j{i}");
            let created = lobby
                .create(&creator, PRODUCT, 2)
                .await
                .map_err(|f| f.code)?;
            let mut first = Player::connect(&lobby, &created.join)
                .await
                .map_err(|f| f.code)?;
            let ticket = lobby
                .join_when_open(&joiner, &created.id, Duration::from_secs(10))
                .await
                .map_err(|f| f.code)?;
            let mut second = Player::connect(&lobby, &ticket).await.map_err(|f| f.code)?;
            // Leaving is not part of the measured flow.
            leavers.lock().await.spawn(async move {
                second.leave().await;
                first.leave().await;
            });
            Ok(())
        }
    })
    .await;
    let mut row = Row::new(
        format!(
            "create → creator WebSocket → join → joiner WebSocket ({concurrency} flows in flight, {})",
            limits.label()
        ),
        "games/s",
    );
    row.throughput = Some(driven.per_second());
    row.latency = Some(Latency::of_micros(&driven.latency));
    row.errors = driven.error_count();
    marks.finish(&mut row, scenario)?;
    let daemon = row.daemon;
    scenario.rows.push(row);
    let summary = recorder.summary(driven.elapsed);
    for op in &summary.operations {
        scenario.note(format!(
            "{}: step `{}`: {} ok, {} errors, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            limits.label(),
            op.operation,
            op.ok,
            op.errors,
            op.p50_ms,
            op.p99_ms,
            op.p999_ms
        ));
    }
    if driven.error_count() > 0 {
        scenario.note(format!(
            "flow errors ({}): {}",
            limits.label(),
            driven.errors_text()
        ));
    }
    if limits == Limits::Off {
        scenario.note(
            "a flow's join retries (20 ms backoff, doubling) while the creator's arrival is \
             still on its way through the event stream; its latency includes that wait. Each \
             flow has its own two players, so with the limits on every create and join passes \
             its checks (what is measured is their cost, not refusals)",
        );
        scenario.rss_target(daemon);
    }
    let mut leavers = leavers.lock().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while leavers.join_next().await.is_some() {}
    })
    .await;
    Ok(driven.per_second())
}
