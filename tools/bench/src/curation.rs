//! Scenario `curation`: a `--roles curator` daemon deleting stale pending games that really
//! exist on reference game servers, until the pending set is empty.

use std::time::{Duration, Instant};

use anyhow::bail;
use mm_common::ServerId;
use mm_common::model::Phase;

use super::Bench;
use super::driver::Latency;
use super::fixtures;
use super::procs::{
    CpuMark, DaemonProcess, DaemonSpec, GameServerProcess, GameServerSpec, RegisteredServer,
};
use super::report::{Row, Scenario};

const PRODUCT: &str = "bench";
const SERVERS: usize = 2;

/// Runs the scenario.
pub async fn run(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("curation", "curation");
    let games = bench.sizes.curation_games;
    let fixtures::ScenarioRedis {
        redis,
        mut conn,
        pid: redis_pid,
        keys,
        product,
        product_keys,
    } = fixtures::ScenarioRedis::start(bench.key_prefix, PRODUCT).await?;
    let per_server = games.div_ceil(SERVERS as u64);

    let mut servers = Vec::new();
    for index in 0..SERVERS {
        servers.push(
            GameServerProcess::start(
                &bench.binaries,
                bench.work_dir(),
                &GameServerSpec {
                    id: format!("gs-curation-{index}"),
                    product: PRODUCT.into(),
                    redis_url: redis.url(),
                    key_prefix: bench.key_prefix.into(),
                    max_games: per_server as u32 + 10,
                    start_delay_ms: 3_600_000,
                    play_time_ms: 3_600_000,
                    heartbeat_ms: 0,
                },
            )
            .await?,
        );
    }

    // Stale pending games, on the game servers and in the record alike.
    let fill_started = Instant::now();
    let old = mm_common::time::now_ms() - 2 * 3_600_000;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    for (index, server) in servers.iter().enumerate() {
        let server_id = ServerId::new(&server.id)?;
        let count = per_server.min(games - index as u64 * per_server);
        let records: Vec<_> = (0..count)
            .map(|i| {
                let n = index as u64 * per_server + i;
                fixtures::game(&product, &server_id, n, Phase::Created, 2, old + n)
            })
            .collect::<Result<_, _>>()?;
        fixtures::create_on_game_server(&http, &server.api_url, &server.api_key, &records, 64)
            .await?;
        fixtures::write_games(&mut conn, &product_keys, &records, old).await?;
    }
    fixtures::prepare_product(&mut conn, &keys, &product).await?;
    let pending = fixtures::zcard(&mut conn, &product_keys.pending()).await?;
    if pending != games {
        bail!("set-up left {pending} pending games, expected {games}");
    }
    scenario.note(format!(
        "{games} pending games created 2 h ago, each also created on one of {SERVERS} \
         reference game servers through their API (set-up took {:.1} s); curation settings: \
         interval 1 s, pending timeout 60 s, the rest (concurrency, batch size) at their \
         defaults",
        fill_started.elapsed().as_secs_f64()
    ));

    let mut spec = DaemonSpec::new(&redis.url(), bench.key_prefix, "curator");
    for server in &servers {
        spec.game_servers.push(RegisteredServer::of(
            server,
            PRODUCT,
            per_server as u32 + 10,
        ));
    }
    let spec = spec
        .set("curation", "interval_secs", 1)
        .set("curation", "pending_timeout_secs", 60);
    let started = Instant::now();
    let daemon = DaemonProcess::start(&bench.binaries, bench.work_dir(), "curation", &spec).await?;
    let daemon_mark = CpuMark::start(daemon.pid())?;
    let redis_mark = CpuMark::start(redis_pid)?;
    let server_marks: Vec<CpuMark> = servers
        .iter()
        .map(|s| CpuMark::start(s.process.pid()))
        .collect::<Result<_, _>>()?;
    let limit = Duration::from_secs(600);
    let pending_key = product_keys.pending();
    // (time since start, games still pending), for the per-game time-to-curate percentiles.
    let mut remaining: Vec<(Duration, u64)> = Vec::new();
    loop {
        let left = fixtures::zcard(&mut conn, &pending_key).await?;
        remaining.push((started.elapsed(), left));
        if left == 0 {
            break;
        }
        if started.elapsed() > limit {
            bail!("{left} of {games} games were still pending after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    let daemon_use = daemon_mark.finish()?;
    let redis_use = redis_mark.finish()?;
    let server_cores: f64 = server_marks
        .iter()
        .map(|m| m.finish().map(|u| u.cores))
        .sum::<Result<f64, _>>()?;
    drop(daemon);

    let mut left_on_servers = 0u64;
    for server in &servers {
        let health: serde_json::Value = http
            .get(format!("{}/health", server.api_url))
            .bearer_auth(&server.api_key)
            .send()
            .await?
            .json()
            .await?;
        left_on_servers += health["games"].as_u64().unwrap_or(0);
    }
    let mut row = Row::new(
        format!("matchmakerd --roles curator: {games} stale pending games"),
        "games/s",
    );
    row.throughput = Some(games as f64 / took.as_secs_f64());
    row.daemon = Some(daemon_use);
    row.redis_cores = Some(redis_use.cores);
    scenario.rows.push(row);
    let mut time_row = Row::new(
        "time until the pending set is empty (percentiles: time until each game was curated)",
        "s",
    );
    time_row.value = Some(took.as_secs_f64());
    time_row.latency = Some(time_to_curate(&remaining, games));
    scenario.rows.push(time_row);
    scenario.note(format!(
        "measured from the daemon's start (including its first interval) until ZCARD pending \
         = 0, sampled every 10 ms — the percentiles are when that share of the games had been \
         curated; games left on the game servers afterwards: {left_on_servers}; game servers \
         used {server_cores:.2} cores"
    ));
    // Below 100,000 games (quick runs) the verdict extrapolates linearly, and says so.
    let for_100k = took.as_secs_f64() * 100_000.0 / games as f64;
    let measured = if games >= 100_000 {
        format!("{games} games in {:.1} s", took.as_secs_f64())
    } else {
        format!(
            "{games} games in {:.1} s (≈ {for_100k:.1} s for 100,000, extrapolated)",
            took.as_secs_f64()
        )
    };
    scenario.target(
        "100,000 games curated in < 30 s",
        Some(for_100k < 30.0),
        measured,
    );
    scenario.rss_target(Some(daemon_use));
    Ok(scenario)
}

/// Per-game time-to-curate percentiles from samples of `(time since start, games left)`: the
/// p-th percentile is the first sample by which a share p of the `total` games was gone.
fn time_to_curate(remaining: &[(Duration, u64)], total: u64) -> Latency {
    let at = |share: f64| {
        let allowed_left = total as f64 * (1.0 - share);
        remaining
            .iter()
            .find(|(_, left)| *left as f64 <= allowed_left)
            .or(remaining.last())
            .map_or(0.0, |(elapsed, _)| elapsed.as_secs_f64() * 1000.0)
    };
    Latency {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_when_that_share_of_games_was_curated() {
        let s = Duration::from_secs;
        let samples = [(s(1), 1000), (s(2), 600), (s(3), 400), (s(4), 5), (s(5), 0)];
        let latency = time_to_curate(&samples, 1000);
        assert_eq!(latency.p50_ms, 3000.0, "500 gone only by the third sample");
        assert_eq!(latency.p99_ms, 4000.0);
        assert_eq!(latency.p999_ms, 5000.0, "999 gone only when all were");
    }
}
