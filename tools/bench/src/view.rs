//! Scenario `view`: what the in-memory view of the open games costs an API instance. The
//! record holds open lobbies spread over 20 products (each with two labels, as a server browser
//! would filter on); an `--roles api` daemon is started on it and measured once its view has
//! loaded (`/readyz` answers 200 only then): its resident memory beside the same daemon on an
//! empty record, and how long start-up took to load the view. Then, on the full view, the
//! all-products first page beside the same listing with a label no game carries: a query
//! that matches nothing examines at most `lobby.list_scan_max` games a page.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use mm_common::labels::Labels;
use mm_common::model::Phase;
use mm_common::{ProductId, ServerId};

use super::Bench;
use super::fixtures;
use super::list::wrk_row;
use super::procs::{CpuMark, DaemonProcess, DaemonSpec, rss_mib};
use super::report::{Row, Scenario};
use super::wrk::{self, WrkLoad};

/// Products the open games are spread over.
const PRODUCTS: u64 = 20;
const SERVER: &str = "gs-view";

pub async fn run(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("view", "listing view memory");
    let games = bench.sizes.view_games;
    let fixtures::ScenarioRedis {
        redis,
        mut conn,
        keys,
        ..
    } = fixtures::ScenarioRedis::start(bench.key_prefix, "view0").await?;
    let spec = DaemonSpec::new(&redis.url(), bench.key_prefix, "api");

    // The same daemon on an empty record: what the view's games add is the difference.
    let empty =
        DaemonProcess::start(&bench.binaries, bench.work_dir(), "view-empty", &spec).await?;
    let empty_rss = settled_rss(empty.pid()).await?;
    drop(empty);

    let server = ServerId::new(SERVER)?;
    let now = mm_common::time::now_ms();
    let fill_started = Instant::now();
    for p in 0..PRODUCTS {
        let product = ProductId::new(format!("view{p}"))?;
        let product_keys = keys.product(&product);
        let records = (0..games / PRODUCTS)
            .map(|i| {
                let index = p * games + i;
                let mut game = fixtures::game(&product, &server, index, Phase::Lobby, 8, now)?;
                game.labels = labels_of(index)?;
                Ok(game)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        fixtures::write_games(&mut conn, &product_keys, &records, now).await?;
        fixtures::register_product(&mut conn, &keys, &product).await?;
    }
    let total = (games / PRODUCTS) * PRODUCTS;
    scenario.note(format!(
        "{total} open lobbies (capacity 8, the creator present, labels `map` and `mode`), \
         {} per product over {PRODUCTS} products, written in {:.1} s before the daemon started",
        games / PRODUCTS,
        fill_started.elapsed().as_secs_f64()
    ));

    let started = Instant::now();
    let daemon =
        DaemonProcess::start(&bench.binaries, bench.work_dir(), "view-full", &spec).await?;
    let ready_after = started.elapsed();
    let held = view_games(&daemon.base_url).await?;
    ensure!(
        held == total,
        "the view holds {held} games once ready, the record {total}"
    );
    let full_rss = settled_rss(daemon.pid()).await?;

    let mut row = Row::new(
        format!("matchmakerd --roles api, resident memory with {total} open games in its view"),
        "MiB",
    );
    row.throughput = Some(full_rss);
    scenario.rows.push(row);
    let mut row = Row::new(
        "the same daemon on an empty record (no open game)".to_string(),
        "MiB",
    );
    row.throughput = Some(empty_rss);
    scenario.rows.push(row);
    let per_game = (full_rss - empty_rss) * 1024.0 * 1024.0 / total.max(1) as f64;
    // Issue 15 asks for the figure, not a bound: a note, no target.
    scenario.note(format!(
        "{full_rss:.1} MiB with the view loaded, {empty_rss:.1} MiB on an empty record: about \
         {per_game:.0} bytes per open game"
    ));
    scenario.note(format!(
        "start to ready (process start, view loaded from Redis, `/readyz` 200) took {:.2} s \
         with {total} open games; resident memory is read from /proc after it stopped \
         growing (VmRSS, two reads 500 ms apart within 2 %)",
        ready_after.as_secs_f64()
    ));
    let unbounded = DaemonProcess::start(
        &bench.binaries,
        bench.work_dir(),
        "view-unbounded",
        &spec.clone().set("lobby", "list_scan_max", 1_000_000),
    )
    .await?;
    empty_filter(bench, &mut scenario, &daemon, &unbounded, total).await?;
    drop((daemon, unbounded));
    Ok(scenario)
}

/// The all-products first page beside the same page with a label no game carries (wrk, 64
/// connections, each for the load phase): the one a player's script would send to make
/// every request walk the view. Each page examines at most `lobby.list_scan_max` (1000)
/// games, so the empty listing is paged through rather than searched in one request;
/// `unbounded` (the same daemon with the bound past the record's size) shows what one
/// request walking every game would cost.
async fn empty_filter(
    bench: &Bench,
    scenario: &mut Scenario,
    daemon: &DaemonProcess,
    unbounded: &DaemonProcess,
    total: u64,
) -> anyhow::Result<()> {
    let load = WrkLoad {
        threads: 2,
        connections: 64,
        duration: bench.sizes.load,
        headers: vec!["X-Player-Id: bench-lister".into()],
    };
    let mut rates = Vec::new();
    let nowhere = "limit=100&labels.map=nowhere";
    for (what, daemon, query) in [
        ("all-products first page", daemon, "limit=100"),
        (
            "all-products page, a label no game carries (labels.map=nowhere)",
            daemon,
            nowhere,
        ),
        (
            "the same with lobby.list_scan_max = 1000000 (every game walked)",
            unbounded,
            nowhere,
        ),
    ] {
        let url = format!("{}/v1/games?{query}", daemon.base_url);
        let mark = CpuMark::start(daemon.pid())?;
        let result = wrk::run(bench.work_dir(), &url, &load).await?;
        let mut row = wrk_row(
            &format!("GET /v1/games {what}, {total} open games (wrk -t2 -c64)"),
            &result,
            "req/s",
        );
        row.daemon = Some(mark.finish()?);
        rates.push(result.per_second());
        scenario.rows.push(row);
    }
    scenario.note(format!(
        "a label no game carries: {:.0} req/s = {:.0} % of the first page's {:.0} req/s; each \
         such page examines at most `lobby.list_scan_max` (1000) of the {total} games and \
         answers an empty page with a cursor. Walking every game in one request instead: \
         {:.0} req/s",
        rates[1],
        100.0 * rates[1] / rates[0].max(1e-9),
        rates[0],
        rates[2]
    ));
    Ok(())
}

/// The two labels of game `index`: one of 8 maps and one of 2 modes.
fn labels_of(index: u64) -> anyhow::Result<Labels> {
    let pairs = BTreeMap::from([
        ("map".to_string(), format!("map-{}", index % 8)),
        (
            "mode".to_string(),
            if index.is_multiple_of(2) {
                "ranked"
            } else {
                "casual"
            }
            .to_string(),
        ),
    ]);
    Labels::new(pairs, 8).context("bench labels")
}

/// The sum of `mm_view_games` over products, from the daemon's `/metrics` (public in test
/// mode).
async fn view_games(base_url: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{base_url}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with("mm_view_games")
            && let Some(value) = line.rsplit(' ').next()
        {
            sum += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok(sum as u64)
}

/// The process's resident memory once two reads 500 ms apart agree within 2 % (at most 10 s).
async fn settled_rss(pid: u32) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = rss_mib(pid)?;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_mib(pid)?;
        if (now - last).abs() <= last * 0.02 || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}
