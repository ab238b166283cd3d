//! The TUI's global state and its pure update function (The Elm Architecture).
//!
//! One loop owns [`App`]. Everything that happens arrives as a [`Msg`] (a key, a tick, data
//! from a background task); [`update`] changes the state and returns the [`Command`]s to run
//! (fetch, delete, quit). `update` does no I/O and reads no clock: time comes in with
//! [`Msg::Tick`], so every behaviour is testable without a terminal or Redis.
//!
//! [`App`] holds only what is global: the header data and connection state ([`Shared`], which
//! screens may read), the screen shown, the command line, the overlays, the status line and
//! the refresh schedule. Each screen's own state, keys, update and drawing live in
//! [`crate::screens`]; screens answer with [`Effect`]s, which [`update`] applies here.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use mm_common::admin::{ForceDeleteOutcome, ForceDeleteReport};
use mm_common::model::GameSet;

use crate::data::{AuditRow, DeadLetter, GameDetail, Overview, PageQuery, Snapshot, TailEvent};
use crate::keymap::{self, GlobalAction, HelpSection, InputAction};
use crate::screens::confirm::Confirm;
use crate::screens::{Effect, OverlayReply, ScreenId, Screens, help};

/// Lines of the screen that are not table rows: title, header, banner, borders, column
/// titles, status line. The view uses the same function, so a page is exactly what fits.
pub fn chrome_height(shared: &Shared) -> u16 {
    let title = 1;
    let header = header_height(shared);
    let banner = u16::from(shared.redis_down.is_some()) * 2;
    let table_frame = 2 + 1; // borders + column titles
    let status = 1;
    title + header + banner + table_frame + status
}

/// Header lines: column titles, one line per product (at most [`MAX_HEADER_PRODUCTS`]), and the
/// daemon line.
pub fn header_height(shared: &Shared) -> u16 {
    let products = shared.overview.products.len().clamp(1, MAX_HEADER_PRODUCTS) as u16;
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

/// What a line being typed is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputTarget {
    /// The filter of this screen.
    Filter(ScreenId),
    /// A `:` command.
    Command,
}

/// A line being typed on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// What it is for.
    pub target: InputTarget,
    /// The text so far.
    pub text: String,
    /// A filter's text before editing began (Esc restores it).
    pub original: String,
    /// Shown after the text: completion candidates.
    pub hint: Option<String>,
}

/// An open overlay; it captures every key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// The `?` help, scrolled down this many lines.
    Help(u16),
    /// The force-delete confirmation.
    Confirm(Confirm),
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
    /// When it goes away (Unix ms); the key hints come back.
    pub until_ms: u64,
}

/// How long a neutral or good status message stays.
pub const STATUS_MS: u64 = 5_000;
/// How long a failure stays (longer: it may need reading twice).
pub const STATUS_BAD_MS: u64 = 10_000;

/// The key hints of the status line for the screen shown.
pub fn key_hints(screen: ScreenId) -> &'static str {
    match screen {
        ScreenId::Games => {
            "1-6 views  / filter  Enter detail  ^D delete  : command  ? help  q quit"
        }
        ScreenId::Detail => "j/k scroll  ^D delete  Esc back  ? help  q quit",
        ScreenId::Events => "/ filter  f follow/pause  j/k scroll  Esc back  ? help  q quit",
        ScreenId::Dead | ScreenId::Audit => {
            "/ filter  j/k select  Enter game  Esc back  ? help  q quit"
        }
    }
}

/// The global state screens may read (never write): clock, size, header data, connection.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The clock, as of the last tick (Unix ms).
    pub now_ms: u64,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// Header data.
    pub overview: Overview,
    /// Latest successful refresh (Unix ms).
    pub updated_ms: Option<u64>,
    /// Set while Redis cannot be read.
    pub redis_down: Option<RedisDown>,
    /// Curation thresholds.
    pub thresholds: Thresholds,
    /// Deletes running (game ids).
    pub deletes_in_flight: Vec<String>,
}

impl Shared {
    /// Lines of the main area (what the shown screen draws into, borders included).
    pub fn main_height(&self) -> u16 {
        self.size
            .1
            .saturating_sub(chrome_height(self))
            .saturating_add(3)
            .max(3)
    }

