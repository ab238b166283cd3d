//! The in-memory view of every open game (contract 5.4): what `GET /v1/games` answers from.
//!
//! Every API instance keeps one. At start it loads every product's open games
//! (`Store::open_snapshot`), then follows each product's change feed (`P:{product}:feed`,
//! written by the store's scripts in the same atomic call as the change) on a connection of
//! its own, one task per product. A product is loaded again — a *resync*, counted in
//! `mm_view_resyncs_total{reason}` — when its feed was trimmed past what the view has read
//! (`gap`), when the feed went back or vanished (`reset`: Redis lost its data or restarted
//! empty), or after a read error (`error`). Products that appear later in `P:products` are
//! picked up within [`DISCOVERY_INTERVAL`]. The instance's own joins and cancels are applied
//! at once ([`OpenGames::observe`], [`OpenGames::forget`]), so a player sees their own writes
//! on the next page; other instances' writes arrive through the feed.
//!
//! The view holds open games only (a game leaves it when it leaves the open index), in one
//! map plus two ordered indexes per product and two over all products: oldest first
//! (creation time, then id) and fullest first (most players present, then oldest). A page is
//! a range scan of one index after the cursor's key, so a cursor stays correct while games
//! come and go: a removed game never shifts another. Until every product known at start has
//! been loaded, the view is not ready: `/readyz` says so and listings answer `503 not_ready`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};

// The view's maps are read for every listing and quick join and written for every change it
// applies; their keys are ids the matchmaker or its config made, so a fast hasher serves.
use foldhash::HashMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use mm_common::backoff::Backoff;
use mm_common::flows::ViewPicks;
use mm_common::labels::Labels;
use mm_common::model::{EntryId, Game, WindowRanking, rank_window};
use mm_common::store::{FeedChange, FeedEntry, FeedUpdate, QuickJoinFilter, ReadEntry, Store};
use mm_common::{GameId, PlayerId, ProductId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::views::GameView;
use crate::telemetry;

/// How often `P:products` is read for products that appeared since.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(5);

/// Feed entries per read.
const READ_COUNT: usize = 1000;

/// How many games a quick join names to its script ([`OpenGames::quick_join_picks`]): enough
/// that concurrent quick joins of one instance, which all see the same fullest game until the
/// first of them is answered, find a seat among the picks rather than in a scan of the index.
pub const QUICK_JOIN_PICKS: usize = 8;

/// How a page is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Oldest (creation time) first.
    #[default]
    Oldest,
    /// Most players present first, then oldest first.
    Fullest,
}

/// A position in one of the orders: the key of the last game of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// After this game in oldest-first order.
    Oldest {
        /// Its creation time (ms).
        created_at_ms: u64,
        /// Its id.
        id: String,
    },
    /// After this game in fullest-first order.
    Fullest {
        /// Players present when the page was served.
        players: u32,
        /// Its creation time (ms).
        created_at_ms: u64,
        /// Its id.
        id: String,
    },
}

impl Cursor {
    /// The opaque text clients pass back: `<created>:<id>` (the format of earlier versions),
    /// or `f<players>:<created>:<id>`.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Oldest { created_at_ms, id } => format!("{created_at_ms}:{id}"),
            Cursor::Fullest {
                players,
                created_at_ms,
                id,
            } => format!("f{players}:{created_at_ms}:{id}"),
        }
    }

    /// Parses [`Cursor::encode`]'s output.
    pub fn decode(text: &str) -> Result<Cursor, String> {
        let invalid = || format!("cursor {text:?} is not one this API issued");
        let valid_id = |id: &str| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        let number = |raw: &str| -> Result<u64, String> {
            if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            raw.parse().map_err(|_| invalid())
        };
        if let Some(rest) = text.strip_prefix('f') {
            let mut parts = rest.splitn(3, ':');
            let (Some(players), Some(created), Some(id)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid());
            };
            // Any count is a position in the order: one above what a game can hold sorts
            // before every game (the schema allows up to 10 digits, more than a u32 holds).
            let players = u32::try_from(number(players)?).unwrap_or(u32::MAX);
            if !valid_id(id) {
                return Err(invalid());
            }
            return Ok(Cursor::Fullest {
                players,
                created_at_ms: number(created)?,
                id: id.to_string(),
            });
        }
        let (created, id) = text.split_once(':').ok_or_else(invalid)?;
        if !valid_id(id) {
            return Err(invalid());
        }
        Ok(Cursor::Oldest {
            created_at_ms: number(created)?,
            id: id.to_string(),
        })
    }

    /// The order this cursor belongs to.
    pub fn sort(&self) -> Sort {
        match self {
            Cursor::Oldest { .. } => Sort::Oldest,
            Cursor::Fullest { .. } => Sort::Fullest,
        }
    }
}

