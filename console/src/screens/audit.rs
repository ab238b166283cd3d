//! `:audit`: the operator actions of the audit stream `P:audit` (who force-deleted what, why,
//! and what came of it), newest first; Enter opens the game an entry names.

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use super::list::{Action, BINDINGS, ListTable, StreamList, table_rows};
use super::{Effect, Screen};
use crate::app::{Command, Shared};
use crate::data::AuditRow;
use crate::keymap::{HelpSection, Keymap};
use crate::view::{CAUGHT_UP_STYLE, DIM, NEAR_STYLE, abbreviate_id, rfc3339_short};

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
        let page = table_rows(shared.main_height());
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
        let table = ListTable {
            name: "audit",
            noun: ("action", "actions"),
            columns: ["when", "operator", "outcome", "game", "reason"],
            widths: |game_width| {
                [
                    Constraint::Length(14),
                    Constraint::Max(14),
                    Constraint::Max(32),
                    Constraint::Length(game_width),
                    Constraint::Min(10),
                ]
            },
            narrow_game_width: 18,
            none: "no operator actions recorded yet",
            row: &|row: &AuditRow, game_width| {
                let e = &row.entry;
                let outcome_style = if e.outcome == "deleted" {
                    CAUGHT_UP_STYLE
                } else {
                    NEAR_STYLE
                };
                Row::new(vec![
                    Cell::from(rfc3339_short(e.at_ms)),
                    Cell::from(e.operator.clone()),
                    Cell::from(e.outcome.clone()).style(outcome_style),
                    Cell::from(abbreviate_id(
                        &e.game_id,
                        &e.product,
                        usize::from(game_width),
                    )),
                    Cell::from(e.reason.clone()),
                ])
            },
            footer: &footer,
        };
        self.list.draw(&self.visible(), &table, frame, area);
    }
}

/// The selected action's detail: the game and its server, what was done, and what the
/// server said.
fn footer(row: &AuditRow) -> Vec<Line<'static>> {
    let e = &row.entry;
    let server = if e.server_id.is_empty() {
        "?"
    } else {
        &e.server_id
    };
    vec![
        Line::from(vec![
            Span::styled("game ", DIM),
            Span::raw(e.game_id.clone()),
            Span::styled(" on ", DIM),
            Span::raw(server.to_string()),
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
