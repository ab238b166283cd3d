//! Scenario `list`: `GET /v1/games?product=P&limit=100` over 1,000 open games with wrk,
//! against the same daemon build serving a static response of the same size; then page 2 and
//! page 10 by cursor, a label-filtered page and an all-products page, each beside the static
//! route of its own size; and the view's staleness across two daemons (a join through one,
//! polled on the other).

use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;

use super::fixtures::{self, EventFields};
use super::paired::{self, Limits};
use super::procs::{
    CpuMark, CpuTally, DaemonProcess, DaemonSpec, GameServerProcess, GameServerSpec,
    RegisteredServer,
};
use super::report::{Row, Scenario};
use super::wrk::{self, WrkLoad, WrkResult};
use super::{Bench, static_server};

/// The ceiling: the daemon's static bench route (in a build with the `bench-routes` feature)
/// answering `bytes` bytes. The one place that knows the route.
pub fn static_ceiling_url(base_url: &str, bytes: usize) -> String {
    format!("{base_url}/bench/static/{bytes}")
}

const PRODUCT: &str = "bench";

/// Runs the scenario.
pub async fn run(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("list", "list open games");
    let games = bench.sizes.list_games;
    let fixtures::ScenarioRedis {
        redis,
        mut conn,
        pid: redis_pid,
        product_keys,
        ..
    } = fixtures::ScenarioRedis::start(bench.key_prefix, PRODUCT).await?;

    let server = GameServerProcess::start(
        &bench.binaries,
        bench.work_dir(),
        &GameServerSpec {
            id: "gs-list".into(),
            product: PRODUCT.into(),
            redis_url: redis.url(),
            key_prefix: bench.key_prefix.into(),
            max_games: (games * 2) as u32,
            start_delay_ms: 3_600_000,
            play_time_ms: 3_600_000,
            heartbeat_ms: 0,
        },
    )
    .await?;
    let mut spec = DaemonSpec::new(&redis.url(), bench.key_prefix, "api,worker");
    spec.game_servers
        .push(RegisteredServer::of(&server, PRODUCT, (games * 2) as u32));
    let spec = spec
        .set("lobby", "max_capacity", 16)
        .set("curation", "pending_timeout_secs", 3600)
        .set("curation", "lobby_idle_timeout_secs", 3600);
    let daemon = DaemonProcess::start(&bench.binaries, bench.work_dir(), "list", &spec).await?;
    // A second daemon on the same record with the `[limits]` on, for what they cost.
    let limited_spec = spec.clone().set_roles("api").with_default_limits();
    let limited = DaemonProcess::start(
        &bench.binaries,
        bench.work_dir(),
        "list-limits-on",
        &limited_spec,
    )
    .await?;

    // Games become open the way they do in production: created through the API, then the
    // game server reports the creator's arrival on the stream.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let base = daemon.base_url.clone();
    let created: Vec<anyhow::Result<(String, String, String)>> = futures::stream::iter(0..games)
        .map(|i| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let creator = format!("list-creator-{i}");
                let mode = if i % 2 == 0 { "ranked" } else { "casual" };
                let request = serde_json::json!({
                    "product": PRODUCT,
                    "capacity": 4,
                    "labels": {"mode": mode, "n": i.to_string()},
                });
                let body = fixtures::create_body_via_api(&http, &base, &creator, &request).await?;
                let field = |name: &str| {
                    body[name]
                        .as_str()
                        .map(str::to_string)
                        .with_context(|| format!("create answer lacks `{name}`: {body}"))
                };
                Ok((field("id")?, field("server_id")?, creator))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let created: Vec<(String, String, String)> = created.into_iter().collect::<Result<_, _>>()?;
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
    fixtures::append_events(&mut conn, &product_keys.events(), events).await?;
    let open_key = product_keys.open();
    fixtures::wait_for(
        "the daemon to open every game",
        Duration::from_secs(60),
        || {
            let mut conn = conn.clone();
            let key = open_key.clone();
            async move {
                let open = fixtures::zcard(&mut conn, &key).await?;
                Ok((open == games as u64).then_some(()))
            }
        },
    )
    .await?;

    let list_url = format!("{}/v1/games?product={PRODUCT}&limit=100", daemon.base_url);
    let page = http
        .get(&list_url)
        .header("x-player-id", "bench-lister")
        .send()
        .await?;
    if !page.status().is_success() {
        bail!("GET {list_url} answered {}", page.status());
    }
    let body = page.bytes().await?;
    let listed = serde_json::from_slice::<serde_json::Value>(&body)?["games"]
        .as_array()
        .map_or(0, Vec::len);
    if listed != 100 {
        bail!("GET {list_url} listed {listed} games, expected 100 of {games} open");
    }
    let bytes = body.len();
    scenario.note(format!(
        "{games} open games (created through the API, opened by `creator_joined` events the \
         daemon applied); one page of 100 is {bytes} bytes"
    ));

    let load = WrkLoad {
        threads: 2,
        connections: 64,
        duration: bench.sizes.load,
        headers: vec!["X-Player-Id: bench-lister".into()],
    };
    // The two daemons (limits off, on) over the same record, in alternating rounds.
    let limited_url = format!("{}/v1/games?product={PRODUCT}&limit=100", limited.base_url);
    let round_load = WrkLoad {
        duration: paired::round_length(bench.sizes.load),
        ..load.clone()
    };
    let mut runs: [Vec<WrkResult>; 2] = [Vec::new(), Vec::new()];
    let mut daemon_use = [CpuTally::default(), CpuTally::default()];
    let mut redis_use = [CpuTally::default(), CpuTally::default()];
    for round in 0..paired::ROUNDS {
        for side in paired::order(round) {
            let (url, pid) = match side {
                Limits::Off => (&list_url, daemon.pid()),
                Limits::On => (&limited_url, limited.pid()),
            };
            let daemon_mark = CpuMark::start(pid)?;
            let redis_mark = CpuMark::start(redis_pid)?;
            runs[side.index()].push(wrk::run(bench.work_dir(), url, &round_load).await?);
            daemon_use[side.index()].add(&daemon_mark)?;
            redis_use[side.index()].add(&redis_mark)?;
        }
    }
    let [listed, listed_limited] =
        runs.map(|rounds| WrkResult::combine(&rounds).expect("at least one round"));
    let mut row = wrk_row("GET /v1/games limit=100 (wrk -t2 -c64)", &listed, "req/s");
    row.daemon = Some(daemon_use[0].usage());
    row.redis_cores = Some(redis_use[0].usage().cores);
    scenario.rows.push(row);
    let mut row = wrk_row(
        "GET /v1/games limit=100 (wrk -t2 -c64), limits on (a second daemon, same record)",
        &listed_limited,
        "req/s",
    );
    row.daemon = Some(daemon_use[1].usage());
    row.redis_cores = Some(redis_use[1].usage().cores);
    scenario.rows.push(row);
    scenario.note(format!(
        "limits off and on measured in {} alternating rounds each (off, on, on, off, …) of {:?}, \
         so that noise from the shared machine falls on both alike; each figure sums its rounds, \
         each latency percentile is the median round's",
        paired::ROUNDS,
        round_load.duration
    ));
    scenario.limits_cost_target(listed.per_second(), listed_limited.per_second(), "req/s");

    // The ceiling: same daemon, same response size, no work behind it.
    let ceiling_url = static_ceiling_url(&daemon.base_url, bytes);
    let route_works = match http.get(&ceiling_url).send().await {
        Ok(response) if response.status().is_success() => {
            response.bytes().await.map(|b| b.len()).unwrap_or(0) == bytes
        }
        _ => false,
    };
    let (ceiling, ceiling_label) = if route_works {
        let mark = CpuMark::start(daemon.pid())?;
        let result = wrk::run(bench.work_dir(), &ceiling_url, &load).await?;
        let usage = mark.finish()?;
        let mut row = wrk_row(
            &format!("daemon static route, {bytes}-byte body (wrk -t2 -c64)"),
            &result,
            "req/s",
        );
        row.daemon = Some(usage);
        (row, "the daemon's static route")
    } else {
        scenario.note(
            "the daemon has no `GET /bench/static/{bytes}` route (feature `bench-routes`) in this \
             build: the ceiling is an axum server inside mm-bench answering the same bytes",
        );
        let server = static_server::StaticServer::start(bytes).await?;
        let result = wrk::run(bench.work_dir(), &server.url(), &load).await?;
        (
            wrk_row(
                &format!("axum static server in mm-bench, {bytes}-byte body (wrk -t2 -c64)"),
                &result,
                "req/s",
            ),
            "an in-process axum static server",
        )
    };
    let mut ceiling = ceiling;
    ceiling.ceiling = true;
    let ceiling_rate = ceiling.throughput.unwrap_or(0.0);
    scenario.rows.push(ceiling);

    let ratio = listed.per_second() / ceiling_rate.max(1e-9);
    scenario.target(
        "≥ 50 % of the HTTP ceiling",
        Some(ratio >= 0.5),
        format!(
            "{:.0} req/s = {:.0} % of {:.0} req/s ({ceiling_label})",
            listed.per_second(),
            ratio * 100.0,
            ceiling_rate
        ),
    );
    scenario.target(
        "p99 < 10 ms",
        Some(listed.latency().p99_ms < 10.0),
        format!("p99 {:.2} ms", listed.latency().p99_ms),
    );
    if route_works {
        other_pages(bench, &mut scenario, &http, &daemon, &list_url, &load).await?;
    }
    staleness(
        &mut scenario,
        &http,
        &daemon.base_url,
        &limited.base_url,
        &created,
    )
    .await?;
    drop(limited);
    scenario.rss_target(Some(daemon_use[0].usage()));
    if listed.errors() > 0 {
        scenario.note(format!(
            "listing errors: {} (status {}, timeouts {}, connect {}, read {}, write {})",
            listed.errors(),
            listed.status_errors,
            listed.timeouts,
            listed.connect_errors,
            listed.read_errors,
            listed.write_errors
        ));
    }
    drop(daemon);
    drop(server);
    Ok(scenario)
}

/// GETs `url` as the bench's lister; the body.
async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let response = http
        .get(url)
        .header("x-player-id", "bench-lister")
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("GET {url} answered {}", response.status());
    }
    Ok(response.bytes().await?.to_vec())
}

