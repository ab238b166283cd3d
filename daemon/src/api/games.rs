//! `/v1/games`: create, list, read, join and cancel games.
//!
//! The flows that change something on a game server and in Redis (create, join, cancel) run
//! in a spawned task that the handler awaits: if the client goes away or the request times
//! out, the flow still finishes, so the two sides never disagree because a request was cut
//! short in the middle (a game created on a server but never recorded, a seat reserved but
//! never handed out).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use mm_common::gameserver::{CallError, CreateGameRequest as ServerCreateRequest, JoinTicket};
use mm_common::model::JoinRefusal;
use mm_common::store::{OpenCursor, RemoveGuard, RemoveOutcome, ReserveOutcome};
use mm_common::time::{now_ms, rfc3339};
use mm_common::{Game, GameId, GameState, PlayerId, ProductId, ServerId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiContext;
use super::auth::Player;
use super::error::responses::{
    BadRequest, Conflict, GameNotFound, NotCreator, PayloadTooLarge, Unauthenticated, Unavailable,
    UnknownProduct, UnsupportedMediaType,
};
use super::error::{ApiError, ProblemCode};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::listing::PageKey;
use crate::registry::GameServerEndpoint;
use crate::telemetry;

/// Default page size of `GET /v1/games`.
pub const DEFAULT_LIST_LIMIT: u32 = 20;
/// Largest page size of `GET /v1/games`.
pub const MAX_LIST_LIMIT: u32 = 100;
/// Longest accepted region name, in characters.
pub const MAX_REGION_LEN: usize = 64;

/// `POST /v1/games` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGameRequest {
    /// The product (game) to play; a product some registered game server hosts.
    #[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "chess")]
    pub product: ProductId,
    /// Seats, creator included (1..=`lobby.max_capacity`; `/openapi.json` states this
    /// deployment's maximum).
    #[schema(minimum = 1, example = 2)]
    #[serde(deserialize_with = "integral_u32")]
    pub capacity: u32,
    /// Only place the game on a server of this region.
    #[schema(min_length = 1, max_length = 64, example = "eu")]
    #[serde(default)]
    pub region: Option<String>,
    /// Game settings passed to the game server unchanged (a JSON object).
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A JSON integer for a `u32`, also written as a float with no fraction (`16.0`), which JSON
/// Schema counts as an integer too.
fn integral_u32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    let value = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    value.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
        D::Error::custom(format!(
            "invalid value {number}, expected a whole number from 0 to {}",
            u32::MAX
        ))
    })
}

/// A game's state.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GameStateView {
    /// Created; the creator has not connected yet.
    Created,
    /// The creator is in; others may join while a seat is free.
    CreatorJoined,
    /// Every seat is taken.
    AllPlayersJoined,
    /// Being played.
    InProgress,
    /// Over.
    Ended,
}

impl From<GameState> for GameStateView {
    fn from(state: GameState) -> Self {
        match state {
            GameState::Created => GameStateView::Created,
            GameState::CreatorJoined => GameStateView::CreatorJoined,
            GameState::AllPlayersJoined => GameStateView::AllPlayersJoined,
            GameState::InProgress => GameStateView::InProgress,
            GameState::Ended => GameStateView::Ended,
        }
    }
}

/// A game, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GameView {
    /// The game's id (`<product>.<uuid>`).
    pub id: String,
    /// Its product.
    pub product: String,
    /// Its state.
    pub state: GameStateView,
    /// Seats, creator included.
    pub capacity: u32,
    /// Players connected to the game, in the order they joined.
    pub players: Vec<String>,
    /// Seats neither taken by a connected player nor reserved by a join.
    pub seats_free: u32,
    /// Who created it.
    pub creator_id: String,
    /// The game server hosting it.
    pub server_id: String,
    /// The game server's region, if it has one.
    pub region: Option<String>,
    /// When it was created (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Its last activity (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl GameView {
    /// The view of `game` at `now_ms`.
    pub fn of(game: &Game, now_ms: u64) -> GameView {
        let taken = game.seats_taken(now_ms) as u32;
        GameView {
            id: game.id.to_string(),
            product: game.product.to_string(),
            state: game.state().into(),
            capacity: game.capacity,
            players: game.players().iter().map(ToString::to_string).collect(),
            seats_free: game.capacity.saturating_sub(taken),
            creator_id: game.creator_id.to_string(),
            server_id: game.server_id.to_string(),
            region: game.region.clone(),
            created_at: rfc3339(game.created_at_ms),
            updated_at: rfc3339(game.updated_at_ms),
        }
    }
}

