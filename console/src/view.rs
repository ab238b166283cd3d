//! Drawing: `view(&App, &mut Frame)`. Pure: no I/O, no clock (time is `Shared::now_ms`).
//!
//! This module draws what every screen shares (title, header, Redis banner, status line) and
//! hands the main area to the shown screen and the rest to the open overlay
//! ([`crate::screens`] draw themselves). The styles and formatting helpers screens share are
//! here too.

use mm_common::time::rfc3339;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use crate::app::{App, InputTarget, MAX_HEADER_PRODUCTS, Overlay, StatusKind, header_height};
use crate::screens::help;

/// Style of rows near their curation threshold.
pub const NEAR_STYLE: Style = Style::new().fg(Color::Yellow);
/// Style of rows past their curation threshold.
pub const OVERDUE_STYLE: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
/// Style of a product whose record has caught up with its event stream.
pub const CAUGHT_UP_STYLE: Style = Style::new().fg(Color::Green);
/// Style of the selected row or focused button.
pub const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED);
/// Style of secondary text.
pub const DIM: Style = Style::new().fg(Color::DarkGray);
/// Style of titles.
pub const TITLE: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);

/// Draws the whole console.
pub fn view(app: &App, frame: &mut Frame) {
    let area = frame.area();
    let banner = if app.shared.redis_down.is_some() {
        2
    } else {
        0
    };
    let [title, header, banner_area, main, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(header_height(&app.shared)),
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
    app.screens.get(app.active).draw(&app.shared, frame, main);
    draw_status(app, frame, status);
    match &app.overlay {
        Some(Overlay::Help(scroll)) => help::draw(&app.help_sections(), *scroll, frame, area),
        Some(Overlay::Confirm(confirm)) => confirm.draw(frame, area),
        None => {}
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

/// The colour of a product's watermark age (how far its record is behind its event stream),
/// measured against the pending timeout `pending_ms`, the shortest curation timeout: green
/// below half of it, yellow from half (curation of new games is about to wait), red bold from
/// the whole timeout (games whose creators joined are waiting for their events; pending
/// curation is held back).
pub fn watermark_style(age_ms: u64, pending_ms: u64) -> Style {
    if age_ms >= pending_ms {
        OVERDUE_STYLE
    } else if age_ms.saturating_mul(2) >= pending_ms {
        NEAR_STYLE
    } else {
        CAUGHT_UP_STYLE
    }
}

/// `15:04:05` (UTC) of a Unix-millisecond time.
pub fn clock(ms: u64) -> String {
    // RFC 3339 `2026-11-21T15:04:05.123Z` → `15:04:05`
    let text = rfc3339(ms);
    text.get(11..19).unwrap_or(&text).to_string()
}

fn draw_title(app: &App, frame: &mut Frame, area: Rect) {
    let screen = app.screens.get(app.active).title();
    let updated = match app.shared.updated_ms {
        Some(at) => format!(
            "updated {} ago",
            human_duration(app.shared.now_ms.saturating_sub(at))
        ),
        None => "waiting for first read…".into(),
    };
    let mut spans = vec![
        Span::styled(" mm-console ", TITLE),
        Span::raw(format!(" {screen} ")),
    ];
    if let Some(product) = app.screens.games.product() {
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
            "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
            "product", "pending", "lobby", "active", "lag", "unacked", "behind", "dead"
        ),
        DIM,
    )];
    if app.shared.overview.products.is_empty() {
        lines.push(Line::raw("(no products in Redis yet)"));
    }
    for stats in app
        .shared
        .overview
        .products
        .iter()
        .take(MAX_HEADER_PRODUCTS)
    {
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
        // How far the record is behind the stream: what the curator waits for.
        let behind_ms = stats
            .watermark_ms
            .map_or(0, |oldest| app.shared.now_ms.saturating_sub(oldest));
        let behind_style = watermark_style(behind_ms, app.shared.thresholds.pending_ms);
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
            Span::styled(format!("{:>8}", human_duration(behind_ms)), behind_style),
            Span::raw(" "),
            Span::styled(format!("{:>6}", stats.dead_letters), dead_style),
            // On a Redis Cluster: the node serving the product's slot, and its role.
            Span::styled(
                stats
                    .node
                    .as_ref()
                    .map_or(String::new(), |node| format!("  {node}")),
                DIM,
            ),
        ]));
    }
    let more = app
        .shared
        .overview
        .products
        .len()
        .saturating_sub(MAX_HEADER_PRODUCTS);
    let instances = if app.shared.overview.instances.is_empty() {
        Span::styled("daemons: none alive (no heartbeat in 15 s)", OVERDUE_STYLE)
    } else {
        Span::raw(format!(
            "daemons: {} alive ({})",
            app.shared.overview.instances.len(),
            app.shared.overview.instances.join(", ")
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
    let Some(down) = &app.shared.redis_down else {
        return;
    };
    let showing = match app.shared.updated_ms {
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

/// A game id in at most `width` characters, keeping what tells ids apart: the whole id if it
/// fits; else without its `product.` prefix (the table says the product); else the start of
/// the UUIDv7 (its creation time) and as much of its random end as fits, joined by `…`; at
/// the narrowest, only the end. The detail view always shows the whole id.
pub fn abbreviate_id(id: &str, product: &str, width: usize) -> String {
    let length = id.chars().count();
    if length <= width {
        return id.to_string();
    }
    let rest = id
        .strip_prefix(product)
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(id);
    let chars: Vec<char> = rest.chars().collect();
    if chars.len() <= width {
        return rest.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let head = if width >= 16 { 8 } else { 0 };
    let tail = width.saturating_sub(head + 1);
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// `11-21 15:04:05` (UTC) of a Unix-millisecond time: month, day and clock.
pub fn rfc3339_short(ms: u64) -> String {
    // RFC 3339 `2026-11-21T15:04:05.123Z` → `11-21 15:04:05`
    let text = rfc3339(ms);
    match (text.get(5..10), text.get(11..19)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => text,
    }
}

/// `text` cut to `width` characters, `…` marking the cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Between a status message and the key hints.
const HINT_GAP: &str = "   ";
/// The key hint kept beside a status message too long for all of them.
const HELP_HINT: &str = "? help";

fn draw_status(app: &App, frame: &mut Frame, area: Rect) {
    if let Some(input) = &app.input {
        let prompt = match input.target {
            InputTarget::Command => ":",
            InputTarget::Filter(_) => "/",
        };
        let mut text = format!("{prompt}{}", input.text);
        let width = text.chars().count() as u16;
        if let Some(hint) = &input.hint {
            text.push_str(&format!("   {hint}"));
        }
        frame.render_widget(Paragraph::new(text), area);
        frame.set_cursor_position((area.x + width.min(area.width.saturating_sub(1)), area.y));
        return;
    }
    let hints = crate::app::key_hints(app.active);
    let line = match &app.status {
        Some(status) => {
            let style = match status.kind {
                StatusKind::Info => Style::new(),
                StatusKind::Good => Style::new().fg(Color::Green),
                StatusKind::Bad => Style::new().fg(Color::Red),
            };
            // The message first, then the key hints. When both do not fit, the message is
            // cut so that `? help` (which lists every key) stays on screen.
            let width = usize::from(area.width);
            let (message, hints) =
                if status.text.chars().count() + HINT_GAP.len() + hints.chars().count() <= width {
                    (status.text.clone(), hints)
                } else {
                    let room = width.saturating_sub(HINT_GAP.len() + HELP_HINT.len());
                    (truncate(&status.text, room), HELP_HINT)
                };
            Line::from(vec![
                Span::styled(message, style),
                Span::styled(format!("{HINT_GAP}{hints}"), DIM),
            ])
        }
        None => Line::styled(hints, DIM),
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// A centred rectangle of at most `width` × `height` inside `area`.
pub fn popup(area: Rect, width: u16, height: u16) -> Rect {
    area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    )
}