/// What a page asks for.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// One product, or all.
    pub product: Option<ProductId>,
    /// Only games of this region.
    pub region: Option<String>,
    /// Only games with at least this many seats free.
    pub min_seats_free: u32,
    /// Only games carrying every one of these labels (equality).
    pub labels: Labels,
    /// The order.
    pub sort: Sort,
    /// Where the previous page ended (its sort must be `sort`).
    pub after: Option<Cursor>,
    /// Games per page (at least 1).
    pub limit: usize,
    /// Most games the page examines for its filters (`lobby.list_scan_max`; at least
    /// `limit + 1`, 0: no bound): past that, the page ends short, with a cursor after the
    /// last game it examined.
    pub scan_max: usize,
}

/// A page of the view.
#[derive(Debug, Clone)]
pub struct ViewPage {
    /// The games, in the page's order, each as its JSON (contract 5.5) at the page's time.
    pub games: Vec<Arc<[u8]>>,
    /// Where the next page starts, when more games match.
    pub next: Option<Cursor>,
}

/// Why a page cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The cursor belongs to the other sort.
    #[error("the cursor was issued for the other `sort`")]
    CursorOfOtherSort,
}

type OldestKey = (u64, Arc<str>);
type FullestKey = (Reverse<u32>, u64, Arc<str>);

#[derive(Debug, Default)]
struct Index {
    oldest: BTreeMap<OldestKey, Arc<Listed>>,
    fullest: BTreeMap<FullestKey, Arc<Listed>>,
}

impl Index {
    fn insert(&mut self, listed: &Arc<Listed>) {
        self.oldest.insert(listed.oldest_key(), listed.clone());
        self.fullest.insert(listed.fullest_key(), listed.clone());
    }

    fn remove(&mut self, listed: &Listed) {
        self.oldest.remove(&listed.oldest_key());
        self.fullest.remove(&listed.fullest_key());
    }
}

#[derive(Debug)]
struct Listed {
    id: Arc<str>,
    players: u32,
    game: Arc<Game>,
    /// The position in the product's feed this listing reflects: an entry at or before it is
    /// older than what the view holds and changes nothing.
    as_of: EntryId,
    /// The game as JSON (contract 5.5), rendered when a page first shows it, and until when
    /// that stays current: `seats_free` counts reservations, so it changes when the earliest
    /// of them expires (`u64::MAX` without any). A game that changes again before any page
    /// shows it is never rendered. Once it is no longer current, the page that renders it
    /// again has the view keep the new rendering ([`Games::keep_renderings`]).
    rendered: OnceLock<Rendered>,
}

/// A game's JSON and until when (ms) it stays current.
type Rendered = (Arc<[u8]>, u64);

/// Where a page's walk through the order stopped.
enum PageEnd<'a> {
    /// Every game after the start was examined: this is the last page.
    Last,
    /// The page holds one game more than `limit` (it only says that more follow).
    Full,
    /// `scan_max` games were examined before the page filled: the next page starts after
    /// the last one examined, which the page need not show.
    Examined(&'a Arc<Listed>),
}

/// Pushes the games of `ordered` that `keep` accepts onto `page`, stopping once it holds one
/// more than `limit` (that one only says whether there is a next page) or once `scan_max`
/// games were examined, so a filter that matches few games costs a bounded walk a page.
fn fill_page<'a>(
    page: &mut Vec<&'a Arc<Listed>>,
    ordered: impl Iterator<Item = &'a Arc<Listed>>,
    keep: impl Fn(&Listed) -> bool,
    limit: usize,
    scan_max: usize,
) -> PageEnd<'a> {
    let mut ordered = ordered.peekable();
    let mut examined = 0;
    while let Some(listed) = ordered.next() {
        if keep(listed) {
            page.push(listed);
            if page.len() > limit {
                return PageEnd::Full;
            }
        }
        examined += 1;
        if examined >= scan_max && ordered.peek().is_some() {
            return PageEnd::Examined(listed);
        }
    }
    PageEnd::Last
}

/// The game as JSON at `now_ms`, and until when that stays current.
fn render(game: &Game, now_ms: u64) -> Rendered {
    let json =
        serde_json::to_vec(&GameView::of(game, now_ms)).expect("a game view always serialises");
    let fresh_until = game
        .reservations
        .values()
        .copied()
        .filter(|expiry| *expiry > now_ms)
        .min()
        .unwrap_or(u64::MAX);
    (Arc::from(json), fresh_until)
}

impl Listed {
    fn new(mut game: Game, as_of: EntryId) -> Listed {
        // Not part of a listing (contract 5.5), and a game's settings can be large: a view
        // holding 100,000 games keeps only what it shows and filters on.
        game.settings = String::new();
        game.socket_url = String::new();
        let players = game.roster.values().filter(|entry| entry.present).count() as u32;
        Listed {
            id: Arc::from(game.id.as_str()),
            players,
            game: Arc::new(game),
            as_of,
            rendered: OnceLock::new(),
        }
    }

