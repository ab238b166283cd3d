//! Create: place a game on a game server, create it there (retrying once on another server
//! after a server fault), then record it — or delete it there again if the record fails (see
//! the module docs of [`crate::flows`]).

use std::time::Duration;

use super::{DeleteAttempt, Placement, ServerCalls, ServerPlacement};
use crate::gameserver::{CallError, CreateGameRequest, GameServerEndpoint, JoinTicket};
use crate::ids::{GameId, PlayerId, ProductId, ServerId};
use crate::labels::Labels;
use crate::limits::{LimitRefusal, PlayerLimits};
use crate::model::Game;
use crate::store::{Store, StoreError};
use crate::time::now_ms;

/// Servers a create tries at most.
const MAX_SERVERS_TRIED: usize = 2;

/// How long a create admitted under the live-games quota may take to record its game before
/// its slot is pruned as abandoned (longer than any create flow with its server timeouts).
pub const CREATE_ADMISSION_GRACE: Duration = Duration::from_secs(120);

/// A game to create.
#[derive(Debug, Clone)]
pub struct NewGame {
    /// Its product.
    pub product: ProductId,
    /// Only place it on a server of this region.
    pub region: Option<String>,
    /// Seats, creator included (validated by the caller).
    pub capacity: u32,
    /// Who creates it.
    pub creator: PlayerId,
    /// Settings passed to the game server unchanged.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Labels players filter by (validated by the caller; kept by the matchmaker, never
    /// sent to the game server).
    pub labels: Labels,
}

/// A game created on its server and recorded.
#[derive(Debug, Clone)]
pub struct CreatedGame {
    /// The record as written (state `created`).
    pub game: Game,
    /// How the creator connects.
    pub ticket: JoinTicket,
    /// Where it was placed.
    pub placement: Placement,
}

/// Why no game was created. In every case nothing of the game is left in the record, and a
/// game that may exist on a server is deleted there.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A per-player limit (create rate, live games) refused it: nothing was done.
    #[error("a per-player limit refused the create: {0:?}")]
    Limited(LimitRefusal),
    /// Checking the per-player limits failed: nothing was done.
    #[error("checking the per-player limits: {0}")]
    Admit(#[source] StoreError),
    /// No healthy server of the product (and region) has room.
    #[error(
        "no healthy game server of product \"{product}\"{} has room",
        in_region(region)
    )]
    NoServer {
        /// The product.
        product: ProductId,
        /// The region asked for.
        region: Option<String>,
    },
    /// Servers failed (server faults) and no other server of the product (and region) is
    /// left to try.
    #[error(
        "the game servers of product \"{product}\"{} failed to create the game",
        in_region(region)
    )]
    OutOfServers {
        /// The product.
        product: ProductId,
        /// The region asked for.
        region: Option<String>,
    },
    /// As many servers as a create tries failed (server faults).
    #[error("the game servers of product \"{product}\" failed to create the game")]
    ServersFailed {
        /// The product.
        product: ProductId,
    },
    /// The chosen server refused to create the game (4xx).
    #[error("game server {server} refused to create the game")]
    Refused {
        /// The server.
        server: ServerId,
        /// Its answer.
        source: CallError,
    },
    /// The generated game id is already recorded; the game was deleted on its server.
    #[error("game id {0} is already taken")]
    IdTaken(GameId),
    /// Recording the game failed; the game was deleted on its server.
    #[error("recording the new game: {0}")]
    Record(#[source] StoreError),
}

fn in_region(region: &Option<String>) -> String {
    region
        .as_deref()
        .map(|r| format!(" in region {r:?}"))
        .unwrap_or_default()
}

