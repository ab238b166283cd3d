//! The TUI's state and its pure update function (The Elm Architecture).
//!
//! One loop owns [`App`]. Everything that happens arrives as a [`Msg`] (a key, a tick, data
//! from a background task); [`update`] changes the state and returns the [`Command`]s to run
//! (fetch, delete, quit). `update` does no I/O and reads no clock: time comes in with
//! [`Msg::Tick`], so every behaviour is testable without a terminal or Redis.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};
use mm_common::ProductId;
use mm_common::admin::{ForceDeleteOutcome, ForceDeleteReport};
use mm_common::model::GameSet;

use crate::data::{GameDetail, GameRow, GamesPage, Overview, PageQuery, Snapshot, TailEvent};
use crate::keymap::{self, Action, Context};

/// Lines of the screen that are not table rows: title, header, banner, borders, column
/// titles, status line. The view uses the same function, so a page is exactly what fits.
pub fn chrome_height(app: &App) -> u16 {
    let title = 1;
    let header = header_height(app);
    let banner = u16::from(app.redis_down.is_some()) * 2;
    let table_frame = 2 + 1; // borders + column titles
    let status = 1;
    title + header + banner + table_frame + status
}

/// Header lines: column titles, one line per product (at most [`MAX_HEADER_PRODUCTS`]), and the
/// daemon line.
pub fn header_height(app: &App) -> u16 {
    let products = app.overview.products.len().clamp(1, MAX_HEADER_PRODUCTS) as u16;
    1 + products + 1
}

/// Products listed in the header before it says "+N more".
pub const MAX_HEADER_PRODUCTS: usize = 6;

/// Curation thresholds per set, in milliseconds (`curation.*_timeout_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// `curation.pending_timeout_secs`.
    pub pending_ms: u64,
    /// `curation.lobby_idle_timeout_secs`.
    pub lobby_ms: u64,
    /// `curation.active_idle_timeout_secs`.
    pub active_ms: u64,
}

impl Thresholds {
    /// The threshold of `set`.
    pub fn of(&self, set: GameSet) -> u64 {
        match set {
            GameSet::Pending => self.pending_ms,
            GameSet::Lobby => self.lobby_ms,
            GameSet::Active => self.active_ms,
        }
    }
}

/// How close a game is to being curated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// Under 80 % of the threshold.
    Fresh,
    /// At least 80 % of the threshold: curated soon.
    Near,
    /// Past the threshold: due for curation.
    Overdue,
}

impl Staleness {
    /// Classifies an idle time against a threshold.
    pub fn of(idle_ms: u64, threshold_ms: u64) -> Staleness {
        if threshold_ms == 0 {
            return Staleness::Fresh;
        }
        if idle_ms >= threshold_ms {
            Staleness::Overdue
        } else if idle_ms.saturating_mul(5) >= threshold_ms.saturating_mul(4) {
            Staleness::Near
        } else {
            Staleness::Fresh
        }
    }

    /// The symbol shown next to the row (colour is never the only signal).
    pub fn symbol(self) -> &'static str {
        match self {
            Staleness::Fresh => " ",
            Staleness::Near => "▲",
            Staleness::Overdue => "✖",
        }
    }
}

/// The screen shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The games of one set.
    Games(GameSet),
    /// The event tail.
    Events,
    /// One game.
    Detail,
}

/// Sort key of the games table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Last activity (the sets' score; what curation judges). Ordered by Redis.
    Activity,
    /// Creation time. Redis has no index on it: rows of the page on screen are ordered.
    Age,
}

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
}

/// What is being typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// The games filter.
    GamesFilter,
    /// The event-tail filter.
    EventsFilter,
    /// A `:` command.
    Command,
}

/// A line being typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// What it is for.
    pub kind: InputKind,
    /// The text so far.
    pub text: String,
}

/// Redis could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisDown {
    /// First failure of this outage (Unix ms).
    pub since_ms: u64,
    /// The latest error.
    pub error: String,
}

/// How a status message should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// Neutral.
    Info,
    /// Success.
    Good,
    /// Failure or refusal.
    Bad,
}

/// The status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The text.
    pub text: String,
    /// Its look.
    pub kind: StatusKind,
}

/// The event tail's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
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

impl Tail {
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
}

