//! Terminal-free tests: keys → messages → state, and `TestBackend` snapshots of the screens
//! with ids and clocks pinned.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mm_common::admin::{ForceDeleteOutcome, ForceDeleteReport};
use mm_common::model::GameSet;
use mm_common::{GameState, ProductId};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

use crate::app::{App, Command, Msg, Overlay, Thresholds, update};
use crate::data::{
    GameDetail, GameRow, GamesPage, GroupStats, Overview, PageQuery, ProductStats, Snapshot,
    TailEvent,
};
use crate::screens::ScreenId;
use crate::screens::confirm::{Button, Confirm};
use crate::screens::games::SortKey;
use crate::view::view;

/// 2026-11-21T15:00:00Z
const NOW: u64 = 1_795_359_600_000;
const SEC: u64 = 1000;

fn thresholds() -> Thresholds {
    Thresholds {
        pending_ms: 300 * SEC,
        lobby_ms: 1800 * SEC,
        active_ms: 14400 * SEC,
    }
}

fn row(n: u32, state: GameState, idle_secs: u64) -> GameRow {
    GameRow {
        id: format!("chess.0193a1b2-0000-7000-8000-00000000{n:04}"),
        product: "chess".into(),
        state: Some(state),
        players: 1,
        capacity: 4,
        server_id: "gs-chess-1".into(),
        creator_id: format!("player-{n}"),
        created_at_ms: NOW - idle_secs * SEC - 60 * SEC,
        activity_ms: NOW - idle_secs * SEC,
    }
}

fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

