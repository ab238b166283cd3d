//! The games table: one set (pending, lobby, active) of one product, a window of rows read
//! from Redis (only what fits on screen), selection, sort, filter, and staleness colours.
//!
//! Its window is what every refresh reads ([`Games::page_query`]), whichever screen is shown.

use crossterm::event::{KeyCode, KeyEvent};
use mm_common::ProductId;
use mm_common::model::GameSet;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use super::{Effect, Screen};
use crate::app::Shared;
use crate::data::{GameRow, GamesPage, PageQuery};
use crate::keymap::{HelpSection, Keymap, bind, ch, ctrl, plain};
use crate::view::{DIM, NEAR_STYLE, OVERDUE_STYLE, SELECTED, abbreviate_id, human_duration};

/// What a key does on the games table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start typing a filter.
    Filter,
    /// Next product.
    NextProduct,
    /// Previous product.
    PrevProduct,
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
    /// Toggle sort key (activity / age).
    ToggleSort,
    /// Reverse the sort direction.
    ReverseSort,
    /// Open the selected game's detail.
    OpenDetail,
    /// Force-delete the selected game (asks first).
    ForceDelete,
    /// Clear the filter.
    ClearFilter,
}

/// The games table's keys.
pub const KEYMAP: Keymap<Action> = Keymap {
    title: "Games table",
    bindings: &[
        bind(
            &[ch('/')],
            Action::Filter,
            "filter as you type (substring of id, product, creator, server)",
        ),
        bind(
            &[ch('p'), plain(KeyCode::Tab)],
            Action::NextProduct,
            "next product",
        ),
        bind(
            &[ch('P'), plain(KeyCode::BackTab)],
            Action::PrevProduct,
            "previous product",
        ),
        bind(
            &[plain(KeyCode::Up), ch('k')],
            Action::Up,
            "select previous game",
        ),
        bind(
            &[plain(KeyCode::Down), ch('j')],
            Action::Down,
            "select next game",
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
        bind(&[plain(KeyCode::Home), ch('g')], Action::Top, "first game"),
        bind(&[plain(KeyCode::End), ch('G')], Action::Bottom, "last game"),
        bind(
            &[ch('s')],
            Action::ToggleSort,
            "sort by last activity / by age",
        ),
        bind(&[ch('o')], Action::ReverseSort, "reverse sort order"),
        bind(
            &[plain(KeyCode::Enter), ch('d')],
            Action::OpenDetail,
            "detail of the selected game",
        ),
        bind(
            &[ctrl('d')],
            Action::ForceDelete,
            "force-delete the selected game (asks first)",
        ),
        bind(
            &[plain(KeyCode::Esc)],
            Action::ClearFilter,
            "clear the filter",
        ),
    ],
};

/// Sort key of the games table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Last activity (the sets' score; what curation judges). Ordered by Redis.
    Activity,
    /// Creation time. Redis has no index on it: rows of the page on screen are ordered.
    Age,
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

/// The games table's state.
#[derive(Debug, Clone)]
pub struct Games {
    /// The set shown.
    pub set: GameSet,
    /// Products known, sorted.
    pub products: Vec<ProductId>,
    /// Index into `products` of the table's product.
    pub product_index: usize,
    /// The latest window.
    pub page: Option<GamesPage>,
    /// Selected row, as an index into the whole (filtered, sorted) set.
    pub selected: u64,
    /// First row of the window on screen.
    pub offset: u64,
    /// Sort key.
    pub sort: SortKey,
    /// Reverse direction (activity: newest first; age: youngest first).
    pub descending: bool,
    /// Lower-case filter.
    pub filter: String,
}

impl Default for Games {
    fn default() -> Games {
        Games::new()
    }
}

impl Games {
    /// The lobby, nothing read yet.
    pub fn new() -> Games {
        Games {
            set: GameSet::Lobby,
            products: Vec::new(),
            product_index: 0,
            page: None,
            selected: 0,
            offset: 0,
            sort: SortKey::Activity,
            descending: false,
            filter: String::new(),
        }
    }

    /// The product the table shows.
    pub fn product(&self) -> Option<&ProductId> {
        self.products.get(self.product_index)
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

    /// The row of game `id`, if it is on screen.
    pub fn row(&self, id: &str) -> Option<&GameRow> {
        self.visible_rows().into_iter().find(|r| r.id == id)
    }

    /// The query for the table's current window.
    pub fn page_query(&self, shared: &Shared) -> Option<PageQuery> {
        let product = self.product()?.clone();
        Some(PageQuery {
            product,
            set: self.set,
            offset: self.offset,
            count: shared.page_rows(),
            newest_first: self.sort == SortKey::Activity && self.descending,
            filter: self.filter.clone(),
        })
    }

    /// Shows product `name` if it is known; returns whether it is.
    pub fn select_product(&mut self, name: &str) -> bool {
        match self.products.iter().position(|p| p.as_str() == name) {
            Some(index) => {
                if index != self.product_index {
                    self.product_index = index;
                    self.reset();
                }
                true
            }
            None => false,
        }
    }

    /// Shows `set` (from its first row if it was not shown already).
    pub fn show_set(&mut self, set: GameSet) {
        if self.set != set {
            self.set = set;
            self.reset();
        }
    }

    /// Takes a refresh's products and window. Asks for another refresh when the window has to
    /// move (the selection fell out of it, or it was read for another product).
    pub fn on_snapshot(
        &mut self,
        products: Vec<ProductId>,
        page: Option<GamesPage>,
        shared: &Shared,
    ) -> Vec<Effect> {
        let current = self.product().cloned();
        self.products = products;
        self.product_index = current
            .and_then(|p| self.products.iter().position(|q| *q == p))
            .unwrap_or(0);
        let page_matches = page
            .as_ref()
            .is_some_and(|page| Some(&page.query.product) == self.product());
        self.page = if page_matches { page } else { None };
        let moved = self.scroll_to_selection(shared);
        if moved || (!page_matches && self.product().is_some()) {
            vec![Effect::Refresh]
        } else {
            Vec::new()
        }
    }

    /// Keeps the selection inside the set and the window around the selection. Returns
    /// whether the window moved (a fetch is needed).
    pub fn scroll_to_selection(&mut self, shared: &Shared) -> bool {
        let total = self.total();
        if total == 0 {
            self.selected = 0;
        } else if self.selected >= total {
            self.selected = total - 1;
        }
        let rows = shared.page_rows();
        let old = self.offset;
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + rows {
            self.offset = self.selected + 1 - rows;
        }
        self.offset != old
    }

    fn reset(&mut self) {
        self.selected = 0;
        self.offset = 0;
        self.page = None;
    }

    fn move_selection(&mut self, to: u64, shared: &Shared) -> Vec<Effect> {
        self.selected = to;
        if self.scroll_to_selection(shared) {
            vec![Effect::Refresh]
        } else {
            Vec::new()
        }
    }

    fn on_action(&mut self, action: Action, shared: &Shared) -> Vec<Effect> {
        let rows = shared.page_rows();
        match action {
            Action::Filter => vec![Effect::EditFilter(self.filter.clone())],
            Action::NextProduct | Action::PrevProduct => {
                let n = self.products.len();
                if n <= 1 {
                    return Vec::new();
                }
                self.product_index = if action == Action::NextProduct {
                    (self.product_index + 1) % n
                } else {
                    (self.product_index + n - 1) % n
                };
                self.reset();
                vec![Effect::Refresh]
            }
            Action::Up => self.move_selection(self.selected.saturating_sub(1), shared),
            Action::Down => self.move_selection(self.selected + 1, shared),
            Action::PageUp => self.move_selection(self.selected.saturating_sub(rows), shared),
            Action::PageDown => self.move_selection(self.selected + rows, shared),
            Action::Top => self.move_selection(0, shared),
            Action::Bottom => self.move_selection(self.total().saturating_sub(1), shared),
            Action::ToggleSort => {
                self.sort = match self.sort {
                    SortKey::Activity => SortKey::Age,
                    SortKey::Age => SortKey::Activity,
                };
                self.descending = false;
                self.reset();
                vec![Effect::Refresh]
            }
            Action::ReverseSort => {
                self.descending = !self.descending;
                self.reset();
                vec![Effect::Refresh]
            }
            Action::OpenDetail => match self.selected_row() {
                Some(row) => vec![Effect::OpenDetail(row.id.clone())],
                None => Vec::new(),
            },
            Action::ForceDelete => vec![Effect::ConfirmDelete(
                self.selected_row().map(|r| r.id.clone()),
            )],
            Action::ClearFilter => {
                if self.filter.is_empty() {
                    return Vec::new();
                }
                self.filter.clear();
                self.reset();
                vec![Effect::Refresh]
            }
        }
    }

    fn title_line(&self) -> String {
        let product = self.product().map_or("-".to_string(), |p| p.to_string());
        let total = self.total();
        let shown = self.visible_rows().len() as u64;
        let range = if shown == 0 {
            "0".to_string()
        } else {
            format!("{}-{}", self.offset + 1, self.offset + shown)
        };
        let sort = match (self.sort, self.descending) {
            (SortKey::Activity, false) => "idle longest first",
            (SortKey::Activity, true) => "most recent activity first",
            (SortKey::Age, false) => "oldest first (this page)",
            (SortKey::Age, true) => "youngest first (this page)",
        };
        let set = self.set;
        let scan = self.page.as_ref().and_then(|p| p.scan);
        let counts = match scan {
            Some(scan) if !self.filter.is_empty() => {
                let hidden = scan.scanned.saturating_sub(total);
                let mut counts = format!(
                    "{range} of {total} shown, {hidden} hidden by filter \"{}\"",
                    self.filter
                );
                if scan.truncated {
                    counts.push_str(&format!(
                        " (first {} of {} games searched)",
                        scan.scanned, scan.set_size
                    ));
                }
                counts
            }
            _ if !self.filter.is_empty() => format!("filter \"{}\"…", self.filter),
            _ => format!("{range} of {total}"),
        };
        format!(" {set} · {product} · {counts} · sort: {sort} ")
    }
}

impl Screen for Games {
    fn title(&self) -> String {
        self.set.as_str().to_string()
    }

    fn help(&self) -> HelpSection {
        KEYMAP.help()
    }

    fn on_key(&mut self, key: &KeyEvent, shared: &Shared) -> Option<Vec<Effect>> {
        let action = KEYMAP.lookup(key)?;
        Some(self.on_action(action, shared))
    }

    fn apply_filter(&mut self, filter: String, _shared: &Shared) -> Vec<Effect> {
        if filter == self.filter {
            return Vec::new();
        }
        // The old rows stay until the new window answers: no flicker while typing.
        self.filter = filter;
        self.selected = 0;
        self.offset = 0;
        vec![Effect::Refresh]
    }

    fn draw(&self, shared: &Shared, frame: &mut Frame, area: Rect) {
        let threshold = shared.thresholds.of(self.set);
        let longest = self
            .visible_rows()
            .iter()
            .map(|r| r.id.chars().count())
            .max()
            .unwrap_or(0);
        let columns = Columns::fit(area.width.saturating_sub(2), longest as u16);
        let header = Row::new(
            columns
                .titles()
                .into_iter()
                .map(|t| Cell::from(t).style(DIM)),
        );
        let rows: Vec<Row> = self
            .visible_rows()
            .into_iter()
            .enumerate()
            .map(|(i, game)| {
                let selected = self.offset + i as u64 == self.selected;
                game_row(shared, game, threshold, selected, &columns)
            })
            .collect();
        let empty = rows.is_empty();
        let block = Block::bordered().title(self.title_line());
        let inner = block.inner(area);
        frame.render_widget(
            Table::new(rows, columns.widths())
                .header(header)
                .block(block),
            area,
        );
        if empty {
            let text = match (&self.page, &shared.redis_down) {
                (None, Some(down)) => format!("not loaded yet: {}", down.error),
                (None, None) if self.product().is_none() && shared.updated_ms.is_some() => {
                    "no products yet: nothing to show".to_string()
                }
                (None, None) => "loading…".to_string(),
                (Some(_), _) if !self.filter.is_empty() => {
                    let hidden = self
                        .page
                        .as_ref()
                        .and_then(|p| p.scan)
                        .map_or(0, |scan| scan.scanned);
                    format!(
                        "no {} game matches filter \"{}\" ({hidden} hidden; Esc clears it)",
                        self.set, self.filter
                    )
                }
                (Some(_), _) => format!(
                    "no {} games in {}",
                    self.set,
                    self.product().map_or("-".to_string(), |p| p.to_string())
                ),
            };
            let [_, message] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
            frame.render_widget(
                Paragraph::new(text)
                    .style(DIM)
                    .wrap(ratatui::widgets::Wrap { trim: true }),
                message,
            );
        }
    }
}

/// The table's columns at one width: the id column takes what the others leave. The product
/// column (the title names the product) goes first when the ids do not fit whole; then, when
/// the id column would be narrower than [`MIN_ID_WIDTH`], creator, age, server and players, in
/// that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// Width of the id column.
    pub id: u16,
    /// Whether the product column is shown.
    pub product: bool,
    /// Whether the creator column is shown.
    pub creator: bool,
    /// Whether the server column is shown.
    pub server: bool,
    /// Whether the age column is shown.
    pub age: bool,
    /// Whether the players column is shown.
    pub players: bool,
}

/// Widths of the fixed columns.
const STATE_WIDTH: u16 = 18;
const SERVER_WIDTH: u16 = 14;
const CREATOR_WIDTH: u16 = 12;
const PRODUCT_WIDTH: u16 = 10;
const DURATION_WIDTH: u16 = 6;
const PLAYERS_WIDTH: u16 = 7;
/// The id column never gets narrower than this while another column can go instead.
const MIN_ID_WIDTH: u16 = 22;
/// Full game ids (`<product>.<UUIDv7>`) are at most this long in practice.
const FULL_ID_WIDTH: u16 = 48;

impl Columns {
    /// The columns that fit in `width` cells, for ids up to `longest_id` characters.
    pub fn fit(width: u16, longest_id: u16) -> Columns {
        let mut columns = Columns {
            id: 0,
            product: true,
            creator: true,
            server: true,
            age: true,
            players: true,
        };
        if width.saturating_sub(columns.others_width()) < longest_id.min(FULL_ID_WIDTH) {
            columns.product = false;
        }
        let drop_order: [fn(&mut Columns); 4] = [
            |c| c.creator = false,
            |c| c.age = false,
            |c| c.server = false,
            |c| c.players = false,
        ];
        let mut dropped = 0;
        loop {
            let others = columns.others_width();
            let room = width.saturating_sub(others);
            if room >= MIN_ID_WIDTH || dropped == drop_order.len() {
                columns.id = room.clamp(8, FULL_ID_WIDTH);
                return columns;
            }
            drop_order[dropped](&mut columns);
            dropped += 1;
        }
    }

    /// Cells taken by every column but the id, with the one-cell gaps.
    fn others_width(&self) -> u16 {
        let mut width = 1 + 1 + STATE_WIDTH + 1 + DURATION_WIDTH + 1; // symbol, state, idle
        for (shown, w) in [
            (self.product, PRODUCT_WIDTH),
            (self.creator, CREATOR_WIDTH),
            (self.server, SERVER_WIDTH),
            (self.age, DURATION_WIDTH),
            (self.players, PLAYERS_WIDTH),
        ] {
            if shown {
                width += w + 1;
            }
        }
        width
    }

    fn titles(&self) -> Vec<&'static str> {
        let mut titles = vec!["", "id"];
        if self.product {
            titles.push("product");
        }
        titles.push("state");
        if self.players {
            titles.push("players");
        }
        if self.server {
            titles.push("server");
        }
        if self.creator {
            titles.push("creator");
        }
        if self.age {
            titles.push("age");
        }
        titles.push("idle");
        titles
    }

    fn widths(&self) -> Vec<Constraint> {
        let mut widths = vec![Constraint::Length(1), Constraint::Length(self.id)];
        if self.product {
            widths.push(Constraint::Max(PRODUCT_WIDTH));
        }
        widths.push(Constraint::Length(STATE_WIDTH));
        if self.players {
            widths.push(Constraint::Length(PLAYERS_WIDTH));
        }
        if self.server {
            widths.push(Constraint::Max(SERVER_WIDTH));
        }
        if self.creator {
            widths.push(Constraint::Min(CREATOR_WIDTH));
        }
        if self.age {
            widths.push(Constraint::Length(DURATION_WIDTH));
        }
        widths.push(Constraint::Length(DURATION_WIDTH));
        widths
    }
}

