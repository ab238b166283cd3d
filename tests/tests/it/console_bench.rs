//! Measurement (ignored by default; run with `--ignored --nocapture`): 100,000 games in one
//! set, then the time of one refresh (header statistics plus the window on screen) and of one
//! frame drawn into a 120×40 `TestBackend`, at the top, middle and end of the set.
//!
//! `cargo test -p mm-testkit --test it console_bench -- --ignored --nocapture`

use std::time::{Duration, Instant};

use mm_common::model::GameSet;
use mm_common::store::{Store, StoreOptions};
use mm_common::{Game, GameId, PlayerId, ProductId, ServerId};
use mm_console::app::{App, Command, Msg, Thresholds, update};
use mm_console::data::PageQuery;
use mm_console::fetch;
use mm_console::ratatui::Terminal;
use mm_console::ratatui::backend::TestBackend;
use mm_console::view::view;
use mm_testkit::RedisServer;

const GAMES: u64 = 100_000;
const BATCH: u64 = 2_000;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: fills Redis with 100,000 games"]
async fn frame_and_refresh_time_at_100k_games() {
    let redis = RedisServer::start().unwrap();
    let store = Store::connect(StoreOptions::new(redis.url()))
        .await
        .unwrap();
    let product = ProductId::new("chess").unwrap();
    store
        .register_products(std::slice::from_ref(&product))
        .await
        .unwrap();
    let server = ServerId::new("gs-chess-1").unwrap();
    let base = mm_common::time::now_ms() - GAMES * 10;
    let fill = Instant::now();
    for start in (0..GAMES).step_by(BATCH as usize) {
        // One batch of scripts in flight at once on the multiplexed connection: pipelined.
        let creates = (start..start + BATCH).map(|n| {
            let game = Game::new(
                GameId::new(format!("chess.{n:012}")).unwrap(),
                product.clone(),
                server.clone(),
                None,
                4,
                PlayerId::new(format!("p{n}")).unwrap(),
                String::new(),
                "{}".into(),
                base + n * 10,
            );
            let store = store.clone();
            async move { store.create_game(&game).await }
        });
        for created in futures::future::join_all(creates).await {
            assert!(created.unwrap());
        }
    }
    let fill = fill.elapsed();
    assert_eq!(store.set_counts(&product).await.unwrap()[0], GAMES);

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
    app.size = (120, 40);
    let rows = app.page_rows();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let mut refresh_times = Vec::new();
    let mut frame_times = Vec::new();
    let products = [product.clone()];
    for offset in [0, GAMES / 2, GAMES - rows] {
        for _ in 0..20 {
            let query = PageQuery {
                product: product.clone(),
                set: GameSet::Pending,
                offset,
                count: rows,
                newest_first: false,
                filter: String::new(),
            };
            let started = Instant::now();
            let snapshot =
                fetch::snapshot(&store, &products, Some(&query), mm_common::time::now_ms())
                    .await
                    .unwrap();
            refresh_times.push(started.elapsed());
            assert_eq!(snapshot.page.as_ref().unwrap().rows.len() as u64, rows);
            assert_eq!(snapshot.page.as_ref().unwrap().total, GAMES);

            // Feed it through update as the runtime would, then draw.
            app.screen = mm_console::app::Screen::Games(GameSet::Pending);
            app.set = GameSet::Pending;
            app.offset = offset;
            app.selected = offset;
            let generation = match update(&mut app, Msg::Key(crossterm_refresh())).as_slice() {
                [Command::Refresh { generation, .. }] => *generation,
                other => panic!("{other:?}"),
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
            terminal.draw(|frame| view(&app, frame)).unwrap();
            frame_times.push(started.elapsed());
        }
    }
    let screen: String = terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|cell| cell.symbol())
        .collect();
    assert!(
        screen.contains(&format!("of {GAMES}")),
        "title shows the set size"
    );
    let refresh = median(refresh_times.clone());
    let frame = median(frame_times.clone());
    let refresh_max = refresh_times.iter().max().unwrap();
    let frame_max = frame_times.iter().max().unwrap();
    println!(
        "console at {GAMES} games ({rows} rows on screen): fill {fill:?}; refresh median {refresh:?} max {refresh_max:?}; frame median {frame:?} max {frame_max:?}"
    );
    assert!(refresh < Duration::from_millis(250), "refresh {refresh:?}");
    assert!(frame < Duration::from_millis(50), "frame {frame:?}");
}

/// The `r` key (refresh now), as the terminal would send it.
fn crossterm_refresh() -> mm_console::crossterm::event::KeyEvent {
    mm_console::crossterm::event::KeyEvent::new(
        mm_console::crossterm::event::KeyCode::Char('r'),
        mm_console::crossterm::event::KeyModifiers::NONE,
    )
}
