//! The `?` help: an overlay listing the live key tables (the global keys, the shown screen's,
//! the command line's, the dialog's), generated from the same tables that dispatch keys.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::OverlayReply;
use crate::keymap::{HelpSection, Keymap, bind, ch, plain};
use crate::view::{DIM, TITLE, popup};

/// What a key does in the help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Close the help.
    Close,
}

/// The help's keys.
pub const KEYMAP: Keymap<Action> = Keymap {
    title: "Help",
    bindings: &[bind(
        &[plain(KeyCode::Esc), ch('?'), ch('q')],
        Action::Close,
        "close help",
    )],
};

/// A key press while the help is open: only its own keys do anything.
pub fn on_key(key: &KeyEvent) -> OverlayReply {
    match KEYMAP.lookup(key) {
        Some(Action::Close) => OverlayReply::Closed(Vec::new()),
        None => OverlayReply::Open,
    }
}

/// The help's lines for these tables.
pub fn lines(sections: &[HelpSection]) -> Vec<Line<'static>> {
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
        for entry in &section.entries {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  {:<key_width$}", entry.keys),
                    Style::new().fg(Color::Yellow),
                ),
                Span::raw(entry.description),
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

/// Draws the help for these tables over `area`.
pub fn draw(sections: &[HelpSection], frame: &mut Frame, area: Rect) {
    let lines = lines(sections);
    let height = lines.len() as u16 + 2;
    let width = lines.iter().map(Line::width).max().unwrap_or(0) as u16 + 4;
    let rect = popup(area, width, height);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" help · Esc/?/q to close ")),
        rect,
    );
}
