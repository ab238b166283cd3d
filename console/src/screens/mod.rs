//! The console's screens, one component per file.
//!
//! A screen owns its state, the key table it contributes (`KEYMAP`, with its own action
//! type), its update for the keys and data it handles, and its drawing into the main area.
//! Screens never touch the console's global state ([`crate::app::Shared`] is read-only to
//! them) and never do I/O: what they want beyond their own state they return as [`Effect`]s,
//! which [`crate::app::update`] applies (runtime work among them becomes
//! [`crate::app::Command`]s).
//!
//! Every screen keeps its state while another is shown (the event tail keeps collecting, the
//! table keeps its selection). [`Screens`] holds them all; [`ScreenId`] names the one shown.
//!
//! [`list`] is what the stream views ([`dead`], [`audit`]) share.
//!
//! Two components are overlays rather than screens: [`help`] (the `?` help, generated from
//! the live key tables) and [`confirm`] (the force-delete dialog). They capture every key
//! while open.
//!
//! Adding a screen: write `screens/<name>.rs` with its state, `KEYMAP` and `impl Screen`,
//! then list it below (module, [`ScreenId`] variant, [`Screens`] field, the arms of
//! [`Screens::get`] and [`Screens::get_mut`]), then give the operator a way in (a global key
//! or `:` command showing it).

use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;

use crate::app::{Command, Shared, StatusKind};
use crate::keymap::HelpSection;

pub mod audit;
pub mod confirm;
pub mod dead;
pub mod detail;
pub mod events;
pub mod games;
pub mod help;
pub mod list;

/// What a screen asks of the console beyond its own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Runtime work.
    Run(Command),
    /// Re-read Redis now: a new refresh with the games table's current window.
    Refresh,
    /// Show another screen (it keeps the state it had).
    Show(ScreenId),
    /// Show one game's detail.
    OpenDetail(String),
    /// Start typing this screen's filter on the command line, starting from this text.
    EditFilter(String),
    /// Ask before force-deleting this game (`None`: no game selected).
    ConfirmDelete(Option<String>),
    /// Run the force-delete flow on this game for this reason (the operator confirmed).
    ForceDelete(String, String),
    /// Say something on the status line.
    Status(StatusKind, String),
}

/// A screen: its state plus what the console needs of it.
pub trait Screen {
    /// Its name in the title bar.
    fn title(&self) -> String;

    /// Its key table, as the help screen lists it.
    fn help(&self) -> HelpSection;

    /// A key press while this screen is shown: `None` if its table binds no such key (the
    /// global table is tried next).
    fn on_key(&mut self, key: &KeyEvent, shared: &Shared) -> Option<Vec<Effect>>;

    /// The filter typed for this screen (trimmed, lower-case) was applied.
    fn apply_filter(&mut self, _filter: String, _shared: &Shared) -> Vec<Effect> {
        Vec::new()
    }

    /// A scheduled refresh starts while this screen is shown.
    fn on_refresh(&self) -> Vec<Effect> {
        Vec::new()
    }

    /// Draws the screen into the main area (pure: no I/O, time is `shared.now_ms`).
    fn draw(&self, shared: &Shared, frame: &mut Frame, area: Rect);
}

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenId {
    /// The games of one set (pending, lobby, active).
    Games,
    /// The event tail.
    Events,
    /// One game.
    Detail,
    /// The dead letters (`:dead`).
    Dead,
    /// The audit stream (`:audit`).
    Audit,
}

/// Every screen's state.
#[derive(Debug, Clone)]
pub struct Screens {
    /// The games table.
    pub games: games::Games,
    /// The event tail.
    pub events: events::EventTail,
    /// One game's detail.
    pub detail: detail::Detail,
    /// The dead letters.
    pub dead: dead::DeadLetters,
    /// The audit stream.
    pub audit: audit::Audit,
}

impl Screens {
    /// Fresh screens; the tail keeps at most `tail_len` events.
    pub fn new(tail_len: usize) -> Screens {
        Screens {
            games: games::Games::new(),
            events: events::EventTail::new(tail_len),
            detail: detail::Detail::default(),
            dead: dead::DeadLetters::default(),
            audit: audit::Audit::default(),
        }
    }

    /// The screen `id`.
    pub fn get(&self, id: ScreenId) -> &dyn Screen {
        match id {
            ScreenId::Games => &self.games,
            ScreenId::Events => &self.events,
            ScreenId::Detail => &self.detail,
            ScreenId::Dead => &self.dead,
            ScreenId::Audit => &self.audit,
        }
    }

    /// The screen `id`, to update.
    pub fn get_mut(&mut self, id: ScreenId) -> &mut dyn Screen {
        match id {
            ScreenId::Games => &mut self.games,
            ScreenId::Events => &mut self.events,
            ScreenId::Detail => &mut self.detail,
            ScreenId::Dead => &mut self.dead,
            ScreenId::Audit => &mut self.audit,
        }
    }
}

/// What a key did to an open overlay (help, dialog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlayReply {
    /// It stays open.
    Open,
    /// It closed, asking for these effects.
    Closed(Vec<Effect>),
}