/// Everything the console knows and shows.
#[derive(Debug, Clone)]
pub struct App {
    /// The clock, as of the last tick (Unix ms).
    pub now_ms: u64,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// The screen shown.
    pub screen: Screen,
    /// The games set last shown (where Esc from detail/events goes back to).
    pub set: GameSet,
    /// Help overlay open.
    pub help: bool,
    /// Text being typed.
    pub input: Option<Input>,
    /// Open delete confirmation.
    pub confirm: Option<Confirm>,
    /// Products known, sorted.
    pub products: Vec<ProductId>,
    /// Index into `products` of the table's product.
    pub product_index: usize,
    /// Header data.
    pub overview: Overview,
    /// The table's latest window.
    pub page: Option<GamesPage>,
    /// Selected row, as an index into the whole (filtered, sorted) set.
    pub selected: u64,
    /// First row of the window on screen.
    pub offset: u64,
    /// Sort key.
    pub sort: SortKey,
    /// Reverse direction (activity: newest first; age: youngest first).
    pub descending: bool,
    /// Lower-case games filter.
    pub filter: String,
    /// The detail screen's game id and data.
    pub detail_id: Option<String>,
    /// Loaded detail.
    pub detail: Option<GameDetail>,
    /// The event tail.
    pub tail: Tail,
    /// Latest successful refresh (Unix ms).
    pub updated_ms: Option<u64>,
    /// Set while Redis cannot be read.
    pub redis_down: Option<RedisDown>,
    /// The status line.
    pub status: Option<Status>,
    /// Force-delete disabled (`--read-only` or `console.read_only`).
    pub read_only: bool,
    /// Curation thresholds.
    pub thresholds: Thresholds,
    /// Refresh interval.
    pub refresh_ms: u64,
    /// Generation of the newest refresh asked for; older answers are ignored.
    pub generation: u64,
    /// Whether the newest refresh is still running.
    pub refresh_in_flight: bool,
    /// When the newest refresh was asked for.
    pub refresh_started_ms: u64,
    /// Deletes running (game ids).
    pub deletes_in_flight: Vec<String>,
    /// Set when the console should exit.
    pub quit: bool,
}

/// What happened.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key was pressed.
    Key(KeyEvent),
    /// The terminal was resized.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// Time passed.
    Tick {
        /// Now (Unix ms).
        now_ms: u64,
    },
    /// A refresh finished.
    Refreshed {
        /// Its generation.
        generation: u64,
        /// The data.
        snapshot: Box<Snapshot>,
        /// When it finished (Unix ms).
        at_ms: u64,
    },
    /// A refresh failed.
    RefreshFailed {
        /// Its generation.
        generation: u64,
        /// Why.
        error: String,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// A game's detail was read.
    DetailLoaded(Box<GameDetail>),
    /// Reading a game's detail failed.
    DetailFailed {
        /// The game.
        id: String,
        /// Why.
        error: String,
    },
    /// New events from the tail task.
    TailEvents(Vec<TailEvent>),
    /// The tail task could not read.
    TailFailed {
        /// Why.
        error: String,
    },
    /// A force-delete finished.
    DeleteFinished {
        /// The game.
        game_id: String,
        /// Its report, or why it could not run.
        result: Result<ForceDeleteReport, String>,
    },
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Read the header data and this window (tagged with a generation).
    Refresh {
        /// Generation.
        generation: u64,
        /// The table window, if a product is known.
        query: Option<PageQuery>,
    },
    /// Read one game's detail.
    LoadDetail {
        /// The game.
        id: String,
    },
    /// Run the force-delete flow on a game.
    ForceDelete {
        /// The game.
        id: String,
    },
    /// Leave.
    Quit,
}

impl App {
    /// A fresh console state.
    pub fn new(
        now_ms: u64,
        thresholds: Thresholds,
        refresh_ms: u64,
        tail_len: usize,
        read_only: bool,
    ) -> App {
        App {
            now_ms,
            size: (120, 40),
            screen: Screen::Games(GameSet::Lobby),
            set: GameSet::Lobby,
            help: false,
            input: None,
            confirm: None,
            products: Vec::new(),
            product_index: 0,
            overview: Overview::default(),
            page: None,
            selected: 0,
            offset: 0,
            sort: SortKey::Activity,
            descending: false,
            filter: String::new(),
            detail_id: None,
            detail: None,
            tail: Tail {
                events: VecDeque::new(),
                capacity: tail_len.max(1),
                follow: true,
                held: VecDeque::new(),
                scroll: 0,
                filter: String::new(),
                error: None,
            },
            updated_ms: None,
            redis_down: None,
            status: None,
            read_only,
            thresholds,
            refresh_ms: refresh_ms.max(1),
            generation: 0,
            refresh_in_flight: false,
            refresh_started_ms: 0,
            deletes_in_flight: Vec::new(),
            quit: false,
        }
    }

