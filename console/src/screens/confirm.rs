//! The force-delete confirmation: an overlay over the screen it was opened from, with the
//! reason for the audit entry (prefilled, editable: letters type into it) and Cancel focused
//! first. It captures every key while open.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::{Effect, OverlayReply};
use crate::app::StatusKind;
use crate::data::GameRow;
use crate::keymap::{Keymap, bind, ctrl, plain};
use crate::view::{DIM, SELECTED, popup};

/// The reason a force-delete from the console gets unless the operator edits it.
pub const DEFAULT_REASON: &str = "force-delete from the console";

/// What a key does in the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Move focus between Cancel and Delete.
    SwitchButton,
    /// Press the focused button.
    Press,
    /// Cancel.
    Cancel,
    /// Delete the reason's last character.
    Backspace,
    /// Clear the reason.
    ClearReason,
}

/// The dialog's keys (other keys type into the reason).
pub const KEYMAP: Keymap<Action> = Keymap {
    title: "Delete dialog",
    bindings: &[
        bind(
            &[
                plain(KeyCode::Tab),
                plain(KeyCode::BackTab),
                plain(KeyCode::Left),
                plain(KeyCode::Right),
            ],
            Action::SwitchButton,
            "move focus between Cancel and Delete",
        ),
        bind(
            &[plain(KeyCode::Enter)],
            Action::Press,
            "press the focused button (Cancel is focused first)",
        ),
        bind(&[plain(KeyCode::Esc)], Action::Cancel, "cancel"),
        bind(
            &[plain(KeyCode::Backspace)],
            Action::Backspace,
            "edit the reason (other keys type into it)",
        ),
        bind(&[ctrl('u')], Action::ClearReason, "clear the reason"),
    ],
};

/// The longest reason the dialog takes.
pub const MAX_REASON_CHARS: usize = 200;

/// Which dialog button has focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    /// Do nothing (focused first).
    Cancel,
    /// Delete.
    Delete,
}

/// The open force-delete confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    /// The game as shown when the dialog opened.
    pub game: GameRow,
    /// Focused button.
    pub focus: Button,
    /// Why, for the audit entry (prefilled with [`DEFAULT_REASON`]).
    pub reason: String,
    /// Who acts, as the audit entry will say.
    pub operator: String,
}

impl Confirm {
    /// The dialog for `game`, Cancel focused, the reason prefilled.
    pub fn new(game: GameRow, operator: String) -> Confirm {
        Confirm {
            game,
            focus: Button::Cancel,
            reason: DEFAULT_REASON.to_string(),
            operator,
        }
    }

    /// A key press while the dialog is open.
    pub fn on_key(&mut self, key: &KeyEvent) -> OverlayReply {
        match KEYMAP.lookup(key) {
            Some(Action::SwitchButton) => {
                self.focus = match self.focus {
                    Button::Cancel => Button::Delete,
                    Button::Delete => Button::Cancel,
                };
                OverlayReply::Open
            }
            Some(Action::Press) => {
                let id = self.game.id.clone();
                OverlayReply::Closed(vec![match self.focus {
                    Button::Cancel => {
                        Effect::Status(StatusKind::Info, format!("delete of {id} cancelled"))
                    }
                    Button::Delete => {
                        let reason = self.reason.trim();
                        let reason = if reason.is_empty() {
                            DEFAULT_REASON
                        } else {
                            reason
                        };
                        Effect::ForceDelete(id, reason.to_string())
                    }
                }])
            }
            Some(Action::Cancel) => OverlayReply::Closed(Vec::new()),
            Some(Action::Backspace) => {
                self.reason.pop();
                OverlayReply::Open
            }
            Some(Action::ClearReason) => {
                self.reason.clear();
                OverlayReply::Open
            }
            None => {
                if let KeyCode::Char(c) = key.code
                    && !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                    && self.reason.chars().count() < MAX_REASON_CHARS
                {
                    self.reason.push(c);
                }
                OverlayReply::Open
            }
        }
    }

    /// Draws the dialog over `area`.
    pub fn draw(&self, frame: &mut Frame, area: Rect) {
        let game = &self.game;
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
            Line::raw(format!(
                "The audit stream records it as done by {}, for this reason:",
                if self.operator.is_empty() {
                    "?"
                } else {
                    &self.operator
                }
            )),
            Line::from(vec![
                Span::styled("  reason ", DIM),
                Span::styled(
                    format!("{}▏", self.reason),
                    Style::new().add_modifier(Modifier::UNDERLINED),
                ),
            ]),
            Line::raw(""),
            Line::from(vec![
                Span::raw("        "),
                button("Cancel", self.focus == Button::Cancel),
                Span::raw("    "),
                button("Delete", self.focus == Button::Delete),
            ]),
            Line::styled(
                "type to edit the reason · Tab switches · Enter presses · Esc cancels",
                DIM,
            ),
        ];
        let rect = popup(area, 76, lines.len() as u16 + 2);
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
}
