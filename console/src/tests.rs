//! Terminal-free tests: keys → messages → state, and `TestBackend` snapshots of the screens
//! with ids and clocks pinned.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use mm_common::admin::{ForceDeleteOutcome, ForceDeleteReport};
use mm_common::model::GameSet;
use mm_common::model::{EntryId, Game, Phase, RosterEntry};
use mm_common::{GameId, GameState, PlayerId, ProductId, ServerId};
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
    app.operator = "alice".into();
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
            game: Some(lobby_game(&id)),
            events: vec![
                event(2, "player_joined", "player-9"),
                event(1, "creator_joined", "player-2"),
            ],
            searched: 57,
        })),
    );
    insta::assert_snapshot!(text(&render(&app)));
    for size in SIZES {
        app.shared.size = size;
        insta::assert_snapshot!(format!("detail_{}x{}", size.0, size.1), text(&render(&app)));
    }
    // It scrolls: at 80×24 the events are below the fold until j/G.
    app.shared.size = (80, 24);
    assert!(!text(&render(&app)).contains("player_joined"));
    update(&mut app, key('G'));
    let screen = text(&render(&app));
    assert!(screen.contains("player_joined"), "{screen}");
    assert!(
        screen.contains("lines "),
        "the title says where we are: {screen}"
    );
    update(&mut app, key('g'));
    assert_eq!(app.screens.detail.scroll, 0);
}

/// The sizes every view is snapshotted at.
const SIZES: [(u16, u16); 2] = [(80, 24), (160, 45)];

/// A lobby game of `chess` with its creator and a second player present, one who left and
/// one reservation running.
fn lobby_game(id: &str) -> Game {
    let player = |p: &str| PlayerId::new(p).unwrap();
    let mut game = Game::new(
        GameId::new(id).unwrap(),
        ProductId::new("chess").unwrap(),
        ServerId::new("gs-chess-1").unwrap(),
        Some("eu".into()),
        4,
        player("player-2"),
        "ws://gs-chess-1.example:7000/play".into(),
        "{\"map\":\"classic\"}".into(),
        NOW - 1560 * SEC,
    );
    game.phase = Phase::Lobby;
    game.updated_at_ms = NOW - 1500 * SEC;
    let joined = |secs: u64, present: bool| RosterEntry {
        entry_id: EntryId::new(NOW - secs * SEC, 0),
        present,
    };
    game.roster.insert(player("player-2"), joined(99, true));
    game.roster.insert(player("player-9"), joined(98, true));
    game.roster.insert(player("player-4"), joined(50, false));
    game.reservations.insert(player("player-7"), NOW + 30 * SEC);
    game
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
            id: three_rows()[0].id.clone(),
            reason: crate::screens::confirm::DEFAULT_REASON.to_string(),
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
fn filter_applies_as_typed_lowercased_and_esc_restores_it() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, key('/'));
    let mut last = Vec::new();
    for c in "Player-2".chars() {
        last = update(&mut app, key(c));
    }
    // Every keystroke filters: the table's refresh already carries the text so far.
    let [
        Command::Refresh {
            query: Some(query), ..
        },
    ] = last.as_slice()
    else {
        panic!("{last:?}");
    };
    assert_eq!(query.filter, "player-2");
    assert_eq!(query.offset, 0);
    update(&mut app, code(KeyCode::Backspace));
    assert_eq!(app.screens.games.filter, "player-");
    update(&mut app, key('2'));
    // Enter keeps it (nothing new to read).
    assert!(update(&mut app, code(KeyCode::Enter)).is_empty());
    assert_eq!(app.screens.games.filter, "player-2");
    assert!(three_rows()[1].matches("player-2"));
    assert!(!three_rows()[0].matches("player-2"));
    // Editing again and pressing Esc puts the filter back as it was.
    update(&mut app, key('/'));
    update(&mut app, key('9'));
    assert_eq!(app.screens.games.filter, "player-29");
    update(&mut app, code(KeyCode::Esc));
    assert!(app.input.is_none());
    assert_eq!(app.screens.games.filter, "player-2");
    // Esc on the table clears it.
    let commands = update(&mut app, code(KeyCode::Esc));
    assert!(app.screens.games.filter.is_empty());
    assert_eq!(commands.len(), 1);
}