    /// The product the table shows.
    pub fn product(&self) -> Option<&ProductId> {
        self.products.get(self.product_index)
    }

    /// Table rows that fit on screen.
    pub fn page_rows(&self) -> u64 {
        u64::from(self.size.1.saturating_sub(chrome_height(self)).max(1))
    }

    /// Rows in the current (filtered) set, as of the last window.
    pub fn total(&self) -> u64 {
        self.page.as_ref().map_or(0, |p| p.total)
    }

    /// The rows on screen in display order (the window, sorted by age when asked).
    pub fn visible_rows(&self) -> Vec<&GameRow> {
        let Some(page) = &self.page else {
            return Vec::new();
        };
        let mut rows: Vec<&GameRow> = page.rows.iter().collect();
        if self.sort == SortKey::Age {
            rows.sort_by_key(|r| r.created_at_ms);
            if self.descending {
                rows.reverse();
            }
        }
        rows
    }

    /// The selected game, if it is on screen.
    pub fn selected_row(&self) -> Option<&GameRow> {
        let index = self.selected.checked_sub(self.offset)?;
        self.visible_rows().get(index as usize).copied()
    }

    /// The query for the table's current window.
    pub fn page_query(&self) -> Option<PageQuery> {
        let product = self.product()?.clone();
        Some(PageQuery {
            product,
            set: self.set,
            offset: self.offset,
            count: self.page_rows(),
            newest_first: self.sort == SortKey::Activity && self.descending,
            filter: self.filter.clone(),
        })
    }

    fn context(&self) -> Context {
        if self.confirm.is_some() {
            Context::Confirm
        } else if self.input.is_some() {
            Context::Input
        } else if self.help {
            Context::Help
        } else {
            match self.screen {
                Screen::Games(_) => Context::Games,
                Screen::Events => Context::Events,
                Screen::Detail => Context::Detail,
            }
        }
    }

    fn set_status(&mut self, kind: StatusKind, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            kind,
        });
    }

    /// A new refresh, superseding any running one.
    fn refresh(&mut self) -> Command {
        self.generation += 1;
        self.refresh_in_flight = true;
        self.refresh_started_ms = self.now_ms;
        Command::Refresh {
            generation: self.generation,
            query: self.page_query(),
        }
    }

    /// Keeps the selection inside the set and the window around the selection. Returns
    /// whether the window moved (a fetch is needed).
    fn scroll_to_selection(&mut self) -> bool {
        let total = self.total();
        if total == 0 {
            self.selected = 0;
        } else if self.selected >= total {
            self.selected = total - 1;
        }
        let rows = self.page_rows();
        let old = self.offset;
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + rows {
            self.offset = self.selected + 1 - rows;
        }
        self.offset != old
    }

    fn reset_table(&mut self) {
        self.selected = 0;
        self.offset = 0;
        self.page = None;
    }
}

