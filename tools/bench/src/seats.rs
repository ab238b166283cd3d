//! Scenario `seats`: `POST /v1/games/quick-join` beside `POST /v1/games/{id}/join` and
//! `POST /v1/games` (the yardstick), each a closed loop of 64 keep-alive connections, every
//! request by another player, against the same daemon and reference game servers, in
//! alternating rounds. Each has a product of its own; join and quick join have lobbies of 16
//! seats opened the production way (created through the API, the creator's `creator_joined`
//! applied): a join names a lobby (15 joins each, one after another), a quick join lets the
//! daemon's view pick the fullest of the oldest `lobby.quick_join_scan` open lobbies.
//!
//! Beside the rates, the notes place each request's cost: its CPU in every process (daemon,
//! Redis, the game servers, this load generator) and how busy the whole machine was, and the
//! mean group size of each grouped script (the daemon's `mm_store_grouped_*` counters).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;

use super::Bench;
use super::driver::{self, Driven, Latency};
use super::fixtures::{self, EventFields};
use super::paired;
use super::procs::{
    CpuMark, CpuTally, DaemonProcess, DaemonSpec, GameServerProcess, GameServerSpec,
    RegisteredServer,
};
use super::report::{Row, Scenario};

const JOIN_PRODUCT: &str = "benchjoin";
const QUICK_PRODUCT: &str = "benchquick";
const CREATE_PRODUCT: &str = "benchcreate";

/// The requests the scenario compares.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Join,
    QuickJoin,
    Create,
}

impl Kind {
    fn label(self) -> String {
        match self {
            Kind::Join => format!("POST /v1/games/{{id}}/join ({CONCURRENCY} in flight)"),
            Kind::QuickJoin => format!("POST /v1/games/quick-join ({CONCURRENCY} in flight)"),
            Kind::Create => format!("POST /v1/games, capacity 2 ({CONCURRENCY} in flight)"),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Kind::Create => "games/s",
            _ => "seats/s",
        }
    }
}
const CAPACITY: u64 = 16;
const CONCURRENCY: usize = 64;

/// Creates `lobbies` lobbies of `product` through the API and opens them with the creators'
/// `creator_joined`; returns their ids in creation order.
async fn open_lobbies(
    http: &reqwest::Client,
    daemon: &DaemonProcess,
    conn: &mut redis::aio::MultiplexedConnection,
    bench: &Bench,
    product: &str,
    lobbies: usize,
) -> anyhow::Result<Vec<String>> {
    let base = daemon.base_url.clone();
    let created: Vec<anyhow::Result<(String, String, String)>> = futures::stream::iter(0..lobbies)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let creator = format!("{product}-host-{i}");
                let body =
                    fixtures::create_via_api(&http, &base, &creator, product, CAPACITY as u32)
                        .await?;
                let field = |name: &str| {
                    body[name]
                        .as_str()
                        .map(str::to_string)
                        .with_context(|| format!("create answer lacks `{name}`: {body}"))
                };
                Ok((field("id")?, field("server_id")?, creator))
            }
        })
        .buffered(32)
        .collect()
        .await;
    let created: Vec<(String, String, String)> = created.into_iter().collect::<Result<_, _>>()?;
    let keys = mm_common::Keys::new(bench.key_prefix)
        .product(&mm_common::ProductId::new(product).context("product id")?);
    let events = created
        .iter()
        .map(|(game, server, creator)| -> EventFields {
            [
                ("type", "creator_joined".to_string()),
                ("game_id", game.clone()),
                ("player_id", creator.clone()),
                ("server_id", server.clone()),
            ]
        });
    fixtures::append_events(conn, &keys.events(), events).await?;
    let open_key = keys.open();
    fixtures::wait_for(
        "the daemon to open every lobby",
        Duration::from_secs(120),
        || {
            let mut conn = conn.clone();
            let key = open_key.clone();
            async move {
                let open = fixtures::zcard(&mut conn, &key).await?;
                Ok((open == lobbies as u64).then_some(()))
            }
        },
    )
    .await?;
    Ok(created.into_iter().map(|(id, _, _)| id).collect())
}

fn status_code(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else {
        "connect".into()
    }
}

