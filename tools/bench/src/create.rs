//! Scenarios `create` (games created through the lobby API on reference game servers) and
//! `flow` (the whole player flow: create, the creator connects by WebSocket, a second player
//! joins and connects).

use std::sync::Arc;
use std::time::Duration;

use super::driver::{self, Driven, Latency};
use super::paired::{self, Limits};
use super::procs::{
    CpuMark, CpuTally, DaemonProcess, DaemonSpec, GameServerProcess, GameServerSpec,
    RegisteredServer, ResourceUse,
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

/// The CPU marks of one round on one setup.
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
}

/// One side's CPU over all its rounds.
#[derive(Default)]
struct Tallies {
    daemon: CpuTally,
    redis: CpuTally,
    servers: CpuTally,
    driver: CpuTally,
}

impl Tallies {
    fn add(&mut self, marks: &Marks) -> anyhow::Result<()> {
        self.daemon.add(&marks.daemon)?;
        self.redis.add(&marks.redis)?;
        for mark in &marks.servers {
            self.servers.add(mark)?;
        }
        self.driver.add(&marks.driver)
    }

    /// Fills `row`'s resource columns and notes where the cores went.
    fn finish(&self, row: &mut Row, scenario: &mut Scenario, limits: Limits) {
        let daemon = self.daemon.usage();
        row.daemon = Some(daemon);
        row.redis_cores = Some(self.redis.usage().cores);
        // The servers' tally adds their intervals side by side: their sum is what they used.
        let servers = self.servers.usage().cores * SERVERS as f64;
        scenario.note(format!(
            "{}: CPU on the same 2 cores during its rounds: daemon {:.2}, Redis {:.2}, game \
             servers {servers:.2}, load driver (mm-bench) {:.2} cores",
            limits.label(),
            daemon.cores,
            self.redis.usage().cores,
            self.driver.usage().cores
        ));
    }
}

/// Adds one side's row (games/s, latency, errors, CPU) to `scenario`; returns the daemon's
/// resource use, for the memory target.
fn push_row(
    scenario: &mut Scenario,
    label: String,
    driven: &Driven,
    tallies: &Tallies,
    limits: Limits,
) -> Option<ResourceUse> {
    let mut row = Row::new(label, "games/s");
    row.throughput = Some(driven.per_second());
    row.latency = Some(Latency::of_micros(&driven.latency));
    row.errors = driven.error_count();
    tallies.finish(&mut row, scenario, limits);
    let daemon = row.daemon;
    scenario.rows.push(row);
    daemon
}

/// Rounds share a side's budget: at most `total / ROUNDS` operations or a round's length.
fn round_budget(bench: &Bench) -> (u64, Duration) {
    (
        (bench.sizes.create_max / paired::ROUNDS as u64).max(1),
        paired::round_length(bench.sizes.load),
    )
}

fn status_code(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else {
        "connect".into()
    }
}

