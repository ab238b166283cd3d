//! The game lifecycle flows: the multi-step operations that change a game both on its game
//! server and in the record, each with the undo that keeps the two in step.
//!
//! The invariant every flow keeps: **no game on a server without a record, and no listed or
//! joinable record of a game its server was told to delete.** A game that ends is therefore
//! first marked as ending in the record (unlisted, joins refused), then deleted on its server,
//! and its record goes once the server confirmed (or the mark is cleared if it did not); a
//! game the record could not take is deleted on its server again.
//!
//! # Create ([`create::create_game`])
//!
//! 1. Place the game: the least-loaded healthy server of the product (and region) with room
//!    ([`ServerPlacement::place`], which counts the placement against the server).
//! 2. `POST /games` on it. A refusal (4xx) ends the flow ([`CreateError::Refused`]). A server
//!    fault (unreachable, timeout, 5xx, breaker open) takes the server out of rotation, and —
//!    since the game may exist there although the answer was lost — deletes the game there
//!    in the background; then step 1 runs again without that server, at most twice in all.
//!    Every failed placement is taken back ([`ServerPlacement::unplace`]).
//! 3. Record the game (state `created`). **Undo:** if the record fails (or the id is taken),
//!    the placement is taken back and the game is deleted on its server before the flow
//!    returns, so the game cannot outlive its missing record.
//!
//! # Join ([`join::join_game`])
//!
//! 1. Reserve a seat in the record (the atomic reservation script decides: not found, the
//!    join rules refuse, a new seat, or a seat the player already holds).
//! 2. Read the game and find its server ([`ServerDirectory::endpoint`]).
//! 3. `POST /games/{id}/players` on it; its ticket is the player's way in. **Undo:** if step
//!    2 or 3 fails, a seat reserved by step 1 is released (forced), so a failed join holds no
//!    seat; a seat the player already held is left as it was.
//!
//! # Rejoin ([`rejoin::rejoin_game`])
//!
//! 1. The rejoin script decides: the player must be in the game (its creator, in its roster —
//!    present or left —, or holding a reservation); in progress nothing changes, before the
//!    start the join rules apply (a player who left a lobby needs a free seat again).
//! 2. and 3. as join, except that the game server is always asked for a fresh ticket (the
//!    kept one may have been used). **Undo:** as join.
//!
//! # Quick join ([`quick_join::quick_join`])
//!
//! 1. The quick-join script picks the fullest matching open game among the oldest
//!    `lobby.quick_join_scan` (or a seat the player already holds in a matching game) and
//!    reserves a seat there, in one atomic step under the join's rules and limits.
//! 2. and 3. as join. **Undo:** as join.
//! 4. No match: the create flow with the player as creator, if the request asked for it.
//!
//! # Cancel ([`cancel::cancel_game`])
//!
//! 1. Read the game: it must exist, the caller must be its creator, and it must not have
//!    started.
//! 2. The end step with [`RemoveGuard::Cancellable`], checked when the game is marked: a game
//!    that started since step 1 is refused (nothing changes). Once marked, the server is
//!    asked; if it fails, the mark is cleared and nothing else changes; if it confirms, the
//!    record goes whatever happened meanwhile (the server no longer has the game).
//!
//! # End ([`end::end_game`]): mark, end the game on its server, then remove the record
//!
//! The one step shared by cancel, the curator and the operator's force-delete
//! (`crate::admin`); its module docs say why the record is marked first:
//!
//! 1. Mark the game as ending under the caller's guard ([`RemoveGuard::Cancellable`] for
//!    cancel, [`RemoveGuard::StaleIn`] for the curator — a game that came alive since it was
//!    picked is left alone —, [`RemoveGuard::Any`] for force-delete). Refused: stop.
//! 2. `DELETE /games/{id}` on the game's server through [`GameServers`] (404 counts as done).
//! 3. If the server confirmed — or the caller removes unconfirmed games (the operator's
//!    `--force`) — remove the record unconditionally; otherwise clear the mark.
//! 4. A step interrupted between 1 and 3 is finished by the curator ([`end::finish_ending`]).
//!
//! # What the flows are given
//!
//! The flows take the [`Store`](crate::store::Store), and the game servers as
//! [`ServerCalls`]: the [`GameServerClient`] plus a directory of servers — which exist
//! ([`ServerDirectory`]: the daemon's registry, or the console's map of configured endpoints)
//! and, for create, which one a new game goes to ([`ServerPlacement`]: the registry). The
//! directory also hears of every game-server call a flow makes
//! ([`ServerDirectory::record_call`]); the daemon counts them in its metrics, the console and
//! the curator ignore them. The flows return typed outcomes and errors; turning them into
//! HTTP answers, audit entries or curation reports is their callers' business.

pub mod cancel;
pub mod create;
pub mod end;
pub mod join;
pub mod quick_join;
pub mod rejoin;

use std::collections::HashMap;
use std::future::Future;

use crate::gameserver::{
    CallError, CreateGameRequest, DeleteOutcome, GameServerClient, GameServerEndpoint, JoinTicket,
    Operation,
};
use crate::ids::{GameId, PlayerId, ProductId, ServerId};
#[cfg(doc)]
use crate::store::RemoveGuard;

pub use cancel::{CancelError, cancel_game};
pub use create::{CreateError, CreatedGame, NewGame, create_game};
pub use end::{EndError, EndGame, Ended, FinishEnding, Unconfirmed, end_game, finish_ending};
pub use join::{JoinError, JoinedGame, join_game};
pub use quick_join::{
    QuickJoin, QuickJoinCreate, QuickJoinError, QuickJoinView, QuickJoined, ViewPicks, quick_join,
};
pub use rejoin::rejoin_game;

