//! Scenario `events`: how fast a `--roles worker` daemon drains a pre-filled stream, against
//! Redis draining an identical stream by itself: `redis-benchmark` calling an `EVALSHA` that
//! reads the next entries and applies them with the store's own apply script. Between the two,
//! a steady phase measures how long after its `XADD` an event is reflected in the record.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use mm_common::keys::{CONSUMER_GROUP, Keys};
use mm_common::model::{EntryId, Phase};
use mm_common::{ProductId, ServerId};
use redis::aio::MultiplexedConnection;

use super::Bench;
use super::fixtures::{self, EventFields};
use super::procs::{CpuMark, DaemonProcess, DaemonSpec};
use super::report::{Row, Scenario};

const PRODUCT: &str = "bench";
pub(crate) const SERVER: &str = "gs-events";
const TOMBSTONE_TTL_SECS: u64 = 3600;
/// Events per second written in the steady phase.
const STEADY_RATE: u64 = 5_000;
/// Lobby games the steady phase's events are about.
const STEADY_GAMES: isize = 1_000;

/// The ceiling's script: the store's prelude, a part that reads the next entries of the
/// stream inside Redis, and the store's `apply_events.lua` unchanged.
const CEILING_SCRIPT: &str = concat!(
    include_str!("../../../common/src/store/lua/prelude.lua"),
    "\n",
    include_str!("lua/ceiling_consumer.lua"),
    "\n",
    include_str!("../../../common/src/store/lua/apply_events.lua"),
);

