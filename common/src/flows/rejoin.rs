//! Rejoin: let a player back into a game they are in, with a fresh ticket from its game
//! server (see the module docs of [`crate::flows`]).

use std::time::Duration;

use super::join::{JoinError, JoinedGame, granted_seat, ticket_for_seat};
use super::{ServerCalls, ServerDirectory};
use crate::ids::{GameId, PlayerId};
use crate::limits::PlayerLimits;
use crate::store::{RejoinOutcome, Store};
use crate::time::now_ms;

/// Lets `player` back into `game` under the player's `limits` (the join bucket and the
/// reservation quota): the record decides whether they are in the game and, before the start,
/// whether they need a seat again (reserved for `reservation_ttl`); then the game server is
/// always asked for a fresh ticket (`add_player` for a player it already knows). A seat this
/// rejoin reserved is released if the server refuses or fails, as a join's is.
pub async fn rejoin_game<D: ServerDirectory>(
    store: &Store,
    servers: &ServerCalls<D>,
    game: &GameId,
    player: &PlayerId,
    reservation_ttl: Duration,
    limits: &PlayerLimits,
) -> Result<JoinedGame, JoinError> {
    let outcome = store
        .rejoin(game, player, now_ms(), reservation_ttl, limits)
        .await
        .map_err(JoinError::Reserve)?;
    let (record, feed_entry, new_seat) = match outcome {
        RejoinOutcome::InProgress(record) => (record, None, false),
        // A kept ticket is not answered: a rejoin always asks the game server for a fresh one.
        RejoinOutcome::Seat(grant) => {
            let seat = granted_seat(grant)?;
            (seat.record, seat.feed_entry, seat.new_seat)
        }
    };
    ticket_for_seat(store, servers, *record, feed_entry, player, new_seat).await
}
