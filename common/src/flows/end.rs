//! The end step: commit to ending a game in the record, end it on its game server, then remove
//! its record (see the module docs of [`crate::flows`]). Shared by cancel, the curator and the
//! operator's force-delete; each brings its own guard.
//!
//! # Why the record is marked first
//!
//! Deleting on the server first and then removing the record under the caller's guard had a
//! race: an event applied in between (the creator's `creator_joined`, a heartbeat) made the
//! guard refuse, and the record stayed — listed open, joinable — for a game its server no
//! longer had. So ending is a commitment in the record before the server is called:
//!
//! 1. **Mark** ([`Store::mark_ending`], one script): the caller's guard is checked *here*, and
//!    if it holds the game is marked as ending (`ending_since`, `ending_reason`, and a member
//!    of `P:{product}:ending`). From that moment it is out of the open index and joins are
//!    refused (`game_not_open`); events are still applied but never list it again. A refused
//!    guard ends the step: the server is not called ([`Ended::NotMarked`]).
//! 2. **Delete** `DELETE /games/{id}` on its server (404 counts as done).
//! 3. **Confirmed** (2xx/404), or the caller removes unconfirmed games (the operator's
//!    `--force`): remove the record with the mark's reason, unconditionally
//!    ([`RemoveGuard::Any`]) — whatever happened to the game meanwhile, its server no longer
//!    has it. **Unconfirmed**: clear this step's mark ([`Store::unmark_ending`]); the game is
//!    listed again if it qualifies, and the caller retries or reports as before.
//! 4. **Interrupted** between 1 and 3 (a crash, a lost Redis connection): the mark stays in
//!    `P:{product}:ending`. The curator finishes marks older than a bound — longer than any
//!    delete call can take — with [`finish_ending`] (steps 2 and 3 again; a delete is
//!    idempotent).
//!
//! So a game is never listed or joinable while, or after, its server is told to delete it.

use super::{DeleteAttempt, GameServers};
use crate::gameserver::CallError;
use crate::ids::{GameId, ServerId};
use crate::store::{MarkOutcome, RemoveGuard, RemoveOutcome, Store, StoreError};

/// Which game to end, and on what terms.
#[derive(Debug, Clone, Copy)]
pub struct EndGame<'a> {
    /// The game.
    pub game: &'a GameId,
    /// Its server, as the record names it.
    pub server: &'a ServerId,
    /// The `end_reason` its tombstone carries.
    pub reason: &'a str,
    /// When the game may be ended: checked when it is marked, before the server is called.
    pub guard: RemoveGuard,
    /// Remove the record even when the server did not confirm the delete (the operator's
    /// `--force`). Without it an unconfirmed delete clears the mark and leaves the record.
    pub remove_unconfirmed: bool,
    /// Now (Unix ms): the mark's time and the tombstone's end time.
    pub now_ms: u64,
}

/// An end step already marked in the record, to be finished: the curator's recovery of an
/// interrupted end step.
#[derive(Debug, Clone, Copy)]
pub struct FinishEnding<'a> {
    /// The game.
    pub game: &'a GameId,
    /// Its server, as the record names it.
    pub server: &'a ServerId,
    /// The mark's `ending_reason`: the `end_reason` its tombstone carries.
    pub reason: &'a str,
    /// The mark's time (`ending_since`), which identifies it.
    pub since_ms: u64,
    /// Remove the record even when the server did not confirm the delete.
    pub remove_unconfirmed: bool,
    /// Now (Unix ms): the tombstone's end time.
    pub now_ms: u64,
}

/// What the end step did.
#[derive(Debug)]
pub enum Ended {
    /// The guard refused, or the game was gone or over: nothing changed, the server was not
    /// called. Never [`MarkOutcome::Marked`].
    NotMarked(MarkOutcome),
    /// The record removal ran: the server confirmed the delete, or the caller removes
    /// unconfirmed games.
    Removal {
        /// What the game server said.
        server: DeleteAttempt,
        /// What the removal did: [`RemoveOutcome::Removed`], or — if the game ended or
        /// vanished meanwhile — [`RemoveOutcome::AlreadyEnded`] / [`RemoveOutcome::NotFound`].
        record: RemoveOutcome,
    },
    /// The server did not confirm the delete; the mark was cleared and the record left alone.
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

/// A store step failed: the mark (nothing else changed), or a step after the server call.
#[derive(Debug, thiserror::Error)]
#[error("game {game}: {step} failed: {source}")]
pub struct EndError {
    /// The game.
    pub game: GameId,
    /// What the game server said, if it was called (the part that did happen).
    pub server: Option<DeleteAttempt>,
    /// Which store step failed.
    pub step: &'static str,
    /// The store failure.
    pub source: StoreError,
}

/// Ends `request.game`: marks it as ending under `request.guard`, deletes it on its server
/// through `servers`, then removes the record (confirmed, or `remove_unconfirmed`) or clears
/// the mark (see the module docs).
pub async fn end_game(
    store: &Store,
    servers: &impl GameServers,
    request: EndGame<'_>,
) -> Result<Ended, EndError> {
    let marked = store
        .mark_ending(request.game, request.reason, request.guard, request.now_ms)
        .await
        .map_err(|source| EndError {
            game: request.game.clone(),
            server: None,
            step: "marking the game as ending",
            source,
        })?;
    if !matches!(marked, MarkOutcome::Marked { .. }) {
        return Ok(Ended::NotMarked(marked));
    }
    finish_ending(
        store,
        servers,
        FinishEnding {
            game: request.game,
            server: request.server,
            reason: request.reason,
            since_ms: request.now_ms,
            remove_unconfirmed: request.remove_unconfirmed,
            now_ms: request.now_ms,
        },
    )
    .await
}

/// Steps 2 and 3 of the end step for a game already marked at `request.since_ms`: delete it
/// on its server; confirmed (or `remove_unconfirmed`) → remove the record unconditionally;
/// unconfirmed → clear the mark.
pub async fn finish_ending(
    store: &Store,
    servers: &impl GameServers,
    request: FinishEnding<'_>,
) -> Result<Ended, EndError> {
    let server = servers.delete_game(request.server, request.game).await;
    let failed = |server: DeleteAttempt, step: &'static str, source: StoreError| EndError {
        game: request.game.clone(),
        server: Some(server),
        step,
        source,
    };
    if !server.confirmed() && !request.remove_unconfirmed {
        let unconfirmed = match server {
            DeleteAttempt::Failed(err) => Unconfirmed::Failed(err),
            _ => Unconfirmed::UnknownServer,
        };
        if let Err(source) = store
            .unmark_ending(request.game, request.since_ms, request.now_ms)
            .await
        {
            let server = match unconfirmed {
                Unconfirmed::Failed(err) => DeleteAttempt::Failed(err),
                Unconfirmed::UnknownServer => DeleteAttempt::UnknownServer,
            };
            return Err(failed(server, "clearing the ending mark", source));
        }
        return Ok(Ended::Kept(unconfirmed));
    }
    match store
        .remove_game(
            request.game,
            request.reason,
            RemoveGuard::Any,
            request.now_ms,
        )
        .await
    {
        Ok(record) => Ok(Ended::Removal { server, record }),
        Err(source) => Err(failed(server, "removing the record", source)),
    }
}