/// The 10 events of one game's story, by round: joins, heartbeats, a leave, and for some
/// games a start or an end.
pub(crate) fn event_of(round: u64, game: &str, index: u64) -> EventFields {
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

/// A product's games (all in pending) and its stream of their stories, games interleaved
/// round by round, with the consumer group created, all on `conn` (the node holding the
/// product's slot; the product is not registered in `P:products`). Returns the last entry id.
pub(crate) async fn fill(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    product: &ProductId,
    games: u64,
    rounds: u64,
) -> anyhow::Result<String> {
    let product_keys = keys.product(product);
    let server = ServerId::new(SERVER)?;
    let now = mm_common::time::now_ms();
    let records: Vec<_> = (0..games)
        .map(|i| fixtures::game(product, &server, i, Phase::Created, 4, now))
        .collect::<Result<_, _>>()?;
    fixtures::write_games(conn, &product_keys, &records, now).await?;
    fixtures::create_group(conn, keys, product).await?;
    let ids: Vec<String> = records.iter().map(|g| g.id.to_string()).collect();
    drop(records);
    let events = (0..rounds).flat_map(|round| {
        ids.iter()
            .enumerate()
            .map(move |(index, id)| event_of(round, id, index as u64))
    });
    fixtures::append_events(conn, &product_keys.events(), events)
        .await?
        .context("no event was written")
}

/// Runs the scenario.
pub async fn run(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("events", "event application");
    let games = bench.sizes.event_games;
    let rounds = (bench.sizes.events / games).max(1);
    let total = games * rounds;
    let fixtures::ScenarioRedis {
        redis,
        mut conn,
        pid: redis_pid,
        keys,
        product,
        product_keys,
    } = fixtures::ScenarioRedis::start(bench.key_prefix, PRODUCT).await?;

    let fill_started = Instant::now();
    let last_id = fill(&mut conn, &keys, &product, games, rounds).await?;
    fixtures::register_product(&mut conn, &keys, &product).await?;
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
    let steady = steady_latency(
        bench,
        &redis.url(),
        &mut conn,
        &keys,
        &product,
        daemon.pid(),
    )
    .await?;
    scenario.rows.push(steady);
    scenario.note(format!(
        "steady phase, after the drain with the same daemon: {STEADY_RATE} events/s written \
         for {} s, a few every millisecond (heartbeats, and a player joining and leaving, over {STEADY_GAMES} lobby \
         games). Latency is from the XADD (the entry id's time) until the record reflects the \
         stream up to that entry — every entry up to it acknowledged, which the apply script \
         does atomically with the change — sampled every 0.25 to 0.4 ms (an upper bound with \
         that resolution), the XADD time taken as the middle of the id's millisecond",
        bench.sizes.load.as_secs()
    ));

    drop(daemon);

    // The ceiling, on the same Redis with the daemon gone: identical games and streams,
    // drained by Redis itself, per event and in the daemon's batch size.
    let daemon_batch = mm_config::ConsumerSettings::default().apply_batch_size as u64;
    let mut best: f64 = 0.0;
    let mut with_feed = Vec::new();
    let mut without_feed = Vec::new();
    // Each run starts from an empty Redis (the daemon is gone), so none finds another's keys;
    // the feed's cost is taken from off/on/on/off rounds (ABBA), so a drift of the shared
    // machine during the rounds weighs on both sides alike.
    for (per_call, pipeline, feed) in [
        (1u64, 16u32, Feed::On),
        (daemon_batch, 1, Feed::Off),
        (daemon_batch, 1, Feed::On),
        (daemon_batch, 1, Feed::On),
        (daemon_batch, 1, Feed::Off),
    ] {
        empty_redis(&mut conn).await?;
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(CEILING_SCRIPT)
            .query_async(&mut conn)
            .await?;
        let ceiling_product = ProductId::new(format!("ceiling{per_call}{}", feed.suffix()))?;
        let ceiling_keys = keys.product(&ceiling_product);
        let ceiling_last = fill(&mut conn, &keys, &ceiling_product, games, rounds).await?;
        fixtures::register_product(&mut conn, &keys, &ceiling_product).await?;
        let calls = total.div_ceil(per_call);
        let args = vec![
            "EVALSHA".to_string(),
            sha.clone(),
            "9".into(),
            ceiling_keys.pending(),
            ceiling_keys.lobby(),
            ceiling_keys.active(),
            ceiling_keys.open(),
            ceiling_keys.reservations(),
            ceiling_keys.events(),
            ceiling_keys.dead_letters(),
            ceiling_keys.ending(),
            ceiling_keys.feed(),
            CONSUMER_GROUP.into(),
            "ceiling".into(),
            per_call.to_string(),
            mm_common::time::now_ms().to_string(),
            TOMBSTONE_TTL_SECS.to_string(),
            ceiling_keys.game_by_raw_id(""),
            mm_config::ConsumerSettings::default()
                .dead_letter_max_len
                .to_string(),
            mm_config::LobbySettings::default().feed_maxlen.to_string(),
            feed.argument().into(),
        ];
        let mark = CpuMark::start(redis_pid)?;
        let calls_per_sec =
            redis_benchmark(&redis.socket_path(), 50, pipeline, calls, &args).await?;
        let usage = mark.finish()?;
        let (delivered, pending) = group_progress(&mut conn, &ceiling_keys.events()).await?;
        ensure!(
            delivered == ceiling_last && pending == 0,
            "the ceiling run left its stream undrained (delivered up to {delivered}, \
             {pending} pending, last entry {ceiling_last})"
        );
        // Every call but possibly the last applied `per_call` entries.
        let events_per_sec = calls_per_sec * total as f64 / calls as f64;
        let mut row = Row::new(
            format!(
                "redis-benchmark EVALSHA read-and-apply, {per_call} event(s) per call, -c 50 \
                 -P {pipeline}, same {total} events{}",
                feed.label()
            ),
            "events/s",
        );
        row.redis_cores = Some(usage.cores);
        row.throughput = Some(events_per_sec);
        match feed {
            Feed::Off => without_feed.push(events_per_sec),
            Feed::On => {
                row.ceiling = true;
                best = best.max(events_per_sec);
                if per_call == daemon_batch {
                    with_feed.push(events_per_sec);
                }
            }
        }
        scenario.rows.push(row);
    }
    let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    let (on, off) = (mean(&with_feed), mean(&without_feed));
    let cost = 1.0 - on / off.max(1e-9);
    scenario.target(
        "the change feed costs event application < 10 %",
        Some(cost < 0.10),
        format!(
            "{on:.0} events/s with the feed, {off:.0} without (means of two off/on/on/off \
             rounds each): {:.1} % (Redis applying alone, {daemon_batch} per call)",
            cost * 100.0
        ),
    );
    let ratio = rate / best.max(1e-9);
    scenario.target(
        "≥ 70 % of the EVALSHA ceiling",
        Some(ratio >= 0.7),
        format!(
            "{rate:.0} events/s = {:.0} % of {best:.0} events/s (the better ceiling)",
            ratio * 100.0
        ),
    );
    scenario.rss_target(Some(daemon_use));
    scenario.note(format!(
        "the ceiling is Redis draining an identical stream about identical games by itself: \
         each EVALSHA reads the next entries of the stream with XREADGROUP inside the script \
         and applies them with the store's own apply_events.lua (the daemon's script, \
         unchanged: XACK, load, rules, save, set moves), so the gap to it is what the daemon \
         adds — reading over the network, parsing, round trips and idle time. It is run with \
         1 event per call and with the daemon's {daemon_batch} (consumer.apply_batch_size); \
         the better is the ceiling. The change feed's cost is measured on the same ceiling, \
         once more without the feed (the store's save writes no feed entry when it is given no \
         feed key): Redis's own work is where the feed costs, the daemon sends the same \
         request either way"
    ));
    Ok(scenario)
}

/// Empties Redis between ceiling runs: `FLUSHALL ASYNC` (a synchronous flush of a million
/// entries outlasts the connection's reply timeout), then waits until the background freeing
/// is done, so it does not run during the next measurement.
async fn empty_redis(conn: &mut MultiplexedConnection) -> anyhow::Result<()> {
    let () = redis::cmd("FLUSHALL")
        .arg("ASYNC")
        .query_async(conn)
        .await?;
    fixtures::wait_for(
        "Redis to free the flushed keys",
        Duration::from_secs(120),
        || {
            let mut conn = conn.clone();
            async move {
                let info: String = redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await?;
                let pending = info
                    .lines()
                    .find_map(|line| line.strip_prefix("lazyfree_pending_objects:"))
                    .map(str::trim);
                Ok((pending == Some("0")).then_some(()))
            }
        },
    )
    .await
}

/// Whether a ceiling run writes the change feed (`P:{product}:feed`) as the daemon does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Feed {
    On,
    Off,
}