fn game_row<'a>(
    shared: &Shared,
    game: &'a GameRow,
    threshold_ms: u64,
    selected: bool,
    columns: &Columns,
) -> Row<'a> {
    let idle = shared.now_ms.saturating_sub(game.activity_ms);
    let staleness = Staleness::of(idle, threshold_ms);
    let stale_style = match staleness {
        Staleness::Fresh => Style::new(),
        Staleness::Near => NEAR_STYLE,
        Staleness::Overdue => OVERDUE_STYLE,
    };
    let age = if game.created_at_ms == 0 {
        "?".to_string()
    } else {
        human_duration(shared.now_ms.saturating_sub(game.created_at_ms))
    };
    let deleting = shared.deletes_in_flight.contains(&game.id);
    let state = if deleting {
        "deleting…".to_string()
    } else {
        game.state
            .map_or("(no record)".to_string(), |s| s.to_string())
    };
    let mut cells = vec![
        Cell::from(staleness.symbol()).style(stale_style),
        Cell::from(abbreviate_id(
            &game.id,
            &game.product,
            usize::from(columns.id),
        )),
    ];
    if columns.product {
        cells.push(Cell::from(game.product.as_str()));
    }
    cells.push(Cell::from(state));
    if columns.players {
        cells.push(Cell::from(format!("{}/{}", game.players, game.capacity)));
    }
    if columns.server {
        cells.push(Cell::from(game.server_id.as_str()));
    }
    if columns.creator {
        cells.push(Cell::from(game.creator_id.as_str()));
    }
    if columns.age {
        cells.push(Cell::from(age).style(stale_style));
    }
    cells.push(Cell::from(human_duration(idle)).style(stale_style));
    let row = Row::new(cells);
    if selected { row.style(SELECTED) } else { row }
}