/// Creates `request` on a server of its product and records it (state `created`), if the
/// creator's per-player `limits` admit it (checked first: a refused create calls no server).
pub async fn create_game<D: ServerPlacement + Clone + 'static>(
    store: &Store,
    servers: &ServerCalls<D>,
    request: NewGame,
    limits: &PlayerLimits,
) -> Result<CreatedGame, CreateError> {
    let game_id = GameId::generate(&request.product);
    let (product, creator) = (request.product.clone(), request.creator.clone());
    if let Some(refusal) = store
        .admit_create(
            &product,
            &creator,
            &game_id,
            now_ms(),
            limits,
            CREATE_ADMISSION_GRACE,
        )
        .await
        .map_err(CreateError::Admit)?
    {
        return Err(CreateError::Limited(refusal));
    }
    let result = create_admitted(store, servers, request, game_id.clone()).await;
    if result.is_err()
        && limits.max_live_games > 0
        && let Err(err) = store.forget_create(&product, &creator, &game_id).await
    {
        // The slot is pruned once the admission grace is over.
        tracing::warn!(game = %game_id, error = %err, "could not give back a live-game slot");
    }
    result
}

/// The create once admitted: place, create on the server, record.
async fn create_admitted<D: ServerPlacement + Clone + 'static>(
    store: &Store,
    servers: &ServerCalls<D>,
    request: NewGame,
    game_id: GameId,
) -> Result<CreatedGame, CreateError> {
    let NewGame {
        product,
        region,
        capacity,
        creator,
        settings,
        labels,
    } = request;
    let settings = serde_json::Value::Object(settings);
    let server_request = CreateGameRequest {
        game_id: game_id.clone(),
        product: product.clone(),
        capacity,
        creator_id: creator.clone(),
        settings: settings.clone(),
    };
    let directory = servers.directory();
    let mut tried: Vec<ServerId> = Vec::new();
    let (placement, ticket) = loop {
        let Some(placement) = directory.place(&product, region.as_deref(), &tried) else {
            return Err(if tried.is_empty() {
                CreateError::NoServer { product, region }
            } else {
                CreateError::OutOfServers { product, region }
            });
        };
        let server = placement.endpoint.id.clone();
        match servers
            .create_game(&placement.endpoint, &server_request)
            .await
        {
            Ok(ticket) => break (placement, ticket),
            Err(err) => {
                directory.unplace(&server);
                if err.is_server_fault() {
                    directory.mark_unhealthy(&server, err.to_string());
                    // The game may exist there even though the answer was lost: delete it.
                    discard_on_server(servers, placement.endpoint, game_id.clone());
                    tried.push(server);
                    if tried.len() >= MAX_SERVERS_TRIED {
                        return Err(CreateError::ServersFailed { product });
                    }
                    continue;
                }
                tracing::warn!(server = %server, error = %err, "game server refused to create a game");
                return Err(CreateError::Refused {
                    server,
                    source: err,
                });
            }
        }
    };
    let server = placement.endpoint.id.clone();
    let game = Game::new(
        game_id.clone(),
        product,
        server.clone(),
        placement.region.clone(),
        capacity,
        creator,
        ticket.socket_url.clone(),
        settings.to_string(),
        now_ms(),
    )
    .with_labels(labels);
    let failure = match store.create_game_with_ticket(&game, Some(&ticket)).await {
        Ok(true) => None,
        Ok(false) => Some(CreateError::IdTaken(game_id.clone())),
        Err(err) => Some(CreateError::Record(err)),
    };
    if let Some(failure) = failure {
        directory.unplace(&server);
        // No orphans: the game must not outlive its missing record on the server.
        delete_on_server(servers, &placement.endpoint, &game_id).await;
        return Err(failure);
    }
    tracing::info!(game = %game_id, server = %server, load = placement.load,
        capacity = placement.capacity, "game created");
    Ok(CreatedGame {
        game,
        ticket,
        placement,
    })
}

/// The undo: deletes an unrecorded `game` on a server, logging (not returning) a failure.
async fn delete_on_server<D: ServerPlacement>(
    servers: &ServerCalls<D>,
    endpoint: &GameServerEndpoint,
    game: &GameId,
) {
    if let DeleteAttempt::Failed(err) = servers.delete_on(endpoint, game).await {
        tracing::error!(game = %game, server = %endpoint.id, error = %err,
            "could not delete an unrecorded game on its game server; it is orphaned there");
    }
}

/// [`delete_on_server`] in the background.
fn discard_on_server<D: ServerPlacement + Clone + 'static>(
    servers: &ServerCalls<D>,
    endpoint: GameServerEndpoint,
    game: GameId,
) {
    let servers = servers.clone();
    tokio::spawn(async move { delete_on_server(&servers, &endpoint, &game).await });
}