impl Feed {
    /// The ceiling script's last argument.
    fn argument(self) -> &'static str {
        match self {
            Feed::On => "on",
            Feed::Off => "off",
        }
    }

    /// Keeps the two runs' products (and so their keys) apart.
    fn suffix(self) -> &'static str {
        match self {
            Feed::On => "",
            Feed::Off => "-nofeed",
        }
    }

    /// Said in the row's label.
    fn label(self) -> &'static str {
        match self {
            Feed::On => "",
            Feed::Off => ", change feed off (for its cost; not a ceiling)",
        }
    }
}

/// Writes events at [`STEADY_RATE`] for the load time while the daemon (pid `daemon_pid`)
/// runs, and measures how long after its `XADD` each is reflected in the record.
async fn steady_latency(
    bench: &Bench,
    redis_url: &str,
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    product: &ProductId,
    daemon_pid: u32,
) -> anyhow::Result<Row> {
    let product_keys = keys.product(product);
    let stream = product_keys.events();
    let games: Vec<String> = redis::cmd("ZRANGE")
        .arg(product_keys.lobby())
        .arg(0)
        .arg(STEADY_GAMES - 1)
        .query_async(conn)
        .await?;
    ensure!(!games.is_empty(), "no lobby game left after the drain");
    const TICKS_PER_SEC: u64 = 1000;
    let per_tick = (STEADY_RATE / TICKS_PER_SEC) as usize;
    let ticks = bench.sizes.load.as_secs().max(1) * TICKS_PER_SEC;
    let (last_written, mut writer_done) = tokio::sync::watch::channel(None::<EntryId>);
    let mark = CpuMark::start(daemon_pid)?;
    let started = Instant::now();

    let writer = {
        let mut conn = conn.clone();
        let stream = stream.clone();
        async move {
            let mut ids: Vec<EntryId> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / TICKS_PER_SEC));
            let mut sent = 0usize;
            for _ in 0..ticks {
                tick.tick().await;
                let mut pipe = redis::pipe();
                for _ in 0..per_tick {
                    let index = sent % games.len();
                    // Per game: heartbeat, a player joins, heartbeat, the player leaves.
                    let (kind, player) = match (sent / games.len()) % 4 {
                        1 => ("player_joined", format!("steady-{index}")),
                        3 => ("player_left", format!("steady-{index}")),
                        _ => ("heartbeat", String::new()),
                    };
                    let fields = [
                        ("type", kind.to_string()),
                        ("game_id", games[index].clone()),
                        ("player_id", player),
                        ("server_id", SERVER.to_string()),
                    ];
                    pipe.xadd(&stream, "*", &fields);
                    sent += 1;
                }
                let written: Vec<String> = pipe.query_async(&mut conn).await?;
                for id in written {
                    ids.push(entry_id(&id)?);
                }
            }
            last_written.send_replace(ids.last().copied());
            anyhow::Ok(ids)
        }
    };
    // Samples the applied watermark until the writer is done and all it wrote is applied, on
    // a thread of its own with a blocking connection: a 250 µs sleep there is precise (tokio's
    // timers round up to milliseconds) and costs no CPU while it waits.
    let sampler = {
        let client = redis::Client::open(redis_url)?;
        let stream = stream.clone();
        let deadline = Instant::now() + bench.sizes.load + Duration::from_secs(120);
        tokio::task::spawn_blocking(move || {
            let mut conn = client.get_connection()?;
            let mut samples: Vec<(f64, Watermark)> = Vec::new();
            loop {
                let (groups, pending): (Vec<HashMap<String, redis::Value>>, redis::Value) =
                    watermark_query(&stream).query(&mut conn)?;
                let watermark = watermark_of(&groups, pending)?;
                samples.push((wall_clock_ms(), watermark));
                if let Some(last) = *writer_done.borrow_and_update()
                    && watermark.covers(last)
                {
                    return anyhow::Ok(samples);
                }
                ensure!(
                    Instant::now() < deadline,
                    "the steady phase's events were not all applied in time"
                );
                std::thread::sleep(Duration::from_micros(250));
            }
        })
    };
    let (ids, samples) = tokio::join!(writer, sampler);
    let (ids, samples) = (ids?, samples.context("the sampler thread panicked")??);
    let elapsed = started.elapsed();
    let usage = mark.finish()?;

    // Both lists are in stream order and the watermark only moves forward: one sweep.
    let mut histogram = super::driver::micros_histogram();
    let mut sample = samples.iter().peekable();
    for id in &ids {
        while sample
            .next_if(|(_, watermark)| !watermark.covers(*id))
            .is_some()
        {}
        let Some((seen_at_ms, _)) = sample.peek() else {
            bail!("entry {id} was never seen applied");
        };
        // The id's time is the XADD's, truncated to the millisecond: take the middle.
        let latency_ms = (seen_at_ms - (id.ms as f64 + 0.5)).max(0.0);
        super::driver::record(&mut histogram, Duration::from_secs_f64(latency_ms / 1000.0));
    }
    let mut row = Row::new(
        format!(
            "steady {STEADY_RATE} events/s: XADD → reflected in the record ({} events)",
            ids.len()
        ),
        "events/s",
    );
    row.throughput = Some(ids.len() as f64 / elapsed.as_secs_f64());
    row.latency = Some(super::driver::Latency::of_micros(&histogram));
    row.daemon = Some(usage);
    Ok(row)
}