    /// The game as JSON at `now_ms`: rendered once, again only after a reservation expired.
    fn json_at(&self, now_ms: u64) -> Rendering {
        let (json, fresh_until) = self.rendered.get_or_init(|| render(&self.game, now_ms));
        if now_ms < *fresh_until {
            Rendering::Current(json.clone())
        } else {
            let (json, fresh_until) = render(&self.game, now_ms);
            Rendering::Renewed(json, fresh_until)
        }
    }

    /// The same listing with the rendering `rendered` kept.
    fn with_rendering(&self, rendered: Rendered) -> Listed {
        Listed {
            id: self.id.clone(),
            players: self.players,
            game: self.game.clone(),
            as_of: self.as_of,
            rendered: OnceLock::from(rendered),
        }
    }

    fn oldest_key(&self) -> OldestKey {
        (self.game.created_at_ms, self.id.clone())
    }

    fn fullest_key(&self) -> FullestKey {
        (
            Reverse(self.players),
            self.game.created_at_ms,
            self.id.clone(),
        )
    }
}

/// A listed game's JSON as a page shows it.
enum Rendering {
    /// The rendering the listing keeps.
    Current(Arc<[u8]>),
    /// Rendered again (a reservation expired since the kept one), current until the given
    /// time (ms).
    Renewed(Arc<[u8]>, u64),
}

#[derive(Debug, Default)]
struct Games {
    by_id: HashMap<Arc<str>, Arc<Listed>>,
    /// How far each product's feed has been applied (its snapshot's position, then the last
    /// entry read): a write of this instance whose feed entry is not past it is already in
    /// the view, or overtaken by a newer change.
    read_up_to: HashMap<ProductId, EntryId>,
    products: HashMap<ProductId, Index>,
    all: Index,
}

impl Games {
    /// Whether the view holds a newer state of `id` than the feed position `entry`.
    fn holds_newer(&self, id: &str, entry: EntryId) -> bool {
        self.by_id
            .get(id)
            .is_some_and(|listed| listed.as_of >= entry)
    }

    /// Lists `game` as of the feed position `as_of`.
    fn upsert(&mut self, game: Game, as_of: EntryId) {
        self.remove(game.id.as_str());
        let listed = Arc::new(Listed::new(game, as_of));
        self.products
            .entry(listed.game.product.clone())
            .or_default()
            .insert(&listed);
        self.all.insert(&listed);
        self.by_id.insert(listed.id.clone(), listed);
    }

    /// Applies an `op update` to a game the view holds. One it does not hold is left alone:
    /// an update is written only for a game already in the open index, so the view has it
    /// (from its load or an `op open`) unless this instance's own write took it out first, in
    /// which case the feed's `op gone` or a later `op open` follows.
    fn update(&mut self, update: &FeedUpdate, entry: EntryId) {
        if let Some(listed) = self.by_id.get(update.id.as_str()) {
            let mut game = Game::clone(&listed.game);
            update.apply_to(&mut game);
            self.upsert(game, entry);
        }
    }

    /// Applies one feed entry, unless the view already holds a newer state of its game (this
    /// instance's own write, applied before the feed gave it).
    fn apply(&mut self, entry: FeedEntry) {
        let id = match &entry.change {
            FeedChange::Open(game) => game.id.as_str(),
            FeedChange::Update(update) => update.id.as_str(),
            FeedChange::Gone(id) => id.as_str(),
        };
        if self.holds_newer(id, entry.id) {
            return;
        }
        match entry.change {
            FeedChange::Open(game) => self.upsert(*game, entry.id),
            FeedChange::Update(update) => self.update(&update, entry.id),
            FeedChange::Gone(id) => self.remove(&id),
        }
    }

    /// Keeps the renderings pages made again after a reservation expired, each for the
    /// listing it was made from: a game whose listing changed since (a newer state) is left
    /// alone. The keys are unchanged, so the listings are replaced in place.
    fn keep_renderings(&mut self, renewed: Vec<(Arc<Listed>, Rendered)>) {
        for (seen, rendered) in renewed {
            if !self
                .by_id
                .get(&seen.id)
                .is_some_and(|current| Arc::ptr_eq(current, &seen))
            {
                continue;
            }
            let listed = Arc::new(seen.with_rendering(rendered));
            if let Some(index) = self.products.get_mut(&listed.game.product) {
                index.insert(&listed);
            }
            self.all.insert(&listed);
            self.by_id.insert(listed.id.clone(), listed);
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(listed) = self.by_id.remove(id) {
            if let Some(index) = self.products.get_mut(&listed.game.product) {
                index.remove(&listed);
            }
            self.all.remove(&listed);
        }
    }

    fn replace_product(&mut self, product: &ProductId, games: Vec<Game>, position: EntryId) {
        self.read_up_to.insert(product.clone(), position);
        if let Some(index) = self.products.remove(product) {
            for ((_, id), _) in index.oldest {
                if let Some(listed) = self.by_id.remove(&id) {
                    self.all.remove(&listed);
                }
            }
        }
        self.products.insert(product.clone(), Index::default());
        for game in games {
            self.upsert(game, position);
        }
    }
}

/// The view. Shared by the handlers (reads) and the feed followers (writes).
#[derive(Debug)]
pub struct OpenGames {
    games: RwLock<Games>,
    /// Seats this instance's quick joins are taking right now (picked, their script not yet
    /// answered), by game: counted as taken when the next quick join picks, so concurrent
    /// quick joins spread over as many lobbies as their seats need instead of all naming the
    /// same one.
    claims: Mutex<HashMap<GameId, u32>>,
    ready: watch::Sender<bool>,
}

impl Default for OpenGames {
    fn default() -> Self {
        OpenGames {
            games: RwLock::default(),
            claims: Mutex::default(),
            ready: watch::Sender::new(false),
        }
    }
}

/// A seat a quick join of this instance is taking in a game of the view (its first pick),
/// counted by [`OpenGames::quick_join_picks`] until dropped.
#[derive(Debug)]
pub struct SeatClaim<'a> {
    view: &'a OpenGames,
    game: Option<GameId>,
}

