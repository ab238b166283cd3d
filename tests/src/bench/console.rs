//! Scenario `console`: what one console refresh costs with 100,000 games in each set (one
//! screen of 50 rows read with `Store::set_window`), and the frame render time.

use std::time::Instant;

use mm_common::keys::Keys;
use mm_common::model::{GameSet, Phase};
use mm_common::store::{Store, StoreOptions};
use mm_common::{ProductId, ServerId};

use super::Bench;
use super::driver::{self, Latency};
use super::fixtures;
use super::report::{Row, Scenario};
use crate::RedisServer;

const PRODUCT: &str = "bench";
/// Rows on one console screen.
const SCREEN_ROWS: u64 = 50;
/// Refreshes measured per set.
const REFRESHES: usize = 300;

/// Runs the scenario.
pub async fn run(bench: &Bench) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::new("console", "console");
    let per_set = bench.sizes.console_games;
    let redis = RedisServer::start()?;
    let mut conn = redis.connection().await;
    let keys = Keys::new(bench.key_prefix);
    let product = ProductId::new(PRODUCT)?;
    let product_keys = keys.product(&product);
    let server = ServerId::new("gs-console")?;
    let now = mm_common::time::now_ms();
    for phase in [Phase::Created, Phase::Lobby, Phase::InProgress] {
        let games: Vec<_> = (0..per_set)
            .map(|i| fixtures::game(&product, &server, i, phase, 4, now - per_set + i))
            .collect::<Result<_, _>>()?;
        fixtures::write_games(&mut conn, &product_keys, &games, now).await?;
    }
    fixtures::prepare_product(&mut conn, &keys, &product).await?;
    scenario.note(format!(
        "{per_set} games in each of pending, lobby and active (written directly with pipelines)"
    ));

    let mut options = StoreOptions::new(redis.url());
    options.key_prefix = bench.key_prefix.to_string();
    let store = Store::connect(options).await?;
    let mut all = driver::micros_histogram();
    for set in GameSet::ALL {
        let mut histogram = driver::micros_histogram();
        for i in 0..REFRESHES {
            // Alternate between the stalest screen, a middle one and the newest.
            let (offset, newest_first) = match i % 3 {
                0 => (0, false),
                1 => (per_set / 2, false),
                _ => (0, true),
            };
            let begun = Instant::now();
            let window = store
                .set_window(&product, set, offset, SCREEN_ROWS, newest_first)
                .await?;
            let took = begun.elapsed();
            anyhow::ensure!(
                window.rows.len() as u64 == SCREEN_ROWS && window.total == per_set,
                "set_window of {} returned {} rows of {} (expected {SCREEN_ROWS} of {per_set})",
                set.as_str(),
                window.rows.len(),
                window.total
            );
            driver::record(&mut histogram, took);
            driver::record(&mut all, took);
        }
        let mut row = Row::new(
            format!(
                "refresh: Store::set_window of {SCREEN_ROWS} rows, {} set of {per_set}",
                set.as_str()
            ),
            "refreshes/s",
        );
        let latency = Latency::of_micros(&histogram);
        row.latency = Some(latency);
        row.throughput = Some(1e6 / histogram.mean().max(1.0));
        scenario.rows.push(row);
    }
    let refresh = Latency::of_micros(&all);
    scenario.note(format!(
        "a refresh reads one screen per set: p99 {:.2} ms per set_window call",
        refresh.p99_ms
    ));

    match frame_time(bench).await {
        Some(Ok(frame)) => {
            let mut row = Row::new("frame render (ratatui TestBackend)", "frames/s");
            row.latency = Some(frame);
            scenario.rows.push(row);
            scenario.target(
                "console frame < 16 ms",
                Some(frame.p99_ms < 16.0),
                format!("p99 {:.2} ms", frame.p99_ms),
            );
        }
        Some(Err(err)) => {
            scenario.note(format!("frame measurement failed: {err:#}"));
            scenario.target("console frame < 16 ms", None, "frame measurement failed");
        }
        None => {
            scenario.note(
                "frame render time not measured: the console's library has no render entry \
                 point in this build (mm-console's view code lands on branch `console`)",
            );
            scenario.target(
                "console frame < 16 ms",
                None,
                format!("refresh p99 {:.2} ms; frame not measured", refresh.p99_ms),
            );
        }
    }
    Ok(scenario)
}

/// The console's frame render time, when its library offers a way to draw the main view.
async fn frame_time(_bench: &Bench) -> Option<anyhow::Result<Latency>> {
    None
}