/// A filtered window says how many rows the filter hides, and an empty match never looks
/// like an empty set.
#[test]
fn filtered_table_counts_hidden_rows_at_both_sizes() {
    let mut app = loaded(three_rows(), 3);
    app.screens.games.filter = "player-2".into();
    let page = app.screens.games.page.as_mut().unwrap();
    page.rows.retain(|r| r.matches("player-2"));
    page.total = 1;
    page.scan = Some(crate::data::FilterScan {
        scanned: 40,
        set_size: 40,
        truncated: false,
    });
    for size in SIZES {
        app.shared.size = size;
        let screen = text(&render(&app));
        if size.0 >= 160 {
            assert!(
                screen.contains("1-1 of 1 shown, 39 hidden by filter \"player-2\""),
                "{screen}"
            );
        }
        insta::assert_snapshot!(format!("filtered_{}x{}", size.0, size.1), screen);
    }
    let page = app.screens.games.page.as_mut().unwrap();
    page.rows.clear();
    page.total = 0;
    app.shared.size = (80, 24);
    let screen = text(&render(&app));
    assert!(screen.contains("0 of 0 shown, 40 hidden"), "{screen}");
    assert!(screen.contains("no lobby game matches filter"), "{screen}");
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
    assert_eq!(app.overlay, Some(Overlay::Help(0)));
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
    let screen = text(&render(&app));
    assert!(
        screen.contains("1 of 3 shown, 2 hidden by filter \"ended\""),
        "{screen}"
    );
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
    let lines = crate::screens::help::lines(&sections, usize::MAX);
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
fn help_wraps_long_descriptions_to_the_terminal_width() {
    let app = loaded(three_rows(), 3);
    let sections = app.help_sections();
    let width = crate::screens::help::text_width(80);
    let lines = crate::screens::help::lines(&sections, width);
    for line in &lines {
        assert!(line.width() <= width, "{} columns: {line:?}", line.width());
    }
    let words: Vec<String> = lines
        .iter()
        .flat_map(|line| line.spans.iter())
        .flat_map(|span| span.content.split_whitespace().map(str::to_owned))
        .collect();
    // Nothing is lost at 80 columns: every word of every description is shown.
    for entry in sections.iter().flat_map(|section| &section.entries) {
        for word in entry.description.split_whitespace() {
            assert!(words.iter().any(|shown| shown == word), "{word:?} is cut");
        }
    }
    assert!(words.iter().any(|word| word == ":product"), "{words:?}");
    // Wide terminals keep one line per binding.
    let wide = crate::screens::help::lines(&sections, crate::screens::help::text_width(160));
    assert_eq!(
        wide.iter().filter(|line| line.spans.len() == 1).count(),
        crate::screens::help::lines(&sections, usize::MAX)
            .iter()
            .filter(|line| line.spans.len() == 1)
            .count()
    );
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
            game: Some({
                let mut game = lobby_game(&id);
                game.server_id = ServerId::new("gs-chess-9").unwrap();
                game.phase = Phase::InProgress;
                game
            }),
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

fn type_text(app: &mut App, text: &str) -> Vec<Command> {
    let mut last = Vec::new();
    for c in text.chars() {
        last = update(app, key(c));
    }
    last
}

#[test]
fn main_view_at_80_and_160_columns_keeps_ids_readable() {
    let mut app = loaded(three_rows(), 3);
    for size in SIZES {
        app.shared.size = size;
        let screen = text(&render(&app));
        // The distinguishing end of every id is on screen.
        for n in 1..=3 {
            assert!(screen.contains(&format!("00000000000{n}")), "{screen}");
        }
        insta::assert_snapshot!(format!("main_{}x{}", size.0, size.1), screen);
    }
    // At 50 columns the id still shows its distinguishing end, not one character.
    app.shared.size = (50, 24);
    let screen = text(&render(&app));
    assert!(screen.contains("0193a1b2…00000000002"), "{screen}");
}

#[test]
fn abbreviated_ids_keep_start_and_end() {
    use crate::view::abbreviate_id;
    let id = "chess.0193a1b2-0000-7000-8000-000000000001";
    assert_eq!(abbreviate_id(id, "chess", 64), id);
    assert_eq!(
        abbreviate_id(id, "chess", 36),
        "0193a1b2-0000-7000-8000-000000000001"
    );
    assert_eq!(abbreviate_id(id, "chess", 20), "0193a1b2…00000000001");
    assert_eq!(abbreviate_id(id, "chess", 10), "…000000001");
    assert_eq!(abbreviate_id("short", "chess", 10), "short");
}

#[test]
fn help_scrolls_and_shows_every_section_at_both_sizes() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, key('?'));
    for size in SIZES {
        app.shared.size = size;
        if let Some(Overlay::Help(scroll)) = &mut app.overlay {
            *scroll = 0;
        }
        insta::assert_snapshot!(format!("help_{}x{}", size.0, size.1), text(&render(&app)));
    }
    app.shared.size = (80, 24);
    let top = text(&render(&app));
    assert!(top.contains("lines 1-"), "says it scrolls: {top}");
    assert!(
        !top.contains("close help"),
        "the last section is below: {top}"
    );
    update(&mut app, key('G'));
    let bottom = text(&render(&app));
    assert!(bottom.contains("close help"), "{bottom}");
    assert!(bottom.contains("overdue"), "{bottom}");
    update(&mut app, key('k'));
    update(&mut app, key('g'));
    assert_eq!(app.overlay, Some(Overlay::Help(0)));
    update(&mut app, key('q'));
    assert!(app.overlay.is_none() && !app.quit);
}

