//! One game's detail, as an operator thinks of it: its state and what it means, server,
//! timings (created, creator joined, started, ending, last activity, with ages), roster,
//! reservations with their expiry, and its last events. Scrollable; reloaded with every
//! scheduled refresh while shown.

use crossterm::event::{KeyCode, KeyEvent};
use mm_common::GameState;
use mm_common::model::Game;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::{Effect, Screen, ScreenId};
use crate::app::{Command, Shared, StatusKind};
use crate::data::{GameDetail, GameRow, TailEvent};
use crate::keymap::{HelpSection, Keymap, bind, ch, ctrl, plain};
use crate::view::{CAUGHT_UP_STYLE, DIM, NEAR_STYLE, OVERDUE_STYLE, TITLE, clock, human_duration};

/// What a key does on the detail screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Force-delete this game (asks first).
    ForceDelete,
    /// Back to the games table.
    Back,
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
            "back to the previous screen",
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

/// The detail screen's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    /// The game shown.
    pub id: Option<String>,
    /// Its loaded detail (`None` while loading).
    pub detail: Option<GameDetail>,
    /// The latest read's error, if it failed.
    pub error: Option<String>,
    /// Lines scrolled down.
    pub scroll: u16,
    /// The screen to go back to.
    pub back_to: Option<ScreenId>,
}

impl Detail {
    /// Shows game `id` (opened from screen `from`): forgets the previous game and asks for
    /// this one.
    pub fn open(&mut self, id: String, from: ScreenId) -> Vec<Effect> {
        self.detail = None;
        self.error = None;
        self.scroll = 0;
        self.back_to = Some(from).filter(|s| *s != ScreenId::Detail);
        self.id = Some(id.clone());
        vec![Effect::Run(Command::LoadDetail { id })]
    }

    /// A game's detail was read (kept only if it is still the game shown).
    pub fn on_loaded(&mut self, detail: GameDetail) {
        if self.id.as_deref() == Some(detail.id.as_str()) {
            self.detail = Some(detail);
            self.error = None;
        }
    }

    /// Reading a game's detail failed: the last read stays, with the error.
    pub fn on_failed(&mut self, id: &str, error: &str) -> Vec<Effect> {
        if self.id.as_deref() == Some(id) {
            self.error = Some(error.to_string());
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
        let game = self.detail.as_ref()?.game.as_ref()?;
        Some(GameRow {
            id: id.to_string(),
            product: game.product.to_string(),
            state: Some(game.state()),
            players: game.players().len(),
            capacity: game.capacity,
            server_id: game.server_id.to_string(),
            creator_id: game.creator_id.to_string(),
            created_at_ms: game.created_at_ms,
            activity_ms: game.updated_at_ms,
        })
    }

    fn on_action(&mut self, action: Action, shared: &Shared) -> Vec<Effect> {
        let page = shared.main_height().saturating_sub(2).max(1);
        let max = self.max_scroll(shared);
        match action {
            Action::ForceDelete => return vec![Effect::ConfirmDelete(self.id.clone())],
            Action::Back => {
                self.id = None;
                self.detail = None;
                self.error = None;
                let back = self.back_to.take().unwrap_or(ScreenId::Games);
                return vec![Effect::Show(back)];
            }
            Action::Up => self.scroll = self.scroll.saturating_sub(1),
            Action::Down => self.scroll = (self.scroll + 1).min(max),
            Action::PageUp => self.scroll = self.scroll.saturating_sub(page),
            Action::PageDown => self.scroll = (self.scroll + page).min(max),
            Action::Top => self.scroll = 0,
            Action::Bottom => self.scroll = max,
        }
        Vec::new()
    }

    fn max_scroll(&self, shared: &Shared) -> u16 {
        let lines = self.lines(shared).len();
        let inner = usize::from(shared.main_height().saturating_sub(2));
        u16::try_from(lines.saturating_sub(inner)).unwrap_or(u16::MAX)
    }

    /// The detail's lines (pure: time is `shared.now_ms`).
    pub fn lines(&self, shared: &Shared) -> Vec<Line<'static>> {
        match &self.detail {
            None => vec![match &self.error {
                Some(error) => Line::styled(format!("not loaded yet: {error}"), OVERDUE_STYLE),
                None => Line::styled("loading…", DIM),
            }],
            Some(detail) => detail_lines(detail, shared.now_ms),
        }
    }
}