impl<'a> SeatClaim<'a> {
    fn none(view: &'a OpenGames) -> SeatClaim<'a> {
        SeatClaim { view, game: None }
    }
}

impl Drop for SeatClaim<'_> {
    fn drop(&mut self) {
        if let Some(game) = self.game.take() {
            let mut claims = self.view.claims();
            if let Some(count) = claims.get_mut(&game) {
                *count -= 1;
                if *count == 0 {
                    claims.remove(&game);
                }
            }
        }
    }
}

impl OpenGames {
    /// Whether every product known at start has been loaded.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits up to `limit` for the view to be ready; whether it is.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let mut ready = self.ready.subscribe();
        tokio::time::timeout(limit, ready.wait_for(|ready| *ready))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// Open games in the view.
    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Whether the view holds no game.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies a game as this instance just wrote it (its own join), the write having added
    /// `feed_entry` to the product's change feed: listed while it is open at `now_ms`, else
    /// dropped. Nothing changes when the view has read the feed up to that entry or past it:
    /// the view then holds that write or a newer one, which an older record must not undo.
    pub fn observe(&self, game: &Game, feed_entry: EntryId, now_ms: u64) {
        let mut games = self.write();
        if games
            .read_up_to
            .get(&game.product)
            .is_some_and(|read| *read >= feed_entry)
            || games.holds_newer(game.id.as_str(), feed_entry)
        {
            return;
        }
        if game.is_open(now_ms) {
            games.upsert(game.clone(), feed_entry);
        } else {
            games.remove(game.id.as_str());
        }
        drop(games);
        self.publish_size();
    }

    /// Drops a game this instance just ended or took out of the listing (its own cancel).
    pub fn forget(&self, id: &GameId) {
        self.write().remove(id.as_str());
        self.publish_size();
    }

