//! Join: reserve a seat, then have the game's server add the player; release the seat if
//! that fails (see the module docs of [`crate::flows`]).

use std::time::Duration;

use super::{ServerCalls, ServerDirectory};
use crate::gameserver::{CallError, JoinTicket};
use crate::ids::{GameId, PlayerId, ServerId};
use crate::limits::{LimitRefusal, PlayerLimits};
use crate::model::{EntryId, Game, JoinRefusal};
use crate::store::{ReserveOutcome, SeatGrant, Store, StoreError};
use crate::time::now_ms;

/// A successful join.
#[derive(Debug, Clone)]
pub struct JoinedGame {
    /// The game as read after the seat was reserved.
    pub game: Game,
    /// How the player connects.
    pub ticket: JoinTicket,
    /// Whether this join reserved a new seat (`false`: the player already held one).
    pub new_seat: bool,
    /// The change feed entry of this join's write, when it changed the game's listing: a view
    /// of the open games applies `game` only if it has not read past that entry.
    pub feed_entry: Option<EntryId>,
}

/// Why a join failed. Every failure after the reservation released the seat it reserved.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Reserving the seat failed: nothing changed.
    #[error("reserving a seat: {0}")]
    Reserve(#[source] StoreError),
    /// No live game with that id: nothing changed.
    #[error("no such game")]
    NotFound,
    /// The join rules refuse the player: nothing changed.
    #[error("join refused: {0:?}")]
    Refused(JoinRefusal),
    /// A per-player limit (join rate, reservations) refused the player: nothing changed.
    #[error("a per-player limit refused the join: {0:?}")]
    Limited(LimitRefusal),
    /// The game vanished after the seat was reserved.
    #[error("the game vanished while joining")]
    Vanished,
    /// The game's server is not in the directory.
    #[error("the game's server {0} is not registered")]
    UnknownServer(ServerId),
    /// The game's server could not be reached (or failed: a server fault).
    #[error("the game's server could not be reached: {0}")]
    ServerUnavailable(#[source] CallError),
    /// The game's server refused to add the player (4xx).
    #[error("the game's server refused the join: {0}")]
    ServerRefused(#[source] CallError),
}

/// Joins `player` to `game` under the player's `limits`: the seat is held for
/// `reservation_ttl` unless the player's `player_joined` event arrives first. A player who
/// already holds a seat gets the ticket kept for them back, with no game-server call and no
/// renewal of the reservation; the game server is only asked again when no ticket was kept
/// (a game recorded before tickets were kept, or a first join still under way).
pub async fn join_game<D: ServerDirectory>(
    store: &Store,
    servers: &ServerCalls<D>,
    game: &GameId,
    player: &PlayerId,
    reservation_ttl: Duration,
    limits: &PlayerLimits,
) -> Result<JoinedGame, JoinError> {
    let grant = store
        .reserve_seat_limited(game, player, now_ms(), reservation_ttl, limits)
        .await
        .map_err(JoinError::Reserve)?;
    let seat = granted_seat(grant)?;
    if let Some(ticket) = seat.kept_ticket {
        return Ok(JoinedGame {
            game: *seat.record,
            ticket,
            new_seat: seat.new_seat,
            feed_entry: seat.feed_entry,
        });
    }
    ticket_for_seat(
        store,
        servers,
        *seat.record,
        seat.feed_entry,
        player,
        seat.new_seat,
    )
    .await
}

/// A seat the store granted (join, rejoin before the start).
pub(super) struct GrantedSeat {
    /// The game as the seat's script left it.
    pub record: Box<Game>,
    /// The change feed entry the script wrote, if the seat changed the game's listing.
    pub feed_entry: Option<EntryId>,
    /// Whether the seat is new (`false`: the player already held one).
    pub new_seat: bool,
    /// The ticket kept for a player who already held the seat, if one was kept.
    pub kept_ticket: Option<JoinTicket>,
}

/// The seat of `grant`, or why the store gave none.
pub(super) fn granted_seat(grant: SeatGrant) -> Result<GrantedSeat, JoinError> {
    let new_seat = match grant.outcome {
        ReserveOutcome::NotFound => return Err(JoinError::NotFound),
        ReserveOutcome::Refused(why) => return Err(JoinError::Refused(why)),
        ReserveOutcome::Limited(refusal) => return Err(JoinError::Limited(refusal)),
        ReserveOutcome::Reserved { .. } => true,
        ReserveOutcome::AlreadyHeld => false,
    };
    Ok(GrantedSeat {
        // The store answers every seat with the game as the script left it.
        record: grant.game.ok_or(JoinError::Vanished)?,
        feed_entry: grant.feed_entry,
        new_seat,
        kept_ticket: grant.kept_ticket,
    })
}

/// The end of every path that seats a player (join, rejoin, quick join) in the game
/// `record` (as the seat's script left it, having written `feed_entry`): the game server adds
/// the player, the ticket is kept for a re-join, and a seat reserved by this call
/// (`new_seat`) is given back when the server fails or refuses.
pub(super) async fn ticket_for_seat<D: ServerDirectory>(
    store: &Store,
    servers: &ServerCalls<D>,
    record: Game,
    feed_entry: Option<EntryId>,
    player: &PlayerId,
    new_seat: bool,
) -> Result<JoinedGame, JoinError> {
    let game = &record.id;
    let result = add_player(servers, &record, player).await;
    if let Ok(ticket) = &result
        && let Err(err) = store.keep_ticket(game, player, ticket).await
    {
        // A re-join then asks the game server again.
        tracing::warn!(game = %game, error = %err, "could not keep a join ticket");
    }
    if result.is_err()
        && new_seat
        && let Err(err) = store.release_seat(game, player, now_ms(), true).await
    {
        // The reservation expires by itself; only the seat is held a little longer.
        tracing::warn!(game = %game, error = %err, "could not release a reserved seat");
    }
    let ticket = result?;
    Ok(JoinedGame {
        game: record,
        ticket,
        new_seat,
        feed_entry,
    })
}

/// Has the server of the game `record` add the player.
async fn add_player<D: ServerDirectory>(
    servers: &ServerCalls<D>,
    record: &Game,
    player: &PlayerId,
) -> Result<JoinTicket, JoinError> {
    let Some(endpoint) = servers.directory().endpoint(&record.server_id) else {
        return Err(JoinError::UnknownServer(record.server_id.clone()));
    };
    match servers.add_player(&endpoint, &record.id, player).await {
        Ok(ticket) => Ok(ticket),
        Err(err) if err.is_server_fault() => Err(JoinError::ServerUnavailable(err)),
        Err(err) => Err(JoinError::ServerRefused(err)),
    }
}