/// Page 2 and page 10 by cursor, a label-filtered page and an all-products page, each
/// measured beside the daemon's static route of the same size, in the same run.
async fn other_pages(
    bench: &Bench,
    scenario: &mut Scenario,
    http: &reqwest::Client,
    daemon: &DaemonProcess,
    first_page_url: &str,
    load: &WrkLoad,
) -> anyhow::Result<()> {
    let mut cursors = Vec::new();
    let mut url = first_page_url.to_string();
    for _ in 0..9 {
        let page: serde_json::Value = serde_json::from_slice(&fetch(http, &url).await?)?;
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        cursors.push(cursor.to_string());
        url = format!("{first_page_url}&cursor={cursor}");
    }
    let base = &daemon.base_url;
    let mut pages = Vec::new();
    if let Some(cursor) = cursors.first() {
        pages.push((
            "page 2 by cursor",
            format!("{first_page_url}&cursor={cursor}"),
        ));
    }
    if let Some(cursor) = cursors.get(8) {
        pages.push((
            "page 10 by cursor",
            format!("{first_page_url}&cursor={cursor}"),
        ));
    }
    pages.push((
        "label-filtered page (labels.mode=ranked)",
        format!("{first_page_url}&labels.mode=ranked"),
    ));
    pages.push(("all-products page", format!("{base}/v1/games?limit=100")));
    for (what, url) in pages {
        let bytes = fetch(http, &url).await?.len();
        let mark = CpuMark::start(daemon.pid())?;
        let listed = wrk::run(bench.work_dir(), &url, load).await?;
        let usage = mark.finish()?;
        let mut row = wrk_row(
            &format!("GET /v1/games {what}, limit=100 (wrk -t2 -c64)"),
            &listed,
            "req/s",
        );
        row.daemon = Some(usage);
        scenario.rows.push(row);
        let ceiling = wrk::run(bench.work_dir(), &static_ceiling_url(base, bytes), load).await?;
        let mut row = wrk_row(
            &format!("daemon static route, {bytes}-byte body, beside the {what}"),
            &ceiling,
            "req/s",
        );
        row.ceiling = true;
        scenario.rows.push(row);
        let ratio = listed.per_second() / ceiling.per_second().max(1e-9);
        scenario.target(
            &format!("{what}: ≥ 50 % of the static route, p99 < 5 ms"),
            Some(ratio >= 0.5 && listed.latency().p99_ms < 5.0),
            format!(
                "{:.0} req/s = {:.0} % of {:.0} req/s, p99 {:.2} ms",
                listed.per_second(),
                ratio * 100.0,
                ceiling.per_second(),
                listed.latency().p99_ms
            ),
        );
    }
    Ok(())
}

