//! Scenario `scale`: what spreading products over the masters of a Redis Cluster buys (issue
//! 14). The same events — four products, each with its own pre-filled stream about its own
//! games — are drained by one `--roles worker` daemon three times in the same run: with the
//! four products on one Redis, on a local cluster of three masters without replicas, and on
//! one whose masters have a replica each (as a cluster runs in production), the products
//! placed on different masters. The ratio of the aggregate rates is the finding; where the
//! cores went (the daemon, each Redis node) says why it is what it is on this machine. Then
//! creates through the API over the same four products (a reference game server each), on
//! the one Redis and on the cluster of three masters.

use std::time::{Duration, Instant};

use anyhow::bail;
use mm_common::ProductId;
use mm_common::keys::Keys;
use mm_testkit::RedisServer;
use mm_testkit::redis_cluster::{RedisCluster, products_on_distinct_masters};
use redis::aio::MultiplexedConnection;

use super::Bench;
use super::driver::{self, Latency};
use super::events::{fill, group_progress};
use super::fixtures::{self, redis_pid};
use super::procs::{
    CpuMark, DaemonProcess, DaemonSpec, GameServerProcess, GameServerSpec, RegisteredServer,
    ResourceUse, toml_string,
};
use super::report::{Row, Scenario};

/// Products in the run.
const PRODUCTS: usize = 4;
/// Product names the run picks from (the cluster run takes ones that land on different
/// masters, then as many more as it needs).
const CANDIDATES: &[&str] = &[
    "chess", "golf", "judo", "poker", "go", "bridge", "darts", "tennis", "rugby", "snooker",
];

/// Where a product's keys live: a connection to the one Redis (or cluster master) holding
/// its slot.
struct Placed {
    product: ProductId,
    conn: MultiplexedConnection,
    last_id: String,
}

/// One side's outcome.
struct Drained {
    rate: f64,
    seconds: f64,
    daemon: ResourceUse,
    redis_cores: Vec<f64>,
}

