//! The game model: states, events and transition rules (contract sections 2 and 4), as pure code.
//!
//! **This module is the specification and the test oracle; production runs the store's Lua
//! scripts** (`store/lua/`), which implement the same rules atomically inside Redis. Nothing
//! in the daemon calls [`Game::apply`], [`Game::reserve`], [`Game::rejoin`], [`Game::release`],
//! [`Game::mark_ending`], [`Game::unmark_ending`], [`Game::remove`] or [`quick_join_pick`]: they exist so the rules can be read in one place and so the differential
//! property test (`tests/tests/it/oracle.rs`) can run random mixes of every store operation
//! through both and require the same outcome and the same record after each one. The read
//! side ([`Game::state`], [`Game::set_and_score`], [`Game::is_open`], …) is used by
//! production code on records decoded from Redis. This module does no I/O.
//!
//! # Order independence
//!
//! Several daemons share a product stream through one consumer group, so two events of one game
//! may be applied in a different order than they were written. The rules are built so that the
//! final record does not depend on that order, only on the set of events applied:
//!
//! - the game's *phase* (`created` < lobby < `in_progress` < `ended`) only moves forward, to
//!   the maximum any event implies;
//! - the roster is last-writer-wins per player, ordered by stream entry id: a player's
//!   presence is whatever the newest `player_joined`/`player_left` about them says;
//! - whether a lobby is full (`all_players_joined`) is derived: every seat is taken, or an
//!   explicit `all_players_joined` is newer than every `player_left`;
//! - activity time is the maximum event time seen.
//!
//! Applied in stream order, these rules are exactly the intuitive sequential ones ("a player
//! who joined and then left is not joined"); applied in any other order they reach the same
//! record. Duplicates and out-of-date events change nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{GameId, IdError, PlayerId, ProductId, ServerId};
use crate::labels::Labels;
use crate::store::{MarkOutcome, QuickJoinFilter, RemoveGuard, RemoveOutcome};

/// A game's state (contract section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GameState {
    /// Created on a game server, creator not yet connected (set: pending).
    Created,
    /// In the lobby with a free seat; open while the creator is present, no end step is under
    /// way and a seat is free (set: lobby).
    CreatorJoined,
    /// Every seat is taken (set: lobby, not open).
    AllPlayersJoined,
    /// Playing (set: active).
    InProgress,
    /// Over: in no set; the hash is a tombstone with a TTL.
    Ended,
}

impl GameState {
    /// Every state, in lifecycle order.
    pub const ALL: [GameState; 5] = [
        GameState::Created,
        GameState::CreatorJoined,
        GameState::AllPlayersJoined,
        GameState::InProgress,
        GameState::Ended,
    ];

    /// The contract's name of the state (`creator_joined`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            GameState::Created => "created",
            GameState::CreatorJoined => "creator_joined",
            GameState::AllPlayersJoined => "all_players_joined",
            GameState::InProgress => "in_progress",
            GameState::Ended => "ended",
        }
    }

    /// The sorted set a game in this state belongs to (`None` once ended).
    pub fn set(self) -> Option<GameSet> {
        match self {
            GameState::Created => Some(GameSet::Pending),
            GameState::CreatorJoined | GameState::AllPlayersJoined => Some(GameSet::Lobby),
            GameState::InProgress => Some(GameSet::Active),
            GameState::Ended => None,
        }
    }

    /// Whether the creator may still cancel the game (it has not started).
    pub fn cancellable(self) -> bool {
        matches!(
            self,
            GameState::Created | GameState::CreatorJoined | GameState::AllPlayersJoined
        )
    }
}

impl fmt::Display for GameState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GameState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        GameState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown game state {s:?}"))
    }
}

/// The three sorted sets of live games.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GameSet {
    /// Games whose creator has not joined yet.
    Pending,
    /// Games gathering players.
    Lobby,
    /// Games being played.
    Active,
}

impl GameSet {
    /// Every set, in lifecycle order.
    pub const ALL: [GameSet; 3] = [GameSet::Pending, GameSet::Lobby, GameSet::Active];