/// Applies one message; returns the work to run.
pub fn update(app: &mut App, msg: Msg) -> Vec<Command> {
    match msg {
        Msg::Key(key) => {
            if key.kind == KeyEventKind::Release {
                return Vec::new();
            }
            on_key(app, key)
        }
        Msg::Resize { width, height } => {
            let old_rows = app.page_rows();
            app.size = (width, height);
            if app.page_rows() != old_rows {
                app.scroll_to_selection();
                vec![app.refresh()]
            } else {
                Vec::new()
            }
        }
        Msg::Tick { now_ms } => {
            app.now_ms = now_ms;
            let due = app
                .updated_ms
                .is_none_or(|at| now_ms >= at + app.refresh_ms)
                && now_ms >= app.refresh_started_ms + app.refresh_ms;
            let mut commands = Vec::new();
            if !app.refresh_in_flight && due {
                commands.push(app.refresh());
                if let (Screen::Detail, Some(id)) = (app.screen, &app.detail_id) {
                    commands.push(Command::LoadDetail { id: id.clone() });
                }
            }
            commands
        }
        Msg::Refreshed {
            generation,
            snapshot,
            at_ms,
        } => {
            if generation != app.generation {
                return Vec::new();
            }
            app.refresh_in_flight = false;
            app.updated_ms = Some(at_ms);
            app.redis_down = None;
            let current = app.product().cloned();
            app.products = snapshot.products;
            app.product_index = current
                .and_then(|p| app.products.iter().position(|q| *q == p))
                .unwrap_or(0);
            app.overview = snapshot.overview;
            let page_matches = snapshot
                .page
                .as_ref()
                .is_some_and(|page| Some(&page.query.product) == app.product());
            app.page = if page_matches { snapshot.page } else { None };
            let moved = app.scroll_to_selection();
            if moved || (!page_matches && app.product().is_some()) {
                return vec![app.refresh()];
            }
            Vec::new()
        }
        Msg::RefreshFailed {
            generation,
            error,
            at_ms,
        } => {
            if generation != app.generation {
                return Vec::new();
            }
            app.refresh_in_flight = false;
            let since_ms = app.redis_down.as_ref().map_or(at_ms, |d| d.since_ms);
            app.redis_down = Some(RedisDown { since_ms, error });
            Vec::new()
        }
        Msg::DetailLoaded(detail) => {
            if app.detail_id.as_deref() == Some(detail.id.as_str()) {
                app.detail = Some(*detail);
            }
            Vec::new()
        }
        Msg::DetailFailed { id, error } => {
            if app.detail_id.as_deref() == Some(id.as_str()) {
                app.set_status(StatusKind::Bad, format!("could not read {id}: {error}"));
            }
            Vec::new()
        }
        Msg::TailEvents(events) => {
            app.tail.error = None;
            let capacity = app.tail.capacity;
            if app.tail.follow {
                Tail::push_bounded(&mut app.tail.events, capacity, events);
            } else {
                Tail::push_bounded(&mut app.tail.held, capacity, events);
            }
            Vec::new()
        }
        Msg::TailFailed { error } => {
            app.tail.error = Some(error);
            Vec::new()
        }
        Msg::DeleteFinished { game_id, result } => {
            app.deletes_in_flight.retain(|id| *id != game_id);
            let (kind, text) = describe_delete(&game_id, &result);
            app.set_status(kind, text);
            vec![app.refresh()]
        }
    }
}

