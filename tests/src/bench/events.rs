//! Scenario `events`: how fast a `--roles worker` daemon drains a pre-filled stream, against
//! `redis-benchmark` running an `EVALSHA` that does the same Redis work as one application.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mm_common::keys::{CONSUMER_GROUP, Keys};
use mm_common::model::Phase;
use mm_common::{ProductId, ServerId};
use redis::aio::MultiplexedConnection;

use super::Bench;
use super::fixtures::{self, EventFields};
use super::procs::{CpuMark, DaemonProcess, DaemonSpec};
use super::report::{Row, Scenario};
use crate::RedisServer;

const PRODUCT: &str = "bench";
const CEILING_PRODUCT: &str = "ceiling";
const SERVER: &str = "gs-events";

/// The ceiling's script: the store's own prelude (load the hash, decode its JSON, re-derive
/// the state, write it back, move set and index membership) on the heartbeat path of
/// `apply_event.lua`, plus its `XACK` — without needing a pending entry per call.
const CEILING_BODY: &str = r#"
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 stream
-- ARGV: 1 group, 2 entry id, 3 now (ms), 4 tombstone ttl (s)
redis.call('XACK', KEYS[7], ARGV[1], ARGV[2])
local g = load_game(KEYS[1])
if g == nil then return 'missing' end
local now = tonumber(ARGV[3])
local id = eid(ARGV[2])
if eid_lt(nil, id) then g.updated_at = now end
return save_game(KEYS[1], g, {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}, now, tonumber(ARGV[4]))
"#;

/// The 10 events of one game's story, by round: joins, heartbeats, a leave, and for some
/// games a start or an end.
fn event_of(round: u64, game: &str, index: u64) -> EventFields {
    let player = |n: u64| format!("bench-p{index}-{n}");
    let (kind, who) = match round {
        0 => ("creator_joined", format!("bench-creator-{index}")),
        1 => ("player_joined", player(1)),
        3 => ("player_joined", player(2)),
        5 => ("player_left", player(1)),
        7 => ("player_joined", player(3)),
        9 if index.is_multiple_of(10) => ("game_ended", String::new()),
        9 if index % 10 < 4 => ("game_started", String::new()),
        _ => ("heartbeat", String::new()),
    };
    [
        ("type", kind.to_string()),
        ("game_id", game.to_string()),
        ("player_id", who),
        ("server_id", SERVER.to_string()),
    ]
}