    /// The set's name as used in keys and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            GameSet::Pending => "pending",
            GameSet::Lobby => "lobby",
            GameSet::Active => "active",
        }
    }
}

impl fmt::Display for GameSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GameSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        GameSet::ALL
            .into_iter()
            .find(|set| set.as_str() == s)
            .ok_or_else(|| format!("unknown set {s:?} (expected pending, lobby or active)"))
    }
}

/// The lifecycle phase: the forward-only part of the state. A lobby's full/not-full
/// distinction is derived from the roster (see [`Game::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// `created`.
    Created = 0,
    /// `creator_joined` or `all_players_joined`.
    Lobby = 1,
    /// `in_progress`.
    InProgress = 2,
    /// `ended`.
    Ended = 3,
}

/// A Redis stream entry id (`<ms>-<seq>`); events of a stream are totally ordered by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl EntryId {
    /// An entry id from its parts.
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for EntryId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ms, seq) = s
            .split_once('-')
            .ok_or_else(|| format!("stream entry id {s:?} is not of the form <ms>-<seq>"))?;
        let parse = |part: &str| {
            part.parse::<u64>()
                .map_err(|_| format!("stream entry id {s:?} is not of the form <ms>-<seq>"))
        };
        Ok(EntryId::new(parse(ms)?, parse(seq)?))
    }
}

/// The event types game servers write (contract section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The creator connected.
    CreatorJoined,
    /// A player connected (filling the last seat implies `all_players_joined`).
    PlayerJoined,
    /// A player left; before the start this frees a seat.
    PlayerLeft,
    /// Every seat is taken.
    AllPlayersJoined,
    /// Play began.
    GameStarted,
    /// The game is over (from any state).
    GameEnded,
    /// The game is alive; refreshes its activity time.
    Heartbeat,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 7] = [
        EventKind::CreatorJoined,
        EventKind::PlayerJoined,
        EventKind::PlayerLeft,
        EventKind::AllPlayersJoined,
        EventKind::GameStarted,
        EventKind::GameEnded,
        EventKind::Heartbeat,
    ];

    /// The contract's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CreatorJoined => "creator_joined",
            EventKind::PlayerJoined => "player_joined",
            EventKind::PlayerLeft => "player_left",
            EventKind::AllPlayersJoined => "all_players_joined",
            EventKind::GameStarted => "game_started",
            EventKind::GameEnded => "game_ended",
            EventKind::Heartbeat => "heartbeat",
        }
    }

    /// Whether the event must name a player.
    pub fn needs_player(self) -> bool {
        matches!(self, EventKind::PlayerJoined | EventKind::PlayerLeft)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown event type {s:?}"))
    }
}

/// Why a stream entry is not a valid event; the reason stored with its dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// The `type` field names no known event.
    #[error("field `type`: {0}")]
    UnknownType(String),
    /// An id field is malformed.
    #[error("field `{field}`: {source}")]
    BadId {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        source: IdError,
    },
    /// `ts` is not a Unix-millisecond integer.
    #[error("field `ts`: {0:?} is not a Unix time in milliseconds")]
    BadTimestamp(String),
    /// The entry id itself is malformed.
    #[error("entry id: {0}")]
    BadEntryId(String),
}

impl EventError {
    /// A short, stable label for metrics and dead-letter reasons (`missing_field`, …).
    pub fn code(&self) -> &'static str {
        match self {
            EventError::MissingField(_) => "missing_field",
            EventError::UnknownType(_) => "unknown_type",
            EventError::BadId { .. } => "bad_id",
            EventError::BadTimestamp(_) => "bad_timestamp",
            EventError::BadEntryId(_) => "bad_entry_id",
        }
    }
}

/// One event from a game server, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Where it sits in the product stream.
    pub entry_id: EntryId,
    /// What happened.
    pub kind: EventKind,
    /// To which game.
    pub game_id: GameId,
    /// Who, for joined/left (and optionally `creator_joined`).
    pub player_id: Option<PlayerId>,
    /// The sending server.
    pub server_id: ServerId,
    /// When it happened (Unix ms): the `ts` field, or the entry id's time.
    pub ts_ms: u64,
}

