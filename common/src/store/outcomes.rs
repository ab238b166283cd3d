//! The typed results of the store's operations: what a script did to a game, the guards a
//! removal may carry, and the pages and windows the listings return.

use crate::gameserver::JoinTicket;
use crate::ids::GameId;
use crate::limits::LimitRefusal;
use crate::model::{EntryId, Game, GameSet, GameState, JoinRefusal};

#[cfg(doc)]
use super::Store;

/// What became of one stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    /// Applied; the game's state afterwards.
    Applied(GameState),
    /// Duplicate or out-of-date for its game; acknowledged, nothing changed.
    Stale(GameState),
    /// The entry was no longer pending for the group (already applied): nothing changed.
    Duplicate,
    /// Unparseable, for an unknown game, or refused: copied to the dead-letter stream with
    /// this reason and acknowledged.
    DeadLettered(String),
}

/// What a join attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// A new seat, held until the given time (Unix ms).
    Reserved {
        /// Expiry of the reservation.
        expires_at_ms: u64,
    },
    /// The player already holds a seat (creator, joined, or reserved): nothing changed, the
    /// reservation is not renewed.
    AlreadyHeld,
    /// A per-player limit refused the join (nothing changed but the join bucket).
    Limited(LimitRefusal),
    /// The join rules refuse it.
    Refused(JoinRefusal),
    /// No such game.
    NotFound,
}

/// What [`Store::reserve_seat_limited`] answered: the outcome, for a player who already
/// holds a seat the ticket kept for them (if one was kept), and for a seat the game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatGrant {
    /// What the join attempt got.
    pub outcome: ReserveOutcome,
    /// The ticket kept for a player who already holds a seat (see [`Store::keep_ticket`]).
    pub kept_ticket: Option<JoinTicket>,
    /// The game as the script left it, for [`ReserveOutcome::Reserved`] and
    /// [`ReserveOutcome::AlreadyHeld`] (the script answers it: no second read).
    pub game: Option<Box<Game>>,
    /// The change feed entry the script wrote, when the seat changed the game's listing: a
    /// view of the open games applies `game` only if it has not read past that entry.
    pub feed_entry: Option<EntryId>,
}

impl SeatGrant {
    /// An answer that carries no game: a refusal, a limit, or no such game.
    pub(super) fn without_game(outcome: ReserveOutcome) -> SeatGrant {
        SeatGrant {
            outcome,
            kept_ticket: None,
            game: None,
            feed_entry: None,
        }
    }
}

/// When [`Store::mark_ending`] may mark a game as ending (the end step's guard) and
/// [`Store::remove_game`] may remove one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveGuard {
    /// Always (operator force-delete).
    Any,
    /// Only before the game started (the creator's cancel).
    Cancellable,
    /// Only while the game is still in `set` with a score at or before `cutoff_ms` (the
    /// curator's check: a game that came alive since it was picked is left alone).
    StaleIn {
        /// The set the curator found it in.
        set: GameSet,
        /// The staleness cutoff (Unix ms).
        cutoff_ms: u64,
    },
}

/// What [`Store::remove_game`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// Removed from every set; the hash is now a tombstone. The state it had before.
    Removed {
        /// State before removal.
        previous: GameState,
    },
    /// The guard did not hold; the game's current state.
    Refused {
        /// Current state.
        state: GameState,
    },
    /// No such game.
    NotFound,
    /// It had already ended.
    AlreadyEnded,
}

/// What [`Store::mark_ending`] did: the first step of ending a game, taken before its game
/// server is called (see `flows::end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOutcome {
    /// The game is now marked as ending (out of the open index, joins refused); the mark's
    /// time is the `now_ms` the caller gave, its token for [`Store::unmark_ending`]. The state
    /// it has.
    Marked {
        /// Its state (unchanged by the mark).
        state: GameState,
    },
    /// The guard did not hold; nothing changed. The game's current state.
    Refused {
        /// Current state.
        state: GameState,
    },
    /// No such game.
    NotFound,
    /// It had already ended.
    AlreadyEnded,
}

/// A position in the open-games listing: the `created_at` and id of the last game returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCursor {
    /// The last game's creation time (its score in the open index).
    pub created_at_ms: u64,
    /// The last game's id (tie-breaker for equal times).
    pub game_id: GameId,
}

impl OpenCursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.created_at_ms, self.game_id)
    }

    /// Parses [`OpenCursor::encode`]'s output.
    pub fn decode(text: &str) -> Result<OpenCursor, String> {
        let invalid = || format!("cursor {text:?} is not one this API issued");
        let (score, id) = text.split_once(':').ok_or_else(invalid)?;
        Ok(OpenCursor {
            created_at_ms: score.parse().map_err(|_| invalid())?,
            game_id: GameId::new(id).map_err(|_| invalid())?,
        })
    }
}

/// A page of open games.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPage {
    /// Open games, oldest first.
    pub games: Vec<Game>,
    /// Where the next page starts, if there may be one.
    pub next_cursor: Option<OpenCursor>,
}

/// One row of a set window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    /// The member (a game id).
    pub id: String,
    /// Its score (Unix ms).
    pub score: u64,
    /// The game, if its hash still exists and decodes.
    pub game: Option<Game>,
}

/// A window of a sorted set plus the set's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Members in the whole set.
    pub total: u64,
    /// The requested rows.
    pub rows: Vec<WindowRow>,
}
