//! The curator's view of the game servers: endpoint lookup plus the shared game-server client
//! (with its per-server circuit breaker).

use std::sync::Arc;

use mm_common::gameserver::{CallError, DeleteOutcome, GameServerClient, GameServerEndpoint};
use mm_common::{GameId, ServerId};

use super::{DeleteAttempt, GameServers};

/// Finds a registered server's endpoint (the daemon passes the registry's lookup).
pub type EndpointLookup = Arc<dyn Fn(&ServerId) -> Option<GameServerEndpoint> + Send + Sync>;

/// Registered game servers, called through a [`GameServerClient`].
#[derive(Clone)]
pub struct RegisteredServers {
    client: GameServerClient,
    lookup: EndpointLookup,
}

impl std::fmt::Debug for RegisteredServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredServers").finish_non_exhaustive()
    }
}

impl RegisteredServers {
    /// Servers found with `lookup`, called with `client`.
    pub fn new(client: GameServerClient, lookup: EndpointLookup) -> Self {
        Self { client, lookup }
    }
}

impl GameServers for RegisteredServers {
    async fn delete_game(&self, server: &ServerId, game: &GameId) -> DeleteAttempt {
        let Some(endpoint) = (self.lookup)(server) else {
            return DeleteAttempt::UnknownServer;
        };
        match self.client.delete_game(&endpoint, game).await {
            Ok(DeleteOutcome::Deleted | DeleteOutcome::AlreadyGone) => DeleteAttempt::Deleted,
            Err(err) => classify(err),
        }
    }
}

fn classify(err: CallError) -> DeleteAttempt {
    if err.is_server_fault() {
        DeleteAttempt::Unreachable(err.to_string())
    } else {
        DeleteAttempt::Refused(err.to_string())
    }
}
