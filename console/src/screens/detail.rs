//! One game's detail: every field of its hash and its recent events. Reloaded with every
//! scheduled refresh while shown.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::{Effect, Screen, ScreenId};
use crate::app::{Command, Shared, StatusKind};
use crate::data::{GameDetail, GameRow};
use crate::keymap::{HelpSection, Keymap, bind, ctrl, plain};
use crate::view::{DIM, OVERDUE_STYLE, TITLE, clock, human_duration};

/// What a key does on the detail screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Force-delete this game (asks first).
    ForceDelete,
    /// Back to the games table.
    Back,
}

/// The detail screen's keys.
pub const KEYMAP: Keymap<Action> = Keymap {
    title: "Game detail",
    bindings: &[
        bind(
            &[ctrl('d')],
            Action::ForceDelete,
            "force-delete this game (asks first)",
        ),
        bind(
            &[plain(KeyCode::Esc), plain(KeyCode::Backspace)],
            Action::Back,
            "back to the games table",
        ),
    ],
};

/// The detail screen's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    /// The game shown.
    pub id: Option<String>,
    /// Its loaded detail (`None` while loading).
    pub detail: Option<GameDetail>,
}

impl Detail {
    /// Shows game `id`: forgets the previous game and asks for this one.
    pub fn open(&mut self, id: String) -> Vec<Effect> {
        self.detail = None;
        self.id = Some(id.clone());
        vec![Effect::Run(Command::LoadDetail { id })]
    }

    /// A game's detail was read (kept only if it is still the game shown).
    pub fn on_loaded(&mut self, detail: GameDetail) {
        if self.id.as_deref() == Some(detail.id.as_str()) {
            self.detail = Some(detail);
        }
    }

    /// Reading a game's detail failed.
    pub fn on_failed(&self, id: &str, error: &str) -> Vec<Effect> {
        if self.id.as_deref() == Some(id) {
            vec![Effect::Status(
                StatusKind::Bad,
                format!("could not read {id}: {error}"),
            )]
        } else {
            Vec::new()
        }
    }

    /// Game `id` as a table row, built from its loaded record (for the delete dialog when the
    /// table no longer shows it).
    pub fn record_row(&self, id: &str) -> Option<GameRow> {
        let detail = self.detail.as_ref()?;
        let field = |name: &str| {
            detail
                .fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Some(GameRow {
            id: id.to_string(),
            product: field("product"),
            state: field("state").parse().ok(),
            players: 0,
            capacity: field("capacity").parse().unwrap_or(0),
            server_id: field("server_id"),
            creator_id: field("creator_id"),
            created_at_ms: field("created_at").parse().unwrap_or(0),
            activity_ms: field("updated_at").parse().unwrap_or(0),
        })
    }

    fn on_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::ForceDelete => vec![Effect::ConfirmDelete(self.id.clone())],
            Action::Back => {
                self.id = None;
                self.detail = None;
                vec![Effect::Show(ScreenId::Games)]
            }
        }
    }
}

impl Screen for Detail {
    fn title(&self) -> String {
        "detail".into()
    }

    fn help(&self) -> HelpSection {
        KEYMAP.help()
    }

    fn on_key(&mut self, key: &KeyEvent, _shared: &Shared) -> Option<Vec<Effect>> {
        let action = KEYMAP.lookup(key)?;
        Some(self.on_action(action))
    }

    fn on_refresh(&self) -> Vec<Effect> {
        match &self.id {
            Some(id) => vec![Effect::Run(Command::LoadDetail { id: id.clone() })],
            None => Vec::new(),
        }
    }

    fn draw(&self, shared: &Shared, frame: &mut Frame, area: Rect) {
        let id = self.id.as_deref().unwrap_or("?");
        let block = Block::bordered().title(format!(" game {id} · Esc back · Ctrl-D delete "));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let Some(detail) = &self.detail else {
            frame.render_widget(Paragraph::new("loading…").style(DIM), inner);
            return;
        };
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
                .areas(inner);
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
                        human_duration(shared.now_ms.saturating_sub(ms))
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
}
