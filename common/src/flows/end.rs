//! The end step: end a game on its game server, then remove its record (see the module docs
//! of [`crate::flows`]). Shared by cancel, the curator and the operator's force-delete; each
//! brings its own guard.

use super::{DeleteAttempt, GameServers};
use crate::gameserver::CallError;
use crate::ids::{GameId, ServerId};
use crate::store::{RemoveGuard, RemoveOutcome, Store, StoreError};

/// Which game to end, and on what terms.
#[derive(Debug, Clone, Copy)]
pub struct EndGame<'a> {
    /// The game.
    pub game: &'a GameId,
    /// Its server, as the record names it.
    pub server: &'a ServerId,
    /// The `end_reason` its tombstone carries.
    pub reason: &'a str,
    /// When the record may go.
    pub guard: RemoveGuard,
    /// Remove the record even when the server did not confirm the delete (the operator's
    /// `--force`). Without it an unconfirmed delete leaves the record alone.
    pub remove_unconfirmed: bool,
    /// Now (Unix ms): the tombstone's end time.
    pub now_ms: u64,
}

/// What the end step did.
#[derive(Debug)]
pub enum Ended {
    /// The record removal ran: the server confirmed the delete, or the caller removes
    /// unconfirmed games.
    Removal {
        /// What the game server said.
        server: DeleteAttempt,
        /// What the removal did (its guard may have refused).
        record: RemoveOutcome,
    },
    /// The server did not confirm the delete; the record was left alone.
    Kept(Unconfirmed),
}

impl Ended {
    /// Whether this step removed the record.
    pub fn removed(&self) -> bool {
        matches!(
            self,
            Ended::Removal {
                record: RemoveOutcome::Removed { .. },
                ..
            }
        )
    }
}

/// Why a game server did not confirm a delete.
#[derive(Debug)]
pub enum Unconfirmed {
    /// The server id is not in the directory: it was not called.
    UnknownServer,
    /// The call failed: refused (4xx other than 404) or a server fault.
    Failed(CallError),
}

/// The server step is done but removing the record failed.
#[derive(Debug, thiserror::Error)]
#[error("game {game}: removing the record failed after the game server step: {source}")]
pub struct EndError {
    /// The game.
    pub game: GameId,
    /// What the game server said (the part that did happen).
    pub server: DeleteAttempt,
    /// The store failure.
    pub source: StoreError,
}

/// Deletes `request.game` on its server through `servers`, then — if the server confirmed,
/// or `remove_unconfirmed` — removes the record under `request.guard`.
pub async fn end_game(
    store: &Store,
    servers: &impl GameServers,
    request: EndGame<'_>,
) -> Result<Ended, EndError> {
    let server = match servers.delete_game(request.server, request.game).await {
        DeleteAttempt::UnknownServer if !request.remove_unconfirmed => {
            return Ok(Ended::Kept(Unconfirmed::UnknownServer));
        }
        DeleteAttempt::Failed(err) if !request.remove_unconfirmed => {
            return Ok(Ended::Kept(Unconfirmed::Failed(err)));
        }
        confirmed_or_forced => confirmed_or_forced,
    };
    match store
        .remove_game(request.game, request.reason, request.guard, request.now_ms)
        .await
    {
        Ok(record) => Ok(Ended::Removal { server, record }),
        Err(source) => Err(EndError {
            game: request.game.clone(),
            server,
            source,
        }),
    }
}