fn code(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// An app that has done one refresh of the lobby of `chess` with `rows` (of `total`).
fn loaded(rows: Vec<GameRow>, total: u64) -> App {
    let mut app = App::new(NOW, thresholds(), 1000, 100, false);
    app.shared.size = (120, 30);
    let commands = update(&mut app, Msg::Tick { now_ms: NOW });
    let Some(Command::Refresh { generation, .. }) = commands.first().cloned() else {
        panic!("first tick refreshes: {commands:?}");
    };
    let chess = ProductId::new("chess").unwrap();
    let snapshot = Snapshot {
        overview: Overview {
            products: vec![
                ProductStats {
                    product: "chess".into(),
                    counts: [3, total, 7],
                    group: Some(GroupStats {
                        lag: Some(2),
                        pending: 1,
                        consumers: 2,
                    }),
                    dead_letters: 4,
                    // Three minutes behind: past half the pending timeout (yellow).
                    watermark_ms: Some(NOW - 180 * SEC),
                    node: None,
                },
                ProductStats {
                    product: "poker".into(),
                    counts: [0, 1, 0],
                    group: None,
                    dead_letters: 0,
                    watermark_ms: None,
                    node: None,
                },
            ],
            instances: vec!["mmd-a".into(), "mmd-b".into()],
        },
        products: vec![chess.clone(), ProductId::new("poker").unwrap()],
        page: Some(GamesPage {
            query: PageQuery {
                product: chess,
                set: GameSet::Lobby,
                offset: 0,
                count: app.page_rows(),
                newest_first: false,
                filter: String::new(),
            },
            rows,
            total,
            scan: None,
        }),
    };
    let commands = update(
        &mut app,
        Msg::Refreshed {
            generation,
            snapshot: Box::new(snapshot),
            at_ms: NOW - 2 * SEC,
        },
    );
    assert!(commands.is_empty(), "{commands:?}");
    app
}

fn three_rows() -> Vec<GameRow> {
    vec![
        row(1, GameState::CreatorJoined, 1900), // overdue (> 1800 s)
        row(2, GameState::AllPlayersJoined, 1500), // near (≥ 1440 s)
        row(3, GameState::CreatorJoined, 30),   // fresh
    ]
}

fn open_dialog(app: &App) -> Option<&Confirm> {
    match &app.overlay {
        Some(Overlay::Confirm(confirm)) => Some(confirm),
        _ => None,
    }
}

fn render(app: &App) -> Buffer {
    let backend = TestBackend::new(app.shared.size.0, app.shared.size.1);
    let mut terminal = Terminal::new(backend).unwrap();
    terminal.draw(|frame| view(app, frame)).unwrap();
    terminal.backend().buffer().clone()
}

fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn find(buffer: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let lines = text(buffer);
    lines.lines().enumerate().find_map(|(y, line)| {
        line.find(needle)
            .map(|byte| (line[..byte].chars().count() as u16, y as u16))
    })
}

#[test]
fn main_view_snapshot() {
    let app = loaded(three_rows(), 3);
    insta::assert_snapshot!(text(&render(&app)));
}

#[test]
fn stale_rows_carry_warning_and_overdue_styles_and_symbols() {
    let app = loaded(three_rows(), 3);
    let buffer = render(&app);
    let (_, overdue_y) = find(&buffer, "00000001").unwrap();
    let (_, near_y) = find(&buffer, "00000002").unwrap();
    let (_, fresh_y) = find(&buffer, "00000003").unwrap();
    // The symbol column is the first inside the border.
    assert_eq!(buffer[(1, overdue_y)].symbol(), "✖");
    assert_eq!(buffer[(1, overdue_y)].fg, Color::Red);
    assert_eq!(buffer[(1, near_y)].symbol(), "▲");
    assert_eq!(buffer[(1, near_y)].fg, Color::Yellow);
    assert_eq!(buffer[(1, fresh_y)].symbol(), " ");
    // The idle column (last) is coloured too.
    let idle_x = find(&buffer, "31m40s").unwrap().0;
    assert_eq!(buffer[(idle_x, overdue_y)].fg, Color::Red);
    let near_idle_x = find(&buffer, "25m00s").unwrap().0;
    assert_eq!(buffer[(near_idle_x, near_y)].fg, Color::Yellow);
    assert_eq!(buffer[(near_idle_x, fresh_y)].fg, Color::Reset);
}

/// The header's `behind` column (the watermark age) is green when caught up, yellow past half
/// the pending timeout, red once it exceeds it.
#[test]
fn the_watermark_age_is_coloured_by_the_pending_timeout() {
    let mut app = loaded(three_rows(), 3);
    let buffer = render(&app);
    let (x, chess_y) = find(&buffer, "3m00s").unwrap();
    assert_eq!(buffer[(x, chess_y)].fg, Color::Yellow, "3 of 5 minutes");
    let (_, poker_y) = find(&buffer, "poker").unwrap();
    // `0s` is right-aligned in the same column: its last cell is under `3m00s`'s last.
    assert_eq!(buffer[(x + 4, poker_y)].symbol(), "s");
    assert_eq!(buffer[(x + 4, poker_y)].fg, Color::Green, "caught up");
    update(
        &mut app,
        Msg::Tick {
            now_ms: NOW + 150 * SEC,
        },
    );
    let buffer = render(&app);
    let (x, y) = find(&buffer, "5m30s").unwrap();
    assert_eq!(buffer[(x, y)].fg, Color::Red, "past the pending timeout");
    use crate::view::watermark_style;
    assert_eq!(watermark_style(149_999, 300_000).fg, Some(Color::Green));
    assert_eq!(watermark_style(150_000, 300_000).fg, Some(Color::Yellow));
    assert_eq!(watermark_style(300_000, 300_000).fg, Some(Color::Red));
}

#[test]
fn updated_ago_is_shown() {
    let mut app = loaded(three_rows(), 3);
    update(
        &mut app,
        Msg::Tick {
            now_ms: NOW + 5 * SEC,
        },
    );
    assert!(text(&render(&app)).contains("updated 7s ago"));
}

#[test]
fn detail_view_snapshot() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, key('j'));
    let commands = update(&mut app, code(KeyCode::Enter));
    let id = three_rows()[1].id.clone();
    assert_eq!(commands, vec![Command::LoadDetail { id: id.clone() }]);
    assert_eq!(app.active, ScreenId::Detail);
    let event = |seq: u64, kind: &str, player: &str| TailEvent {
        product: "chess".into(),
        entry_id: format!("{}-{seq}", NOW - 100 * SEC + seq * SEC),
        fields: vec![
            ("type".into(), kind.into()),
            ("game_id".into(), id.clone()),
            ("player_id".into(), player.into()),
            ("server_id".into(), "gs-chess-1".into()),
        ],
    };
    update(
        &mut app,
        Msg::DetailLoaded(Box::new(GameDetail {
            id: id.clone(),
            fields: vec![
                ("capacity".into(), "4".into()),
                ("created_at".into(), (NOW - 1560 * SEC).to_string()),
                ("creator_id".into(), "player-2".into()),
                ("id".into(), id.clone()),
                ("players".into(), "[\"player-2\"]".into()),
                ("product".into(), "chess".into()),
                ("server_id".into(), "gs-chess-1".into()),
                ("state".into(), "all_players_joined".into()),
                ("updated_at".into(), (NOW - 1500 * SEC).to_string()),
            ],
            events: vec![
                event(2, "player_joined", "player-9"),
                event(1, "creator_joined", "player-2"),
            ],
            searched: 57,
        })),
    );
    insta::assert_snapshot!(text(&render(&app)));
}

