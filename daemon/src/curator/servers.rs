//! The curator's view of the game servers: endpoint lookup plus the shared game-server client
//! (with its per-server circuit breaker), deleting through the flows' [`ServerCalls`].

use std::sync::Arc;

use mm_common::flows::{DeleteAttempt, GameServers, ServerCalls, ServerDirectory};
use mm_common::gameserver::{GameServerClient, GameServerEndpoint};
use mm_common::{GameId, ServerId};

/// Finds a registered server's endpoint (the daemon passes the registry's lookup).
pub type EndpointLookup = Arc<dyn Fn(&ServerId) -> Option<GameServerEndpoint> + Send + Sync>;

/// The directory an [`EndpointLookup`] makes. Calls are not counted (the curator has its own
/// `mm_curated_games_total`).
#[derive(Clone)]
struct LookupDirectory(EndpointLookup);

impl ServerDirectory for LookupDirectory {
    fn endpoint(&self, server: &ServerId) -> Option<GameServerEndpoint> {
        (self.0)(server)
    }
}

/// Registered game servers, called through a [`GameServerClient`].
#[derive(Clone)]
pub struct RegisteredServers {
    calls: ServerCalls<LookupDirectory>,
}

impl std::fmt::Debug for RegisteredServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredServers").finish_non_exhaustive()
    }
}

impl RegisteredServers {
    /// Servers found with `lookup`, called with `client`.
    pub fn new(client: GameServerClient, lookup: EndpointLookup) -> Self {
        Self {
            calls: ServerCalls::new(client, LookupDirectory(lookup)),
        }
    }
}

impl GameServers for RegisteredServers {
    async fn delete_game(&self, server: &ServerId, game: &GameId) -> DeleteAttempt {
        self.calls.delete_game(server, game).await
    }
}