/// How long after a join answered by one daemon the other daemon's listing shows it: a join
/// through `joined_on`, then `seen_on` polled (one request at a time) until the game's
/// `seats_free` drops. The figure includes one HTTP round trip of the poll.
async fn staleness(
    scenario: &mut Scenario,
    http: &reqwest::Client,
    joined_on: &str,
    seen_on: &str,
    created: &[(String, String, String)],
) -> anyhow::Result<()> {
    let mut histogram = super::driver::micros_histogram();
    for (game, _, creator) in created.iter().take(200) {
        // Each game's label `n` is its creator's number (see the creates above).
        let n = creator.trim_start_matches("list-creator-");
        let joined = http
            .post(format!("{joined_on}/v1/games/{game}/join"))
            .header("x-player-id", format!("stale-joiner-{n}"))
            .send()
            .await?;
        if !joined.status().is_success() {
            bail!("joining {game} answered {}", joined.status());
        }
        let answered = std::time::Instant::now();
        let url = format!("{seen_on}/v1/games?product={PRODUCT}&labels.n={n}");
        loop {
            let page: serde_json::Value = serde_json::from_slice(&fetch(http, &url).await?)?;
            if page["games"][0]["seats_free"].as_u64() == Some(2) {
                break;
            }
            if answered.elapsed() > Duration::from_secs(5) {
                bail!("the second daemon did not show the join of {game} within 5 s");
            }
        }
        histogram.record(answered.elapsed().as_micros() as u64)?;
    }
    let latency = super::driver::Latency::of_micros(&histogram);
    let mut row = Row::new(
        "view staleness across two daemons: join answered by one → listed by the other",
        "ms",
    );
    row.latency = Some(latency);
    scenario.rows.push(row);
    scenario.target(
        "staleness across two daemons p99 < 50 ms",
        Some(latency.p99_ms < 50.0),
        format!(
            "{} joins: p50 {:.2} ms, p99 {:.2} ms (each includes one listing round trip)",
            histogram.len(),
            latency.p50_ms,
            latency.p99_ms
        ),
    );
    Ok(())
}

/// A row of `result`'s rate and latency.
pub(super) fn wrk_row(label: &str, result: &WrkResult, unit: &str) -> Row {
    let mut row = Row::new(label, unit);
    row.throughput = Some(result.per_second());
    row.latency = Some(result.latency());
    row.errors = result.errors();
    row
}