#[test]
fn confirm_dialog_defaults_to_cancel_and_enter_on_cancel_deletes_nothing() {
    let mut app = loaded(three_rows(), 3);
    assert!(update(&mut app, ctrl('d')).is_empty());
    let confirm = open_dialog(&app).cloned().expect("dialog open");
    assert_eq!(confirm.focus, Button::Cancel);
    assert_eq!(confirm.game.id, three_rows()[0].id);
    insta::assert_snapshot!(text(&render(&app)));
    // Enter on Cancel: nothing runs, the dialog closes.
    assert!(update(&mut app, code(KeyCode::Enter)).is_empty());
    assert!(app.overlay.is_none());
    // Tab to Delete, Enter: the delete runs.
    update(&mut app, ctrl('d'));
    update(&mut app, code(KeyCode::Tab));
    assert_eq!(open_dialog(&app).unwrap().focus, Button::Delete);
    let commands = update(&mut app, code(KeyCode::Enter));
    assert_eq!(
        commands,
        vec![Command::ForceDelete {
            id: three_rows()[0].id.clone()
        }]
    );
    assert!(app.status.as_ref().unwrap().text.contains("deleting"));
}

#[test]
fn delete_outcome_shows_in_the_status_line() {
    let mut app = loaded(three_rows(), 3);
    let id = three_rows()[0].id.clone();
    let report = ForceDeleteReport {
        game_id: id.clone(),
        product: Some("chess".into()),
        server_id: Some("gs-chess-1".into()),
        state: Some(GameState::CreatorJoined),
        outcome: ForceDeleteOutcome::ServerUnreachable,
        server_reached: false,
        server_had_game: None,
        error: Some("game server gs-chess-1: delete_game timed out".into()),
        record_removed: false,
        forced: false,
        audit_id: Some("1-0".into()),
    };
    let commands = update(
        &mut app,
        Msg::DeleteFinished {
            game_id: id,
            result: Ok(report),
        },
    );
    assert!(matches!(commands.as_slice(), [Command::Refresh { .. }]));
    let status = text(&render(&app));
    assert!(status.contains("server unreachable"), "{status}");
    assert!(status.contains("record kept"), "{status}");
}

#[test]
fn read_only_refuses_delete_and_says_so() {
    let mut app = loaded(three_rows(), 3);
    app.read_only = true;
    assert!(update(&mut app, ctrl('d')).is_empty());
    assert!(app.overlay.is_none());
    assert!(app.status.as_ref().unwrap().text.contains("read-only"));
    assert!(text(&render(&app)).contains("READ-ONLY"));
}

#[test]
fn filter_is_typed_applied_lowercased_and_cleared() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, key('/'));
    for c in "Player-2".chars() {
        update(&mut app, key(c));
    }
    update(&mut app, code(KeyCode::Backspace));
    update(&mut app, key('2'));
    let commands = update(&mut app, code(KeyCode::Enter));
    assert_eq!(app.screens.games.filter, "player-2");
    let [
        Command::Refresh {
            query: Some(query), ..
        },
    ] = commands.as_slice()
    else {
        panic!("{commands:?}");
    };
    assert_eq!(query.filter, "player-2");
    assert_eq!(query.offset, 0);
    assert!(three_rows()[1].matches("player-2"));
    assert!(!three_rows()[0].matches("player-2"));
    let commands = update(&mut app, code(KeyCode::Esc));
    assert!(app.screens.games.filter.is_empty());
    assert_eq!(commands.len(), 1);
}

