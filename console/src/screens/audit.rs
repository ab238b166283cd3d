//! `:audit`: the operator actions of the audit stream `P:audit` (who force-deleted what, why,
//! and what came of it), newest first; Enter opens the game an entry names.

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::list::{Action, BINDINGS, StreamList};
use super::{Effect, Screen};
use crate::app::{Command, Shared};
use crate::data::AuditRow;
use crate::keymap::{HelpSection, Keymap};
use crate::view::{CAUGHT_UP_STYLE, DIM, NEAR_STYLE, SELECTED, abbreviate_id, rfc3339_short};

/// The audit view's keys.
pub const KEYMAP: Keymap<Action> = Keymap {
    title: "Audit stream (:audit)",
    bindings: BINDINGS,
};

/// The audit view's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// The entries read.
    pub list: StreamList<AuditRow>,
}

impl Audit {
    /// The entries passing the filter, newest first.
    pub fn visible(&self) -> Vec<&AuditRow> {
        self.list.visible(AuditRow::matches)
    }
}

impl Screen for Audit {
    fn title(&self) -> String {
        "audit".into()
    }

    fn help(&self) -> HelpSection {
        KEYMAP.help()
    }

    fn on_key(&mut self, key: &KeyEvent, shared: &Shared) -> Option<Vec<Effect>> {
        let action = KEYMAP.lookup(key)?;
        let visible = self.visible();
        let shown = visible.len();
        let game = visible
            .get(self.list.selected)
            .map(|row| row.entry.game_id.clone());
        let page = usize::from(shared.main_height().saturating_sub(7)).max(1);
        Some(self.list.on_action(action, shown, page, game))
    }

    fn apply_filter(&mut self, filter: String, _shared: &Shared) -> Vec<Effect> {
        self.list.set_filter(filter);
        Vec::new()
    }

    fn on_refresh(&self) -> Vec<Effect> {
        vec![Effect::Run(Command::LoadAudit)]
    }

    fn draw(&self, _shared: &Shared, frame: &mut Frame, area: Rect) {
        let visible = self.visible();
        let mut title = format!(
            " audit · {} · newest first ",
            self.list.counts(visible.len(), ("action", "actions"))
        );
        if let (Some(error), Some(_)) = (&self.list.error, &self.list.items) {
            title.push_str(&format!("· read failed, showing the last read: {error} "));
        }
        let block = Block::bordered().title(title);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let [table_area, footer] =
            Layout::vertical([Constraint::Min(2), Constraint::Length(4)]).areas(inner);
        let wide = inner.width >= 120;
        let game_width: u16 = if wide { 44 } else { 18 };
        let header = Row::new(
            ["when", "operator", "outcome", "game", "reason"].map(|t| Cell::from(t).style(DIM)),
        );
        let rows_on_screen = usize::from(table_area.height.saturating_sub(1)).max(1);
        let first = self.list.first_row(rows_on_screen);
        let rows: Vec<Row> = visible
            .iter()
            .enumerate()
            .skip(first)
            .take(rows_on_screen)
            .map(|(i, row)| {
                let e = &row.entry;
                let outcome_style = if e.outcome == "deleted" {
                    CAUGHT_UP_STYLE
                } else {
                    NEAR_STYLE
                };
                let line = Row::new(vec![
                    Cell::from(rfc3339_short(e.at_ms)),
                    Cell::from(e.operator.clone()),
                    Cell::from(e.outcome.clone()).style(outcome_style),
                    Cell::from(abbreviate_id(
                        &e.game_id,
                        &e.product,
                        usize::from(game_width),
                    )),
                    Cell::from(e.reason.clone()),
                ]);
                if i == self.list.selected {
                    line.style(SELECTED)
                } else {
                    line
                }
            })
            .collect();
        let widths = [
            Constraint::Length(14),
            Constraint::Max(14),
            Constraint::Max(32),
            Constraint::Length(game_width),
            Constraint::Min(10),
        ];
        let empty = rows.is_empty();
        frame.render_widget(Table::new(rows, widths).header(header), table_area);
        if empty {
            let [_, message] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(table_area);
            frame.render_widget(
                Paragraph::new(self.list.empty_text("no operator actions recorded yet"))
                    .style(DIM)
                    .wrap(Wrap { trim: true }),
                message,
            );
        }
        let footer_lines = match visible.get(self.list.selected) {
            Some(row) => {
                let e = &row.entry;
                vec![
                    Line::from(vec![
                        Span::styled("game ", DIM),
                        Span::raw(e.game_id.clone()),
                        Span::styled(" on ", DIM),
                        Span::raw(
                            if e.server_id.is_empty() {
                                "?"
                            } else {
                                &e.server_id
                            }
                            .to_string(),
                        ),
                        Span::styled(
                            format!(
                                "  {} · server {} · {}",
                                e.action,
                                if e.server_reached {
                                    "reached"
                                } else {
                                    "not reached"
                                },
                                if e.forced { "forced" } else { "not forced" }
                            ),
                            DIM,
                        ),
                    ]),
                    Line::from(vec![
                        Span::styled("detail ", DIM),
                        Span::styled(
                            if e.detail.is_empty() {
                                "—".to_string()
                            } else {
                                e.detail.clone()
                            },
                            Style::new(),
                        ),
                    ]),
                ]
            }
            None => Vec::new(),
        };
        frame.render_widget(
            Paragraph::new(footer_lines)
                .block(Block::new().borders(Borders::TOP).border_style(DIM))
                .wrap(Wrap { trim: true }),
            footer,
        );
    }
}