/// Scenario `create`: with the limits off (the figure the throughput target is judged on)
/// beside the same with the limits on, in alternating rounds (see [`paired`]).
pub async fn run_create(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("create", "create game");
    let (round_total, round_load) = round_budget(bench);
    let max_games = (round_total * paired::ROUNDS as u64) as u32;
    let mut setups = Vec::new();
    for limits in Limits::BOTH {
        let name = format!("create-{}", limits.label().replace(' ', "-"));
        setups.push(setup(bench, &name, "api", max_games, limits).await?);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()?;
    let concurrency = 64;
    let mut driven = [Driven::empty(), Driven::empty()];
    let mut tallies = [Tallies::default(), Tallies::default()];
    for round in 0..paired::ROUNDS {
        for limits in paired::order(round) {
            let setup = &setups[limits.index()];
            let url = Arc::new(format!("{}/v1/games", setup.daemon.base_url));
            let http = http.clone();
            // Every create is by another player, in every round.
            let first_player = round as u64 * round_total;
            let marks = Marks::start(setup)?;
            let run = driver::closed_loop(concurrency, round_total, round_load, move |i| {
                let http = http.clone();
                let url = Arc::clone(&url);
                async move {
                    let response = http
                        .post(url.as_str())
                        .header("x-player-id", format!("creator-{}", first_player + i))
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
            tallies[limits.index()].add(&marks)?;
            driven[limits.index()].absorb(run);
        }
    }
    for limits in Limits::BOTH {
        let driven = &driven[limits.index()];
        let daemon = push_row(
            &mut scenario,
            format!(
                "POST /v1/games → {SERVERS} reference game servers ({concurrency} in flight, {})",
                limits.label()
            ),
            driven,
            &tallies[limits.index()],
            limits,
        );
        scenario.note(format!(
            "{}: {} games created in {:.1} s ({} rounds of at most {round_total} games or \
             {round_load:?}, alternating with the other side) by a closed loop of {concurrency} \
             HTTP/1.1 keep-alive connections, each by another player",
            limits.label(),
            driven.ok,
            driven.elapsed.as_secs_f64(),
            paired::ROUNDS,
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
    }
    let [off, on] = driven.map(|d| d.per_second());
    scenario.limits_cost_target(off, on, "games/s");
    Ok(scenario)
}

/// Scenario `flow` (create and join): with the limits off beside on, in alternating rounds.
pub async fn run_flow(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("flow", "full player flow");
    let (round_total, round_load) = round_budget(bench);
    let max_games = (round_total * paired::ROUNDS as u64) as u32;
    let mut setups = Vec::new();
    for limits in Limits::BOTH {
        let name = format!("flow-{}", limits.label().replace(' ', "-"));
        setups.push(setup(bench, &name, "api,worker", max_games, limits).await?);
    }
    let concurrency = 32;
    let recorders = [Arc::new(Recorder::default()), Arc::new(Recorder::default())];
    let leavers = Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
    let mut driven = [Driven::empty(), Driven::empty()];
    let mut tallies = [Tallies::default(), Tallies::default()];
    for round in 0..paired::ROUNDS {
        for limits in paired::order(round) {
            let setup = &setups[limits.index()];
            let lobby = LobbyClient::new(
                &setup.daemon.base_url,
                Arc::clone(&recorders[limits.index()]),
            )?;
            let first_flow = round as u64 * round_total;
            let flow_leavers = Arc::clone(&leavers);
            let marks = Marks::start(setup)?;
            let run = driver::closed_loop(concurrency, round_total, round_load, move |i| {
                let lobby = lobby.clone();
                let leavers = Arc::clone(&flow_leavers);
                async move {
                    let creator = format!("flow-c{}", first_flow + i);
                    let joiner = format!("flow-j{}", first_flow + i);
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
            tallies[limits.index()].add(&marks)?;
            driven[limits.index()].absorb(run);
        }
    }
    for limits in Limits::BOTH {
        let driven = &driven[limits.index()];
        let daemon = push_row(
            &mut scenario,
            format!(
                "create → creator WebSocket → join → joiner WebSocket ({concurrency} flows in flight, {})",
                limits.label()
            ),
            driven,
            &tallies[limits.index()],
            limits,
        );
        let summary = recorders[limits.index()].summary(driven.elapsed);
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
            scenario.note(format!(
                "{} rounds a side of at most {round_total} flows or {round_load:?}, alternating \
                 with the other side. A flow's join retries (20 ms backoff, doubling) while the \
                 creator's arrival is still on its way through the event stream; its latency \
                 includes that wait. Each flow has its own two players, so with the limits on \
                 every create and join passes its checks (what is measured is their cost, not \
                 refusals)",
                paired::ROUNDS
            ));
            scenario.rss_target(daemon);
        }
    }
    let mut leavers = leavers.lock().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while leavers.join_next().await.is_some() {}
    })
    .await;
    let [off, on] = driven.map(|d| d.per_second());
    scenario.limits_cost_target(off, on, "games/s");
    Ok(scenario)
}