#[test]
fn sort_toggles_between_activity_and_age() {
    let mut app = loaded(three_rows(), 3);
    assert_eq!(app.screens.games.sort, SortKey::Activity);
    update(&mut app, key('o'));
    assert!(app.page_query().unwrap().newest_first);
    update(&mut app, key('s'));
    assert_eq!(app.screens.games.sort, SortKey::Age);
    assert!(!app.page_query().unwrap().newest_first);
    // Age order sorts the page by creation time.
    app.screens.games.page = loaded(
        vec![
            row(1, GameState::CreatorJoined, 10),
            row(2, GameState::CreatorJoined, 500),
        ],
        2,
    )
    .screens
    .games
    .page;
    let ids: Vec<&str> = app
        .screens
        .games
        .visible_rows()
        .iter()
        .map(|r| &r.id[r.id.len() - 4..])
        .collect();
    assert_eq!(ids, ["0002", "0001"]);
}

#[test]
fn scrolling_past_the_page_fetches_the_next_window() {
    let rows: Vec<GameRow> = (0..5)
        .map(|n| row(n, GameState::CreatorJoined, 10))
        .collect();
    let mut app = loaded(rows, 100_000);
    let page = app.page_rows();
    for _ in 0..page - 1 {
        assert!(update(&mut app, key('j')).is_empty());
    }
    let commands = update(&mut app, key('j'));
    let [
        Command::Refresh {
            query: Some(query), ..
        },
    ] = commands.as_slice()
    else {
        panic!("{commands:?}");
    };
    assert_eq!(query.offset, 1);
    assert_eq!(query.count, page);
    let commands = update(&mut app, key('G'));
    let [
        Command::Refresh {
            query: Some(query), ..
        },
    ] = commands.as_slice()
    else {
        panic!("{commands:?}");
    };
    assert_eq!(query.offset, 100_000 - page);
}

#[test]
fn redis_down_keeps_data_under_a_banner_and_clears_on_recovery() {
    let mut app = loaded(three_rows(), 3);
    let commands = update(
        &mut app,
        Msg::Tick {
            now_ms: NOW + 2 * SEC,
        },
    );
    let [Command::Refresh { generation, .. }] = commands.as_slice() else {
        panic!("{commands:?}");
    };
    update(
        &mut app,
        Msg::RefreshFailed {
            generation: *generation,
            error: "redis: Connection refused (os error 111)".into(),
            at_ms: NOW + 3 * SEC,
        },
    );
    update(
        &mut app,
        Msg::Tick {
            now_ms: NOW + 9 * SEC,
        },
    );
    let screen = text(&render(&app));
    insta::assert_snapshot!(screen);
    assert!(screen.contains("00000001"), "old rows still shown");
    // Still responsive: keys work while down.
    update(&mut app, key('?'));
    assert_eq!(app.overlay, Some(Overlay::Help));
}

#[test]
fn help_is_generated_from_the_keymap() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, key('?'));
    let screen = text(&render(&app));
    for binding in crate::screens::games::KEYMAP.bindings {
        assert!(
            screen.contains(binding.description),
            "help lacks {:?}",
            binding.description
        );
    }
    update(&mut app, code(KeyCode::Esc));
    assert!(app.overlay.is_none());
}

#[test]
fn command_line_switches_views_and_quits() {
    let mut app = loaded(three_rows(), 3);
    for text in [":events", ":pending", ":q"] {
        update(&mut app, key(':'));
        for c in text.trim_start_matches(':').chars() {
            update(&mut app, key(c));
        }
        update(&mut app, code(KeyCode::Enter));
        match text {
            ":events" => assert_eq!(app.active, ScreenId::Events),
            ":pending" => {
                assert_eq!(app.active, ScreenId::Games);
                assert_eq!(app.screens.games.set, GameSet::Pending);
            }
            _ => assert!(app.quit),
        }
    }
}

#[test]
fn ctrl_c_quits_even_from_a_text_field() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, key('/'));
    assert_eq!(update(&mut app, ctrl('c')), vec![Command::Quit]);
    assert!(app.quit);
}