/// Which game servers exist: how to call each by id.
pub trait ServerDirectory: Send + Sync {
    /// How to call `server`, if it is known.
    fn endpoint(&self, server: &ServerId) -> Option<GameServerEndpoint>;

    /// Told of each call a flow made to `server`: the operation and its outcome (`"ok"`, or
    /// [`CallError::kind`]). The daemon counts them; by default nothing is done.
    fn record_call(&self, server: &ServerId, op: Operation, outcome: &'static str) {
        let _ = (server, op, outcome);
    }
}

/// The console's directory: the configured servers by id.
impl ServerDirectory for HashMap<ServerId, GameServerEndpoint> {
    fn endpoint(&self, server: &ServerId) -> Option<GameServerEndpoint> {
        self.get(server).cloned()
    }
}

/// Which game server a new game goes to.
pub trait ServerPlacement: ServerDirectory {
    /// The server a new game of `product` (of `region`, when given) goes to, skipping the
    /// servers in `exclude`; the placement counts against it until [`ServerPlacement::unplace`].
    /// `None` when no server has room.
    fn place(
        &self,
        product: &ProductId,
        region: Option<&str>,
        exclude: &[ServerId],
    ) -> Option<Placement>;

    /// Takes back a placement whose game was not created.
    fn unplace(&self, server: &ServerId);

    /// Takes `server` out of rotation: a call to it failed with a server fault.
    fn mark_unhealthy(&self, server: &ServerId, reason: String);
}

/// Where [`ServerPlacement::place`] put a new game.
#[derive(Debug, Clone)]
pub struct Placement {
    /// How to call the chosen server (its id included).
    pub endpoint: GameServerEndpoint,
    /// Its region, recorded with the game.
    pub region: Option<String>,
    /// Its load before this placement (games), for logs.
    pub load: u32,
    /// Its capacity (games), for logs.
    pub capacity: u32,
}

/// What a game server said to `DELETE /games/{id}`.
#[derive(Debug)]
pub enum DeleteAttempt {
    /// 2xx: the server deleted the game.
    Deleted,
    /// 404: the server no longer had it.
    AlreadyGone,
    /// The server id is not in the directory (configuration changed, or a foreign record):
    /// it was not called.
    UnknownServer,
    /// The call failed: refused (4xx other than 404) or a server fault.
    Failed(CallError),
}

impl DeleteAttempt {
    /// Whether the game no longer runs on its server.
    pub fn confirmed(&self) -> bool {
        matches!(self, DeleteAttempt::Deleted | DeleteAttempt::AlreadyGone)
    }
}

/// The game servers as the end step deletes on them: implemented by [`ServerCalls`]; tests
/// may wrap it to make a server misbehave at a chosen moment.
pub trait GameServers: Send + Sync {
    /// `DELETE /games/{game}` on `server`.
    fn delete_game(
        &self,
        server: &ServerId,
        game: &GameId,
    ) -> impl Future<Output = DeleteAttempt> + Send;
}

/// The game servers as the flows call them: the shared [`GameServerClient`] (timeouts,
/// retries, breakers) and a directory that finds each server and hears of each call.
#[derive(Debug, Clone)]
pub struct ServerCalls<D> {
    client: GameServerClient,
    directory: D,
}

impl<D: ServerDirectory> ServerCalls<D> {
    /// Calls through `client` to the servers of `directory`.
    pub fn new(client: GameServerClient, directory: D) -> Self {
        Self { client, directory }
    }

    /// The directory of servers.
    pub fn directory(&self) -> &D {
        &self.directory
    }

    /// `POST /games` on `endpoint`.
    pub async fn create_game(
        &self,
        endpoint: &GameServerEndpoint,
        request: &CreateGameRequest,
    ) -> Result<JoinTicket, CallError> {
        let result = self.client.create_game(endpoint, request).await;
        self.record(endpoint, Operation::CreateGame, &result);
        result
    }

    /// `POST /games/{game}/players` on `endpoint`.
    pub async fn add_player(
        &self,
        endpoint: &GameServerEndpoint,
        game: &GameId,
        player: &PlayerId,
    ) -> Result<JoinTicket, CallError> {
        let result = self.client.add_player(endpoint, game, player).await;
        self.record(endpoint, Operation::AddPlayer, &result);
        result
    }

    /// `DELETE /games/{game}` on `endpoint`.
    pub async fn delete_on(&self, endpoint: &GameServerEndpoint, game: &GameId) -> DeleteAttempt {
        let result = self.client.delete_game(endpoint, game).await;
        self.record(endpoint, Operation::DeleteGame, &result);
        match result {
            Ok(DeleteOutcome::Deleted) => DeleteAttempt::Deleted,
            Ok(DeleteOutcome::AlreadyGone) => DeleteAttempt::AlreadyGone,
            Err(err) => DeleteAttempt::Failed(err),
        }
    }

    fn record<T>(
        &self,
        endpoint: &GameServerEndpoint,
        op: Operation,
        result: &Result<T, CallError>,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(err) => err.kind(),
        };
        self.directory.record_call(&endpoint.id, op, outcome);
    }
}

impl<D: ServerDirectory> GameServers for ServerCalls<D> {
    async fn delete_game(&self, server: &ServerId, game: &GameId) -> DeleteAttempt {
        match self.directory.endpoint(server) {
            Some(endpoint) => self.delete_on(&endpoint, game).await,
            None => DeleteAttempt::UnknownServer,
        }
    }
}
