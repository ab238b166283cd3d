//! Operator actions shared by the console's TUI and its scripted mode: the force-delete flow.
//!
//! A force-delete (contract section 8) is, in order (steps 2 to 4 are the shared end step of
//! [`crate::flows`] with [`RemoveGuard::Any`], removing unconfirmed games when forced):
//!
//! 1. read the game record (no live game: [`ForceDeleteOutcome::NotFound`], nothing changes,
//!    nothing is audited);
//! 2. mark it as ending (unlisted, joins refused) — a game that ended or vanished since step 1
//!    is treated as in step 1;
//! 3. `DELETE /games/{id}` on the game's server through [`GameServers`] (404 counts as
//!    success);
//! 4. if the server deleted it, or if it refused or could not be reached and the operator
//!    forced it: remove the record with reason `force_deleted`; otherwise clear the mark and
//!    keep the record;
//! 4. append an [`AuditEntry`] to `P:audit` saying who, why, what came of it and whether the
//!    server was reached.

use serde::Serialize;

use crate::audit::{self, ACTION_FORCE_DELETE, AuditEntry};
use crate::flows::{self, DeleteAttempt, EndGame, Ended, GameServers, Unconfirmed};
use crate::gameserver::CallError;
use crate::ids::{GameId, ServerId};
use crate::model::GameState;
use crate::store::{MarkOutcome, RemoveGuard, RemoveOutcome, Store, StoreError};

/// The `end_reason` a force-deleted game's tombstone carries.
pub const FORCE_DELETED_REASON: &str = "force_deleted";

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForceDeleteRequest {
    /// The game.
    pub game: GameId,
    /// Who asks (OS user or `--operator`).
    pub operator: String,
    /// Why (`--reason`); may be empty.
    pub reason: String,
    /// Remove the record even if the game server refuses or cannot be reached.
    pub force: bool,
}

/// What a force-delete came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForceDeleteOutcome {
    /// Deleted on the game server (or already gone there) and removed from the record.
    Deleted,
    /// No live game with that id (never existed, or already ended).
    NotFound,
    /// The game server answered with an error; the record is kept unless forced.
    ServerRefused,
    /// The game server could not be reached (down, timed out, breaker open, or not in the
    /// configuration); the record is kept unless forced.
    ServerUnreachable,
}

impl ForceDeleteOutcome {
    /// Stable name (`deleted`, `not_found`, `server_refused`, `server_unreachable`).
    pub fn as_str(self) -> &'static str {
        match self {
            ForceDeleteOutcome::Deleted => "deleted",
            ForceDeleteOutcome::NotFound => "not_found",
            ForceDeleteOutcome::ServerRefused => "server_refused",
            ForceDeleteOutcome::ServerUnreachable => "server_unreachable",
        }
    }
}

/// The full account of one force-delete (what `--json` prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForceDeleteReport {
    /// The game id asked for.
    pub game_id: String,
    /// Its product, when the record was found.
    pub product: Option<String>,
    /// Its server, when the record was found.
    pub server_id: Option<String>,
    /// Its state before the delete, when the record was found.
    pub state: Option<GameState>,
    /// What came of it.
    pub outcome: ForceDeleteOutcome,
    /// Whether the game server answered (even with a refusal).
    pub server_reached: bool,
    /// Whether the server had the game (`false`: it answered 404, already gone).
    pub server_had_game: Option<bool>,
    /// The game server's error, if any.
    pub error: Option<String>,
    /// Whether the record was removed by this call.
    pub record_removed: bool,
    /// Whether `force` was asked for.
    pub forced: bool,
    /// The audit entry's stream id (none when nothing was done).
    pub audit_id: Option<String>,
}

impl ForceDeleteReport {
    /// Notes that the game-server step failed; returns what happened there, for errors.
    fn server_failed(&mut self, failure: ServerCallFailure) -> String {
        self.server_reached = failure.server_answered();
        self.outcome = if failure.server_answered() {
            ForceDeleteOutcome::ServerRefused
        } else {
            ForceDeleteOutcome::ServerUnreachable
        };
        let step = failure.to_string();
        self.error = Some(step.clone());
        step
    }
}

/// A force-delete that could not be carried out because Redis failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Reading the record, or marking it as ending, failed: nothing was done.
    #[error("could not read game {game}: {source}")]
    Read {
        /// The game.
        game: GameId,
        /// The store failure.
        source: StoreError,
    },
    /// The game server step is done (see `server_step`) but the record could not be
    /// updated or the audit entry not written.
    #[error("game {game}: {server_step}, but Redis failed afterwards: {source}")]
    AfterServer {
        /// The game.
        game: GameId,
        /// What happened on the game server.
        server_step: String,
        /// The store failure.
        source: StoreError,
    },
}

impl AdminError {
    /// Whether Redis could not be reached (as opposed to a bug or corrupt data).
    pub fn is_unavailable(&self) -> bool {
        match self {
            AdminError::Read { source, .. } | AdminError::AfterServer { source, .. } => {
                source.is_unavailable()
            }
        }
    }
}