#[test]
fn event_tail_follows_pauses_and_filters() {
    let mut app = App::new(NOW, thresholds(), 1000, 3, false);
    let event = |n: u64, kind: &str| TailEvent {
        product: "chess".into(),
        entry_id: format!("{}-0", NOW + n),
        fields: vec![
            ("type".into(), kind.into()),
            ("game_id".into(), format!("chess.{n}")),
        ],
    };
    update(&mut app, key('e'));
    assert_eq!(app.active, ScreenId::Events);
    update(
        &mut app,
        Msg::TailEvents((0..4).map(|n| event(n, "heartbeat")).collect()),
    );
    assert_eq!(app.screens.events.events.len(), 3, "bounded by tail_len");
    update(&mut app, key('f'));
    update(&mut app, Msg::TailEvents(vec![event(9, "game_ended")]));
    assert_eq!(app.screens.events.events.len(), 3, "paused: held back");
    assert_eq!(app.screens.events.held.len(), 1);
    update(&mut app, key('f'));
    assert_eq!(
        app.screens.events.events.back().unwrap().field("type"),
        Some("game_ended")
    );
    update(&mut app, key('/'));
    for c in "ENDED".chars() {
        update(&mut app, key(c));
    }
    update(&mut app, code(KeyCode::Enter));
    assert_eq!(app.screens.events.visible().len(), 1);
}

#[test]
fn stale_refresh_answers_are_ignored() {
    let mut app = loaded(three_rows(), 3);
    let old = app.generation;
    update(&mut app, key('1'));
    assert!(app.generation > old);
    let commands = update(
        &mut app,
        Msg::RefreshFailed {
            generation: old,
            error: "late".into(),
            at_ms: NOW,
        },
    );
    assert!(commands.is_empty());
    assert!(app.shared.redis_down.is_none());
}

#[test]
fn help_keeps_every_key_label_apart_from_its_description() {
    let app = loaded(three_rows(), 3);
    let sections = app.help_sections();
    let lines = crate::screens::help::lines(&sections);
    let bindings: Vec<_> = lines.iter().filter(|line| line.spans.len() == 2).collect();
    assert_eq!(
        bindings.len(),
        sections.iter().map(|s| s.entries.len()).sum::<usize>(),
        "one help line per binding"
    );
    let columns: Vec<usize> = bindings.iter().map(|l| l.spans[0].width()).collect();
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "descriptions line up"
    );
    for line in bindings {
        let label = line.spans[0].content.as_ref();
        assert!(
            label.ends_with("  "),
            "label {label:?} runs into its description"
        );
    }
}

#[test]
fn help_lists_the_global_keys_and_the_shown_screens() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, key('e'));
    update(&mut app, key('?'));
    let screen = text(&render(&app));
    assert!(screen.contains("Event tail"), "{screen}");
    assert!(screen.contains("follow new events / pause"), "{screen}");
    assert!(screen.contains("re-read Redis now"), "{screen}");
    assert!(
        !screen.contains("sort by last activity / by age"),
        "another screen's keys: {screen}"
    );
    // While help is open only its own keys work: `1` does not switch screens.
    update(&mut app, key('1'));
    assert_eq!(app.active, ScreenId::Events);
    update(&mut app, key('q'));
    assert!(app.overlay.is_none() && !app.quit);
}

#[test]
fn delete_from_detail_uses_the_record_when_the_table_no_longer_shows_the_game() {
    let mut app = loaded(three_rows(), 3);
    let id = three_rows()[0].id.clone();
    update(&mut app, code(KeyCode::Enter));
    assert_eq!(app.screens.detail.id.as_deref(), Some(id.as_str()));
    update(
        &mut app,
        Msg::DetailLoaded(Box::new(GameDetail {
            id: id.clone(),
            fields: vec![
                ("product".into(), "chess".into()),
                ("server_id".into(), "gs-chess-9".into()),
                ("state".into(), "in_progress".into()),
            ],
            events: Vec::new(),
            searched: 0,
        })),
    );
    // The table's window moved on: the game is not on it any more.
    app.screens.games.page.as_mut().unwrap().rows.remove(0);
    update(&mut app, ctrl('d'));
    let game = &open_dialog(&app).expect("dialog open").game;
    assert_eq!(game.id, id);
    assert_eq!(game.server_id, "gs-chess-9");
    assert_eq!(game.state, Some(GameState::InProgress));
    // Esc closes the dialog and stays on the detail; Esc again goes back to the table.
    update(&mut app, code(KeyCode::Esc));
    assert_eq!(app.active, ScreenId::Detail);
    update(&mut app, code(KeyCode::Esc));
    assert_eq!(app.active, ScreenId::Games);
    assert!(app.screens.detail.id.is_none());
}