impl Event {
    /// Parses a stream entry's fields (contract section 4). Unknown extra fields are ignored.
    pub fn from_fields<'a>(
        entry_id: &str,
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Event, EventError> {
        let entry_id: EntryId = entry_id.parse().map_err(EventError::BadEntryId)?;
        let (mut kind, mut game, mut player, mut server, mut ts) = (None, None, None, None, None);
        for (name, value) in fields {
            match name {
                "type" => kind = Some(value),
                "game_id" => game = Some(value),
                "player_id" if !value.is_empty() => player = Some(value),
                "server_id" => server = Some(value),
                "ts" if !value.is_empty() => ts = Some(value),
                _ => {}
            }
        }
        let kind: EventKind = kind
            .ok_or(EventError::MissingField("type"))?
            .parse()
            .map_err(EventError::UnknownType)?;
        let game_id =
            GameId::new(game.ok_or(EventError::MissingField("game_id"))?).map_err(|source| {
                EventError::BadId {
                    field: "game_id",
                    source,
                }
            })?;
        let server_id = ServerId::new(server.ok_or(EventError::MissingField("server_id"))?)
            .map_err(|source| EventError::BadId {
                field: "server_id",
                source,
            })?;
        let player_id = match player {
            Some(raw) => Some(PlayerId::new(raw).map_err(|source| EventError::BadId {
                field: "player_id",
                source,
            })?),
            None if kind.needs_player() => return Err(EventError::MissingField("player_id")),
            None => None,
        };
        let ts_ms = match ts {
            Some(raw) => raw
                .parse::<u64>()
                .map_err(|_| EventError::BadTimestamp(raw.to_string()))?,
            None => entry_id.ms,
        };
        Ok(Event {
            entry_id,
            kind,
            game_id,
            player_id,
            server_id,
            ts_ms,
        })
    }

    /// The stream fields a game server writes for this event (the inverse of
    /// [`Event::from_fields`]; used by the reference game server and tests).
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("type", self.kind.as_str().to_string()),
            ("game_id", self.game_id.to_string()),
            ("server_id", self.server_id.to_string()),
            ("ts", self.ts_ms.to_string()),
        ];
        if let Some(player) = &self.player_id {
            fields.push(("player_id", player.to_string()));
        }
        fields
    }
}

/// One player's roster entry: present or not, as of which stream entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterEntry {
    /// The newest event about this player that was applied.
    pub entry_id: EntryId,
    /// Whether that event says the player is in the game.
    pub present: bool,
}

/// The mark of a game whose end step has begun (contract section 3.4, `ending_since` and
/// `ending_reason`): set before its game server is asked to delete it, so the game is no
/// longer listed or joinable while the delete is in flight, whatever events arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// When the end step marked the game (Unix ms); also the mark's token, so only the step
    /// that set it clears it.
    pub since_ms: u64,
    /// The `end_reason` the game will get.
    pub reason: String,
}

/// The game record: what the store keeps in `P:{product}:game:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Game {
    /// The game's id.
    pub id: GameId,
    /// Its product.
    pub product: ProductId,
    /// The game server it runs on.
    pub server_id: ServerId,
    /// The server's region, if any.
    pub region: Option<String>,
    /// Seats, creator included.
    pub capacity: u32,
    /// Who created it.
    pub creator_id: PlayerId,
    /// Where players connect.
    pub socket_url: String,
    /// Game settings passed to the game server (a JSON object, as text).
    pub settings: String,
    /// Labels players filter by (`labels`, contract 3.4).
    pub labels: Labels,
    /// Creation time (Unix ms).
    pub created_at_ms: u64,
    /// Last activity (Unix ms): the newest event time seen, or the creation time.
    pub updated_at_ms: u64,
    /// Forward-only lifecycle phase.
    pub phase: Phase,
    /// Last-writer-wins roster.
    pub roster: BTreeMap<PlayerId, RosterEntry>,
    /// The newest `all_players_joined` applied.
    pub full_mark: Option<EntryId>,
    /// The newest `player_left` applied.
    pub last_leave: Option<EntryId>,
    /// Seats reserved through the join API: player → expiry (Unix ms).
    pub reservations: BTreeMap<PlayerId, u64>,
    /// Why the game ended, once it has (`game_ended`, `curated_pending`, `cancelled`, …).
    pub end_reason: Option<String>,
    /// Set while an end step is under way (live games only; cleared when the game ends).
    pub ending: Option<Ending>,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The record changed.
    Applied,
    /// A duplicate or out-of-date event: nothing changed but the activity time.
    Stale,
}