/// `15:04:05 (3m00s ago)`, or `in 30s` for a time ahead.
fn when(ms: u64, now_ms: u64) -> String {
    if ms > now_ms {
        format!("{} (in {})", clock(ms), human_duration(ms - now_ms))
    } else {
        format!("{} ({} ago)", clock(ms), human_duration(now_ms - ms))
    }
}

fn label(name: &str) -> Span<'static> {
    Span::styled(format!("  {name:<16}"), DIM)
}

fn section(title: String) -> Line<'static> {
    Line::styled(title, TITLE)
}

/// What each state means to an operator.
fn state_meaning(game: &Game) -> &'static str {
    match game.state() {
        GameState::Created => "pending: waiting for the creator to connect",
        GameState::CreatorJoined if game.creator_present() => "lobby: open, seats free",
        GameState::CreatorJoined => "lobby: the creator is not in it (not listed)",
        GameState::AllPlayersJoined => "lobby: full",
        GameState::InProgress => "active: the match is running",
        GameState::Ended => "ended (a tombstone, kept until it expires)",
    }
}

/// The time of the oldest event of this type among the game's recent events.
fn first_event(events: &[TailEvent], kind: &str) -> Option<u64> {
    events
        .iter()
        .filter(|e| e.field("type") == Some(kind))
        .map(TailEvent::entry_ms)
        .min()
}

fn detail_lines(detail: &GameDetail, now_ms: u64) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let Some(game) = &detail.game else {
        lines.push(Line::styled(
            "no record: the hash is gone (ended and expired, removed, or not a game id)",
            OVERDUE_STYLE,
        ));
        lines.push(Line::raw(""));
        push_events(&mut lines, detail);
        return lines;
    };
    let state_style = match game.state() {
        GameState::Ended => DIM,
        GameState::InProgress => Style::new().fg(ratatui::style::Color::Cyan),
        _ => CAUGHT_UP_STYLE,
    };
    lines.push(Line::from(vec![
        label("state"),
        Span::styled(game.state().to_string(), state_style),
        Span::styled(format!("  {}", state_meaning(game)), DIM),
    ]));
    if let Some(ending) = &game.ending {
        lines.push(Line::from(vec![
            label("ending"),
            Span::styled(
                format!(
                    "end step under way since {}: {}",
                    when(ending.since_ms, now_ms),
                    ending.reason
                ),
                NEAR_STYLE,
            ),
        ]));
    }
    if let Some(reason) = &game.end_reason {
        lines.push(Line::from(vec![
            label("end reason"),
            Span::raw(reason.clone()),
        ]));
    }
    lines.push(Line::from(vec![
        label("product"),
        Span::raw(game.product.to_string()),
    ]));
    let mut server = game.server_id.to_string();
    if let Some(region) = &game.region {
        server.push_str(&format!(" (region {region})"));
    }
    lines.push(Line::from(vec![label("server"), Span::raw(server)]));
    if !game.socket_url.is_empty() {
        lines.push(Line::from(vec![
            label("socket"),
            Span::raw(game.socket_url.clone()),
        ]));
    }
    lines.push(Line::from(vec![
        label("creator"),
        Span::raw(game.creator_id.to_string()),
    ]));
    if !game.settings.is_empty() && game.settings != "{}" {
        lines.push(Line::from(vec![
            label("settings"),
            Span::raw(game.settings.clone()),
        ]));
    }
    lines.push(Line::raw(""));

    lines.push(section("timings".into()));
    let unknown = || Span::styled("—", DIM);
    lines.push(Line::from(vec![
        label("created"),
        Span::raw(when(game.created_at_ms, now_ms)),
    ]));
    let joined = first_event(&detail.events, "creator_joined").or_else(|| {
        game.roster
            .get(&game.creator_id)
            .filter(|_| game.phase != mm_common::model::Phase::Created)
            .map(|entry| entry.entry_id.ms)
    });
    lines.push(Line::from(vec![
        label("creator joined"),
        joined.map_or_else(unknown, |ms| Span::raw(when(ms, now_ms))),
    ]));
    let started = first_event(&detail.events, "game_started");
    let started_span = match (started, game.phase) {
        (Some(ms), _) => Span::raw(when(ms, now_ms)),
        (None, mm_common::model::Phase::InProgress | mm_common::model::Phase::Ended) => {
            Span::styled("yes (its event is older than the events searched)", DIM)
        }
        (None, _) => unknown(),
    };
    lines.push(Line::from(vec![label("started"), started_span]));
    lines.push(Line::from(vec![
        label("last activity"),
        Span::raw(when(game.updated_at_ms, now_ms)),
    ]));
    lines.push(Line::raw(""));

    let present = game.players();
    lines.push(section(format!(
        "roster ({} present of {} seats, {} seats taken with reservations)",
        present.len(),
        game.capacity,
        game.seats_taken(now_ms)
    )));
    if game.roster.is_empty() {
        lines.push(Line::styled("  nobody has joined yet", DIM));
    }
    let mut roster: Vec<_> = game.roster.iter().collect();
    roster.sort_by_key(|(_, entry)| entry.entry_id);
    for (player, entry) in roster {
        let mut spans = vec![Span::raw(format!("  {:<24} ", player.to_string()))];
        if entry.present {
            spans.push(Span::styled("present", CAUGHT_UP_STYLE));
            spans.push(Span::styled(
                format!(" since {}", when(entry.entry_id.ms, now_ms)),
                DIM,
            ));
        } else {
            spans.push(Span::styled("left", NEAR_STYLE));
            spans.push(Span::styled(
                format!(" at {}", when(entry.entry_id.ms, now_ms)),
                DIM,
            ));
        }
        if *player == game.creator_id {
            spans.push(Span::styled(" (creator)", DIM));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::raw(""));

    lines.push(section(format!(
        "reservations ({})",
        game.reservations.len()
    )));
    if game.reservations.is_empty() {
        lines.push(Line::styled("  none", DIM));
    }
    for (player, expiry) in &game.reservations {
        let (text, style) = if *expiry > now_ms {
            (format!("expires {}", when(*expiry, now_ms)), Style::new())
        } else {
            (format!("expired {}", when(*expiry, now_ms)), DIM)
        };
        lines.push(Line::from(vec![
            Span::raw(format!("  {:<24} ", player.to_string())),
            Span::styled(text, style),
        ]));
    }
    lines.push(Line::raw(""));
    push_events(&mut lines, detail);
    lines
}