/// How far the consumer group has applied a stream, from one consistent snapshot.
#[derive(Debug, Clone, Copy)]
struct Watermark {
    /// The group's last delivered entry.
    delivered: EntryId,
    /// The oldest delivered but unacknowledged entry, if any.
    first_pending: Option<EntryId>,
}

impl Watermark {
    /// Whether `id` and every entry before it are applied (acknowledged by the apply script).
    fn covers(&self, id: EntryId) -> bool {
        match self.first_pending {
            Some(first) => id < first,
            None => id <= self.delivered,
        }
    }
}

/// `XINFO GROUPS` and the summary form of `XPENDING` in one `MULTI`.
fn watermark_query(stream: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .cmd("XPENDING")
        .arg(stream)
        .arg(CONSUMER_GROUP);
    pipe
}

/// The watermark in the replies to [`watermark_query`].
fn watermark_of(
    groups: &[HashMap<String, redis::Value>],
    pending: redis::Value,
) -> anyhow::Result<Watermark> {
    let (delivered, _) = progress_of(groups)?;
    // XPENDING summary: [count, smallest id, greatest id, consumers]; the ids are nil at 0.
    let (count, first, _, _): (u64, Option<String>, Option<String>, redis::Value) =
        redis::from_redis_value(pending)?;
    let first_pending = match (count, first) {
        (0, _) | (_, None) => None,
        (_, Some(first)) => Some(entry_id(&first)?),
    };
    Ok(Watermark {
        delivered: entry_id(&delivered)?,
        first_pending,
    })
}

fn entry_id(raw: &str) -> anyhow::Result<EntryId> {
    raw.parse()
        .map_err(|err: String| anyhow::anyhow!("malformed stream entry id {raw:?}: {err}"))
}

/// Now, in milliseconds since the Unix epoch with sub-millisecond precision (the clock Redis
/// stamps entry ids with, on the same machine).
fn wall_clock_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `(last-delivered-id, pending)` of the consumer group.
pub(crate) async fn group_progress(
    conn: &mut MultiplexedConnection,
    stream: &str,
) -> anyhow::Result<(String, u64)> {
    let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await?;
    progress_of(&groups)
}

/// `(last-delivered-id, pending)` of the consumer group in an `XINFO GROUPS` reply.
fn progress_of(groups: &[HashMap<String, redis::Value>]) -> anyhow::Result<(String, u64)> {
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

/// Runs `redis-benchmark` with a custom command over the unix socket; returns requests/s.
async fn redis_benchmark(
    socket: &Path,
    clients: u32,
    pipeline: u32,
    requests: u64,
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
    fn the_watermark_covers_what_is_acknowledged_and_nothing_else() {
        let id = |ms, seq| EntryId::new(ms, seq);
        let all_acked = Watermark {
            delivered: id(10, 3),
            first_pending: None,
        };
        assert!(all_acked.covers(id(10, 3)));
        assert!(!all_acked.covers(id(10, 4)), "not delivered yet");
        let some_pending = Watermark {
            delivered: id(10, 3),
            first_pending: Some(id(9, 0)),
        };
        assert!(some_pending.covers(id(8, 99)));
        assert!(!some_pending.covers(id(9, 0)), "pending: not applied");
        assert!(
            !some_pending.covers(id(10, 0)),
            "after a pending entry: the prefix is not complete"
        );
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
