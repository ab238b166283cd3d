//! The `?` help: an overlay listing the live key tables (the global keys, the shown screen's,
//! the command line's, the dialog's), generated from the same tables that dispatch keys.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::OverlayReply;
use crate::keymap::{HelpSection, Keymap, bind, ch, ctrl, plain};
use crate::view::{DIM, TITLE, popup};

/// What a key does in the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Close the help.
    Close,
    /// Scroll up one line.
    Up,
    /// Scroll down one line.
    Down,
    /// Scroll up one page.
    PageUp,
    /// Scroll down one page.
    PageDown,
    /// To the top.
    Top,
    /// To the bottom.
    Bottom,
}

/// The help's keys.
pub const KEYMAP: Keymap<Action> = Keymap {
    title: "Help",
    bindings: &[
        bind(
            &[plain(KeyCode::Esc), ch('?'), ch('q')],
            Action::Close,
            "close help",
        ),
        bind(&[plain(KeyCode::Up), ch('k')], Action::Up, "scroll up"),
        bind(
            &[plain(KeyCode::Down), ch('j')],
            Action::Down,
            "scroll down",
        ),
        bind(
            &[plain(KeyCode::PageUp), ctrl('u')],
            Action::PageUp,
            "page up",
        ),
        bind(
            &[plain(KeyCode::PageDown), ctrl('f'), ch(' ')],
            Action::PageDown,
            "page down",
        ),
        bind(&[plain(KeyCode::Home), ch('g')], Action::Top, "top"),
        bind(&[plain(KeyCode::End), ch('G')], Action::Bottom, "bottom"),
    ],
};

/// A key press while the help is open: only its own keys do anything. `scroll` is how far
/// the help is scrolled, `lines` how long it is, `height` the rows of the help's frame.
pub fn on_key(key: &KeyEvent, scroll: &mut u16, lines: usize, height: u16) -> OverlayReply {
    let page = height.saturating_sub(2).max(1);
    let max = max_scroll(lines, height);
    match KEYMAP.lookup(key) {
        Some(Action::Close) => return OverlayReply::Closed(Vec::new()),
        Some(Action::Up) => *scroll = scroll.saturating_sub(1),
        Some(Action::Down) => *scroll = (*scroll + 1).min(max),
        Some(Action::PageUp) => *scroll = scroll.saturating_sub(page),
        Some(Action::PageDown) => *scroll = (*scroll + page).min(max),
        Some(Action::Top) => *scroll = 0,
        Some(Action::Bottom) => *scroll = max,
        None => {}
    }
    OverlayReply::Open
}

/// How far `lines` lines can scroll in a frame `height` rows high (borders included).
pub fn max_scroll(lines: usize, height: u16) -> u16 {
    let inner = usize::from(height.saturating_sub(2));
    u16::try_from(lines.saturating_sub(inner)).unwrap_or(u16::MAX)
}

/// The widest help line that fits a terminal `columns` wide (the frame's borders take two).
pub fn text_width(columns: u16) -> usize {
    usize::from(columns.saturating_sub(2))
}

/// `text` cut at spaces into pieces at most `width` columns wide (a longer word stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    for word in text.split(' ') {
        let needed = piece.chars().count() + usize::from(!piece.is_empty()) + word.chars().count();
        if !piece.is_empty() && needed > width {
            pieces.push(std::mem::take(&mut piece));
        }
        if !piece.is_empty() {
            piece.push(' ');
        }
        piece.push_str(word);
    }
    pieces.push(piece);
    pieces
}

/// The narrowest description column: below it descriptions go on (cut) rather than wrap into
/// a column too thin to read.
const MIN_DESCRIPTION_WIDTH: usize = 16;

/// The help's lines for these tables, at most `width` columns wide ([`text_width`]): a
/// description too long for its column goes on under it, on lines of one span (a binding's
/// first line has two: keys and description).
pub fn lines(sections: &[HelpSection], width: usize) -> Vec<Line<'static>> {
    // The key column fits the longest key list, so no label runs into its description.
    let key_width = sections
        .iter()
        .flat_map(|section| &section.entries)
        .map(|entry| entry.keys.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let mut lines = Vec::new();
    for section in sections {
        if section.entries.is_empty() {
            continue;
        }
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(section.title, TITLE));
        let indent = key_width + 2;
        let description_width = width.saturating_sub(indent).max(MIN_DESCRIPTION_WIDTH);
        for entry in &section.entries {
            let mut pieces = wrap(entry.description, description_width).into_iter();
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  {:<key_width$}", entry.keys),
                    Style::new().fg(Color::Yellow),
                ),
                Span::raw(pieces.next().unwrap_or_default()),
            ]));
            lines.extend(pieces.map(|piece| Line::raw(format!("{:indent$}{piece}", ""))));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Rows: ▲ yellow = idle ≥ 80 % of the curation timeout; ✖ red = overdue",
        DIM,
    ));
    lines
}

/// Draws the help for these tables over `area`, scrolled down `scroll` lines.
pub fn draw(sections: &[HelpSection], scroll: u16, frame: &mut Frame, area: Rect) {
    let lines = lines(sections, text_width(area.width));
    let total = lines.len();
    let height = (total as u16).saturating_add(2);
    let width = (lines.iter().map(Line::width).max().unwrap_or(0) as u16).saturating_add(4);
    let rect = popup(area, width, height);
    let scroll = scroll.min(max_scroll(total, rect.height));
    let inner = usize::from(rect.height.saturating_sub(2));
    let title = if total > inner {
        format!(
            " help · lines {}-{} of {total} · j/k PgUp/PgDn scroll · Esc closes ",
            usize::from(scroll) + 1,
            (usize::from(scroll) + inner).min(total)
        )
    } else {
        " help · Esc/?/q to close ".to_string()
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((scroll, 0))
            .block(Block::bordered().title(title)),
        rect,
    );
}