fn dead_letter(n: u64, kind: &str, reason: &str) -> crate::data::DeadLetter {
    crate::data::DeadLetter {
        product: "chess".into(),
        entry_id: format!("{}-0", NOW - n * 60 * SEC),
        fields: vec![
            ("reason".into(), reason.into()),
            ("source_id".into(), format!("{}-3", NOW - n * 60 * SEC - 5)),
            ("dead_at".into(), (NOW - n * 60 * SEC).to_string()),
            ("type".into(), kind.into()),
            ("game_id".into(), three_rows()[n as usize].id.clone()),
            ("server_id".into(), "gs-chess-2".into()),
        ],
    }
}

#[test]
fn dead_letters_view_lists_filters_and_opens_the_game() {
    let mut app = loaded(three_rows(), 3);
    let commands = update(&mut app, key('5'));
    assert_eq!(commands, vec![Command::LoadDead]);
    assert_eq!(app.active, ScreenId::Dead);
    assert!(text(&render(&app)).contains("loading…"));
    update(
        &mut app,
        Msg::DeadLoaded(vec![
            dead_letter(
                1,
                "player_joined",
                "server_mismatch: event from server gs-chess-2 for a game on server gs-chess-1",
            ),
            dead_letter(2, "game_started", "unknown_game"),
        ]),
    );
    for size in SIZES {
        app.shared.size = size;
        insta::assert_snapshot!(format!("dead_{}x{}", size.0, size.1), text(&render(&app)));
    }
    update(&mut app, key('/'));
    type_text(&mut app, "unknown");
    let screen = text(&render(&app));
    assert!(
        screen.contains("1 of 2 shown, 1 hidden by filter"),
        "{screen}"
    );
    update(&mut app, code(KeyCode::Enter));
    let commands = update(&mut app, code(KeyCode::Enter));
    let id = three_rows()[2].id.clone();
    assert_eq!(commands, vec![Command::LoadDetail { id: id.clone() }]);
    assert_eq!(app.active, ScreenId::Detail);
    // Esc goes back where the detail was opened from.
    update(&mut app, code(KeyCode::Esc));
    assert_eq!(app.active, ScreenId::Dead);
    // Esc clears the filter, then goes back to the games.
    update(&mut app, code(KeyCode::Esc));
    assert_eq!(app.screens.dead.visible().len(), 2);
    update(&mut app, code(KeyCode::Esc));
    assert_eq!(app.active, ScreenId::Games);
}

#[test]
fn audit_view_lists_operator_actions() {
    use mm_common::audit::AuditEntry;
    let mut app = loaded(three_rows(), 3);
    update(&mut app, key(':'));
    type_text(&mut app, "audit");
    assert_eq!(
        update(&mut app, code(KeyCode::Enter)),
        vec![Command::LoadAudit]
    );
    let action = |n: usize, operator: &str, outcome: &str, reason: &str| crate::data::AuditRow {
        entry_id: format!("{}-0", NOW - n as u64 * 600 * SEC),
        entry: AuditEntry {
            operator: operator.into(),
            action: "force_delete".into(),
            game_id: three_rows()[n].id.clone(),
            product: "chess".into(),
            server_id: "gs-chess-1".into(),
            reason: reason.into(),
            outcome: outcome.into(),
            server_reached: outcome == "deleted",
            forced: false,
            detail: if outcome == "deleted" {
                String::new()
            } else {
                "game server gs-chess-1: connection refused".into()
            },
            at_ms: NOW - n as u64 * 600 * SEC,
        },
    };
    update(
        &mut app,
        Msg::AuditLoaded(vec![
            action(
                0,
                "alice",
                "server_unreachable_record_kept",
                "stuck in lobby",
            ),
            action(1, "bob", "deleted", "force-delete from the console"),
        ]),
    );
    for size in SIZES {
        app.shared.size = size;
        insta::assert_snapshot!(format!("audit_{}x{}", size.0, size.1), text(&render(&app)));
    }
    let screen = text(&render(&app));
    assert!(screen.contains("2 actions"), "{screen}");
    assert!(
        screen.contains("connection refused"),
        "the selected entry's detail: {screen}"
    );
}

