//! Scenario `console`: what one console refresh (header statistics and one screen, through
//! `mm_console::fetch::snapshot`) and one frame (`mm_console::view::view` into a ratatui
//! `TestBackend`) cost with 100,000 games in each set.

use std::time::Instant;

use mm_common::keys::Keys;
use mm_common::model::{GameSet, Phase};
use mm_common::store::{Store, StoreOptions};
use mm_common::{ProductId, ServerId};

use mm_console::fetch;
use mm_console::view::view;

use super::Bench;
use super::driver::{self, Latency};
use super::fixtures;
use super::report::{Row, Scenario};
use mm_testkit::RedisServer;

const PRODUCT: &str = "bench";

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
    let measured = measure_console(&store, &product, per_set).await?;
    let mut refresh_row = Row::new(
        "refresh: mm_console::fetch::snapshot (header statistics + one screen), every set",
        "refreshes/s",
    );
    refresh_row.latency = Some(Latency::of_micros(&measured.refresh));
    refresh_row.throughput = Some(1e6 / measured.refresh.mean().max(1.0));
    scenario.rows.push(refresh_row);
    let frame = Latency::of_micros(&measured.frame);
    let mut frame_row = Row::new(
        "frame: mm_console::view::view into a 120×40 ratatui TestBackend",
        "frames/s",
    );
    frame_row.latency = Some(frame);
    frame_row.throughput = Some(1e6 / measured.frame.mean().max(1.0));
    scenario.rows.push(frame_row);
    scenario.note(format!(
        "{REPEATS} refreshes and frames per set and position (top, middle, end of each set), \
         fed through the console's own update() as its runtime does; {} rows on screen",
        measured.rows
    ));
    scenario.target(
        "console frame < 16 ms",
        Some(frame.p99_ms < 16.0),
        format!(
            "frame p99 {:.2} ms; refresh p99 {:.2} ms",
            frame.p99_ms,
            Latency::of_micros(&measured.refresh).p99_ms
        ),
    );
    Ok(scenario)
}

/// Repeats per set and position.
const REPEATS: usize = 20;

struct ConsoleTimes {
    refresh: hdrhistogram::Histogram<u64>,
    frame: hdrhistogram::Histogram<u64>,
    rows: u64,
}

/// Times the console's refresh (`fetch::snapshot`) and frame (`view` into a `TestBackend`)
/// through its library, the way its runtime drives them.
async fn measure_console(
    store: &Store,
    product: &ProductId,
    per_set: u64,
) -> anyhow::Result<ConsoleTimes> {
    use mm_console::app::{App, Command, Msg, Thresholds, update};
    use mm_console::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use mm_console::data::PageQuery;
    use mm_console::ratatui::Terminal;
    use mm_console::ratatui::backend::TestBackend;

    let mut app = App::new(
        mm_common::time::now_ms(),
        Thresholds {
            pending_ms: 300_000,
            lobby_ms: 1_800_000,
            active_ms: 14_400_000,
        },
        1000,
        500,
        false,
    );
    app.shared.size = (120, 40);
    let rows = app.page_rows();
    let mut terminal = Terminal::new(TestBackend::new(120, 40))?;
    let products = [product.clone()];
    let mut times = ConsoleTimes {
        refresh: driver::micros_histogram(),
        frame: driver::micros_histogram(),
        rows,
    };
    for set in GameSet::ALL {
        for offset in [0, per_set / 2, per_set.saturating_sub(rows)] {
            for _ in 0..REPEATS {
                let query = PageQuery {
                    product: product.clone(),
                    set,
                    offset,
                    count: rows,
                    newest_first: false,
                    filter: String::new(),
                };
                let started = Instant::now();
                let snapshot =
                    fetch::snapshot(store, &products, Some(&query), mm_common::time::now_ms())
                        .await?;
                driver::record(&mut times.refresh, started.elapsed());
                app.active = mm_console::screens::ScreenId::Games;
                app.screens.games.set = set;
                app.screens.games.offset = offset;
                app.screens.games.selected = offset;
                let refresh_key = KeyEvent::new(KeyCode::Char('r'), KeyModifiers::NONE);
                let generation = match update(&mut app, Msg::Key(refresh_key)).as_slice() {
                    [Command::Refresh { generation, .. }] => *generation,
                    other => anyhow::bail!("the console did not ask for a refresh: {other:?}"),
                };
                update(
                    &mut app,
                    Msg::Refreshed {
                        generation,
                        snapshot: Box::new(snapshot),
                        at_ms: mm_common::time::now_ms(),
                    },
                );
                let started = Instant::now();
                terminal.draw(|frame| view(&app, frame))?;
                driver::record(&mut times.frame, started.elapsed());
            }
        }
    }
    Ok(times)
}