/// Why an event was refused for a game (it is dead-lettered with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The event comes from another server than the one hosting the game.
    #[error("server_mismatch: event from server {event} for a game on server {game}")]
    ServerMismatch {
        /// The game's server.
        game: String,
        /// The event's server.
        event: String,
    },
    /// `creator_joined` names someone other than the creator.
    #[error("creator_mismatch: creator_joined names {event}, the creator is {creator}")]
    CreatorMismatch {
        /// The game's creator.
        creator: String,
        /// The event's player.
        event: String,
    },
}

/// Why a seat could not be reserved (the join API's 409s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    /// Nobody but the creator may join before the creator has.
    #[error("the creator has not joined the game yet")]
    CreatorNotJoined,
    /// No seat is free.
    #[error("the game is full")]
    GameFull,
    /// The game has started or ended.
    #[error("the game is no longer open")]
    GameNotOpen,
    /// Rejoin: the player is not in the game (not its creator, not in its roster, no seat
    /// reserved).
    #[error("the player is not in the game")]
    NotInGame,
}

impl JoinRefusal {
    /// Stable problem code (`creator_not_joined`, `game_full`, `game_not_open`).
    pub fn code(self) -> &'static str {
        match self {
            JoinRefusal::CreatorNotJoined => "creator_not_joined",
            JoinRefusal::GameFull => "game_full",
            JoinRefusal::GameNotOpen => "game_not_open",
            JoinRefusal::NotInGame => "not_in_game",
        }
    }
}

/// A successful reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// A new seat was reserved until the given time (Unix ms).
    Reserved {
        /// Expiry.
        expires_at_ms: u64,
    },
    /// The player already holds a seat (joined, reserved, or is the creator): no new seat.
    AlreadyHeld,
}

/// What a rejoin got (`rejoin.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejoin {
    /// The game is in progress and the player is in it: they may have a fresh ticket; nothing
    /// changed.
    InProgress,
    /// Before the start: the join rules' seat (held already, or reserved anew).
    Seat(Reservation),
}

/// Which game a quick join takes a seat in (`quick_join.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuickJoinPick {
    /// The player already holds a seat in this matching game: nothing changes.
    Held(GameId),
    /// The fullest matching open game: a seat is reserved there.
    Reserve(GameId),
    /// No game matches.
    NoMatch,
}

/// How a quick join ranks the games of its window (the oldest games of the open index, in
/// its order) for `player`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowRanking<'a> {
    /// The first matching game the player is already in (creator, present, reserved).
    Held(&'a Game),
    /// The matching open games, fullest first (seats taken ÷ capacity; window order among
    /// equals); empty when none matches.
    Ranked {
        /// The games, fullest first.
        games: Vec<&'a Game>,
        /// Whether a matching open game was left out because the seats `claimed` fill it
        /// (so an empty ranking does not mean that nothing matches).
        claimed_out: bool,
    },
}

/// Ranks `window` for a quick join of `player` at `now_ms` (contract 5.4): the games that
/// match `filter`, are not excluded by it and are open; a game the player is already in wins.
/// `claimed` counts seats beyond the record's that the caller knows are being taken (the
/// script answers [`quick_join_pick`] with none): a game they fill is left out, and they
/// count toward its fullness.
pub fn rank_window<'a>(
    window: impl IntoIterator<Item = &'a Game>,
    player: &PlayerId,
    filter: &QuickJoinFilter,
    now_ms: u64,
    claimed: impl Fn(&GameId) -> usize,
) -> WindowRanking<'a> {
    let mut ranked: Vec<(&Game, usize)> = Vec::new();
    let mut claimed_out = false;
    for game in window {
        if filter.exclude.contains(&game.id) || !game.matches(filter) {
            continue;
        }
        let Some(taken) = game.open_seats_taken(now_ms) else {
            continue;
        };
        if game.holds_seat(player, now_ms) {
            return WindowRanking::Held(game);
        }
        let taken = taken + claimed(&game.id);
        if taken < game.capacity as usize {
            ranked.push((game, taken));
        } else {
            claimed_out = true;
        }
    }
    // Fuller first: a.taken / a.capacity > b.taken / b.capacity, compared without division.
    // The sort is stable, so equally full games keep the window's order.
    ranked.sort_by(|(a, a_taken), (b, b_taken)| {
        (b_taken * a.capacity as usize).cmp(&(a_taken * b.capacity as usize))
    });
    WindowRanking::Ranked {
        games: ranked.into_iter().map(|(game, _)| game).collect(),
        claimed_out,
    }
}

