//! What the stream views (`:dead`, `:audit`) share: a list read from Redis on every refresh
//! while shown, newest first, with a selection, a filter as you type, and the same keys.
//!
//! Until the first read answers the list says "loading…", or "not loaded yet: <error>" while
//! Redis cannot be read; once read, the last data stays on screen with the error beside it.
//! Each view draws the same frame ([`StreamList::draw`]): the title with the counts, the
//! table, and the selected entry's detail under a rule; only the columns are its own
//! ([`ListTable`]).

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::Effect;
use crate::keymap::{Binding, bind, ch, ctrl, plain};
use crate::view::{DIM, SELECTED};

/// Lines under the table for the selected entry's detail (a rule and three lines).
const FOOTER_HEIGHT: u16 = 4;

/// Rows of the table in a main area of `height` lines (borders, column titles and the
/// footer taken off): how far a page key moves.
pub fn table_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(2 + 1 + FOOTER_HEIGHT)).max(1)
}

/// What a stream view's table is made of: the parts that are its own.
pub struct ListTable<'a, T> {
    /// The view's name, first in the title (`audit`).
    pub name: &'a str,
    /// What an entry is called in the title's counts, singular and plural.
    pub noun: (&'a str, &'a str),
    /// The column titles; the fourth column is the game's id.
    pub columns: [&'a str; 5],
    /// The widths of the columns, given the game column's.
    pub widths: fn(game_width: u16) -> [Constraint; 5],
    /// The game column's width on a screen narrower than 120 columns (44 from there).
    pub narrow_game_width: u16,
    /// What the list says when nothing was ever recorded.
    pub none: &'a str,
    /// An entry's row, given the game column's width.
    pub row: &'a dyn Fn(&T, u16) -> Row<'static>,
    /// The selected entry's detail, under the table.
    pub footer: &'a dyn Fn(&T) -> Vec<Line<'static>>,
}

/// What a key does on a stream view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start typing a filter.
    Filter,
    /// Selection up one row.
    Up,
    /// Selection down one row.
    Down,
    /// One page up.
    PageUp,
    /// One page down.
    PageDown,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Open the selected entry's game.
    OpenGame,
    /// Clear the filter; without one, back to the games table.
    Back,
}

/// The keys of every stream view (each view gives them its own help heading).
pub const BINDINGS: &[Binding<Action>] = &[
    bind(
        &[ch('/')],
        Action::Filter,
        "filter as you type (substring of any field)",
    ),
    bind(
        &[plain(KeyCode::Up), ch('k')],
        Action::Up,
        "select previous entry",
    ),
    bind(
        &[plain(KeyCode::Down), ch('j')],
        Action::Down,
        "select next entry",
    ),
    bind(
        &[plain(KeyCode::PageUp), ctrl('u')],
        Action::PageUp,
        "page up",
    ),
    bind(
        &[plain(KeyCode::PageDown), ctrl('f')],
        Action::PageDown,
        "page down",
    ),
    bind(
        &[plain(KeyCode::Home), ch('g')],
        Action::Top,
        "newest entry",
    ),
    bind(
        &[plain(KeyCode::End), ch('G')],
        Action::Bottom,
        "oldest entry",
    ),
    bind(
        &[plain(KeyCode::Enter), ch('d')],
        Action::OpenGame,
        "detail of the selected entry's game",
    ),
    bind(
        &[plain(KeyCode::Esc)],
        Action::Back,
        "clear the filter, else back to games",
    ),
];

/// A list read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamList<T> {
    /// The entries, newest first; `None` until the first read answers.
    pub items: Option<Vec<T>>,
    /// The latest read's error, if it failed.
    pub error: Option<String>,
    /// Selected row among the filtered entries.
    pub selected: usize,
    /// Lower-case filter.
    pub filter: String,
}

impl<T> Default for StreamList<T> {
    fn default() -> Self {
        StreamList {
            items: None,
            error: None,
            selected: 0,
            filter: String::new(),
        }
    }
}

impl<T> StreamList<T> {
    /// A read answered.
    pub fn on_loaded(&mut self, items: Vec<T>) {
        self.items = Some(items);
        self.error = None;
    }

    /// A read failed: the last data stays.
    pub fn on_failed(&mut self, error: String) {
        self.error = Some(error);
    }

    /// Entries read so far.
    pub fn total(&self) -> usize {
        self.items.as_ref().map_or(0, Vec::len)
    }

    /// The entries passing the filter, newest first.
    pub fn visible(&self, matches: impl Fn(&T, &str) -> bool) -> Vec<&T> {
        self.items
            .iter()
            .flatten()
            .filter(|item| matches(item, &self.filter))
            .collect()
    }