/// Starts the daemon `spec`, waits until every product's stream is drained, and measures.
async fn drain(
    bench: &Bench,
    name: &str,
    spec: &DaemonSpec,
    placed: &mut [Placed],
    keys: &Keys,
    redis_pids: &[u32],
) -> anyhow::Result<Drained> {
    let total = bench.sizes.events;
    let started = Instant::now();
    let daemon = DaemonProcess::start(&bench.binaries, bench.work_dir(), name, spec).await?;
    let daemon_mark = CpuMark::start(daemon.pid())?;
    let redis_marks: Vec<CpuMark> = redis_pids
        .iter()
        .map(|pid| CpuMark::start(*pid))
        .collect::<Result<_, _>>()?;
    let limit = Duration::from_secs(900);
    'wait: loop {
        for place in placed.iter_mut() {
            let stream = keys.product(&place.product).events();
            let (delivered, pending) = group_progress(&mut place.conn, &stream).await?;
            if delivered != place.last_id || pending != 0 {
                if started.elapsed() > limit {
                    bail!(
                        "{name}: {} not drained after {limit:?} (delivered up to {delivered}, \
                         {pending} pending, last entry {})",
                        place.product,
                        place.last_id
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue 'wait;
            }
        }
        break;
    }
    let seconds = started.elapsed().as_secs_f64();
    let daemon_use = daemon_mark.finish()?;
    let redis_cores = redis_marks
        .iter()
        .map(|mark| mark.finish().map(|usage| usage.cores))
        .collect::<Result<_, _>>()?;
    drop(daemon);
    Ok(Drained {
        rate: total as f64 / seconds,
        seconds,
        daemon: daemon_use,
        redis_cores,
    })
}

/// A daemon with `roles` on the nodes of `cluster`.
fn cluster_spec(cluster: &RedisCluster, key_prefix: &str, roles: &str) -> DaemonSpec {
    let nodes: Vec<String> = cluster.urls().iter().map(|u| toml_string(u)).collect();
    DaemonSpec::new(&cluster.urls()[0], key_prefix, roles).set(
        "redis",
        "cluster_nodes",
        format!("[{}]", nodes.join(", ")),
    )
}

/// Fills `products` on `cluster` (each on the master holding its slot), drains them with one
/// worker daemon, and returns the outcome with the master of each product.
async fn drain_on_cluster(
    bench: &Bench,
    name: &str,
    cluster: &mut RedisCluster,
    products: &[ProductId],
    keys: &Keys,
    games: u64,
    rounds: u64,
) -> anyhow::Result<(Drained, Vec<usize>)> {
    let mut placed = Vec::new();
    let mut masters = Vec::new();
    for product in products {
        let master = cluster.master_of(&keys.product(product).events())?;
        masters.push(master);
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", cluster.port(master)))?;
        let mut node = client.get_multiplexed_async_connection().await?;
        let last_id = fill(&mut node, keys, product, games, rounds).await?;
        placed.push(Placed {
            product: product.clone(),
            conn: node,
            last_id,
        });
    }
    let mut cluster_conn = cluster.connection().await;
    for product in products {
        fixtures::register_product(&mut cluster_conn, keys, product).await?;
    }
    let mut pids = Vec::new();
    for url in cluster.urls() {
        let client = redis::Client::open(url)?;
        let mut node = client.get_multiplexed_async_connection().await?;
        pids.push(redis_pid(&mut node).await?);
    }
    let spec = cluster_spec(cluster, bench.key_prefix, "worker");
    let drained = drain(bench, name, &spec, &mut placed, keys, &pids).await?;
    Ok((drained, masters))
}

/// Connections of the create load.
const CREATE_CONCURRENCY: usize = 64;

/// The create load's outcome on one side.
struct Created {
    row: Row,
    rate: f64,
    redis_cores: Vec<f64>,
    daemon_cores: f64,
}

/// Creates through the API over `products` for the load phase: one `--roles api` daemon
/// (`spec`, its Redis or cluster set), one reference game server per product writing its
/// events to `events_url` (a comma-separated list names a cluster's nodes).
async fn create_load(
    bench: &Bench,
    name: &str,
    mut spec: DaemonSpec,
    events_url: &str,
    products: &[ProductId],
    redis_pids: &[u32],
    shape: &str,
) -> anyhow::Result<Created> {
    let budget = bench.sizes.create_max;
    let max_games = budget as u32 + 1;
    let mut servers = Vec::new();
    for product in products {
        let server = GameServerProcess::start(
            &bench.binaries,
            bench.work_dir(),
            &GameServerSpec {
                id: format!("{name}-{product}"),
                product: product.to_string(),
                redis_url: events_url.to_string(),
                key_prefix: bench.key_prefix.into(),
                max_games,
                start_delay_ms: 3_600_000,
                play_time_ms: 3_600_000,
                heartbeat_ms: 0,
            },
        )
        .await?;
        spec.game_servers
            .push(RegisteredServer::of(&server, product.as_str(), max_games));
        servers.push(server);
    }
    let daemon = DaemonProcess::start(&bench.binaries, bench.work_dir(), name, &spec).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()?;
    let url = std::sync::Arc::new(format!("{}/v1/games", daemon.base_url));
    let names: std::sync::Arc<Vec<String>> =
        std::sync::Arc::new(products.iter().map(ToString::to_string).collect());
    let daemon_mark = CpuMark::start(daemon.pid())?;
    let redis_marks: Vec<CpuMark> = redis_pids
        .iter()
        .map(|pid| CpuMark::start(*pid))
        .collect::<Result<_, _>>()?;
    let driven = driver::closed_loop(CREATE_CONCURRENCY, budget, bench.sizes.load, {
        let name = name.to_string();
        move |i| {
            let (http, url, names) = (http.clone(), url.clone(), names.clone());
            let player = format!("{name}-creator-{i}");
            async move {
                let product = &names[i as usize % names.len()];
                let response = http
                    .post(url.as_str())
                    .header("x-player-id", player)
                    .json(&serde_json::json!({ "product": product, "capacity": 2 }))
                    .send()
                    .await
                    .map_err(|err| {
                        if err.is_timeout() {
                            "timeout"
                        } else {
                            "connect"
                        }
                        .to_string()
                    })?;
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                if status == 201 {
                    Ok(())
                } else {
                    Err(format!("http_{status}"))
                }
            }
        }
    })
    .await;
    let daemon_use = daemon_mark.finish()?;
    let redis_cores: Vec<f64> = redis_marks
        .iter()
        .map(|mark| mark.finish().map(|usage| usage.cores))
        .collect::<Result<_, _>>()?;
    drop(daemon);
    drop(servers);
    let mut row = Row::new(
        format!(
            "POST /v1/games over {PRODUCTS} products, a reference game server each \
             ({CREATE_CONCURRENCY} in flight), {shape}"
        ),
        "games/s",
    );
    row.throughput = Some(driven.per_second());
    row.latency = Some(Latency::of_micros(&driven.latency));
    row.errors = driven.error_count();
    row.daemon = Some(daemon_use);
    row.redis_cores = Some(redis_cores.iter().sum());
    if driven.error_count() > 0 {
        row.label = format!("{} — errors: {}", row.label, driven.errors_text());
    }
    Ok(Created {
        row,
        rate: driven.per_second(),
        redis_cores,
        daemon_cores: daemon_use.cores,
    })
}

/// Runs the scenario.
pub async fn run(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("scale", "products spread over a Redis Cluster");
    let keys = Keys::new(bench.key_prefix);
    let per_product = bench.sizes.events / PRODUCTS as u64;
    let games = (bench.sizes.event_games / PRODUCTS as u64).max(1);
    let rounds = (per_product / games).max(1);
    let total = games * rounds * PRODUCTS as u64;

    // The products: one per master, then more (slots are spread over the masters the same
    // way whatever the replicas).
    let mut masters_only = RedisCluster::start_with_replicas(0)?;
    let mut names =
        products_on_distinct_masters(&mut masters_only, bench.key_prefix, CANDIDATES, 3)?;
    for candidate in CANDIDATES {
        if names.len() == PRODUCTS {
            break;
        }
        if !names.iter().any(|n| n == candidate) {
            names.push(candidate.to_string());
        }
    }
    let products: Vec<ProductId> = names
        .iter()
        .map(|n| ProductId::new(n.as_str()))
        .collect::<Result<_, _>>()?;

    // One Redis.
    let single = RedisServer::start()?;
    let mut conn = single.connection().await;
    let single_pid = redis_pid(&mut conn).await?;
    let fill_started = Instant::now();
    let mut placed = Vec::new();
    for product in &products {
        let last_id = fill(&mut conn, &keys, product, games, rounds).await?;
        fixtures::register_product(&mut conn, &keys, product).await?;
        placed.push(Placed {
            product: product.clone(),
            conn: conn.clone(),
            last_id,
        });
    }
    scenario.note(format!(
        "{total} events ({rounds} per game over {games} games of each of {PRODUCTS} products: \
         {}; the stories of the `events` scenario) written before each daemon started, in \
         {:.1} s on the single Redis",
        names.join(", "),
        fill_started.elapsed().as_secs_f64()
    ));
    let spec = DaemonSpec::new(&single.url(), bench.key_prefix, "worker");
    let one = drain(
        bench,
        "scale-single",
        &spec,
        &mut placed,
        &keys,
        &[single_pid],
    )
    .await?;
    drop(placed);
    let created_single = create_load(
        bench,
        "scale-create-single",
        DaemonSpec::new(&single.url(), bench.key_prefix, "api"),
        &single.url(),
        &products,
        &[single_pid],
        "one Redis",
    )
    .await?;
    drop(conn);
    drop(single);
    let mut row = Row::new(
        format!("matchmakerd --roles worker draining {total} events, 4 products on one Redis"),
        "events/s",
    );
    row.throughput = Some(one.rate);
    row.daemon = Some(one.daemon);
    row.redis_cores = Some(one.redis_cores[0]);
    scenario.rows.push(row);
    scenario.note(format!(
        "one Redis: drained in {:.1} s; CPU: daemon {:.2} cores, Redis {:.2}",
        one.seconds, one.daemon.cores, one.redis_cores[0]
    ));

    let (spread, masters) = drain_on_cluster(
        bench,
        "scale-masters",
        &mut masters_only,
        &products,
        &keys,
        games,
        rounds,
    )
    .await?;
    let mut master_pids = Vec::new();
    for url in masters_only.urls() {
        let client = redis::Client::open(url)?;
        let mut node = client.get_multiplexed_async_connection().await?;
        master_pids.push(redis_pid(&mut node).await?);
    }
    let created_spread = create_load(
        bench,
        "scale-create-masters",
        cluster_spec(&masters_only, bench.key_prefix, "api"),
        &masters_only.urls().join(","),
        &products,
        &master_pids,
        "cluster of 3 masters, no replicas",
    )
    .await?;
    drop(masters_only);
    let mut replicated = RedisCluster::start()?;
    let (with_replicas, replicated_masters) = drain_on_cluster(
        bench,
        "scale-replicated",
        &mut replicated,
        &products,
        &keys,
        games,
        rounds,
    )
    .await?;
    drop(replicated);

    for (shape, side, masters) in [
        ("3 masters, no replicas", &spread, &masters),
        (
            "3 masters with a replica each",
            &with_replicas,
            &replicated_masters,
        ),
    ] {
        let mut row = Row::new(
            format!(
                "matchmakerd --roles worker draining {total} events, 4 products over the \
                 masters of a cluster of {shape}"
            ),
            "events/s",
        );
        row.throughput = Some(side.rate);
        row.daemon = Some(side.daemon);
        row.redis_cores = Some(side.redis_cores.iter().sum());
        scenario.rows.push(row);
        let per_node: Vec<String> = side
            .redis_cores
            .iter()
            .enumerate()
            .map(|(i, cores)| format!("node {i} {cores:.2}"))
            .collect();
        scenario.note(format!(
            "cluster of {shape}: drained in {:.1} s ({:.2}× one Redis); CPU: daemon {:.2} \
             cores, Redis nodes {} (the products' masters: {masters:?})",
            side.seconds,
            side.rate / one.rate.max(1e-9),
            side.daemon.cores,
            per_node.join(", ")
        ));
    }
    let ratio = spread.rate / one.rate.max(1e-9);
    scenario.target(
        "aggregate events/s over 3 masters ≥ 1.4× one Redis",
        Some(ratio >= 1.4),
        format!(
            "{:.0} events/s over 3 masters vs {:.0} on one Redis ({ratio:.2}×); with a \
             replica each {:.0} ({:.2}×)",
            spread.rate,
            one.rate,
            with_replicas.rate,
            with_replicas.rate / one.rate.max(1e-9)
        ),
    );
    for created in [&created_single, &created_spread] {
        scenario.rows.push(created.row.clone());
    }
    let per_node: Vec<String> = created_spread
        .redis_cores
        .iter()
        .map(|cores| format!("{cores:.2}"))
        .collect();
    scenario.note(format!(
        "creates over the 4 products: {:.0} games/s on one Redis (daemon {:.2} cores, Redis \
         {:.2}), {:.0} over 3 masters ({:.2}×; daemon {:.2} cores, masters {})",
        created_single.rate,
        created_single.daemon_cores,
        created_single.redis_cores.iter().sum::<f64>(),
        created_spread.rate,
        created_spread.rate / created_single.rate.max(1e-9),
        created_spread.daemon_cores,
        per_node.join(" / ")
    ));
    scenario.note(
        "the machine has 2 cores shared by the daemon and every Redis process: one Redis \
         applies events on one thread, so spreading products can at most add the second \
         core, which the daemon (reading, parsing, sending batches) and any replicas also need",
    );
    Ok(scenario)
}