/// The status line for a finished delete.
pub fn describe_delete(
    game_id: &str,
    result: &Result<ForceDeleteReport, String>,
) -> (StatusKind, String) {
    match result {
        Err(error) => (StatusKind::Bad, format!("delete {game_id} failed: {error}")),
        Ok(report) => {
            let server = report.server_id.as_deref().unwrap_or("?");
            match report.outcome {
                ForceDeleteOutcome::Deleted => (
                    StatusKind::Good,
                    if report.server_had_game == Some(false) {
                        format!(
                            "deleted {game_id} (server {server} no longer had it); record removed"
                        )
                    } else {
                        format!("deleted {game_id} on {server}; record removed")
                    },
                ),
                ForceDeleteOutcome::NotFound => (
                    StatusKind::Bad,
                    format!("{game_id}: no such live game (already ended or removed)"),
                ),
                ForceDeleteOutcome::ServerRefused | ForceDeleteOutcome::ServerUnreachable => {
                    let what = if report.outcome == ForceDeleteOutcome::ServerRefused {
                        "server refused"
                    } else {
                        "server unreachable"
                    };
                    let record = if report.record_removed {
                        "record removed anyway"
                    } else {
                        "record kept"
                    };
                    (
                        StatusKind::Bad,
                        format!(
                            "{what}, {record}: {game_id}: {}",
                            report.error.as_deref().unwrap_or("no detail")
                        ),
                    )
                }
            }
        }
    }
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Command> {
    let context = app.context();
    let action = keymap::lookup(context, &key);
    // Ctrl-C quits from anywhere, dialogs and text fields included.
    if key.code == KeyCode::Char('c')
        && key
            .modifiers
            .contains(crossterm::event::KeyModifiers::CONTROL)
    {
        app.quit = true;
        return vec![Command::Quit];
    }
    match context {
        Context::Confirm => on_confirm_key(app, action),
        Context::Input => on_input_key(app, action, key),
        Context::Help => {
            if action == Some(Action::CloseHelp) {
                app.help = false;
            }
            Vec::new()
        }
        _ => match action {
            Some(action) => on_action(app, action),
            None => Vec::new(),
        },
    }
}

fn on_confirm_key(app: &mut App, action: Option<Action>) -> Vec<Command> {
    let Some(confirm) = app.confirm.as_mut() else {
        return Vec::new();
    };
    match action {
        Some(Action::SwitchButton) => {
            confirm.focus = match confirm.focus {
                Button::Cancel => Button::Delete,
                Button::Delete => Button::Cancel,
            };
            Vec::new()
        }
        Some(Action::PressButton) => {
            let confirm = app.confirm.take().expect("checked above");
            if confirm.focus == Button::Cancel {
                app.set_status(
                    StatusKind::Info,
                    format!("delete of {} cancelled", confirm.game.id),
                );
                return Vec::new();
            }
            let id = confirm.game.id;
            app.deletes_in_flight.push(id.clone());
            app.set_status(StatusKind::Info, format!("deleting {id}…"));
            vec![Command::ForceDelete { id }]
        }
        Some(Action::CancelDialog) => {
            app.confirm = None;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn on_input_key(app: &mut App, action: Option<Action>, key: KeyEvent) -> Vec<Command> {
    let Some(input) = app.input.as_mut() else {
        return Vec::new();
    };
    match action {
        Some(Action::Backspace) => {
            input.text.pop();
            Vec::new()
        }
        Some(Action::CancelInput) => {
            app.input = None;
            Vec::new()
        }
        Some(Action::Submit) => {
            let input = app.input.take().expect("checked above");
            let text = input.text.trim().to_string();
            match input.kind {
                InputKind::GamesFilter => {
                    app.filter = text.to_lowercase();
                    app.reset_table();
                    vec![app.refresh()]
                }
                InputKind::EventsFilter => {
                    app.tail.filter = text.to_lowercase();
                    app.tail.scroll = 0;
                    Vec::new()
                }
                InputKind::Command => run_command_line(app, &text),
            }
        }
        _ => {
            if let KeyCode::Char(c) = key.code
                && !key
                    .modifiers
                    .contains(crossterm::event::KeyModifiers::CONTROL)
            {
                input.text.push(c);
            }
            Vec::new()
        }
    }
}

/// The `:` commands.
pub const COMMANDS: &[(&str, &str)] = &[
    ("pending", "pending games"),
    ("lobby", "lobby games"),
    ("active", "active games"),
    ("events", "event tail"),
    ("help", "this help"),
    ("q", "quit (also :quit)"),
];

fn run_command_line(app: &mut App, text: &str) -> Vec<Command> {
    let command = text.trim_start_matches(':');
    match command {
        "pending" => on_action(app, Action::ShowPending),
        "lobby" => on_action(app, Action::ShowLobby),
        "active" => on_action(app, Action::ShowActive),
        "events" => on_action(app, Action::ShowEvents),
        "help" => on_action(app, Action::Help),
        "q" | "quit" => on_action(app, Action::Quit),
        "" => Vec::new(),
        other => {
            let known: Vec<&str> = COMMANDS.iter().map(|(name, _)| *name).collect();
            app.set_status(
                StatusKind::Bad,
                format!("unknown command :{other} (known: :{})", known.join(" :")),
            );
            Vec::new()
        }
    }
}

fn show_set(app: &mut App, set: GameSet) -> Vec<Command> {
    let changed = app.set != set;
    app.set = set;
    app.screen = Screen::Games(set);
    if changed {
        app.reset_table();
    }
    vec![app.refresh()]
}

fn move_selection(app: &mut App, to: u64) -> Vec<Command> {
    app.selected = to;
    if app.scroll_to_selection() {
        vec![app.refresh()]
    } else {
        Vec::new()
    }
}

fn on_action(app: &mut App, action: Action) -> Vec<Command> {
    let rows = app.page_rows();
    match (app.screen, action) {
        (_, Action::Quit) => {
            app.quit = true;
            vec![Command::Quit]
        }
        (_, Action::Help) => {
            app.help = true;
            Vec::new()
        }
        (_, Action::CommandLine) => {
            app.input = Some(Input {
                kind: InputKind::Command,
                text: String::new(),
            });
            Vec::new()
        }
        (_, Action::ShowPending) => show_set(app, GameSet::Pending),
        (_, Action::ShowLobby) => show_set(app, GameSet::Lobby),
        (_, Action::ShowActive) => show_set(app, GameSet::Active),
        (_, Action::ShowEvents) => {
            app.screen = Screen::Events;
            Vec::new()
        }
        (_, Action::RefreshNow) => vec![app.refresh()],
        (Screen::Games(_), Action::Filter) => {
            app.input = Some(Input {
                kind: InputKind::GamesFilter,
                text: app.filter.clone(),
            });
            Vec::new()
        }
        (Screen::Events, Action::Filter) => {
            app.input = Some(Input {
                kind: InputKind::EventsFilter,
                text: app.tail.filter.clone(),
            });
            Vec::new()
        }
        (Screen::Games(_), Action::NextProduct | Action::PrevProduct) => {
            let n = app.products.len();
            if n > 1 {
                app.product_index = if action == Action::NextProduct {
                    (app.product_index + 1) % n
                } else {
                    (app.product_index + n - 1) % n
                };
                app.reset_table();
                return vec![app.refresh()];
            }
            Vec::new()
        }
        (Screen::Games(_), Action::Up) => move_selection(app, app.selected.saturating_sub(1)),
        (Screen::Games(_), Action::Down) => move_selection(app, app.selected + 1),
        (Screen::Games(_), Action::PageUp) => {
            move_selection(app, app.selected.saturating_sub(rows))
        }
        (Screen::Games(_), Action::PageDown) => move_selection(app, app.selected + rows),
        (Screen::Games(_), Action::Top) => move_selection(app, 0),
        (Screen::Games(_), Action::Bottom) => move_selection(app, app.total().saturating_sub(1)),
        (Screen::Games(_), Action::ToggleSort) => {
            app.sort = match app.sort {
                SortKey::Activity => SortKey::Age,
                SortKey::Age => SortKey::Activity,
            };
            app.descending = false;
            app.reset_table();
            vec![app.refresh()]
        }
        (Screen::Games(_), Action::ReverseSort) => {
            app.descending = !app.descending;
            app.reset_table();
            vec![app.refresh()]
        }
        (Screen::Games(_), Action::OpenDetail) => {
            let Some(id) = app.selected_row().map(|r| r.id.clone()) else {
                return Vec::new();
            };
            app.screen = Screen::Detail;
            app.detail = None;
            app.detail_id = Some(id.clone());
            vec![Command::LoadDetail { id }]
        }
        (Screen::Games(_) | Screen::Detail, Action::ForceDelete) => {
            if app.read_only {
                app.set_status(
                    StatusKind::Bad,
                    "read-only console (--read-only or console.read_only): force-delete is disabled",
                );
                return Vec::new();
            }
            let game = match app.screen {
                Screen::Detail => app.detail_id.as_ref().and_then(|id| detail_row(app, id)),
                _ => app.selected_row().cloned(),
            };
            match game {
                Some(game) => {
                    app.confirm = Some(Confirm {
                        game,
                        focus: Button::Cancel,
                    });
                }
                None => app.set_status(StatusKind::Bad, "no game selected"),
            }
            Vec::new()
        }
        (Screen::Games(_), Action::Back) => {
            if !app.filter.is_empty() {
                app.filter.clear();
                app.reset_table();
                return vec![app.refresh()];
            }
            Vec::new()
        }
        (Screen::Events, Action::ToggleFollow) => {
            app.tail.follow = !app.tail.follow;
            if app.tail.follow {
                let held: Vec<TailEvent> = app.tail.held.drain(..).collect();
                let capacity = app.tail.capacity;
                Tail::push_bounded(&mut app.tail.events, capacity, held);
                app.tail.scroll = 0;
            }
            Vec::new()
        }
        (Screen::Events, Action::Up) => {
            app.tail.follow = false;
            let max = app.tail.visible().len().saturating_sub(1);
            app.tail.scroll = (app.tail.scroll + 1).min(max);
            Vec::new()
        }
        (Screen::Events, Action::Down) => {
            app.tail.scroll = app.tail.scroll.saturating_sub(1);
            Vec::new()
        }
        (Screen::Events, Action::Back) => {
            if !app.tail.filter.is_empty() {
                app.tail.filter.clear();
            } else {
                app.screen = Screen::Games(app.set);
            }
            Vec::new()
        }
        (Screen::Detail, Action::Back) => {
            app.screen = Screen::Games(app.set);
            app.detail_id = None;
            app.detail = None;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// The detail screen's game as a row (from the loaded hash, else from the table).
fn detail_row(app: &App, id: &str) -> Option<GameRow> {
    if let Some(row) = app.visible_rows().into_iter().find(|r| r.id == id) {
        return Some(row.clone());
    }
    let detail = app.detail.as_ref()?;
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
