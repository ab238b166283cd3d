//! Cancel: the creator ends a game that has not started (see the module docs of
//! [`crate::flows`]).

use super::end::{EndGame, Ended, Unconfirmed, end_game};
use super::{ServerCalls, ServerDirectory};
use crate::gameserver::CallError;
use crate::ids::{GameId, PlayerId, ServerId};
use crate::model::{Game, GameState};
use crate::store::{MarkOutcome, RemoveGuard, RemoveOutcome, Store, StoreError};
use crate::time::now_ms;

/// The `end_reason` a cancelled game's tombstone carries.
pub const CANCELLED_REASON: &str = "cancelled";

/// Why a game was not cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// Reading the game failed: nothing changed.
    #[error("reading the game: {0}")]
    Read(#[source] StoreError),
    /// No live game with that id.
    #[error("no such game")]
    NotFound,
    /// The caller is not the game's creator: nothing changed.
    #[error("only the game's creator may cancel it")]
    NotCreator,
    /// The game has started or ended: nothing changed.
    #[error("the game has started or ended")]
    NotOpen,
    /// The game's server is not in the directory: nothing changed.
    #[error("the game's server {0} is not registered")]
    UnknownServer(ServerId),
    /// The game's server did not delete the game: nothing changed.
    #[error("the game's server did not delete the game: {0}")]
    ServerFailed(#[source] CallError),
    /// A store step of the end step failed: marking the game (nothing changed), or, after
    /// the server was called, removing the record or clearing the mark.
    #[error("cancelling the game: {0}")]
    Remove(#[source] StoreError),
    /// The server deleted the game, and the record had ended meanwhile.
    #[error("the game ended while being cancelled")]
    EndedMeanwhile,
    /// The server deleted the game, and the record vanished meanwhile.
    #[error("the game vanished while being cancelled")]
    VanishedMeanwhile,
}

impl CancelError {
    /// Whether the flow got as far as removing the record (so the game's listings may have
    /// changed).
    pub fn reached_removal(&self) -> bool {
        matches!(
            self,
            CancelError::Remove(_) | CancelError::EndedMeanwhile | CancelError::VanishedMeanwhile
        )
    }
}

/// Whether `record` is the tombstone of a cancelled game.
fn cancelled(record: &Game) -> bool {
    record.state() == GameState::Ended && record.end_reason.as_deref() == Some(CANCELLED_REASON)
}

/// Cancels `game` for `player`, its creator: marked as ending (refused once it has started),
/// deleted on its server, then removed from the record with reason [`CANCELLED_REASON`] (or
/// the mark cleared if the server did not confirm). A cancel of a game its creator already
/// cancelled succeeds again and changes nothing, so a cancel resent after its answer was
/// lost (by the client, or by the store after a dropped connection) gets the same answer.
pub async fn cancel_game<D: ServerDirectory>(
    store: &Store,
    servers: &ServerCalls<D>,
    game: &GameId,
    player: &PlayerId,
) -> Result<(), CancelError> {
    let record = store
        .game(game)
        .await
        .map_err(CancelError::Read)?
        .ok_or(CancelError::NotFound)?;
    if record.creator_id != *player {
        return Err(CancelError::NotCreator);
    }
    if cancelled(&record) {
        return Ok(());
    }
    if !record.state().cancellable() {
        return Err(CancelError::NotOpen);
    }
    let ended = end_game(
        store,
        servers,
        EndGame {
            game,
            server: &record.server_id,
            reason: CANCELLED_REASON,
            guard: RemoveGuard::Cancellable,
            remove_unconfirmed: false,
            now_ms: now_ms(),
        },
    )
    .await
    .map_err(|err| CancelError::Remove(err.source))?;
    let removed = match ended {
        Ended::Removal { record, .. } => record,
        // Nothing changed and the server was not called.
        Ended::NotMarked(MarkOutcome::Refused { .. } | MarkOutcome::AlreadyEnded) => {
            return Err(CancelError::NotOpen);
        }
        Ended::NotMarked(MarkOutcome::NotFound | MarkOutcome::Marked { .. }) => {
            return Err(CancelError::NotFound);
        }
        Ended::Kept(Unconfirmed::UnknownServer) => {
            return Err(CancelError::UnknownServer(record.server_id));
        }
        Ended::Kept(Unconfirmed::Failed(err)) => return Err(CancelError::ServerFailed(err)),
    };
    match removed {
        // `Refused` cannot happen (the removal after a mark is unguarded); had it, the
        // server no longer has the game and the record's fate is the same as removed.
        RemoveOutcome::Removed { .. } | RemoveOutcome::Refused { .. } => {
            tracing::info!(game = %game, "game cancelled by its creator");
            Ok(())
        }
        // Ended by this very cancel (its first run's answer was lost and the store resent
        // it), by a concurrent cancel of the creator, or by something else.
        RemoveOutcome::AlreadyEnded => match store.game(game).await {
            Ok(Some(record)) if cancelled(&record) => Ok(()),
            _ => Err(CancelError::EndedMeanwhile),
        },
        RemoveOutcome::NotFound => Err(CancelError::VanishedMeanwhile),
    }
}