    /// The games a quick join of `player` in `product` should try, best first (contract
    /// 5.4): of the product's `scan` oldest open games as this view holds them, the first the
    /// player is already in, else the matching ones fullest first, at most [`QUICK_JOIN_PICKS`],
    /// counting the seats this instance's other quick joins are taking ([`SeatClaim`]). The
    /// first pick is claimed until the returned claim is dropped. The quick join script checks
    /// each pick against the record before it takes a seat, and reads the open index itself
    /// when none takes it (this view was behind) — unless the view holds the product and no
    /// open game of it matches ([`ViewPicks::none_match`]): then nothing is read.
    pub fn quick_join_picks(
        &self,
        product: &ProductId,
        player: &PlayerId,
        filter: &QuickJoinFilter,
        scan: usize,
        now_ms: u64,
    ) -> (ViewPicks, SeatClaim<'_>) {
        let games = self.read();
        let mut claims = self.claims();
        let Some(index) = games.products.get(product) else {
            // Not loaded (yet): the view knows nothing of the product, the script looks.
            return (ViewPicks::default(), SeatClaim::none(self));
        };
        let window = index.oldest.values().take(scan).map(|listed| &*listed.game);
        let claimed = |id: &GameId| claims.get(id).copied().unwrap_or(0) as usize;
        let picks = match rank_window(window, player, filter, now_ms, claimed) {
            WindowRanking::Held(game) => ViewPicks {
                games: vec![game.id.clone()],
                none_match: false,
            },
            // Nothing ranked and nothing left out for the seats this instance's other quick
            // joins are taking: nothing matches (else the script looks in the record).
            WindowRanking::Ranked { games, claimed_out } => ViewPicks {
                none_match: games.is_empty() && !claimed_out,
                games: games
                    .into_iter()
                    .take(QUICK_JOIN_PICKS)
                    .map(|game| game.id.clone())
                    .collect(),
            },
        };
        let claim = match picks.games.first() {
            Some(first) => {
                *claims.entry(first.clone()).or_default() += 1;
                SeatClaim {
                    view: self,
                    game: Some(first.clone()),
                }
            }
            None => SeatClaim::none(self),
        };
        (picks, claim)
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<GameId, u32>> {
        self.claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One page.
    pub fn page(&self, query: &PageQuery, now_ms: u64) -> Result<ViewPage, PageError> {
        if let Some(after) = &query.after
            && after.sort() != query.sort
        {
            return Err(PageError::CursorOfOtherSort);
        }
        let games = self.read();
        let index = match &query.product {
            Some(product) => match games.products.get(product) {
                Some(index) => index,
                None => {
                    return Ok(ViewPage {
                        games: Vec::new(),
                        next: None,
                    });
                }
            },
            None => &games.all,
        };
        let limit = query.limit.max(1);
        // A listed game had a seat free when it entered the view, and reservations only
        // expire: seats are counted only for a filter asking for more than one.
        let keep = |listed: &Listed| -> bool {
            let game = &listed.game;
            let region_ok = query
                .region
                .as_deref()
                .is_none_or(|region| game.region.as_deref() == Some(region));
            let seats_ok = query.min_seats_free <= 1
                || (game.capacity as usize).saturating_sub(game.seats_taken(now_ms))
                    >= query.min_seats_free as usize;
            region_ok && seats_ok && game.labels.matches(&query.labels)
        };
        let scan_max = match query.scan_max {
            0 => usize::MAX,
            bound => bound.max(limit + 1),
        };
        let mut page: Vec<&Arc<Listed>> = Vec::with_capacity(limit + 1);
        let end = match query.sort {
            Sort::Oldest => {
                let start = match &query.after {
                    Some(Cursor::Oldest { created_at_ms, id }) => {
                        Bound::Excluded((*created_at_ms, Arc::from(id.as_str())))
                    }
                    _ => Bound::Unbounded,
                };
                fill_page(
                    &mut page,
                    index
                        .oldest
                        .range((start, Bound::Unbounded))
                        .map(|(_, l)| l),
                    keep,
                    limit,
                    scan_max,
                )
            }
            Sort::Fullest => {
                let start = match &query.after {
                    Some(Cursor::Fullest {
                        players,
                        created_at_ms,
                        id,
                    }) => {
                        Bound::Excluded((Reverse(*players), *created_at_ms, Arc::from(id.as_str())))
                    }
                    _ => Bound::Unbounded,
                };
                fill_page(
                    &mut page,
                    index
                        .fullest
                        .range((start, Bound::Unbounded))
                        .map(|(_, l)| l),
                    keep,
                    limit,
                    scan_max,
                )
            }
        };
        page.truncate(limit);
        // The next page starts after the last game shown, or after the last one examined
        // when the walk stopped short.
        let after = match end {
            PageEnd::Last => None,
            PageEnd::Full => page.last().copied(),
            PageEnd::Examined(last) => Some(last),
        };
        let next = after.map(|last| match query.sort {
            Sort::Oldest => Cursor::Oldest {
                created_at_ms: last.game.created_at_ms,
                id: last.id.to_string(),
            },
            Sort::Fullest => Cursor::Fullest {
                players: last.players,
                created_at_ms: last.game.created_at_ms,
                id: last.id.to_string(),
            },
        });
        // A game shown again after one of its reservations expired is rendered again; the
        // view keeps that rendering, so later pages do not render it once more.
        let mut renewed = Vec::new();
        let page = page
            .into_iter()
            .map(|listed| match listed.json_at(now_ms) {
                Rendering::Current(json) => json,
                Rendering::Renewed(json, fresh_until) => {
                    renewed.push((Arc::clone(listed), (json.clone(), fresh_until)));
                    json
                }
            })
            .collect();
        drop(games);
        if !renewed.is_empty() {
            self.write().keep_renderings(renewed);
        }
        Ok(ViewPage { games: page, next })
    }

    /// Loads every product, marks the view ready once those known now are loaded, and
    /// follows each product's feed (and products that appear later) until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        store: Store,
        configured: Vec<ProductId>,
        block: Duration,
        shutdown: CancellationToken,
    ) {
        let mut followed: HashSet<ProductId> = HashSet::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut first = true;
        loop {
            let mut products: Vec<ProductId> = configured.clone();
            match store.products().await {
                Ok(known) => products.extend(known),
                Err(err) => tracing::warn!(%err, "view: cannot read the known products"),
            }
            let (loaded_tx, mut loaded_rx) = tokio::sync::mpsc::channel::<()>(64);
            let mut started = 0;
            for product in products {
                if followed.insert(product.clone()) {
                    started += 1;
                    let view = self.clone();
                    let (store, token, loaded) =
                        (store.clone(), shutdown.clone(), loaded_tx.clone());
                    tasks.spawn(async move {
                        view.follow(store, product, block, token, loaded).await;
                    });
                }
            }
            drop(loaded_tx);
            if first {
                // Ready once every product known at start has been loaded once.
                for _ in 0..started {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = loaded_rx.recv() => {}
                    }
                }
                self.ready.send_replace(true);
                tracing::info!(games = self.len(), "view of open games loaded");
                first = false;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(DISCOVERY_INTERVAL) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Loads `product` and follows its feed, loading it again after a gap, a reset or an
    /// error, until `shutdown`. Sends on `loaded` after the first load.
    async fn follow(
        &self,
        store: Store,
        product: ProductId,
        block: Duration,
        shutdown: CancellationToken,
        loaded: tokio::sync::mpsc::Sender<()>,
    ) {
        let mut loaded = Some(loaded);
        let mut retry = Backoff::new(Duration::from_millis(100), Duration::from_secs(5)).delays();
        let mut reason = "start";
        while !shutdown.is_cancelled() {
            let snapshot = tokio::select! {
                _ = shutdown.cancelled() => return,
                snapshot = store.open_snapshot(&product) => snapshot,
            };
            let snapshot = match snapshot {
                Ok(snapshot) => snapshot,
                Err(err) => {
                    tracing::warn!(%product, %err, "view: cannot load the product's open games");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(retry.next_delay()) => {}
                    }
                    continue;
                }
            };
            retry.reset();
            metrics::counter!(telemetry::VIEW_RESYNCS_TOTAL, "reason" => reason).increment(1);
            if reason != "start" {
                tracing::info!(%product, reason, games = snapshot.games.len(), "view: product reloaded");
            }
            self.write()
                .replace_product(&product, snapshot.games, snapshot.feed.last_id);
            self.publish_size();
            if let Some(loaded) = loaded.take() {
                let _ = loaded.send(()).await;
            }
            let existed = snapshot.feed.exists;
            let mut last = snapshot.feed.last_id;
            let mut count = snapshot.feed.entries_added;
            let mut reader = store.feed_reader(&product, block);
            reason = loop {
                // This instance's own writes are in the view already (`observe`): their
                // entries are passed over undecoded.
                let known = |game: &str, entry: EntryId| self.read().holds_newer(game, entry);
                let read = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    read = reader.read_after_skipping(last, READ_COUNT, known) => read,
                };
                match read {
                    Ok(entries) => {
                        if !entries.is_empty() {
                            let mut games = self.write();
                            for entry in entries {
                                count += 1;
                                match entry {
                                    ReadEntry::Decoded(entry) => {
                                        last = entry.id;
                                        games.apply(entry);
                                    }
                                    ReadEntry::Skipped(id) => last = id,
                                }
                            }
                            games.read_up_to.insert(product.clone(), last);
                            drop(games);
                            self.publish_size();
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%product, %err, "view: reading the feed failed");
                        break "error";
                    }
                }
                match store.feed_state(&product).await {
                    Ok(state) if state.continues(last, count, existed) => {}
                    Ok(state) => {
                        break if state.exists && state.has_gap(last, count) {
                            "gap"
                        } else {
                            "reset"
                        };
                    }
                    Err(err) => {
                        tracing::warn!(%product, %err, "view: checking the feed failed");
                        break "error";
                    }
                }
            };
            if reason == "error" {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(retry.next_delay()) => {}
                }
            }
        }
    }