/// Where and with what a player connects to the game.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JoinInfo {
    /// The game's WebSocket URL.
    pub socket_url: String,
    /// The player's token for it.
    pub token: String,
}

impl From<JoinTicket> for JoinInfo {
    fn from(ticket: JoinTicket) -> Self {
        JoinInfo {
            socket_url: ticket.socket_url,
            token: ticket.token,
        }
    }
}

/// A game plus the caller's connection details.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GameWithJoin {
    /// The game.
    #[serde(flatten)]
    pub game: GameView,
    /// How the caller connects.
    pub join: JoinInfo,
}

/// A page of open games.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GamePage {
    /// Open games, oldest first.
    pub games: Vec<GameView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/games` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The product whose open games to list.
    #[param(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "chess")]
    pub product: ProductId,
    /// Only games on servers of this region.
    #[param(min_length = 1, max_length = 64)]
    #[serde(default)]
    pub region: Option<String>,
    /// Page size (1..=100, default 20).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (absent or empty: the first page).
    #[param(pattern = "^([0-9]{1,19}:[A-Za-z0-9._-]{1,64})?$")]
    #[serde(default)]
    pub cursor: Option<String>,
}

/// The `{id}` path parameter, validated.
fn game_id(raw: &str) -> Result<GameId, ApiError> {
    GameId::new(raw).map_err(|err| ApiError::invalid(format!("path parameter `id`: {err}")))
}

/// A region is matched only against the configured servers' regions (an unknown one simply
/// matches no server), so only its length is checked, in characters as the schema states.
fn check_region(region: Option<&str>, where_: &str) -> Result<(), ApiError> {
    if let Some(region) = region {
        let len = region.chars().count();
        if len == 0 || len > MAX_REGION_LEN {
            return Err(ApiError::invalid(format!(
                "{where_} `region`: must be 1 to {MAX_REGION_LEN} characters long"
            )));
        }
    }
    Ok(())
}

/// Runs a flow to completion even if the request is dropped (see the module docs).
async fn run_detached<T: Send + 'static>(
    what: &'static str,
    flow: impl Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    let request_id = super::error::current_request_id().unwrap_or_default();
    let task = tokio::spawn(super::error::REQUEST_ID.scope(request_id, flow));
    match task.await {
        Ok(result) => result,
        Err(err) => Err(ApiError::internal(what, &err)),
    }
}

fn call_outcome<T>(result: &Result<T, CallError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) => err.kind(),
    }
}

/// Create a game on a game server of the product and record it (state `created`).
#[utoipa::path(post, path = "/v1/games", tag = "games",
    request_body = CreateGameRequest,
    responses(
        (status = 201, description = "Created; the creator connects with `join`", body = GameWithJoin),
        BadRequest,
        Unauthenticated,
        UnknownProduct,
        PayloadTooLarge,
        UnsupportedMediaType,
        Unavailable,
    ))]
pub async fn create_game(
    State(ctx): State<ApiContext>,
    Player(player): Player,
    ApiJson(request): ApiJson<CreateGameRequest>,
) -> Result<(StatusCode, Json<GameWithJoin>), ApiError> {
    let max = ctx.lobby().max_capacity;
    if request.capacity == 0 || request.capacity > max {
        return Err(ApiError::invalid(format!(
            "request body `capacity`: must be between 1 and {max}, got {}",
            request.capacity
        )));
    }
    check_region(request.region.as_deref(), "request body")?;
    if !ctx.registry().knows_product(&request.product) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ProblemCode::UnknownProduct,
            format!(
                "no game server hosts product {:?}",
                request.product.as_str()
            ),
        ));
    }
    let created = run_detached("creating a game", create_flow(ctx, player, request)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn create_flow(
    ctx: ApiContext,
    player: PlayerId,
    request: CreateGameRequest,
) -> Result<GameWithJoin, ApiError> {
    let product = request.product;
    let region = request.region;
    let settings = serde_json::Value::Object(request.settings.unwrap_or_default());
    let game_id = GameId::generate(&product);
    let no_server = |detail: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::NoGameServer,
            detail,
        )
    };
    let server_request = ServerCreateRequest {
        game_id: game_id.clone(),
        product: product.clone(),
        capacity: request.capacity,
        creator_id: player.clone(),
        settings: settings.clone(),
    };
    let mut tried: Vec<ServerId> = Vec::new();
    let (pick, ticket) = loop {
        let Some(pick) = ctx
            .registry()
            .pick_excluding(&product, region.as_deref(), &tried)
        else {
            let scope = region
                .as_deref()
                .map(|r| format!(" in region {r:?}"))
                .unwrap_or_default();
            return Err(no_server(if tried.is_empty() {
                format!("no healthy game server of product \"{product}\"{scope} has room")
            } else {
                format!(
                    "the game servers of product \"{product}\"{scope} failed to create the game"
                )
            }));
        };
        let result = ctx
            .game_servers()
            .create_game(&pick.endpoint, &server_request)
            .await;
        telemetry::game_server_call(
            pick.server_id.as_str(),
            "create_game",
            call_outcome(&result),
        );
        match result {
            Ok(ticket) => break (pick, ticket),
            Err(err) => {
                ctx.registry().unplace(&pick.server_id);
                if err.is_server_fault() {
                    ctx.registry()
                        .mark_unhealthy(&pick.server_id, err.to_string());
                    // The game may exist there even though the answer was lost: delete it.
                    discard_on_server(&ctx, pick.endpoint.clone(), game_id.clone());
                    tried.push(pick.server_id.clone());
                    if tried.len() >= 2 {
                        return Err(no_server(format!(
                            "the game servers of product \"{product}\" failed to create the game"
                        )));
                    }
                    continue;
                }
                tracing::warn!(server = %pick.server_id, error = %err, "game server refused to create a game");
                return Err(no_server(format!(
                    "game server {} refused to create the game",
                    pick.server_id
                )));
            }
        }
    };
    let now = now_ms();
    let game = Game::new(
        game_id.clone(),
        product.clone(),
        pick.server_id.clone(),
        pick.region.clone(),
        request.capacity,
        player,
        ticket.socket_url.clone(),
        settings.to_string(),
        now,
    );
    let recorded = ctx.store().create_game(&game).await;
    let failure = match recorded {
        Ok(true) => None,
        Ok(false) => Some(ApiError::internal(
            "recording the new game",
            &format!("game id {game_id} is already taken"),
        )),
        Err(err) => Some(ApiError::store("recording the new game", &err)),
    };
    if let Some(failure) = failure {
        ctx.registry().unplace(&pick.server_id);
        // No orphans: the game must not outlive its missing record on the server.
        delete_on_server(&ctx, &pick.endpoint, &game_id).await;
        return Err(failure);
    }
    metrics::counter!(telemetry::GAMES_CREATED_TOTAL, "product" => product.to_string())
        .increment(1);
    tracing::info!(game = %game_id, server = %pick.server_id, load = pick.load,
        capacity = pick.capacity, "game created");
    Ok(GameWithJoin {
        game: GameView::of(&game, now),
        join: ticket.into(),
    })
}

/// Deletes `game` on a server, logging (not returning) a failure.
async fn delete_on_server(ctx: &ApiContext, endpoint: &GameServerEndpoint, game: &GameId) {
    let result = ctx.game_servers().delete_game(endpoint, game).await;
    telemetry::game_server_call(endpoint.id.as_str(), "delete_game", call_outcome(&result));
    if let Err(err) = result {
        tracing::error!(game = %game, server = %endpoint.id, error = %err,
            "could not delete an unrecorded game on its game server; it is orphaned there");
    }
}

/// [`delete_on_server`] in the background.
fn discard_on_server(ctx: &ApiContext, endpoint: GameServerEndpoint, game: GameId) {
    let ctx = ctx.clone();
    tokio::spawn(async move { delete_on_server(&ctx, &endpoint, &game).await });
}

/// List open games of a product: the creator has joined and a seat is free.
#[utoipa::path(get, path = "/v1/games", tag = "games",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of open games, oldest first", body = GamePage),
        BadRequest,
        Unauthenticated,
    ))]
pub async fn list_games(
    State(ctx): State<ApiContext>,
    Player(_player): Player,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "query parameter `limit`: must be between 1 and {MAX_LIST_LIMIT}, got {limit}"
        )));
    }
    check_region(query.region.as_deref(), "query parameter")?;
    // An empty cursor (`cursor=`) means the first page, like an absent one.
    let cursor = query
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(OpenCursor::decode)
        .transpose()
        .map_err(|err| ApiError::invalid(format!("query parameter `cursor`: {err}")))?;
    let body = match cursor {
        // First pages come from the cache, never older than `lobby.list_max_staleness_ms`.
        None => {
            let key = PageKey {
                product: query.product,
                region: query.region,
                limit,
            };
            let fetch_ctx = ctx.clone();
            let fetch_key = key.clone();
            ctx.listings()
                .get(&key, move || async move {
                    render_page(
                        &fetch_ctx,
                        &fetch_key.product,
                        fetch_key.region.as_deref(),
                        limit,
                        None,
                    )
                    .await
                })
                .await?
        }
        Some(cursor) => {
            render_page(
                &ctx,
                &query.product,
                query.region.as_deref(),
                limit,
                Some(&cursor),
            )
            .await?
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Drops the cached listings of `game`'s product after this process changed its seats or
/// removed it, so this instance's clients see their own writes at once.
fn invalidate_listings(ctx: &ApiContext, game: &GameId) {
    if let Some(product) = game.product() {
        ctx.listings().invalidate(&product);
    }
}

/// One page of open games read from the store, rendered as the response body.
async fn render_page(
    ctx: &ApiContext,
    product: &ProductId,
    region: Option<&str>,
    limit: u32,
    cursor: Option<&OpenCursor>,
) -> Result<Bytes, ApiError> {
    let now = now_ms();
    let page = ctx
        .store()
        .open_games(product, region, limit as usize, cursor, now)
        .await
        .map_err(|err| ApiError::store("listing open games", &err))?;
    let body = serde_json::to_vec(&GamePage {
        games: page.games.iter().map(|g| GameView::of(g, now)).collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    })
    .map_err(|err| ApiError::internal("rendering a page of open games", &err))?;
    Ok(Bytes::from(body))
}

/// One game.
#[utoipa::path(get, path = "/v1/games/{id}", tag = "games",
    params(("id" = String, Path, description = "The game's id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 200, description = "The game", body = GameView),
        BadRequest,
        Unauthenticated,
        GameNotFound,
    ))]
pub async fn get_game(
    State(ctx): State<ApiContext>,
    Player(_player): Player,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GameView>, ApiError> {
    let id = game_id(&id)?;
    let game = ctx
        .store()
        .game(&id)
        .await
        .map_err(|err| ApiError::store("reading the game", &err))?
        .ok_or_else(|| ApiError::game_not_found(id.as_str()))?;
    Ok(Json(GameView::of(&game, now_ms())))
}

/// Reserve a seat in a game through its game server's join API.
#[utoipa::path(post, path = "/v1/games/{id}/join", tag = "games",
    params(("id" = String, Path, description = "The game's id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 200, description = "Seat reserved; connect with `join`", body = GameWithJoin),
        BadRequest,
        Unauthenticated,
        GameNotFound,
        Conflict,
        Unavailable,
    ))]
pub async fn join_game(
    State(ctx): State<ApiContext>,
    Player(player): Player,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GameWithJoin>, ApiError> {
    let id = game_id(&id)?;
    let joined = run_detached("joining a game", join_flow(ctx, player, id)).await?;
    Ok(Json(joined))
}

fn refusal(refusal: JoinRefusal) -> ApiError {
    let detail = match refusal {
        JoinRefusal::CreatorNotJoined => "nobody but the creator may join before the creator has",
        JoinRefusal::GameFull => "every seat of the game is taken",
        JoinRefusal::GameNotOpen => "the game has started or ended",
    };
    ApiError::new(StatusCode::CONFLICT, ProblemCode::from(refusal), detail)
}

async fn join_flow(
    ctx: ApiContext,
    player: PlayerId,
    id: GameId,
) -> Result<GameWithJoin, ApiError> {
    let ttl = ctx.lobby().reservation_ttl();
    let outcome = ctx
        .store()
        .reserve_seat(&id, &player, now_ms(), ttl)
        .await
        .map_err(|err| ApiError::store("reserving a seat", &err))?;
    if matches!(outcome, ReserveOutcome::Reserved { .. }) {
        invalidate_listings(&ctx, &id);
    }
    let new_seat = match outcome {
        ReserveOutcome::NotFound => return Err(ApiError::game_not_found(id.as_str())),
        ReserveOutcome::Refused(why) => return Err(refusal(why)),
        ReserveOutcome::Reserved { .. } => true,
        ReserveOutcome::AlreadyHeld => false,
    };
    let release = |ctx: &ApiContext, id: &GameId, player: &PlayerId| {
        let (ctx, id, player) = (ctx.clone(), id.clone(), player.clone());
        async move {
            if new_seat
                && let Err(err) = ctx.store().release_seat(&id, &player, now_ms(), true).await
            {
                // The reservation expires by itself; only the seat is held a little longer.
                tracing::warn!(game = %id, error = %err, "could not release a reserved seat");
            }
            invalidate_listings(&ctx, &id);
        }
    };
    let game = match ctx.store().game(&id).await {
        Ok(Some(game)) => game,
        Ok(None) => {
            release(&ctx, &id, &player).await;
            return Err(ApiError::game_not_found(id.as_str()));
        }
        Err(err) => {
            release(&ctx, &id, &player).await;
            return Err(ApiError::store("reading the game", &err));
        }
    };
    let Some(endpoint) = ctx.registry().endpoint(&game.server_id) else {
        release(&ctx, &id, &player).await;
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::GameServerUnavailable,
            format!(
                "the game's server {} is not registered with this matchmaker",
                game.server_id
            ),
        ));
    };
    let result = ctx.game_servers().add_player(&endpoint, &id, &player).await;
    telemetry::game_server_call(endpoint.id.as_str(), "add_player", call_outcome(&result));
    match result {
        Ok(ticket) => Ok(GameWithJoin {
            game: GameView::of(&game, now_ms()),
            join: ticket.into(),
        }),
        Err(err) => {
            release(&ctx, &id, &player).await;
            if err.is_server_fault() {
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::GameServerUnavailable,
                    format!("the game's server could not be reached: {}", err.kind()),
                ))
            } else {
                Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ProblemCode::JoinRefused,
                    format!(
                        "the game's server refused the join (HTTP {})",
                        err.status().unwrap_or(0)
                    ),
                ))
            }
        }
    }
}

/// Cancel a game that has not started (creator only).
#[utoipa::path(delete, path = "/v1/games/{id}", tag = "games",
    params(("id" = String, Path, description = "The game's id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 204, description = "Cancelled: deleted on the game server and removed"),
        BadRequest,
        Unauthenticated,
        NotCreator,
        GameNotFound,
        Conflict,
        Unavailable,
    ))]
pub async fn cancel_game(
    State(ctx): State<ApiContext>,
    Player(player): Player,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = game_id(&id)?;
    run_detached("cancelling a game", cancel_flow(ctx, player, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cancel_flow(ctx: ApiContext, player: PlayerId, id: GameId) -> Result<(), ApiError> {
    let game = ctx
        .store()
        .game(&id)
        .await
        .map_err(|err| ApiError::store("reading the game", &err))?
        .ok_or_else(|| ApiError::game_not_found(id.as_str()))?;
    if game.creator_id != player {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ProblemCode::NotCreator,
            "only the game's creator may cancel it",
        ));
    }
    let not_open = || {
        ApiError::new(
            StatusCode::CONFLICT,
            ProblemCode::GameNotOpen,
            "the game has started or ended; it can no longer be cancelled",
        )
    };
    if !game.state().cancellable() {
        return Err(not_open());
    }
    let Some(endpoint) = ctx.registry().endpoint(&game.server_id) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::GameServerUnavailable,
            format!(
                "the game's server {} is not registered with this matchmaker",
                game.server_id
            ),
        ));
    };
    let result = ctx.game_servers().delete_game(&endpoint, &id).await;
    telemetry::game_server_call(endpoint.id.as_str(), "delete_game", call_outcome(&result));
    if let Err(err) = result {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::GameServerUnavailable,
            format!(
                "the game's server did not delete the game ({}); nothing was changed",
                err.kind()
            ),
        ));
    }
    let removed = ctx
        .store()
        .remove_game(&id, "cancelled", RemoveGuard::Cancellable, now_ms())
        .await
        .map_err(|err| ApiError::store("removing the cancelled game", &err))?;
    invalidate_listings(&ctx, &id);
    match removed {
        RemoveOutcome::Removed { .. } => {
            tracing::info!(game = %id, "game cancelled by its creator");
            Ok(())
        }
        RemoveOutcome::Refused { state } => {
            // It started between our check and the delete; the server no longer has it, so
            // the record must go too.
            tracing::warn!(game = %id, %state, "game started while being cancelled; removing it");
            ctx.store()
                .remove_game(&id, "cancelled", RemoveGuard::Any, now_ms())
                .await
                .map_err(|err| ApiError::store("removing the cancelled game", &err))?;
            invalidate_listings(&ctx, &id);
            Ok(())
        }
        RemoveOutcome::AlreadyEnded => Err(not_open()),
        RemoveOutcome::NotFound => Err(ApiError::game_not_found(id.as_str())),
    }
}
