//! `:dead`: the newest dead letters of every product (events that could not be applied, with
//! why), newest first; Enter opens the game an entry names.

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::list::{Action, BINDINGS, StreamList};
use super::{Effect, Screen};
use crate::app::{Command, Shared};
use crate::data::DeadLetter;
use crate::keymap::{HelpSection, Keymap};
use crate::view::{DIM, NEAR_STYLE, SELECTED, abbreviate_id, clock, human_duration};

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

/// Rows of the table in a main area of `height` lines (borders, column titles and the
/// three-line footer of the selected entry taken off).
fn table_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(2 + 1 + 4)).max(1)
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
        let visible = self.visible();
        let mut title = format!(
            " dead letters · {} · newest first ",
            self.list.counts(visible.len(), ("entry", "entries"))
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
        let game_width: u16 = if wide { 44 } else { 20 };
        let header = Row::new(
            ["dead at", "product", "type", "game", "reason"].map(|t| Cell::from(t).style(DIM)),
        );
        let rows_on_screen = usize::from(table_area.height.saturating_sub(1)).max(1);
        let first = self.list.first_row(rows_on_screen);
        let rows: Vec<Row> = visible
            .iter()
            .enumerate()
            .skip(first)
            .take(rows_on_screen)
            .map(|(i, letter)| {
                let row = Row::new(vec![
                    Cell::from(clock(letter.dead_at_ms())),
                    Cell::from(letter.product.clone()),
                    Cell::from(letter.field("type").to_string()),
                    Cell::from(abbreviate_id(
                        letter.field("game_id"),
                        &letter.product,
                        usize::from(game_width),
                    )),
                    Cell::from(letter.field("reason").to_string()).style(NEAR_STYLE),
                ]);
                if i == self.list.selected {
                    row.style(SELECTED)
                } else {
                    row
                }
            })
            .collect();
        let widths = [
            Constraint::Length(8),
            Constraint::Max(10),
            Constraint::Length(18),
            Constraint::Length(game_width),
            Constraint::Min(10),
        ];
        let empty = rows.is_empty();
        frame.render_widget(Table::new(rows, widths).header(header), table_area);
        if empty {
            let [_, message] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(table_area);
            frame.render_widget(
                Paragraph::new(
                    self.list
                        .empty_text("no dead letters: every event was applied"),
                )
                .style(DIM)
                .wrap(Wrap { trim: true }),
                message,
            );
        }
        let footer_lines = match visible.get(self.list.selected) {
            Some(letter) => {
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
                                human_duration(shared.now_ms.saturating_sub(letter.dead_at_ms()))
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
