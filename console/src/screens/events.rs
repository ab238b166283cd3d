//! The event tail: the newest events of every product stream, followed live or paused, with a
//! filter. It keeps collecting while another screen is shown.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::{Effect, Screen, ScreenId};
use crate::app::Shared;
use crate::data::TailEvent;
use crate::keymap::{HelpSection, Keymap, bind, ch, plain};
use crate::view::{DIM, NEAR_STYLE, clock, truncate};

/// What a key does on the event tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start typing a filter.
    Filter,
    /// Follow new events or pause.
    ToggleFollow,
    /// Scroll up one line (pauses).
    Up,
    /// Scroll down one line.
    Down,
    /// Clear the filter; without one, back to the games table.
    Back,
}

/// The event tail's keys.
pub const KEYMAP: Keymap<Action> = Keymap {
    title: "Event tail",
    bindings: &[
        bind(
            &[ch('/')],
            Action::Filter,
            "filter as you type (substring of any field)",
        ),
        bind(
            &[ch('f'), ch(' ')],
            Action::ToggleFollow,
            "follow new events / pause",
        ),
        bind(
            &[plain(KeyCode::Up), ch('k')],
            Action::Up,
            "scroll up (pauses)",
        ),
        bind(
            &[plain(KeyCode::Down), ch('j')],
            Action::Down,
            "scroll down",
        ),
        bind(
            &[plain(KeyCode::Esc)],
            Action::Back,
            "clear the filter, back to games",
        ),
    ],
};

/// The event tail's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTail {
    /// Recent events, oldest first, at most `capacity`.
    pub events: VecDeque<TailEvent>,
    /// Keep at most this many.
    pub capacity: usize,
    /// Follow new events (`false`: paused; new events wait in `held`).
    pub follow: bool,
    /// Events that arrived while paused.
    pub held: VecDeque<TailEvent>,
    /// Lines scrolled up from the newest (0 while following).
    pub scroll: usize,
    /// Lower-case filter.
    pub filter: String,
    /// The tail's latest error, if its last read failed.
    pub error: Option<String>,
}

impl EventTail {
    /// An empty tail keeping at most `capacity` events (at least one).
    pub fn new(capacity: usize) -> EventTail {
        EventTail {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            follow: true,
            held: VecDeque::new(),
            scroll: 0,
            filter: String::new(),
            error: None,
        }
    }

    fn push_bounded(buffer: &mut VecDeque<TailEvent>, capacity: usize, events: Vec<TailEvent>) {
        for event in events {
            if buffer.len() == capacity {
                buffer.pop_front();
            }
            buffer.push_back(event);
        }
    }

    /// The events that pass the filter, oldest first.
    pub fn visible(&self) -> Vec<&TailEvent> {
        self.events
            .iter()
            .filter(|e| e.matches(&self.filter))
            .collect()
    }

    /// New events from the tail task (held back while paused).
    pub fn on_events(&mut self, events: Vec<TailEvent>) {
        self.error = None;
        if self.follow {
            Self::push_bounded(&mut self.events, self.capacity, events);
        } else {
            Self::push_bounded(&mut self.held, self.capacity, events);
        }
    }

    /// The tail task could not read.
    pub fn on_failed(&mut self, error: String) {
        self.error = Some(error);
    }

    fn on_action(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Filter => vec![Effect::EditFilter(self.filter.clone())],
            Action::ToggleFollow => {
                self.follow = !self.follow;
                if self.follow {
                    let held: Vec<TailEvent> = self.held.drain(..).collect();
                    Self::push_bounded(&mut self.events, self.capacity, held);
                    self.scroll = 0;
                }
                Vec::new()
            }
            Action::Up => {
                self.follow = false;
                let max = self.visible().len().saturating_sub(1);
                self.scroll = (self.scroll + 1).min(max);
                Vec::new()
            }
            Action::Down => {
                self.scroll = self.scroll.saturating_sub(1);
                Vec::new()
            }
            Action::Back => {
                if self.filter.is_empty() {
                    return vec![Effect::Show(ScreenId::Games)];
                }
                self.filter.clear();
                Vec::new()
            }
        }
    }
}

impl Screen for EventTail {
    fn title(&self) -> String {
        "events".into()
    }

    fn help(&self) -> HelpSection {
        KEYMAP.help()
    }

    fn on_key(&mut self, key: &KeyEvent, _shared: &Shared) -> Option<Vec<Effect>> {
        let action = KEYMAP.lookup(key)?;
        Some(self.on_action(action))
    }

    fn apply_filter(&mut self, filter: String, _shared: &Shared) -> Vec<Effect> {
        self.filter = filter;
        self.scroll = 0;
        Vec::new()
    }

    fn draw(&self, _shared: &Shared, frame: &mut Frame, area: Rect) {
        let visible = self.visible();
        let mode = if self.follow {
            "following".to_string()
        } else {
            format!("PAUSED ({} new held, f to follow)", self.held.len())
        };
        let counts = if self.filter.is_empty() {
            format!("{} shown", visible.len())
        } else {
            format!(
                "{} of {} shown, {} hidden by filter \"{}\"",
                visible.len(),
                self.events.len(),
                self.events.len() - visible.len(),
                self.filter
            )
        };
        let mut title = format!(" events · {counts} · {mode} ");
        if let Some(error) = &self.error {
            title.push_str(&format!("· read failed: {error} "));
        }
        let block = Block::bordered().title(title);
        let inner = block.inner(area);
        let height = inner.height as usize;
        let end = visible.len().saturating_sub(self.scroll);
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
}
