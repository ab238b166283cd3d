//! Drawing: `view(&App, &mut Frame)`. Pure: no I/O, no clock (time is `App::now_ms`).

use mm_common::model::GameSet;
use mm_common::time::rfc3339;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};

use crate::app::{
    App, Button, InputKind, MAX_HEADER_PRODUCTS, Screen, SortKey, Staleness, StatusKind,
    header_height,
};
use crate::data::GameRow;
use crate::keymap::{self, Context, KEYMAP};

/// Style of rows near their curation threshold.
pub const NEAR_STYLE: Style = Style::new().fg(Color::Yellow);
/// Style of rows past their curation threshold.
pub const OVERDUE_STYLE: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED);
const DIM: Style = Style::new().fg(Color::DarkGray);
const TITLE: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);

/// Draws the whole console.
pub fn view(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let banner = if app.redis_down.is_some() { 2 } else { 0 };
    let [title, header, banner_area, main, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(header_height(app)),
        Constraint::Length(banner),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_title(app, frame, title);
    draw_header(app, frame, header);
    if banner > 0 {
        draw_banner(app, frame, banner_area);
    }
    match app.screen {
        Screen::Games(set) => draw_games(app, frame, main, set),
        Screen::Events => draw_events(app, frame, main),
        Screen::Detail => draw_detail(app, frame, main),
    }
    draw_status(app, frame, status);
    if app.help {
        draw_help(app, frame, area);
    }
    if app.confirm.is_some() {
        draw_confirm(app, frame, area);
    }
}

/// `3s`, `4m05s`, `2h10m`, `3d04h`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

fn clock(ms: u64) -> String {
    // RFC 3339 `2026-11-21T15:04:05.123Z` → `15:04:05`
    let text = rfc3339(ms);
    text.get(11..19).unwrap_or(&text).to_string()
}

fn draw_title(app: &App, frame: &mut Frame, area: Rect) {
    let screen = match app.screen {
        Screen::Games(set) => set.as_str().to_string(),
        Screen::Events => "events".into(),
        Screen::Detail => "detail".into(),
    };
    let updated = match app.updated_ms {
        Some(at) => format!(
            "updated {} ago",
            human_duration(app.now_ms.saturating_sub(at))
        ),
        None => "waiting for first read…".into(),
    };
    let mut spans = vec![
        Span::styled(" mm-console ", TITLE),
        Span::raw(format!(" {screen} ")),
    ];
    if let Some(product) = app.product() {
        spans.push(Span::styled(format!(" product {product} "), DIM));
    }
    if app.read_only {
        spans.push(Span::styled(
            " READ-ONLY ",
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    spans.push(Span::raw(format!("  {updated}  ")));
    spans.push(Span::styled("? help", DIM));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_header(app: &App, frame: &mut Frame, area: Rect) {
    let mut lines = vec![Line::styled(
        format!(
            "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
            "product", "pending", "lobby", "active", "lag", "unacked", "dead"
        ),
        DIM,
    )];
    if app.overview.products.is_empty() {
        lines.push(Line::raw("(no products in Redis yet)"));
    }
    for stats in app.overview.products.iter().take(MAX_HEADER_PRODUCTS) {
        let (lag, unacked) = match &stats.group {
            Some(group) => (
                group.lag.map_or("?".to_string(), |l| l.to_string()),
                group.pending.to_string(),
            ),
            None => ("no group".to_string(), "-".to_string()),
        };
        let dead_style = if stats.dead_letters > 0 {
            NEAR_STYLE
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} ",
                truncate(&stats.product, 16),
                stats.counts[0],
                stats.counts[1],
                stats.counts[2],
                lag,
                unacked
            )),
            Span::styled(format!("{:>6}", stats.dead_letters), dead_style),
        ]));
    }
    let more = app
        .overview
        .products
        .len()
        .saturating_sub(MAX_HEADER_PRODUCTS);
    let instances = if app.overview.instances.is_empty() {
        Span::styled("daemons: none alive (no heartbeat in 15 s)", OVERDUE_STYLE)
    } else {
        Span::raw(format!(
            "daemons: {} alive ({})",
            app.overview.instances.len(),
            app.overview.instances.join(", ")
        ))
    };
    let mut last = vec![instances];
    if more > 0 {
        last.push(Span::styled(
            format!("   +{more} more products (p to switch)"),
            DIM,
        ));
    }
    lines.push(Line::from(last));
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_banner(app: &App, frame: &mut Frame, area: Rect) {
    let Some(down) = &app.redis_down else {
        return;
    };
    let showing = match app.updated_ms {
        Some(at) => format!("showing data from {}", clock(at)),
        None => "no data read yet".to_string(),
    };
    let text = format!(
        "Redis unreachable since {}: {}; {showing}. Reconnecting by itself.",
        clock(down.since_ms),
        down.error
    );
    let style = Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD);
    frame.render_widget(
        Paragraph::new(text).style(style).wrap(Wrap { trim: true }),
        area,
    );
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn games_title(app: &App, set: GameSet) -> String {
    let product = app.product().map_or("-".to_string(), |p| p.to_string());
    let total = app.total();
    let shown = app.visible_rows().len() as u64;
    let range = if shown == 0 {
        "0".to_string()
    } else {
        format!("{}-{}", app.offset + 1, app.offset + shown)
    };
    let sort = match (app.sort, app.descending) {
        (SortKey::Activity, false) => "idle longest first",
        (SortKey::Activity, true) => "most recent activity first",
        (SortKey::Age, false) => "oldest first (this page)",
        (SortKey::Age, true) => "youngest first (this page)",
    };
    let mut title = format!(" {set} · {product} · {range} of {total} · sort: {sort} ");
    if !app.filter.is_empty() {
        title.push_str(&format!("· filter \"{}\" ", app.filter));
        if let Some(scan) = app.page.as_ref().and_then(|p| p.scan)
            && scan.truncated
        {
            title.push_str(&format!("(first {} games searched) ", scan.scanned));
        }
    }
    title
}

fn draw_games(app: &App, frame: &mut Frame, area: Rect, set: GameSet) {
    let threshold = app.thresholds.of(set);
    let header = Row::new(
        [
            "", "id", "product", "state", "players", "server", "creator", "age", "idle",
        ]
        .map(|t| Cell::from(t).style(DIM)),
    );
    let rows: Vec<Row> = app
        .visible_rows()
        .into_iter()
        .enumerate()
        .map(|(i, game)| {
            let selected = app.offset + i as u64 == app.selected;
            game_row(app, game, threshold, selected)
        })
        .collect();
    let empty = rows.is_empty();
    let id_width = app
        .visible_rows()
        .iter()
        .map(|r| r.id.chars().count())
        .max()
        .unwrap_or(10)
        .clamp(10, 64) as u16;
    let widths = [
        Constraint::Length(1),
        Constraint::Length(id_width),
        Constraint::Max(10),
        Constraint::Length(18),
        Constraint::Length(7),
        Constraint::Max(14),
        Constraint::Min(8),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    let block = Block::bordered().title(games_title(app, set));
    let inner = block.inner(area);
    frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
    if empty {
        let text = if app.page.is_none() && app.updated_ms.is_none() {
            "loading…"
        } else if app.product().is_none() {
            "no products yet: nothing to show"
        } else {
            "no games here"
        };
        let [_, message] =
            Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(inner);
        frame.render_widget(Paragraph::new(text).style(DIM), message);
    }
}

fn game_row<'a>(app: &App, game: &'a GameRow, threshold_ms: u64, selected: bool) -> Row<'a> {
    let idle = app.now_ms.saturating_sub(game.activity_ms);
    let staleness = Staleness::of(idle, threshold_ms);
    let stale_style = match staleness {
        Staleness::Fresh => Style::new(),
        Staleness::Near => NEAR_STYLE,
        Staleness::Overdue => OVERDUE_STYLE,
    };
    let age = if game.created_at_ms == 0 {
        "?".to_string()
    } else {
        human_duration(app.now_ms.saturating_sub(game.created_at_ms))
    };
    let state = game
        .state
        .map_or("(no record)".to_string(), |s| s.to_string());
    let deleting = app.deletes_in_flight.contains(&game.id);
    let row = Row::new(vec![
        Cell::from(staleness.symbol()).style(stale_style),
        Cell::from(if deleting {
            format!("{} (deleting…)", game.id)
        } else {
            game.id.clone()
        }),
        Cell::from(game.product.as_str()),
        Cell::from(state),
        Cell::from(format!("{}/{}", game.players, game.capacity)),
        Cell::from(game.server_id.as_str()),
        Cell::from(game.creator_id.as_str()),
        Cell::from(age).style(stale_style),
        Cell::from(human_duration(idle)).style(stale_style),
    ]);
    if selected { row.style(SELECTED) } else { row }
}