/// Runs the scenario.
pub async fn run(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("events", "event application");
    let games = bench.sizes.event_games;
    let rounds = (bench.sizes.events / games).max(1);
    let total = games * rounds;
    let redis = RedisServer::start()?;
    let mut conn = redis.connection().await;
    let redis_pid = fixtures::redis_pid(&mut conn).await?;
    let keys = Keys::new(bench.key_prefix);
    let product = ProductId::new(PRODUCT)?;
    let product_keys = keys.product(&product);
    let server = ServerId::new(SERVER)?;

    let fill_started = Instant::now();
    let now = mm_common::time::now_ms();
    let records: Vec<_> = (0..games)
        .map(|i| fixtures::game(&product, &server, i, Phase::Created, 4, now))
        .collect::<Result<_, _>>()?;
    fixtures::write_games(&mut conn, &product_keys, &records, now).await?;
    fixtures::prepare_product(&mut conn, &keys, &product).await?;
    let ids: Vec<String> = records.iter().map(|g| g.id.to_string()).collect();
    drop(records);
    let events = (0..rounds).flat_map(|round| {
        ids.iter()
            .enumerate()
            .map(move |(index, id)| event_of(round, id, index as u64))
    });
    let last_id = fixtures::append_events(&mut conn, &product_keys.events(), events)
        .await?
        .context("no event was written")?;
    scenario.note(format!(
        "{total} events ({rounds} per game over {games} games in pending: creator_joined, 3 \
         player_joined, 1 player_left, heartbeats, and game_started/game_ended for 40 % of \
         the games; games interleaved round by round) written with pipelined XADD in {:.1} s \
         before the daemon started",
        fill_started.elapsed().as_secs_f64()
    ));

    let spec = DaemonSpec::new(&redis.url(), bench.key_prefix, "worker");
    let started = Instant::now();
    let daemon = DaemonProcess::start(&bench.binaries, bench.work_dir(), "events", &spec).await?;
    let daemon_mark = CpuMark::start(daemon.pid())?;
    let redis_mark = CpuMark::start(redis_pid)?;
    let stream = product_keys.events();
    let limit = Duration::from_secs(900);
    loop {
        let (delivered, pending) = group_progress(&mut conn, &stream).await?;
        if delivered == last_id && pending == 0 {
            break;
        }
        if started.elapsed() > limit {
            bail!(
                "the daemon had not drained the stream after {limit:?} (delivered up to \
                 {delivered}, {pending} pending, last entry {last_id})"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = started.elapsed();
    let daemon_use = daemon_mark.finish()?;
    let redis_use = redis_mark.finish()?;
    drop(daemon);
    let rate = total as f64 / drain.as_secs_f64();
    let mut row = Row::new(
        format!("matchmakerd --roles worker draining {total} events"),
        "events/s",
    );
    row.throughput = Some(rate);
    row.daemon = Some(daemon_use);
    row.redis_cores = Some(redis_use.cores);
    scenario.rows.push(row);
    let dead: u64 = redis::cmd("XLEN")
        .arg(product_keys.dead_letters())
        .query_async(&mut conn)
        .await?;
    scenario.note(format!(
        "drained in {:.2} s (from process start until the group's last delivered id is the \
         stream's last and nothing is pending); {dead} dead-lettered",
        drain.as_secs_f64()
    ));

    // The ceiling, on the same Redis with the daemon gone.
    // Game 5 ends as an open lobby (creator and two players of four): the common case.
    let template_index = 5.min(ids.len() - 1);
    let template = template_game(
        &mut conn,
        &product_keys.game_by_raw_id(&ids[template_index]),
    )
    .await?;
    let ceiling_keys = keys.product(&ProductId::new(CEILING_PRODUCT)?);
    let key_space = bench.sizes.ceiling_key_space;
    write_ceiling_games(&mut conn, &ceiling_keys, &template, key_space).await?;
    let script = format!(
        "{}\n{CEILING_BODY}",
        include_str!("../../../common/src/store/lua/prelude.lua")
    );
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(&script)
        .query_async(&mut conn)
        .await?;
    let mut args = vec![
        "EVALSHA".to_string(),
        sha,
        "7".into(),
        ceiling_keys.game_by_raw_id("__rand_int__"),
        ceiling_keys.pending(),
        ceiling_keys.lobby(),
        ceiling_keys.active(),
        ceiling_keys.open(),
        ceiling_keys.reservations(),
        ceiling_keys.events(),
        CONSUMER_GROUP.into(),
        format!("{}-0", mm_common::time::now_ms()),
        mm_common::time::now_ms().to_string(),
        "3600".into(),
    ];
    args.shrink_to_fit();
    let mut best: f64 = 0.0;
    for pipeline in [1u32, 16] {
        let mark = CpuMark::start(redis_pid)?;
        let rps = redis_benchmark(
            &redis.socket_path(),
            50,
            pipeline,
            bench.sizes.ceiling_requests,
            key_space,
            &args,
        )
        .await?;
        let usage = mark.finish()?;
        let mut row = Row::new(
            format!(
                "redis-benchmark EVALSHA apply-equivalent, -c 50 -P {pipeline}, {key_space} \
                 random games"
            ),
            "calls/s",
        );
        row.ceiling = true;
        row.throughput = Some(rps);
        row.redis_cores = Some(usage.cores);
        scenario.rows.push(row);
        best = best.max(rps);
    }
    let ratio = rate / best.max(1e-9);
    scenario.target(
        "≥ 70 % of the EVALSHA ceiling",
        Some(ratio >= 0.7),
        format!(
            "{rate:.0} events/s = {:.0} % of {best:.0} calls/s (the better of -P 1 and -P 16)",
            ratio * 100.0
        ),
    );
    scenario.rss_target(Some(daemon_use));
    scenario.note(
        "the ceiling script is the store's prelude.lua (HGETALL, cjson decode of roster and \
         reservations, state derivation, HSET of 8 fields, ZREM/ZADD over the sets and the \
         open index) plus an XACK of a non-pending id: the Redis work of a heartbeat without \
         the daemon's read, parse and round trip",
    );
    Ok(scenario)
}

/// `(last-delivered-id, pending)` of the consumer group.
async fn group_progress(
    conn: &mut MultiplexedConnection,
    stream: &str,
) -> anyhow::Result<(String, u64)> {
    let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await?;
    let group = groups
        .iter()
        .find(|g| {
            g.get("name")
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .as_deref()
                == Some(CONSUMER_GROUP)
        })
        .context("the consumer group is gone")?;
    let delivered: String = redis::from_redis_value_ref(
        group
            .get("last-delivered-id")
            .context("XINFO GROUPS lacks last-delivered-id")?,
    )?;
    let pending: u64 =
        redis::from_redis_value_ref(group.get("pending").context("XINFO GROUPS lacks pending")?)?;
    Ok((delivered, pending))
}

async fn template_game(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let hash: HashMap<String, String> = redis::cmd("HGETALL").arg(key).query_async(conn).await?;
    if hash.is_empty() {
        bail!("the template game {key} is missing after the drain");
    }
    Ok(hash)
}

/// Copies of `template` at `…:game:%012d` (the names `redis-benchmark -r` generates).
async fn write_ceiling_games(
    conn: &mut MultiplexedConnection,
    keys: &mm_common::keys::ProductKeys,
    template: &HashMap<String, String>,
    count: u64,
) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    for index in 0..count {
        let member = format!("{index:012}");
        let mut fields: Vec<(&str, String)> = template
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        for (name, value) in fields.iter_mut() {
            if *name == "id" {
                *value = member.clone();
            }
        }
        pipe.hset_multiple(keys.game_by_raw_id(&member), &fields)
            .ignore();
        if (index + 1) % 1000 == 0 || index + 1 == count {
            let () = pipe.query_async(conn).await?;
            pipe = redis::pipe();
        }
    }
    Ok(())
}

/// Runs `redis-benchmark` with a custom command over the unix socket; returns requests/s.
async fn redis_benchmark(
    socket: &Path,
    clients: u32,
    pipeline: u32,
    requests: u64,
    key_space: u64,
    command: &[String],
) -> anyhow::Result<f64> {
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("redis-benchmark")
            .arg("-s")
            .arg(socket)
            .arg("-c")
            .arg(clients.to_string())
            .arg("-n")
            .arg(requests.to_string())
            .arg("-P")
            .arg(pipeline.to_string())
            .arg("-r")
            .arg(key_space.to_string())
            .arg("--csv")
            .args(command)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("redis-benchmark did not finish within 300 s")?
    .context("running redis-benchmark (install redis-tools)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_benchmark_csv(&stdout).with_context(|| {
        format!(
            "redis-benchmark: {}\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The `rps` column of `redis-benchmark --csv`'s one result line.
pub fn parse_benchmark_csv(stdout: &str) -> anyhow::Result<f64> {
    let mut lines = stdout.lines().filter(|l| l.starts_with('"'));
    let header = lines.next().context("no CSV header")?;
    let column = header
        .split(',')
        .position(|name| name.trim_matches('"') == "rps")
        .context("no rps column")?;
    let row = lines.next().context("no CSV result line")?;
    // The test name (first column) may contain commas; count columns from the right.
    let cells: Vec<&str> = row.split("\",\"").collect();
    let columns = header.split(',').count();
    let cell = cells
        .get(cells.len() + column - columns)
        .context("short CSV result line")?;
    cell.trim_matches('"')
        .parse()
        .context("non-numeric rps in redis-benchmark output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rps_from_redis_benchmark_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
            \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
            \"EVALSHA abc 7 k,1\",\"12345.68\",\"3.9\",\"0.1\",\"3.8\",\"5.0\",\"6.0\",\"9.0\"\n";
        assert_eq!(parse_benchmark_csv(csv).unwrap(), 12345.68);
    }

    #[test]
    fn every_game_gets_ten_events_with_one_creator_joined() {
        let kinds: Vec<String> = (0..10)
            .map(|round| event_of(round, "bench.x", 3)[0].1.clone())
            .collect();
        assert_eq!(kinds.iter().filter(|k| *k == "creator_joined").count(), 1);
        assert_eq!(kinds[0], "creator_joined");
        assert_eq!(kinds[9], "game_started");
    }
}