    /// Table rows that fit on screen.
    pub fn page_rows(&self) -> u64 {
        u64::from(self.size.1.saturating_sub(chrome_height(self)).max(1))
    }
}

/// Everything the console knows and shows.
#[derive(Debug, Clone)]
pub struct App {
    /// Global state the screens read.
    pub shared: Shared,
    /// The screen shown.
    pub active: ScreenId,
    /// Every screen's state.
    pub screens: Screens,
    /// Text being typed (a filter or a `:` command).
    pub input: Option<Input>,
    /// Open help or dialog.
    pub overlay: Option<Overlay>,
    /// The status line.
    pub status: Option<Status>,
    /// Force-delete disabled (`--read-only` or `console.read_only`).
    pub read_only: bool,
    /// Refresh interval.
    pub refresh_ms: u64,
    /// Generation of the newest refresh asked for; older answers are ignored.
    pub generation: u64,
    /// Whether the newest refresh is still running.
    pub refresh_in_flight: bool,
    /// When the newest refresh was asked for.
    pub refresh_started_ms: u64,
    /// Set when the console should exit.
    pub quit: bool,
    /// Who acts, for the audit entries (shown in the delete dialog).
    pub operator: String,
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
    /// The dead letters were read.
    DeadLoaded(Vec<DeadLetter>),
    /// Reading the dead letters failed.
    DeadFailed {
        /// Why.
        error: String,
    },
    /// The audit stream was read.
    AuditLoaded(Vec<AuditRow>),
    /// Reading the audit stream failed.
    AuditFailed {
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
    /// Read the newest dead letters of every product.
    LoadDead,
    /// Read the newest audit entries.
    LoadAudit,
    /// Run the force-delete flow on a game.
    ForceDelete {
        /// The game.
        id: String,
        /// Why, for the audit entry.
        reason: String,
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
            shared: Shared {
                now_ms,
                size: (120, 40),
                overview: Overview::default(),
                updated_ms: None,
                redis_down: None,
                thresholds,
                deletes_in_flight: Vec::new(),
            },
            active: ScreenId::Games,
            screens: Screens::new(tail_len),
            input: None,
            overlay: None,
            status: None,
            read_only,
            refresh_ms: refresh_ms.max(1),
            generation: 0,
            refresh_in_flight: false,
            refresh_started_ms: 0,
            quit: false,
            operator: String::new(),
        }
    }

    /// Table rows that fit on screen.
    pub fn page_rows(&self) -> u64 {
        self.shared.page_rows()
    }

    /// The query for the games table's current window.
    pub fn page_query(&self) -> Option<PageQuery> {
        self.screens.games.page_query(&self.shared)
    }

    /// The key tables the help lists: the global keys, the shown screen's, then the command
    /// line's and the overlays'.
    pub fn help_sections(&self) -> Vec<HelpSection> {
        vec![
            self.screens.get(self.active).help(),
            keymap::GLOBAL.help(),
            crate::screens::confirm::KEYMAP.help(),
            keymap::COMMAND_LINE.help(),
            help::KEYMAP.help(),
        ]
    }

    fn set_status(&mut self, kind: StatusKind, text: impl Into<String>) {
        let lasts = if kind == StatusKind::Bad {
            STATUS_BAD_MS
        } else {
            STATUS_MS
        };
        self.status = Some(Status {
            text: text.into(),
            kind,
            until_ms: self.shared.now_ms + lasts,
        });
    }

    /// A new refresh of the header and the games table's window, superseding any running one.
    fn refresh(&mut self) -> Command {
        self.generation += 1;
        self.refresh_in_flight = true;
        self.refresh_started_ms = self.shared.now_ms;
        Command::Refresh {
            generation: self.generation,
            query: self.page_query(),
        }
    }