fn push_events(lines: &mut Vec<Line<'static>>, detail: &GameDetail) {
    lines.push(section(format!(
        "last events ({} found in the last {} stream entries, newest first)",
        detail.events.len(),
        detail.searched
    )));
    if detail.events.is_empty() {
        lines.push(Line::styled("  none", DIM));
    }
    for event in &detail.events {
        let rest: Vec<String> = event
            .fields
            .iter()
            .filter(|(k, _)| k != "type" && k != "game_id")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.push(Line::from(vec![
            Span::styled(format!("  {} ", clock(event.entry_ms())), DIM),
            Span::raw(format!("{:<18} ", event.field("type").unwrap_or("?"))),
            Span::styled(rest.join(" "), DIM),
        ]));
    }
}

impl Screen for Detail {
    fn title(&self) -> String {
        "detail".into()
    }

    fn help(&self) -> HelpSection {
        KEYMAP.help()
    }

    fn on_key(&mut self, key: &KeyEvent, shared: &Shared) -> Option<Vec<Effect>> {
        let action = KEYMAP.lookup(key)?;
        Some(self.on_action(action, shared))
    }

    fn on_refresh(&self) -> Vec<Effect> {
        match &self.id {
            Some(id) => vec![Effect::Run(Command::LoadDetail { id: id.clone() })],
            None => Vec::new(),
        }
    }

    fn draw(&self, shared: &Shared, frame: &mut Frame, area: Rect) {
        let id = self.id.as_deref().unwrap_or("?");
        let lines = self.lines(shared);
        let inner = usize::from(area.height.saturating_sub(2));
        let max = u16::try_from(lines.len().saturating_sub(inner)).unwrap_or(u16::MAX);
        let scroll = self.scroll.min(max);
        let mut title = format!(" game {id} ");
        if lines.len() > inner {
            title.push_str(&format!(
                "· lines {}-{} of {} ",
                usize::from(scroll) + 1,
                (usize::from(scroll) + inner).min(lines.len()),
                lines.len()
            ));
        }
        if let (Some(error), Some(_)) = (&self.error, &self.detail) {
            title.push_str(&format!("· read failed, showing the last read: {error} "));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .scroll((scroll, 0))
                .block(Block::bordered().title(title)),
            area,
        );
    }
}