/// Runs the force-delete flow (see the module docs) through the shared end step
/// ([`flows::end_game`]). A game whose server `servers` does not know counts as unreachable.
pub async fn force_delete(
    store: &Store,
    servers: &impl GameServers,
    request: &ForceDeleteRequest,
    now_ms: u64,
) -> Result<ForceDeleteReport, AdminError> {
    let game_id = &request.game;
    let mut report = ForceDeleteReport {
        game_id: game_id.to_string(),
        product: None,
        server_id: None,
        state: None,
        outcome: ForceDeleteOutcome::NotFound,
        server_reached: false,
        server_had_game: None,
        error: None,
        record_removed: false,
        forced: request.force,
        audit_id: None,
    };
    let game = store
        .game(game_id)
        .await
        .map_err(|source| AdminError::Read {
            game: game_id.clone(),
            source,
        })?;
    let Some(game) = game else {
        return Ok(report);
    };
    report.product = Some(game.product.to_string());
    report.server_id = Some(game.server_id.to_string());
    let state = game.state();
    report.state = Some(state);
    if state == GameState::Ended {
        return Ok(report);
    }

    let ended = flows::end_game(
        store,
        servers,
        EndGame {
            game: game_id,
            server: &game.server_id,
            reason: FORCE_DELETED_REASON,
            guard: RemoveGuard::Any,
            remove_unconfirmed: request.force,
            now_ms,
        },
    )
    .await;
    let (attempt, removed) = match ended {
        Ok(Ended::NotMarked(MarkOutcome::AlreadyEnded)) => {
            report.state = Some(GameState::Ended);
            return Ok(report);
        }
        Ok(Ended::NotMarked(_)) => {
            report.product = None;
            report.server_id = None;
            report.state = None;
            return Ok(report);
        }
        Ok(Ended::Removal { server, record }) => (Ok(server), Ok(Some(record))),
        Ok(Ended::Kept(unconfirmed)) => (Err(unconfirmed), Ok(None)),
        Err(err) => match err.server {
            Some(server) => (Ok(server), Err(err.source)),
            // Marking failed: nothing changed, the server was not called.
            None => {
                return Err(AdminError::Read {
                    game: game_id.clone(),
                    source: err.source,
                });
            }
        },
    };
    let server_step = match attempt {
        Ok(DeleteAttempt::Deleted) => {
            report.outcome = ForceDeleteOutcome::Deleted;
            report.server_reached = true;
            report.server_had_game = Some(true);
            format!("deleted on game server {}", game.server_id)
        }
        Ok(DeleteAttempt::AlreadyGone) => {
            report.outcome = ForceDeleteOutcome::Deleted;
            report.server_reached = true;
            report.server_had_game = Some(false);
            format!("already gone on game server {}", game.server_id)
        }
        Ok(DeleteAttempt::UnknownServer) | Err(Unconfirmed::UnknownServer) => {
            report.server_failed(ServerCallFailure::NotConfigured(game.server_id.clone()))
        }
        Ok(DeleteAttempt::Failed(err)) | Err(Unconfirmed::Failed(err)) => {
            report.server_failed(ServerCallFailure::Call(err))
        }
    };
    let after_server = |source| AdminError::AfterServer {
        game: game_id.clone(),
        server_step: server_step.clone(),
        source,
    };

    let removed = removed.map_err(after_server)?;
    report.record_removed = matches!(removed, Some(RemoveOutcome::Removed { .. }));

    let audit_outcome = match (report.outcome, report.record_removed) {
        (ForceDeleteOutcome::Deleted, _) => "deleted".to_string(),
        (outcome, true) => format!("{}_record_removed", outcome.as_str()),
        (outcome, false) => format!("{}_record_kept", outcome.as_str()),
    };
    let entry = AuditEntry {
        operator: request.operator.clone(),
        action: ACTION_FORCE_DELETE.to_string(),
        game_id: game_id.to_string(),
        product: game.product.to_string(),
        server_id: game.server_id.to_string(),
        reason: request.reason.clone(),
        outcome: audit_outcome,
        server_reached: report.server_reached,
        forced: request.force,
        detail: report.error.clone().unwrap_or_default(),
        at_ms: now_ms,
    };
    report.audit_id = Some(audit::append(store, &entry).await.map_err(after_server)?);
    tracing::info!(
        game = %game_id,
        server = %game.server_id,
        outcome = report.outcome.as_str(),
        record_removed = report.record_removed,
        operator = %request.operator,
        "force-delete"
    );
    Ok(report)
}

/// Why the game-server step failed.
#[derive(Debug, thiserror::Error)]
enum ServerCallFailure {
    /// The client's error.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The game's server is not among the configured endpoints.
    #[error("game server {0} is not in the configuration (game_servers): cannot call it")]
    NotConfigured(ServerId),
}

impl ServerCallFailure {
    /// Whether the server answered at all (a refusal rather than silence).
    fn server_answered(&self) -> bool {
        match self {
            ServerCallFailure::Call(CallError::Status { .. } | CallError::Decode { .. }) => true,
            ServerCallFailure::Call(_) | ServerCallFailure::NotConfigured(_) => false,
        }
    }
}
