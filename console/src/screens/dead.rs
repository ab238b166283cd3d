//! `:dead`: the newest dead letters of every product (events that could not be applied, with
//! why), newest first; Enter opens the game an entry names.

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row};

use super::list::{Action, BINDINGS, ListTable, StreamList, table_rows};
use super::{Effect, Screen};
use crate::app::{Command, Shared};
use crate::data::DeadLetter;
use crate::keymap::{HelpSection, Keymap};
use crate::view::{DIM, NEAR_STYLE, abbreviate_id, clock, human_duration};

/// The dead-letter view's keys.
pub const KEYMAP: Keymap<Action> = Keymap {
    title: "Dead letters (:dead)",
    bindings: BINDINGS,
};

/// The dead-letter view's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetters {
    /// The entries read.
    pub list: StreamList<DeadLetter>,
}

impl DeadLetters {
    /// The entries passing the filter, newest first.
    pub fn visible(&self) -> Vec<&DeadLetter> {
        self.list.visible(DeadLetter::matches)
    }
}

impl Screen for DeadLetters {
    fn title(&self) -> String {
        "dead letters".into()
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
            .map(|letter| letter.field("game_id").to_string());
        let page = table_rows(shared.main_height());
        Some(self.list.on_action(action, shown, page, game))
    }

    fn apply_filter(&mut self, filter: String, _shared: &Shared) -> Vec<Effect> {
        self.list.set_filter(filter);
        Vec::new()
    }

    fn on_refresh(&self) -> Vec<Effect> {
        vec![Effect::Run(Command::LoadDead)]
    }

    fn draw(&self, shared: &Shared, frame: &mut Frame, area: Rect) {
        let now_ms = shared.now_ms;
        let table = ListTable {
            name: "dead letters",
            noun: ("entry", "entries"),
            columns: ["dead at", "product", "type", "game", "reason"],
            widths: |game_width| {
                [
                    Constraint::Length(8),
                    Constraint::Max(10),
                    Constraint::Length(18),
                    Constraint::Length(game_width),
                    Constraint::Min(10),
                ]
            },
            narrow_game_width: 20,
            none: "no dead letters: every event was applied",
            row: &|letter: &DeadLetter, game_width| {
                Row::new(vec![
                    Cell::from(clock(letter.dead_at_ms())),
                    Cell::from(letter.product.clone()),
                    Cell::from(letter.field("type").to_string()),
                    Cell::from(abbreviate_id(
                        letter.field("game_id"),
                        &letter.product,
                        usize::from(game_width),
                    )),
                    Cell::from(letter.field("reason").to_string()).style(NEAR_STYLE),
                ])
            },
            footer: &|letter: &DeadLetter| footer(letter, now_ms),
        };
        self.list.draw(&self.visible(), &table, frame, area);
    }
}

/// The selected entry's detail: why it was not applied, how long ago, and its other fields.
fn footer(letter: &DeadLetter, now_ms: u64) -> Vec<Line<'static>> {
    let rest: Vec<String> = letter
        .fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "reason" | "dead_at"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vec![
        Line::from(vec![
            Span::styled("reason ", DIM),
            Span::raw(letter.field("reason").to_string()),
            Span::styled(
                format!(
                    "  ({} ago)",
                    human_duration(now_ms.saturating_sub(letter.dead_at_ms()))
                ),
                DIM,
            ),
        ]),
        Line::from(vec![
            Span::styled("fields ", DIM),
            Span::raw(rest.join(" ")),
        ]),
    ]
}