    fn publish_size(&self) {
        metrics::gauge!(telemetry::VIEW_GAMES).set(self.len() as f64);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Games> {
        self.games
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Games> {
        self.games
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use mm_common::ServerId;
    use mm_common::model::{Event, EventKind};

    use super::*;

    fn product() -> ProductId {
        ProductId::new("chess").unwrap()
    }

    fn player(name: &str) -> PlayerId {
        PlayerId::new(name).unwrap()
    }

    /// An open lobby of `capacity` seats, created at `created_ms`, its creator present.
    fn lobby(id: &str, capacity: u32, created_ms: u64) -> Game {
        let mut game = Game::new(
            GameId::new(id).unwrap(),
            product(),
            ServerId::new("gs-1").unwrap(),
            None,
            capacity,
            player("host"),
            String::new(),
            "{}".into(),
            created_ms,
        );
        let joined = Event {
            entry_id: EntryId::new(created_ms + 1, 0),
            kind: EventKind::CreatorJoined,
            game_id: game.id.clone(),
            player_id: Some(player("host")),
            server_id: game.server_id.clone(),
            ts_ms: created_ms + 1,
        };
        game.apply(&joined, u64::MAX).unwrap();
        game
    }

    fn view_of(games: Vec<Game>, read_up_to: EntryId) -> OpenGames {
        let view = OpenGames::default();
        view.write().replace_product(&product(), games, read_up_to);
        view
    }

    /// A page showing a game after one of its reservations expired renders it again (a seat
    /// more is free), and the view keeps that rendering: later pages serve it as they served
    /// the first, without rendering it again.
    #[test]
    fn a_game_rendered_again_after_a_reservation_expired_keeps_that_rendering() {
        let mut game = lobby("chess.a", 3, 1);
        game.reserve(&player("bob"), 10, 1_000).unwrap();
        let view = view_of(vec![game], EntryId::new(5, 0));
        let query = PageQuery {
            product: Some(product()),
            limit: 10,
            ..PageQuery::default()
        };
        let seats_free = |page: &ViewPage| -> u64 {
            let game: serde_json::Value = serde_json::from_slice(&page.games[0]).unwrap();
            game["seats_free"].as_u64().unwrap()
        };
        let kept_until = || {
            view.read().by_id["chess.a"]
                .rendered
                .get()
                .map(|(_, fresh_until)| *fresh_until)
        };
        let before = view.page(&query, 100).unwrap();
        assert_eq!(seats_free(&before), 1, "bob's seat is reserved");
        assert_eq!(
            kept_until(),
            Some(1_010),
            "rendered until bob's reservation expires"
        );

        let after = view.page(&query, 2_000).unwrap();
        assert_eq!(seats_free(&after), 2, "bob's reservation has expired");
        assert_eq!(kept_until(), Some(u64::MAX), "the new rendering is kept");
        let again = view.page(&query, 3_000).unwrap();
        assert!(
            Arc::ptr_eq(&again.games[0], &after.games[0]),
            "served from the kept rendering"
        );
    }

    #[test]
    fn an_own_write_the_feed_has_passed_never_undoes_a_newer_change() {
        let open = lobby("chess.a", 2, 1);
        let mut full = open.clone();
        full.reserve(&player("bob"), 10, 60_000).unwrap();
        assert!(!full.is_open(10), "test setup");

        // The feed has been read up to 7-0, where the game went out of the open index (its
        // last seat taken by another request): an older record of this instance's own write
        // (feed entry 6-0, the game still open) must not bring it back.
        let view = view_of(Vec::new(), EntryId::new(7, 0));
        view.observe(&open, EntryId::new(6, 0), 10);
        view.observe(&open, EntryId::new(7, 0), 10);
        assert_eq!(view.len(), 0);

        // A write past what the feed has given is applied at once, open or not.
        view.observe(&open, EntryId::new(8, 0), 10);
        assert_eq!(view.len(), 1);
        view.observe(&full, EntryId::new(9, 0), 10);
        assert_eq!(view.len(), 0);
    }

    #[test]
    fn feed_entries_older_than_an_own_write_change_nothing() {
        let open = lobby("chess.a", 3, 1);
        let mut reserved = open.clone();
        reserved.reserve(&player("bob"), 10, 60_000).unwrap();
        let view = view_of(vec![open.clone()], EntryId::new(5, 0));
        let seats_free = |view: &OpenGames| {
            let page = view
                .page(
                    &PageQuery {
                        limit: 10,
                        ..PageQuery::default()
                    },
                    10,
                )
                .unwrap();
            let game: serde_json::Value = serde_json::from_slice(&page.games[0]).unwrap();
            game["seats_free"].as_u64().unwrap()
        };
        assert_eq!(seats_free(&view), 2);
        // This instance's join (feed entry 8-0) is shown at once...
        view.observe(&reserved, EntryId::new(8, 0), 10);
        assert_eq!(seats_free(&view), 1);
        // ...and an older entry the feed gives afterwards (6-0: another change before the
        // join) does not take it back; the join's own entry changes nothing either.
        let stale = |at: u64| FeedEntry {
            id: EntryId::new(at, 0),
            change: FeedChange::Update(FeedUpdate {
                id: open.id.to_string(),
                updated_at_ms: open.updated_at_ms,
                roster: None,
                reservations: Some(BTreeMap::new()),
            }),
        };
        view.write().apply(stale(6));
        view.write().apply(stale(8));
        assert_eq!(seats_free(&view), 1);
        // A newer entry applies.
        view.write().apply(stale(9));
        assert_eq!(seats_free(&view), 2);
    }

    #[test]
    fn concurrent_quick_joins_are_spread_by_the_seats_they_are_taking() {
        // b is fuller (one seat left), a has two seats left.
        let a = lobby("chess.a", 3, 1);
        let mut b = lobby("chess.b", 3, 2);
        b.reserve(&player("carol"), 10, 60_000).unwrap();
        let view = view_of(vec![a, b], EntryId::new(1, 0));
        let filter = QuickJoinFilter::default();
        let pick = |who: &str| {
            let (picks, claim) = view.quick_join_picks(&product(), &player(who), &filter, 64, 10);
            (
                picks
                    .games
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                claim,
            )
        };
        let (first, first_claim) = pick("p1");
        assert_eq!(first, ["chess.b", "chess.a"]);
        // While p1's script runs, b's last seat counts as taken: p2 is sent to a.
        let (second, second_claim) = pick("p2");
        assert_eq!(second, ["chess.a"]);
        // Claims go with the attempt: once both answered, b is named first again.
        drop((first_claim, second_claim));
        assert_eq!(pick("p3").0, ["chess.b", "chess.a"]);
        // A game the player already holds a seat in is the only pick.
        assert_eq!(pick("carol").0, ["chess.b"]);
    }

    #[test]
    fn a_view_that_holds_no_matching_game_says_so_and_seats_being_taken_are_not_a_miss() {
        // One seat left in a, for a product the view holds.
        let view = view_of(vec![lobby("chess.a", 2, 1)], EntryId::new(1, 0));
        let picks = |filter: &QuickJoinFilter| {
            view.quick_join_picks(&product(), &player("p"), filter, 64, 10)
                .0
        };
        let any = QuickJoinFilter::default();
        let elsewhere = QuickJoinFilter {
            region: Some("mars".into()),
            ..QuickJoinFilter::default()
        };
        let ranked = QuickJoinFilter {
            labels: Labels::new([("mode".to_string(), "ranked".to_string())].into(), 8).unwrap(),
            ..QuickJoinFilter::default()
        };
        let excluded = QuickJoinFilter {
            exclude: vec![GameId::new("chess.a").unwrap()],
            ..QuickJoinFilter::default()
        };
        // Nothing matches: no pick, and the view says so.
        for filter in [&elsewhere, &ranked, &excluded] {
            let got = picks(filter);
            assert!(
                got.games.is_empty() && got.none_match,
                "{filter:?}: {got:?}"
            );
        }
        // a matches: it is the pick.
        let (first, claim) = view.quick_join_picks(&product(), &player("p1"), &any, 64, 10);
        assert_eq!(first.games, [GameId::new("chess.a").unwrap()]);
        assert!(!first.none_match);
        // While p1 takes a's last seat, p2 gets no pick, but a still matches: the script
        // is left to look in the record (p1's seat may yet fail).
        let second = picks(&any);
        assert!(second.games.is_empty() && !second.none_match, "{second:?}");
        drop(claim);
        // A product the view has not loaded is not known to hold nothing.
        let other = view
            .quick_join_picks(&ProductId::new("go").unwrap(), &player("p"), &any, 64, 10)
            .0;
        assert!(other.games.is_empty() && !other.none_match, "{other:?}");
    }

    /// A filter that matches few games is paged through: each page examines at most
    /// `scan_max` games and ends short with a cursor after the last one examined, so no
    /// request walks every open game; following the cursors still shows every match once.
    #[test]
    fn a_page_examines_at_most_scan_max_games_and_its_cursor_goes_on_from_there() {
        const GAMES: u64 = 20;
        let games = (0..GAMES)
            .map(|i| {
                let mut game = lobby(&format!("chess.g{i:02}"), 4, 10 + i);
                if i == 2 || i == 13 {
                    game.region = Some("eu".into());
                }
                game
            })
            .collect();
        let view = view_of(games, EntryId::new(100, 0));
        for sort in [Sort::Oldest, Sort::Fullest] {
            let mut query = PageQuery {
                product: Some(product()),
                region: Some("eu".into()),
                sort,
                limit: 1,
                scan_max: 4,
                ..PageQuery::default()
            };
            let (mut shown, mut pages) = (Vec::new(), 0);
            loop {
                let page = view.page(&query, 1_000).unwrap();
                pages += 1;
                for json in &page.games {
                    let game: serde_json::Value = serde_json::from_slice(json).unwrap();
                    shown.push(game["id"].as_str().unwrap().to_string());
                }
                match page.next {
                    Some(next) => query.after = Some(next),
                    None => break,
                }
                assert!(pages <= GAMES, "{sort:?}: the cursors go on for ever");
            }
            assert_eq!(shown, ["chess.g02", "chess.g13"], "{sort:?}");
            // Every game has one player, so both orders are g00..g19: g00-g03 (showing g02),
            // g04-g07, g08-g11 (both empty), g12-g15 (g13), g16-g19 (the last, no cursor).
            assert_eq!(pages, GAMES / 4, "{sort:?}: 4 games examined a page");
        }
        // Without filters a page fills whatever the bound (it is at least limit + 1).
        let page = view
            .page(
                &PageQuery {
                    product: Some(product()),
                    limit: 10,
                    scan_max: 1,
                    ..PageQuery::default()
                },
                1_000,
            )
            .unwrap();
        assert_eq!(page.games.len(), 10);
        assert!(page.next.is_some());
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_was_not_issued() {
        for cursor in [
            Cursor::Oldest {
                created_at_ms: 17,
                id: "chess.abc".into(),
            },
            Cursor::Fullest {
                players: 3,
                created_at_ms: 17,
                id: "chess.abc".into(),
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        }
        for bad in [
            "", "x", "17", "17:", ":a", "f3:17", "f:17:a", "fx:1:a", "1:a b", "-1:a",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?}");
        }
        // Whatever the OpenAPI pattern allows decodes: a player count past a u32 is a
        // position before every game of the fullest order.
        assert_eq!(
            Cursor::decode("f7946508090:01836:7e-rc7SRf5DJN"),
            Ok(Cursor::Fullest {
                players: u32::MAX,
                created_at_ms: 1836,
                id: "7e-rc7SRf5DJN".into(),
            })
        );
        assert!(Cursor::decode("9999999999999999999:a").is_ok());
    }
}