/// The quick join's choice for `player` (contract 5.4): first a matching lobby in which the
/// player holds a live reservation that a join would answer as held (of `games`, every live
/// game of the product, by reservation expiry then id — the order of the player's
/// reservations ZSET); then, among `window` (the oldest games of the open index, in its
/// order), the first the player is already in (creator, present, reserved), else the fullest
/// (seats taken / capacity; the first among equals): [`rank_window`].
pub fn quick_join_pick(
    games: &[&Game],
    window: &[&Game],
    player: &PlayerId,
    filter: &QuickJoinFilter,
    now_ms: u64,
) -> QuickJoinPick {
    let mut reserved: Vec<(u64, &GameId)> = games
        .iter()
        .filter_map(|game| {
            let expiry = *game.reservations.get(player)?;
            let takes_it = expiry > now_ms
                && !filter.exclude.contains(&game.id)
                && game.state() == GameState::CreatorJoined
                && game.ending.is_none()
                && game.creator_present()
                && game.matches(filter);
            takes_it.then_some((expiry, &game.id))
        })
        .collect();
    reserved.sort();
    if let Some((_, id)) = reserved.first() {
        return QuickJoinPick::Held((*id).clone());
    }
    match rank_window(window.iter().copied(), player, filter, now_ms, |_| 0) {
        WindowRanking::Held(game) => QuickJoinPick::Held(game.id.clone()),
        WindowRanking::Ranked { games: ranked, .. } => match ranked.first() {
            Some(game) => QuickJoinPick::Reserve(game.id.clone()),
            None => QuickJoinPick::NoMatch,
        },
    }
}