/// `POST url` with an optional JSON body as `player`: `Ok` on the `expected` status.
async fn post(
    http: &reqwest::Client,
    url: &str,
    player: String,
    body: Option<&serde_json::Value>,
    expected: u16,
) -> Result<(), String> {
    let mut request = http.post(url).header("x-player-id", player);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(status_code)?;
    let status = response.status().as_u16();
    let _ = response.bytes().await.map_err(status_code)?;
    if status == expected {
        Ok(())
    } else {
        Err(format!("http_{status}"))
    }
}

/// The grouped writes' mean group sizes, from the daemon's `/metrics` (public in test mode):
/// "`script` R in C calls = R/C" for each script that carried requests. The daemon exports
/// its counts every few seconds, so this polls until `reserve_seat` has counted at least
/// `joins` requests and `quick_join` at least `quick_joins` (at most 20 s).
async fn grouped_writes(base_url: &str, joins: u64, quick_joins: u64) -> anyhow::Result<String> {
    let counts = fixtures::wait_for(
        "the daemon to export its grouped-write counts",
        Duration::from_secs(20),
        || async move {
            let text = reqwest::get(format!("{base_url}/metrics"))
                .await?
                .error_for_status()?
                .text()
                .await?;
            let counts = grouped_counts(&text);
            let requests = |script: &str| {
                counts
                    .iter()
                    .find(|(name, _, _)| name == script)
                    .map_or(0, |(_, _, requests)| *requests)
            };
            Ok(
                (requests("reserve_seat") >= joins && requests("quick_join") >= quick_joins)
                    .then_some(counts),
            )
        },
    )
    .await?;
    Ok(counts
        .iter()
        .filter(|(_, _, requests)| *requests > 0)
        .map(|(script, calls, requests)| {
            format!(
                "`{script}` {requests} in {calls} calls = {:.1}",
                *requests as f64 / (*calls).max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", "))
}

/// `(script, calls, requests)` of every `mm_store_grouped_*_total{script="…"}` series in a
/// Prometheus text exposition.
fn grouped_counts(text: &str) -> Vec<(String, u64, u64)> {
    let mut counts: Vec<(String, u64, u64)> = Vec::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (calls, labels) = match series.split_once('{') {
            Some(("mm_store_grouped_calls_total", labels)) => (true, labels),
            Some(("mm_store_grouped_requests_total", labels)) => (false, labels),
            _ => continue,
        };
        let Some(script) = labels
            .trim_end_matches('}')
            .split(',')
            .find_map(|label| label.strip_prefix("script="))
            .map(|quoted| quoted.trim_matches('"').to_string())
        else {
            continue;
        };
        let value = value.parse::<f64>().unwrap_or(0.0) as u64;
        let at = match counts.iter().position(|(name, _, _)| *name == script) {
            Some(at) => at,
            None => {
                counts.push((script, 0, 0));
                counts.len() - 1
            }
        };
        if calls {
            counts[at].1 = value;
        } else {
            counts[at].2 = value;
        }
    }
    counts
}

/// Runs the scenario.
pub async fn run(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("seats", "join and quick join beside create");
    let load = bench.sizes.load;
    // Enough seats for a few thousand requests a second over the load phase, per product.
    let lobbies = (bench.sizes.create_max as usize / 10).clamp(500, 5_000);
    let seats = lobbies as u64 * (CAPACITY - 1);
    let fixtures::ScenarioRedis {
        redis,
        mut conn,
        pid: redis_pid,
        ..
    } = fixtures::ScenarioRedis::start(bench.key_prefix, JOIN_PRODUCT).await?;
    let mut servers = Vec::new();
    // The create product's server takes every game the create rounds can make.
    let max_games = (lobbies * 2) as u32 + seats as u32;
    for product in [JOIN_PRODUCT, QUICK_PRODUCT, CREATE_PRODUCT] {
        servers.push(
            GameServerProcess::start(
                &bench.binaries,
                bench.work_dir(),
                &GameServerSpec {
                    id: format!("gs-{product}"),
                    product: product.into(),
                    redis_url: redis.url(),
                    key_prefix: bench.key_prefix.into(),
                    max_games,
                    start_delay_ms: 3_600_000,
                    play_time_ms: 3_600_000,
                    heartbeat_ms: 0,
                },
            )
            .await?,
        );
    }
    let mut spec = DaemonSpec::new(&redis.url(), bench.key_prefix, "api,worker");
    for (server, product) in servers
        .iter()
        .zip([JOIN_PRODUCT, QUICK_PRODUCT, CREATE_PRODUCT])
    {
        spec.game_servers
            .push(RegisteredServer::of(server, product, max_games));
    }
    let spec = spec
        .set("lobby", "max_capacity", CAPACITY)
        .set("lobby", "reservation_ttl_secs", 3600)
        .set("curation", "pending_timeout_secs", 3600)
        .set("curation", "lobby_idle_timeout_secs", 3600);
    let daemon = DaemonProcess::start(&bench.binaries, bench.work_dir(), "seats", &spec).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()?;
    let join_lobbies =
        open_lobbies(&http, &daemon, &mut conn, bench, JOIN_PRODUCT, lobbies).await?;
    open_lobbies(&http, &daemon, &mut conn, bench, QUICK_PRODUCT, lobbies).await?;
    scenario.note(format!(
        "{lobbies} open lobbies of {CAPACITY} seats per product (created through the API, \
         opened by `creator_joined` events the daemon applied); limits off; every request by \
         another player; {CONCURRENCY} HTTP/1.1 keep-alive connections in a closed loop for \
         {load:?} or {seats} requests, whichever first"
    ));

    let join_urls: Arc<Vec<String>> = Arc::new(
        join_lobbies
            .iter()
            .map(|id| format!("{}/v1/games/{id}/join", daemon.base_url))
            .collect(),
    );
    // The three requests alternate in rounds on the same daemon, so the shared machine's
    // noise falls on each alike; create is the yardstick the issue sets.
    let kinds = [Kind::Join, Kind::QuickJoin, Kind::Create];
    let round_load = paired::round_length(load);
    let round_budget = (seats / paired::ROUNDS as u64).max(1);
    let mut driven: Vec<Driven> = kinds.iter().map(|_| Driven::empty()).collect();
    let mut daemon_use = vec![CpuTally::default(); kinds.len()];
    let mut redis_use = vec![CpuTally::default(); kinds.len()];
    // Where the rest of the machine's CPU went, so a gap between two requests can be placed:
    // the game servers (together), this load generator, and the whole machine (what it left
    // idle).
    let mut servers_use = vec![vec![CpuTally::default(); servers.len()]; kinds.len()];
    let mut driver_use = vec![CpuTally::default(); kinds.len()];
    let mut machine_use = vec![CpuTally::default(); kinds.len()];
    for round in 0..paired::ROUNDS {
        for (k, kind) in kinds.iter().enumerate() {
            let http = http.clone();
            let first = round as u64 * round_budget;
            let daemon_mark = CpuMark::start(daemon.pid())?;
            let redis_mark = CpuMark::start(redis_pid)?;
            let server_marks = servers
                .iter()
                .map(|server| CpuMark::start(server.process.pid()))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let driver_mark = CpuMark::start(std::process::id())?;
            let machine_mark = CpuMark::machine()?;
            let run = match kind {
                Kind::QuickJoin => {
                    let url = Arc::new(format!("{}/v1/games/quick-join", daemon.base_url));
                    let body = Arc::new(serde_json::json!({ "product": QUICK_PRODUCT }));
                    driver::closed_loop(CONCURRENCY, round_budget, round_load, move |i| {
                        let (http, url, body) = (http.clone(), Arc::clone(&url), Arc::clone(&body));
                        let player = format!("quick-{}", first + i);
                        async move { post(&http, &url, player, Some(&body), 200).await }
                    })
                    .await
                }
                Kind::Join => {
                    let urls = Arc::clone(&join_urls);
                    driver::closed_loop(CONCURRENCY, round_budget, round_load, move |i| {
                        let (http, urls) = (http.clone(), Arc::clone(&urls));
                        // Fifteen joins a lobby, one lobby after another: every join finds
                        // a seat.
                        let n = first + i;
                        let url = urls[(n / (CAPACITY - 1)) as usize % urls.len()].clone();
                        async move { post(&http, &url, format!("joiner-{n}"), None, 200).await }
                    })
                    .await
                }
                Kind::Create => {
                    let url = Arc::new(format!("{}/v1/games", daemon.base_url));
                    let body =
                        Arc::new(serde_json::json!({ "product": CREATE_PRODUCT, "capacity": 2 }));
                    driver::closed_loop(CONCURRENCY, round_budget, round_load, move |i| {
                        let (http, url, body) = (http.clone(), Arc::clone(&url), Arc::clone(&body));
                        let player = format!("creator-{}", first + i);
                        async move { post(&http, &url, player, Some(&body), 201).await }
                    })
                    .await
                }
            };
            daemon_use[k].add(&daemon_mark)?;
            redis_use[k].add(&redis_mark)?;
            for (tally, mark) in servers_use[k].iter_mut().zip(&server_marks) {
                tally.add(mark)?;
            }
            driver_use[k].add(&driver_mark)?;
            machine_use[k].add(&machine_mark)?;
            driven[k].absorb(run);
        }
    }
    let machine_size = std::thread::available_parallelism().map_or(1, usize::from);
    let mut rates = Vec::new();
    for (k, kind) in kinds.iter().enumerate() {
        let driven = &driven[k];
        let mut row = Row::new(kind.label(), kind.unit());
        row.throughput = Some(driven.per_second());
        row.latency = Some(Latency::of_micros(&driven.latency));
        row.errors = driven.error_count();
        row.daemon = Some(daemon_use[k].usage());
        row.redis_cores = Some(redis_use[k].usage().cores);
        if driven.error_count() > 0 {
            scenario.note(format!("{} errors: {}", kind.label(), driven.errors_text()));
        }
        rates.push(driven.per_second());
        scenario.rows.push(row);
        // CPU time per request, µs, of `cores` busy at the measured rate.
        let per_request = |cores: f64| 1e6 * cores / driven.per_second().max(1e-9);
        let servers_cores: f64 = servers_use[k].iter().map(|t| t.usage().cores).sum();
        let machine_cores = machine_use[k].usage().cores;
        scenario.note(format!(
            "{}: CPU per request {:.0} µs daemon, {:.0} µs Redis, {:.0} µs game servers, \
             {:.0} µs load generator; the machine was busy {machine_cores:.2} of its \
             {machine_size} cores ({:.0} µs per request in all)",
            kind.label(),
            per_request(daemon_use[k].usage().cores),
            per_request(redis_use[k].usage().cores),
            per_request(servers_cores),
            per_request(driver_use[k].usage().cores),
            per_request(machine_cores),
        ));
    }
    match grouped_writes(&daemon.base_url, driven[0].ok, driven[1].ok).await {
        Ok(groups) => scenario.note(format!(
            "requests per grouped script call (the daemon's `mm_store_grouped_*` counters, \
             whole run): {groups}"
        )),
        Err(err) => scenario.note(format!("group sizes not read: {err:#}")),
    }
    scenario.note(format!(
        "{} rounds of join, quick join and create, each at most {round_budget} requests or \
         {round_load:?}; the figures are over all rounds",
        paired::ROUNDS
    ));
    let (join_rate, quick_rate, create_rate) = (rates[0], rates[1], rates[2]);
    for (what, rate) in [("join", join_rate), ("quick join", quick_rate)] {
        scenario.target(
            &format!("{what} ≥ create (seats/s vs games/s, same run)"),
            Some(rate >= create_rate),
            format!(
                "{rate:.0} seats/s = {:.0} % of {create_rate:.0} games/s",
                100.0 * rate / create_rate.max(1e-9)
            ),
        );
    }
    drop(servers);
    Ok(scenario)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_counts_reads_both_series_of_every_script() {
        let text = "# TYPE mm_store_grouped_calls_total counter\n\
            mm_store_grouped_calls_total{script=\"reserve_seat\"} 10\n\
            mm_store_grouped_requests_total{script=\"reserve_seat\"} 150\n\
            mm_store_grouped_requests_total{role=\"api\",script=\"keep_ticket\"} 7\n\
            mm_store_grouped_calls_total{script=\"keep_ticket\"} 2\n\
            mm_view_games{product=\"a\"} 3\n";
        assert_eq!(
            grouped_counts(text),
            vec![
                ("reserve_seat".to_string(), 10, 150),
                ("keep_ticket".to_string(), 2, 7),
            ]
        );
    }
}