    /// Applies what screens asked for; returns the work to run.
    fn apply(&mut self, effects: Vec<Effect>) -> Vec<Command> {
        let mut commands = Vec::new();
        for effect in effects {
            match effect {
                Effect::Run(command) => commands.push(command),
                Effect::Refresh => commands.push(self.refresh()),
                Effect::Show(screen) => self.active = screen,
                Effect::OpenDetail(id) => {
                    let from = self.active;
                    self.active = ScreenId::Detail;
                    let opened = self.screens.detail.open(id, from);
                    commands.extend(self.apply(opened));
                }
                Effect::EditFilter(text) => {
                    self.input = Some(Input {
                        target: InputTarget::Filter(self.active),
                        original: text.clone(),
                        text,
                        hint: None,
                    });
                }
                Effect::ConfirmDelete(id) => self.confirm_delete(id),
                Effect::ForceDelete(id, reason) => {
                    self.shared.deletes_in_flight.push(id.clone());
                    self.set_status(StatusKind::Info, format!("deleting {id}…"));
                    commands.push(Command::ForceDelete { id, reason });
                }
                Effect::Status(kind, text) => self.set_status(kind, text),
            }
        }
        commands
    }

    /// Opens the delete dialog on game `id`, as the table shows it (else as its record
    /// reads), unless the console is read-only.
    fn confirm_delete(&mut self, id: Option<String>) {
        if self.read_only {
            self.set_status(
                StatusKind::Bad,
                "read-only console (--read-only or console.read_only): force-delete is disabled",
            );
            return;
        }
        let game = id.and_then(|id| {
            self.screens
                .games
                .row(&id)
                .cloned()
                .or_else(|| self.screens.detail.record_row(&id))
        });
        match game {
            Some(game) => {
                self.overlay = Some(Overlay::Confirm(Confirm::new(game, self.operator.clone())));
            }
            None => self.set_status(StatusKind::Bad, "no game selected"),
        }
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
            app.shared.size = (width, height);
            if app.page_rows() != old_rows {
                app.screens.games.scroll_to_selection(&app.shared);
                vec![app.refresh()]
            } else {
                Vec::new()
            }
        }
        Msg::Tick { now_ms } => {
            app.shared.now_ms = now_ms;
            if app.status.as_ref().is_some_and(|s| now_ms >= s.until_ms) {
                app.status = None;
            }
            let due = app
                .shared
                .updated_ms
                .is_none_or(|at| now_ms >= at + app.refresh_ms)
                && now_ms >= app.refresh_started_ms + app.refresh_ms;
            let mut commands = Vec::new();
            if !app.refresh_in_flight && due {
                commands.push(app.refresh());
                let effects = app.screens.get(app.active).on_refresh();
                commands.extend(app.apply(effects));
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
            app.shared.updated_ms = Some(at_ms);
            app.shared.redis_down = None;
            let Snapshot {
                overview,
                products,
                page,
            } = *snapshot;
            app.shared.overview = overview;
            let effects = app.screens.games.on_snapshot(products, page, &app.shared);
            app.apply(effects)
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
            let since_ms = app.shared.redis_down.as_ref().map_or(at_ms, |d| d.since_ms);
            app.shared.redis_down = Some(RedisDown { since_ms, error });
            Vec::new()
        }
        Msg::DetailLoaded(detail) => {
            app.screens.detail.on_loaded(*detail);
            Vec::new()
        }
        Msg::DetailFailed { id, error } => {
            let effects = app.screens.detail.on_failed(&id, &error);
            app.apply(effects)
        }
        Msg::DeadLoaded(letters) => {
            app.screens.dead.list.on_loaded(letters);
            Vec::new()
        }
        Msg::DeadFailed { error } => {
            app.screens.dead.list.on_failed(error);
            Vec::new()
        }
        Msg::AuditLoaded(rows) => {
            app.screens.audit.list.on_loaded(rows);
            Vec::new()
        }
        Msg::AuditFailed { error } => {
            app.screens.audit.list.on_failed(error);
            Vec::new()
        }
        Msg::TailEvents(events) => {
            app.screens.events.on_events(events);
            Vec::new()
        }
        Msg::TailFailed { error } => {
            app.screens.events.on_failed(error);
            Vec::new()
        }
        Msg::DeleteFinished { game_id, result } => {
            app.shared.deletes_in_flight.retain(|id| *id != game_id);
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

/// A key goes to the open overlay, else the command line, else the shown screen's table, else
/// the global table.
fn on_key(app: &mut App, key: KeyEvent) -> Vec<Command> {
    // Ctrl-C quits from anywhere, dialogs and text fields included.
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        app.quit = true;
        return vec![Command::Quit];
    }
    let help_lines = help::lines(&app.help_sections(), help::text_width(app.shared.size.0)).len();
    let help_height = app.shared.size.1.saturating_sub(2);
    if let Some(overlay) = &mut app.overlay {
        let reply = match overlay {
            Overlay::Help(scroll) => help::on_key(&key, scroll, help_lines, help_height),
            Overlay::Confirm(confirm) => confirm.on_key(&key),
        };
        return match reply {
            OverlayReply::Open => Vec::new(),
            OverlayReply::Closed(effects) => {
                app.overlay = None;
                app.apply(effects)
            }
        };
    }
    if app.input.is_some() {
        return on_input_key(app, key);
    }
    if let Some(effects) = app.screens.get_mut(app.active).on_key(&key, &app.shared) {
        return app.apply(effects);
    }
    match keymap::GLOBAL.lookup(&key) {
        Some(action) => on_global(app, action),
        None => Vec::new(),
    }
}

fn on_input_key(app: &mut App, key: KeyEvent) -> Vec<Command> {
    let Some(input) = app.input.as_mut() else {
        return Vec::new();
    };
    match keymap::COMMAND_LINE.lookup(&key) {
        Some(InputAction::Backspace) => {
            input.text.pop();
            input.hint = None;
            live_filter(app)
        }
        Some(InputAction::Cancel) => {
            let input = app.input.take().expect("checked above");
            match input.target {
                // Esc while filtering restores the filter the screen had.
                InputTarget::Filter(screen) if input.text != input.original => {
                    let effects = app
                        .screens
                        .get_mut(screen)
                        .apply_filter(input.original, &app.shared);
                    app.apply(effects)
                }
                _ => Vec::new(),
            }
        }
        Some(InputAction::Complete) => {
            if input.target == InputTarget::Command {
                let products: Vec<String> = app
                    .screens
                    .games
                    .products
                    .iter()
                    .map(|p| p.to_string())
                    .collect();
                let (text, hint) = complete(&input.text, &products);
                input.text = text;
                input.hint = hint;
            }
            Vec::new()
        }
        Some(InputAction::Submit) => {
            let input = app.input.take().expect("checked above");
            let text = input.text.trim().to_string();
            match input.target {
                InputTarget::Filter(screen) => {
                    let effects = app
                        .screens
                        .get_mut(screen)
                        .apply_filter(text.to_lowercase(), &app.shared);
                    app.apply(effects)
                }
                InputTarget::Command => run_command_line(app, &text),
            }
        }
        None => {
            if let KeyCode::Char(c) = key.code
                && !key.modifiers.contains(KeyModifiers::CONTROL)
            {
                input.text.push(c);
                input.hint = None;
                return live_filter(app);
            }
            Vec::new()
        }
    }
}

/// Filters as the operator types: the screen being filtered takes the text so far.
fn live_filter(app: &mut App) -> Vec<Command> {
    let Some(Input {
        target: InputTarget::Filter(screen),
        text,
        ..
    }) = &app.input
    else {
        return Vec::new();
    };
    let (screen, filter) = (*screen, text.trim().to_lowercase());
    let effects = app
        .screens
        .get_mut(screen)
        .apply_filter(filter, &app.shared);
    app.apply(effects)
}

/// Tab on the command line: completes a command name, or a product after `product `.
/// Returns the new text and, when several candidates remain, the hint listing them.
pub fn complete(text: &str, products: &[String]) -> (String, Option<String>) {
    let (prefix, word, candidates): (&str, &str, Vec<String>) = match text.strip_prefix("product ")
    {
        Some(partial) => ("product ", partial.trim_start(), products.to_vec()),
        None => (
            "",
            text,
            COMMANDS.iter().map(|(name, _)| name.to_string()).collect(),
        ),
    };
    let matching: Vec<&String> = candidates.iter().filter(|c| c.starts_with(word)).collect();
    match matching.as_slice() {
        [] => (
            text.to_string(),
            Some(if prefix.is_empty() {
                "no such command".to_string()
            } else {
                "no such product".to_string()
            }),
        ),
        [only] => {
            let space = if prefix.is_empty() && *only == "product" {
                " "
            } else {
                ""
            };
            (format!("{prefix}{only}{space}"), None)
        }
        many => {
            let common = many.iter().skip(1).fold(many[0].clone(), |common, c| {
                common
                    .chars()
                    .zip(c.chars())
                    .take_while(|(a, b)| a == b)
                    .map(|(a, _)| a)
                    .collect()
            });
            let list: Vec<&str> = many.iter().map(|c| c.as_str()).collect();
            (format!("{prefix}{common}"), Some(list.join(" ")))
        }
    }
}

/// The `:` commands.
pub const COMMANDS: &[(&str, &str)] = &[
    ("pending", "pending games"),
    ("lobby", "lobby games"),
    ("active", "active games"),
    ("events", "event tail"),
    ("dead", "dead letters of every product"),
    ("audit", "operator actions (the audit stream)"),
    (
        "product",
        "product <name>: show that product (Tab completes)",
    ),
    ("help", "this help"),
    ("q", "quit (also :quit)"),
];

fn run_command_line(app: &mut App, text: &str) -> Vec<Command> {
    let command = text.trim_start_matches(':');
    match command {
        "pending" => on_global(app, GlobalAction::ShowPending),
        "lobby" => on_global(app, GlobalAction::ShowLobby),
        "active" => on_global(app, GlobalAction::ShowActive),
        "events" => on_global(app, GlobalAction::ShowEvents),
        "dead" => on_global(app, GlobalAction::ShowDead),
        "audit" => on_global(app, GlobalAction::ShowAudit),
        "product" => {
            let known: Vec<String> = app
                .screens
                .games
                .products
                .iter()
                .map(|p| p.to_string())
                .collect();
            app.set_status(
                StatusKind::Bad,
                format!("usage: :product <name> (known: {})", known.join(" ")),
            );
            Vec::new()
        }
        other if other.starts_with("product ") => {
            let name = other["product ".len()..].trim();
            if app.screens.games.select_product(name) {
                app.active = ScreenId::Games;
                app.set_status(StatusKind::Info, format!("product {name}"));
                vec![app.refresh()]
            } else {
                app.set_status(
                    StatusKind::Bad,
                    format!("unknown product {name:?} (Tab completes known products)"),
                );
                Vec::new()
            }
        }
        "help" => on_global(app, GlobalAction::Help),
        "q" | "quit" => on_global(app, GlobalAction::Quit),
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

fn on_global(app: &mut App, action: GlobalAction) -> Vec<Command> {
    match action {
        GlobalAction::Quit => {
            app.quit = true;
            vec![Command::Quit]
        }
        GlobalAction::Help => {
            app.overlay = Some(Overlay::Help(0));
            Vec::new()
        }
        GlobalAction::CommandLine => {
            app.input = Some(Input {
                target: InputTarget::Command,
                text: String::new(),
                original: String::new(),
                hint: None,
            });
            Vec::new()
        }
        GlobalAction::ShowPending => show_set(app, GameSet::Pending),
        GlobalAction::ShowLobby => show_set(app, GameSet::Lobby),
        GlobalAction::ShowActive => show_set(app, GameSet::Active),
        GlobalAction::ShowEvents => {
            app.active = ScreenId::Events;
            Vec::new()
        }
        GlobalAction::ShowDead => {
            app.active = ScreenId::Dead;
            vec![Command::LoadDead]
        }
        GlobalAction::ShowAudit => {
            app.active = ScreenId::Audit;
            vec![Command::LoadAudit]
        }
        GlobalAction::RefreshNow => {
            let mut commands = vec![app.refresh()];
            let effects = app.screens.get(app.active).on_refresh();
            commands.extend(app.apply(effects));
            commands
        }
    }
}

fn show_set(app: &mut App, set: GameSet) -> Vec<Command> {
    app.screens.games.show_set(set);
    app.active = ScreenId::Games;
    vec![app.refresh()]
}