#[test]
fn views_not_loaded_during_an_outage_say_so_and_the_last_data_stays() {
    let mut app = App::new(NOW, thresholds(), 1000, 100, false);
    app.shared.size = (80, 24);
    let commands = update(&mut app, Msg::Tick { now_ms: NOW });
    let [Command::Refresh { generation, .. }] = commands.as_slice() else {
        panic!("{commands:?}");
    };
    let error = "Redis at redis://127.0.0.1:6390/0: Connection refused (os error 111)";
    update(
        &mut app,
        Msg::RefreshFailed {
            generation: *generation,
            error: error.into(),
            at_ms: NOW,
        },
    );
    let screen = text(&render(&app));
    assert!(screen.contains("not loaded yet: Redis at"), "{screen}");
    assert!(!screen.contains("no games"), "{screen}");
    for size in SIZES {
        app.shared.size = size;
        insta::assert_snapshot!(
            format!("games_not_loaded_{}x{}", size.0, size.1),
            text(&render(&app))
        );
    }
    // A product known from before the outage, its window not read yet: the same.
    let mut app = loaded(three_rows(), 3);
    app.shared.size = (80, 24);
    update(&mut app, key('p'));
    let commands = update(
        &mut app,
        Msg::Tick {
            now_ms: NOW + 2 * SEC,
        },
    );
    let generation = app.generation;
    assert!(!commands.is_empty() || generation > 0);
    update(
        &mut app,
        Msg::RefreshFailed {
            generation,
            error: error.into(),
            at_ms: NOW + 2 * SEC,
        },
    );
    let screen = text(&render(&app));
    assert!(screen.contains("not loaded yet: Redis at"), "{screen}");
    assert!(
        screen.contains("poker"),
        "the header keeps its counts: {screen}"
    );
    // The dead letters, never read: not loaded yet; read once, then failing: kept.
    update(&mut app, key('5'));
    update(
        &mut app,
        Msg::DeadFailed {
            error: error.into(),
        },
    );
    for size in SIZES {
        app.shared.size = size;
        insta::assert_snapshot!(
            format!("dead_not_loaded_{}x{}", size.0, size.1),
            text(&render(&app))
        );
    }
    app.shared.size = (80, 24);
    update(
        &mut app,
        Msg::DeadLoaded(vec![dead_letter(1, "player_joined", "unknown_game")]),
    );
    update(
        &mut app,
        Msg::DeadFailed {
            error: error.into(),
        },
    );
    let screen = text(&render(&app));
    assert!(screen.contains("unknown_game"), "{screen}");
    assert!(screen.contains("read failed"), "{screen}");
}

#[test]
fn status_messages_expire_and_the_key_hints_come_back() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, ctrl('d'));
    update(&mut app, code(KeyCode::Enter));
    let screen = text(&render(&app));
    assert!(screen.contains("cancelled"), "{screen}");
    assert!(
        screen.contains("? help"),
        "hints beside the message: {screen}"
    );
    let size_before = app.shared.size;
    for size in SIZES {
        app.shared.size = size;
        insta::assert_snapshot!(
            format!("status_with_hints_{}x{}", size.0, size.1),
            text(&render(&app))
        );
    }
    app.shared.size = size_before;
    update(
        &mut app,
        Msg::Tick {
            now_ms: NOW + 4 * SEC,
        },
    );
    assert!(app.status.is_some());
    update(
        &mut app,
        Msg::Tick {
            now_ms: NOW + 6 * SEC,
        },
    );
    assert!(app.status.is_none());
    let screen = text(&render(&app));
    assert!(!screen.contains("cancelled"), "{screen}");
    assert!(screen.contains("Enter detail"), "{screen}");
}