fn draw_events(app: &App, frame: &mut Frame, area: Rect) {
    let tail = &app.tail;
    let visible = tail.visible();
    let mode = if tail.follow {
        "following".to_string()
    } else {
        format!("PAUSED ({} new held, f to follow)", tail.held.len())
    };
    let mut title = format!(" events · {} shown · {mode} ", visible.len());
    if !tail.filter.is_empty() {
        title.push_str(&format!("· filter \"{}\" ", tail.filter));
    }
    if let Some(error) = &tail.error {
        title.push_str(&format!("· read failed: {error} "));
    }
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    let height = inner.height as usize;
    let end = visible.len().saturating_sub(tail.scroll);
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = visible[start..end]
        .iter()
        .map(|event| {
            let kind = event.field("type").unwrap_or("?");
            let style = match kind {
                "game_ended" => DIM,
                "creator_joined" | "player_joined" | "all_players_joined" => {
                    Style::new().fg(Color::Green)
                }
                "player_left" => NEAR_STYLE,
                "game_started" => Style::new().fg(Color::Cyan),
                _ => Style::new(),
            };
            let mut spans = vec![
                Span::styled(format!("{} ", clock(event.entry_ms())), DIM),
                Span::raw(format!("{:<10} ", truncate(&event.product, 10))),
                Span::styled(format!("{kind:<18} "), style),
            ];
            let rest: Vec<String> = event
                .fields
                .iter()
                .filter(|(k, _)| k != "type")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            spans.push(Span::raw(rest.join(" ")));
            Line::from(spans)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_detail(app: &App, frame: &mut Frame, area: Rect) {
    let id = app.detail_id.as_deref().unwrap_or("?");
    let block = Block::bordered().title(format!(" game {id} · Esc back · Ctrl-D delete "));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(detail) = &app.detail else {
        frame.render_widget(Paragraph::new("loading…").style(DIM), inner);
        return;
    };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(inner);
    let mut lines = vec![Line::styled("record (hash fields)", TITLE)];
    if detail.fields.is_empty() {
        lines.push(Line::styled(
            "no record: the hash is gone (ended and expired, or removed)",
            OVERDUE_STYLE,
        ));
    }
    for (name, value) in &detail.fields {
        let shown = match name.as_str() {
            "created_at" | "updated_at" => match value.parse::<u64>() {
                Ok(ms) => format!(
                    "{value} ({}, {} ago)",
                    clock(ms),
                    human_duration(app.now_ms.saturating_sub(ms))
                ),
                Err(_) => value.clone(),
            },
            _ => value.clone(),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{name:<14} "), DIM),
            Span::raw(shown),
        ]));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), left);
    let mut events = vec![Line::styled(
        format!(
            "recent events ({} of the last {} stream entries)",
            detail.events.len(),
            detail.searched
        ),
        TITLE,
    )];
    if detail.events.is_empty() {
        events.push(Line::styled("none", DIM));
    }
    for event in &detail.events {
        let rest: Vec<String> = event
            .fields
            .iter()
            .filter(|(k, _)| k != "type" && k != "game_id")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        events.push(Line::from(vec![
            Span::styled(format!("{} ", clock(event.entry_ms())), DIM),
            Span::raw(format!("{:<18} ", event.field("type").unwrap_or("?"))),
            Span::styled(rest.join(" "), DIM),
        ]));
    }
    frame.render_widget(Paragraph::new(events).wrap(Wrap { trim: false }), right);
}