    /// Applies a key's action; `shown` is how many entries pass the filter, `page` the rows
    /// on screen, `game` the selected entry's game id.
    pub fn on_action(
        &mut self,
        action: Action,
        shown: usize,
        page: usize,
        game: Option<String>,
    ) -> Vec<Effect> {
        let last = shown.saturating_sub(1);
        match action {
            Action::Filter => return vec![Effect::EditFilter(self.filter.clone())],
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Down => self.selected = (self.selected + 1).min(last),
            Action::PageUp => self.selected = self.selected.saturating_sub(page.max(1)),
            Action::PageDown => self.selected = (self.selected + page.max(1)).min(last),
            Action::Top => self.selected = 0,
            Action::Bottom => self.selected = last,
            Action::OpenGame => {
                return match game.filter(|id| !id.is_empty()) {
                    Some(id) => vec![Effect::OpenDetail(id)],
                    None => Vec::new(),
                };
            }
            Action::Back => {
                if self.filter.is_empty() {
                    return vec![Effect::Show(super::ScreenId::Games)];
                }
                self.filter.clear();
                self.selected = 0;
            }
        }
        Vec::new()
    }

    /// Takes a new filter (as typed so far).
    pub fn set_filter(&mut self, filter: String) {
        self.filter = filter;
        self.selected = 0;
    }

    /// The counts for the title: `40 entries` or `3 of 40 shown, 37 hidden by filter "x"`
    /// (`noun`: singular and plural).
    pub fn counts(&self, shown: usize, noun: (&str, &str)) -> String {
        let total = self.total();
        if self.items.is_none() {
            // Never "0 entries" for a list that was never read.
            "not loaded yet".to_string()
        } else if self.filter.is_empty() {
            format!("{total} {}", if total == 1 { noun.0 } else { noun.1 })
        } else {
            format!(
                "{shown} of {total} shown, {} hidden by filter \"{}\"",
                total - shown,
                self.filter
            )
        }
    }

    /// What an empty list says: still loading, not loaded because of an error, filtered away,
    /// or truly empty (`none`).
    pub fn empty_text(&self, none: &str) -> String {
        match (&self.items, &self.error) {
            (None, Some(error)) => format!("not loaded yet: {error}"),
            (None, None) => "loading…".to_string(),
            (Some(items), _) if !items.is_empty() => format!(
                "no entry matches filter \"{}\" ({} hidden; Esc clears it)",
                self.filter,
                items.len()
            ),
            (Some(_), _) => none.to_string(),
        }
    }

    /// The first row drawn so that the selection is on screen (`height` rows).
    pub fn first_row(&self, height: usize) -> usize {
        self.selected.saturating_sub(height.saturating_sub(1))
    }

    /// Draws the view in `area`: a frame titled with the view's name and counts (and the
    /// last read's error while older data is shown), the `visible` entries' table scrolled to
    /// the selection, or why it is empty, and the selected entry's detail.
    pub fn draw(&self, visible: &[&T], table: &ListTable<'_, T>, frame: &mut Frame, area: Rect) {
        let mut title = format!(
            " {} · {} · newest first ",
            table.name,
            self.counts(visible.len(), table.noun)
        );
        if let (Some(error), Some(_)) = (&self.error, &self.items) {
            title.push_str(&format!("· read failed, showing the last read: {error} "));
        }
        let block = Block::bordered().title(title);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let [table_area, footer] =
            Layout::vertical([Constraint::Min(2), Constraint::Length(FOOTER_HEIGHT)]).areas(inner);
        let game_width = if inner.width >= 120 {
            44
        } else {
            table.narrow_game_width
        };
        let header = Row::new(table.columns.map(|t| Cell::from(t).style(DIM)));
        let rows_on_screen = usize::from(table_area.height.saturating_sub(1)).max(1);
        let rows: Vec<Row> = visible
            .iter()
            .enumerate()
            .skip(self.first_row(rows_on_screen))
            .take(rows_on_screen)
            .map(|(i, entry)| {
                let row = (table.row)(entry, game_width);
                if i == self.selected {
                    row.style(SELECTED)
                } else {
                    row
                }
            })
            .collect();
        let empty = rows.is_empty();
        frame.render_widget(
            Table::new(rows, (table.widths)(game_width)).header(header),
            table_area,
        );
        if empty {
            let [_, message] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(table_area);
            frame.render_widget(
                Paragraph::new(self.empty_text(table.none))
                    .style(DIM)
                    .wrap(Wrap { trim: true }),
                message,
            );
        }
        let footer_lines = visible
            .get(self.selected)
            .map_or_else(Vec::new, |entry| (table.footer)(entry));
        frame.render_widget(
            Paragraph::new(footer_lines)
                .block(Block::new().borders(Borders::TOP).border_style(DIM))
                .wrap(Wrap { trim: true }),
            footer,
        );
    }
}