/// A status message longer than the line is cut (marked `…`) so that `? help` stays on
/// screen at 80 columns; a short one keeps every hint.
#[test]
fn a_long_status_message_is_cut_and_keeps_the_help_hint() {
    let mut app = loaded(three_rows(), 3);
    let id = "chess.0193a1b2-0000-7000-8000-000000000001";
    let error = "game server gs-chess-1 answered 503: draining for an upgrade";
    update(
        &mut app,
        Msg::DeleteFinished {
            game_id: id.into(),
            result: Err(error.into()),
        },
    );
    app.shared.size = (80, 24);
    let screen = text(&render(&app));
    let status_line = screen.lines().last().unwrap_or_default();
    assert!(status_line.contains("delete chess."), "{status_line}");
    assert!(
        status_line.contains('…'),
        "the message is cut: {status_line}"
    );
    assert!(
        status_line.trim_end().ends_with("? help"),
        "the help hint stays: {status_line}"
    );
    assert!(status_line.chars().count() <= 80, "{status_line}");
    app.shared.size = (160, 45);
    let wide = text(&render(&app));
    let status_line = wide.lines().last().unwrap_or_default();
    assert!(!status_line.contains('…'), "{status_line}");
    assert!(
        status_line.contains("draining for an upgrade"),
        "{status_line}"
    );
}

#[test]
fn product_command_completes_known_products() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, key(':'));
    type_text(&mut app, "pro");
    update(&mut app, code(KeyCode::Tab));
    assert_eq!(app.input.as_ref().unwrap().text, "product ");
    update(&mut app, code(KeyCode::Tab));
    let input = app.input.as_ref().unwrap();
    assert_eq!(input.hint.as_deref(), Some("chess poker"), "{input:?}");
    assert!(text(&render(&app)).contains(":product    chess poker"));
    let size_before = app.shared.size;
    for size in SIZES {
        app.shared.size = size;
        insta::assert_snapshot!(
            format!("product_completion_{}x{}", size.0, size.1),
            text(&render(&app))
        );
    }
    app.shared.size = size_before;
    type_text(&mut app, "po");
    update(&mut app, code(KeyCode::Tab));
    assert_eq!(app.input.as_ref().unwrap().text, "product poker");
    let commands = update(&mut app, code(KeyCode::Enter));
    assert!(matches!(
        commands.as_slice(),
        [Command::Refresh { query: Some(q), .. }] if q.product.as_str() == "poker"
    ));
    assert_eq!(app.screens.games.product().unwrap().as_str(), "poker");
    update(&mut app, key(':'));
    type_text(&mut app, "product golf");
    assert!(update(&mut app, code(KeyCode::Enter)).is_empty());
    assert!(
        app.status
            .as_ref()
            .unwrap()
            .text
            .contains("unknown product")
    );
    assert_eq!(app.screens.games.product().unwrap().as_str(), "poker");
}

#[test]
fn delete_dialog_takes_an_edited_reason_at_both_sizes() {
    let mut app = loaded(three_rows(), 3);
    update(&mut app, ctrl('d'));
    for size in SIZES {
        app.shared.size = size;
        insta::assert_snapshot!(
            format!("confirm_{}x{}", size.0, size.1),
            text(&render(&app))
        );
    }
    assert!(text(&render(&app)).contains("done by alice"));
    // Ctrl-U clears the prefilled reason; letters (q included) type into it.
    update(&mut app, ctrl('u'));
    type_text(&mut app, "stuck in queue");
    assert!(app.overlay.is_some(), "q typed, did not close the dialog");
    update(&mut app, code(KeyCode::Backspace));
    type_text(&mut app, "e");
    // Enter on the default button still cancels.
    assert!(update(&mut app, code(KeyCode::Enter)).is_empty());
    update(&mut app, ctrl('d'));
    assert_eq!(
        open_dialog(&app).unwrap().reason,
        crate::screens::confirm::DEFAULT_REASON,
        "a new dialog starts from the default"
    );
    update(&mut app, ctrl('u'));
    type_text(&mut app, "stuck in queue");
    update(&mut app, code(KeyCode::Tab));
    let commands = update(&mut app, code(KeyCode::Enter));
    assert_eq!(
        commands,
        vec![Command::ForceDelete {
            id: three_rows()[0].id.clone(),
            reason: "stuck in queue".into(),
        }]
    );
}