fn draw_status(app: &App, frame: &mut Frame, area: Rect) {
    if let Some(input) = &app.input {
        let prompt = match input.kind {
            InputKind::Command => ":",
            InputKind::GamesFilter | InputKind::EventsFilter => "/",
        };
        let text = format!("{prompt}{}", input.text);
        let width = text.chars().count() as u16;
        frame.render_widget(Paragraph::new(text), area);
        frame.set_cursor_position((area.x + width.min(area.width.saturating_sub(1)), area.y));
        return;
    }
    let line = match &app.status {
        Some(status) => {
            let style = match status.kind {
                StatusKind::Info => Style::new(),
                StatusKind::Good => Style::new().fg(Color::Green),
                StatusKind::Bad => Style::new().fg(Color::Red),
            };
            Line::styled(status.text.clone(), style)
        }
        None => Line::styled(
            "1 pending  2 lobby  3 active  4 events  / filter  Enter detail  Ctrl-D delete  : command  ? help  q quit",
            DIM,
        ),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn popup(area: Rect, width: u16, height: u16) -> Rect {
    area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    )
}

/// The help screen's lines, generated from the key table.
pub fn help_lines() -> Vec<Line<'static>> {
    // The key column fits the longest key list, so no label runs into its description.
    let key_width = KEYMAP
        .iter()
        .map(|binding| keymap::keys_label(binding).chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let mut lines = Vec::new();
    for context in Context::ALL {
        let bindings: Vec<_> = KEYMAP.iter().filter(|b| b.context == context).collect();
        if bindings.is_empty() {
            continue;
        }
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(context.title(), TITLE));
        for binding in bindings {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  {:<key_width$}", keymap::keys_label(binding)),
                    Style::new().fg(Color::Yellow),
                ),
                Span::raw(binding.description),
            ]));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Rows: ▲ yellow = idle ≥ 80 % of the curation timeout; ✖ red = overdue",
        DIM,
    ));
    lines
}