impl Game {
    /// A freshly created game (state `created`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: GameId,
        product: ProductId,
        server_id: ServerId,
        region: Option<String>,
        capacity: u32,
        creator_id: PlayerId,
        socket_url: String,
        settings: String,
        now_ms: u64,
    ) -> Game {
        Game {
            id,
            product,
            server_id,
            region,
            capacity,
            creator_id,
            socket_url,
            settings,
            labels: Labels::default(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            phase: Phase::Created,
            roster: BTreeMap::new(),
            full_mark: None,
            last_leave: None,
            reservations: BTreeMap::new(),
            end_reason: None,
            ending: None,
        }
    }

    /// The same game with `labels`.
    pub fn with_labels(mut self, labels: Labels) -> Game {
        self.labels = labels;
        self
    }

    /// Players in the game now, in the order of the events that let them in.
    pub fn players(&self) -> Vec<PlayerId> {
        let mut present: Vec<(&EntryId, &PlayerId)> = self
            .roster
            .iter()
            .filter(|(_, entry)| entry.present)
            .map(|(player, entry)| (&entry.entry_id, player))
            .collect();
        present.sort();
        present
            .into_iter()
            .map(|(_, player)| player.clone())
            .collect()
    }

    fn present_count(&self) -> usize {
        self.roster.values().filter(|entry| entry.present).count()
    }

    fn is_present(&self, player: &PlayerId) -> bool {
        self.roster.get(player).is_some_and(|entry| entry.present)
    }

    /// Whether `player` holds a seat at `now_ms`: the creator, present, or a live reservation.
    pub fn holds_seat(&self, player: &PlayerId, now_ms: u64) -> bool {
        *player == self.creator_id
            || self.is_present(player)
            || self.reservations.get(player).is_some_and(|e| *e > now_ms)
    }

    /// Whether every seat is taken, by the roster or by an `all_players_joined` newer than
    /// every `player_left`.
    pub fn is_full(&self) -> bool {
        self.present_count() >= self.capacity as usize || self.full_mark > self.last_leave
    }

    /// The derived state.
    pub fn state(&self) -> GameState {
        match self.phase {
            Phase::Created => GameState::Created,
            Phase::Lobby if self.is_full() => GameState::AllPlayersJoined,
            Phase::Lobby => GameState::CreatorJoined,
            Phase::InProgress => GameState::InProgress,
            Phase::Ended => GameState::Ended,
        }
    }

    /// The sorted set the game belongs in, and its score there: creation time while pending
    /// (only the creator joining keeps a pending game alive), last activity otherwise.
    pub fn set_and_score(&self) -> Option<(GameSet, u64)> {
        let set = self.state().set()?;
        let score = match set {
            GameSet::Pending => self.created_at_ms,
            GameSet::Lobby | GameSet::Active => self.updated_at_ms,
        };
        Some((set, score))
    }

    /// Seats taken at `now_ms`: present players plus live reservations of absent players.
    pub fn seats_taken(&self, now_ms: u64) -> usize {
        self.present_count() + self.reserved_absent(now_ms)
    }

    /// Live reservations at `now_ms` of players who are not present.
    fn reserved_absent(&self, now_ms: u64) -> usize {
        self.reservations
            .iter()
            .filter(|(player, expiry)| **expiry > now_ms && !self.is_present(player))
            .count()
    }

    /// Whether the creator is in the game now (in its roster, present).
    pub fn creator_present(&self) -> bool {
        self.is_present(&self.creator_id)
    }

    /// Whether the game is listed as open at `now_ms`: in `creator_joined`, its creator
    /// present (a lobby whose creator left, or which reached the lobby without them, is not
    /// listed), no end step under way, and a seat free.
    pub fn is_open(&self, now_ms: u64) -> bool {
        self.open_seats_taken(now_ms).is_some()
    }

    /// The seats taken at `now_ms` ([`Game::seats_taken`]) of a game that is open then
    /// ([`Game::is_open`]); `None` when it is not. One pass over the roster and the
    /// reservations, for code that ranks many games by fullness (a quick join's window).
    pub fn open_seats_taken(&self, now_ms: u64) -> Option<usize> {
        // `state()` is creator_joined: in the lobby and not full.
        if self.phase != Phase::Lobby || self.ending.is_some() || !self.creator_present() {
            return None;
        }
        let present = self.present_count();
        let capacity = self.capacity as usize;
        if present >= capacity || self.full_mark > self.last_leave {
            return None;
        }
        let taken = present + self.reserved_absent(now_ms);
        (taken < capacity).then_some(taken)
    }

    /// Applies one event (contract section 4) with the order-independent rules of this module.
    /// `now_ms` bounds the event time, so a server with a fast clock cannot keep games alive.
    pub fn apply(&mut self, event: &Event, now_ms: u64) -> Result<ApplyOutcome, RejectReason> {
        if event.server_id != self.server_id {
            return Err(RejectReason::ServerMismatch {
                game: self.server_id.to_string(),
                event: event.server_id.to_string(),
            });
        }
        if event.kind == EventKind::CreatorJoined
            && let Some(player) = &event.player_id
            && *player != self.creator_id
        {
            return Err(RejectReason::CreatorMismatch {
                creator: self.creator_id.to_string(),
                event: player.to_string(),
            });
        }
        let was_ended = self.phase == Phase::Ended;
        let activity = event.ts_ms.min(now_ms);
        let newer_activity = activity > self.updated_at_ms;
        self.updated_at_ms = self.updated_at_ms.max(activity);
        let changed = match event.kind {
            EventKind::CreatorJoined => {
                let creator = self.creator_id.clone();
                let joined = self.set_presence(&creator, event.entry_id, true);
                self.advance(Phase::Lobby) | joined
            }
            EventKind::PlayerJoined => {
                let player = event.player_id.clone().expect("validated at parse");
                let joined = self.set_presence(&player, event.entry_id, true);
                let advanced = player == self.creator_id && self.advance(Phase::Lobby);
                joined | advanced
            }
            EventKind::PlayerLeft => {
                let player = event.player_id.clone().expect("validated at parse");
                self.last_leave = self.last_leave.max(Some(event.entry_id));
                self.set_presence(&player, event.entry_id, false)
            }
            EventKind::AllPlayersJoined => {
                let newer = self.full_mark < Some(event.entry_id);
                self.full_mark = self.full_mark.max(Some(event.entry_id));
                self.advance(Phase::Lobby) | newer
            }
            EventKind::GameStarted => self.advance(Phase::InProgress),
            EventKind::GameEnded => {
                let ended = self.advance(Phase::Ended);
                if ended {
                    self.finish("game_ended");
                }
                ended
            }
            // Only news of activity: a heartbeat no newer than the last activity (an older
            // one, or a replay after the consumer group was recreated) is stale.
            EventKind::Heartbeat => newer_activity,
        };
        // A tombstone still records roster changes (so every order converges), but for the
        // game's life an event after the end is stale.
        Ok(if changed && !was_ended {
            ApplyOutcome::Applied
        } else {
            ApplyOutcome::Stale
        })
    }

    /// Moves the phase forward to `to`; returns whether it moved.
    fn advance(&mut self, to: Phase) -> bool {
        if to > self.phase {
            self.phase = to;
            true
        } else {
            false
        }
    }

    /// Last-writer-wins roster update; returns whether this event was the newest about the
    /// player. A player who joins gives up any reservation they held.
    fn set_presence(&mut self, player: &PlayerId, entry_id: EntryId, present: bool) -> bool {
        if present {
            self.reservations.remove(player);
        }
        match self.roster.get(player) {
            Some(existing) if existing.entry_id >= entry_id => false,
            _ => {
                self.roster
                    .insert(player.clone(), RosterEntry { entry_id, present });
                true
            }
        }
    }

    /// Reserves a seat for `player` until `now_ms + ttl_ms` (the join API's rule).
    pub fn reserve(
        &mut self,
        player: &PlayerId,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Reservation, JoinRefusal> {
        let state = self.state();
        // A game that is no longer open, or is being ended, is left exactly as it was,
        // expired reservations included (the release sweep takes those).
        if matches!(state, GameState::InProgress | GameState::Ended) || self.ending.is_some() {
            return Err(JoinRefusal::GameNotOpen);
        }
        self.reservations.retain(|_, expiry| *expiry > now_ms);
        if *player == self.creator_id || self.is_present(player) {
            return Ok(Reservation::AlreadyHeld);
        }
        match state {
            GameState::Created => return Err(JoinRefusal::CreatorNotJoined),
            GameState::AllPlayersJoined => return Err(JoinRefusal::GameFull),
            _ if !self.creator_present() => return Err(JoinRefusal::CreatorNotJoined),
            _ => {}
        }
        // A re-join is idempotent: the reservation is not renewed (`reserve_seat.lua`).
        if self.reservations.contains_key(player) {
            return Ok(Reservation::AlreadyHeld);
        }
        if self.seats_taken(now_ms) >= self.capacity as usize {
            return Err(JoinRefusal::GameFull);
        }
        let expires_at_ms = now_ms + ttl_ms;
        self.reservations.insert(player.clone(), expires_at_ms);
        Ok(Reservation::Reserved { expires_at_ms })
    }

    /// Lets `player` back in (the rejoin API, `rejoin.lua`): refused once the game ended or is
    /// being ended, and to anyone but its creator, a player of its roster (present or not) or
    /// a holder of a live reservation; in progress, nothing changes; before the start, the
    /// join rules of [`Game::reserve`] decide (a player who left a lobby needs a seat again).
    pub fn rejoin(
        &mut self,
        player: &PlayerId,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<Rejoin, JoinRefusal> {
        let state = self.state();
        if state == GameState::Ended || self.ending.is_some() {
            return Err(JoinRefusal::GameNotOpen);
        }
        let member = *player == self.creator_id
            || self.roster.contains_key(player)
            || self.reservations.get(player).is_some_and(|e| *e > now_ms);
        if !member {
            return Err(JoinRefusal::NotInGame);
        }
        if state == GameState::InProgress {
            return Ok(Rejoin::InProgress);
        }
        self.reserve(player, now_ms, ttl_ms).map(Rejoin::Seat)
    }

    /// Whether the game matches a quick join's `filter`: its region (when one is wanted; a
    /// game without one matches none) and every wanted label.
    pub fn matches(&self, filter: &QuickJoinFilter) -> bool {
        let region_ok = filter
            .region
            .as_deref()
            .is_none_or(|wanted| self.region.as_deref() == Some(wanted));
        region_ok && self.labels.matches(&filter.labels)
    }

    /// Releases `player`'s reservation if it has expired at `now_ms` (or unconditionally when
    /// `force`, used when the game server refused the join). Returns whether one was released.
    pub fn release(&mut self, player: &PlayerId, now_ms: u64, force: bool) -> bool {
        match self.reservations.get(player) {
            Some(expiry) if force || *expiry <= now_ms => {
                self.reservations.remove(player);
                true
            }
            _ => false,
        }
    }

    /// Marks the game as ending (the end step's first step, `mark_ending.lua`) if `guard`
    /// holds, with the same guards as [`Game::remove`]: the mark's time is `now_ms` and it
    /// carries `reason`. A game already marked is marked again (the newer step owns the mark).
    /// The model always has its game, so it never answers [`MarkOutcome::NotFound`].
    pub fn mark_ending(&mut self, reason: &str, guard: RemoveGuard, now_ms: u64) -> MarkOutcome {
        let state = self.state();
        if state == GameState::Ended {
            return MarkOutcome::AlreadyEnded;
        }
        if !self.guard_holds(guard) {
            return MarkOutcome::Refused { state };
        }
        self.ending = Some(Ending {
            since_ms: now_ms,
            reason: reason.to_string(),
        });
        MarkOutcome::Marked { state }
    }

    /// Clears the ending mark set at `since_ms` (`unmark_ending.lua`): the end step could not
    /// delete the game on its server. A mark set by another step (another time) stays.
    /// Returns whether the mark was cleared.
    pub fn unmark_ending(&mut self, since_ms: u64) -> bool {
        if self
            .ending
            .as_ref()
            .is_some_and(|ending| ending.since_ms == since_ms)
        {
            self.ending = None;
            true
        } else {
            false
        }
    }

    fn guard_holds(&self, guard: RemoveGuard) -> bool {
        match guard {
            RemoveGuard::Any => true,
            RemoveGuard::Cancellable => self.state().cancellable(),
            RemoveGuard::StaleIn { set, cutoff_ms } => self
                .set_and_score()
                .is_some_and(|(now_in, score)| now_in == set && score <= cutoff_ms),
        }
    }

    /// Ends the game outside the event stream (curated, cancelled, force-deleted) if `guard`
    /// holds, as `remove_game.lua` does: an ended game stays [`RemoveOutcome::AlreadyEnded`];
    /// `Cancellable` refuses a game that has started; `StaleIn` refuses a game that is no
    /// longer in that set with a score at or before the cutoff. Removing records `reason`,
    /// moves the activity time up to `now_ms` and drops every reservation. The model always
    /// has its game, so it never answers [`RemoveOutcome::NotFound`].
    pub fn remove(&mut self, reason: &str, guard: RemoveGuard, now_ms: u64) -> RemoveOutcome {
        let state = self.state();
        if state == GameState::Ended {
            return RemoveOutcome::AlreadyEnded;
        }
        if !self.guard_holds(guard) {
            return RemoveOutcome::Refused { state };
        }
        self.phase = Phase::Ended;
        self.updated_at_ms = self.updated_at_ms.max(now_ms);
        self.finish(reason);
        RemoveOutcome::Removed { previous: state }
    }

    /// What every way of ending a game records: why, no seat held any longer, and no
    /// ending mark (an ended game is in no index).
    fn finish(&mut self, reason: &str) {
        self.end_reason = Some(reason.to_string());
        self.reservations.clear();
        self.ending = None;
    }
}

#[cfg(test)]
mod tests;