fn draw_help(_app: &App, frame: &mut Frame, area: Rect) {
    let lines = help_lines();
    let height = lines.len() as u16 + 2;
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
    let rect = popup(area, width, height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" help · Esc/?/q to close ")),
        rect,
    );
}

fn draw_confirm(app: &App, frame: &mut Frame, area: Rect) {
    let Some(confirm) = &app.confirm else {
        return;
    };
    let game = &confirm.game;
    let button = |label: &str, focused: bool| {
        let text = format!("[ {label} ]");
        if focused {
            Span::styled(text, SELECTED.add_modifier(Modifier::BOLD))
        } else {
            Span::raw(text)
        }
    };
    let lines = vec![
        Line::styled(
            "Force-delete this game?",
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Line::raw(""),
        Line::raw(format!("  id       {}", game.id)),
        Line::raw(format!("  product  {}", game.product)),
        Line::raw(format!(
            "  state    {}",
            game.state
                .map_or("(no record)".to_string(), |s| s.to_string())
        )),
        Line::raw(format!("  server   {}", game.server_id)),
        Line::raw(""),
        Line::raw("Deletes it on the game server, then removes the record."),
        Line::raw("The action is written to the audit stream."),
        Line::raw(""),
        Line::from(vec![
            Span::raw("        "),
            button("Cancel", confirm.focus == Button::Cancel),
            Span::raw("    "),
            button("Delete", confirm.focus == Button::Delete),
        ]),
        Line::styled("Tab switches · Enter presses · Esc cancels", DIM),
    ];
    let rect = popup(area, 70, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(" confirm force-delete ")
                .border_style(Style::new().fg(Color::Red)),
        ),
        rect,
    );
}
