//! `/v1/games`: create, list, read, join and cancel games.
//!
//! The handlers parse, authorize, call a lifecycle flow of [`mm_common::flows`] and turn its
//! outcome into a response; the JSON types are in [`super::views`].
//!
//! The flows that change something on a game server and in Redis (create, join, cancel) run
//! in a spawned task that the handler awaits: if the client goes away or the request times
//! out, the flow still finishes, so the two sides never disagree because a request was cut
//! short in the middle (a game created on a server but never recorded, a seat reserved but
//! never handed out).

use axum::Json;
use axum::body::Bytes;
use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use mm_common::flows::{
    self, CancelError, CreateError, JoinError, JoinedGame, NewGame, ServerCalls,
};
use mm_common::labels::Labels;
use mm_common::limits::LimitRefusal;
use mm_common::model::JoinRefusal;
use mm_common::time::now_ms;
use mm_common::{GameId, ProductId, ServerId};

use super::ApiContext;
use super::auth::Player;
use super::error::responses::{
    BadRequest, Conflict, GameNotFound, NotCreator, NotReady, PayloadTooLarge, TooManyRequests,
    Unauthenticated, Unavailable, UnknownProduct, UnsupportedMediaType,
};
use super::error::{ApiError, ProblemCode};
use super::extract::{ApiJson, ApiPath};
use super::open_games::{Cursor, PageQuery, Sort, ViewPage};
pub use super::views::{
    CreateGameRequest, GamePage, GameStateView, GameView, GameWithJoin, JoinInfo, ListQuery,
    ListSort,
};
use crate::registry::Registry;
use crate::telemetry;

/// Default page size of `GET /v1/games`.
pub const DEFAULT_LIST_LIMIT: u32 = 20;
/// Largest page size of `GET /v1/games`.
pub const MAX_LIST_LIMIT: u32 = 100;
/// Largest accepted `min_seats_free`: the OpenAPI document's int32 bound.
pub const MAX_MIN_SEATS_FREE: u32 = i32::MAX as u32;
/// How long a listing waits for the view's first load before answering `503 not_ready`.
const VIEW_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Longest accepted region name, in characters.
pub const MAX_REGION_LEN: usize = 64;

/// The `{id}` path parameter, validated.
pub(super) fn game_id(raw: &str) -> Result<GameId, ApiError> {
    GameId::new(raw).map_err(|err| ApiError::invalid(format!("path parameter `id`: {err}")))
}

/// A region is matched only against the configured servers' regions (an unknown one simply
/// matches no server), so only its length is checked, in characters as the schema states.
pub(super) fn check_region(region: Option<&str>, where_: &str) -> Result<(), ApiError> {
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

/// `404 unknown_product` unless a configured game server hosts `product` (create and list
/// answer alike).
pub(super) fn check_product(ctx: &ApiContext, product: &ProductId) -> Result<(), ApiError> {
    if ctx.registry().knows_product(product) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        ProblemCode::UnknownProduct,
        format!("no game server hosts product {:?}", product.as_str()),
    ))
}

/// Runs a flow to completion even if the request is dropped (see the module docs).
pub(super) async fn run_detached<T: Send + 'static>(
    what: &'static str,
    flow: impl Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    let request_id = super::error::current_request_id().unwrap_or_default();
    let task = tokio::spawn(super::error::REQUEST_ID.scope(request_id, flow));
    match task.await {
        Ok(result) => Ok(result),
        Err(err) => Err(ApiError::internal(what, &err)),
    }
}

/// The game servers as the flows call them: the shared client, found and counted through the
/// registry.
pub(super) fn server_calls(ctx: &ApiContext) -> ServerCalls<Registry> {
    ServerCalls::new(ctx.game_servers().clone(), ctx.registry().clone())
}

/// `Retry-After` of a `quota_exceeded` whose end cannot be known (a game must end first).
pub(super) const QUOTA_RETRY_AFTER_SECS: u64 = 30;

/// Counts a refusal of a per-player limit (`mm_limit_refusals_total`).
pub(super) fn count_refusal(product: &str, op: &str, refusal: LimitRefusal) {
    metrics::counter!(telemetry::LIMIT_REFUSALS_TOTAL,
        "product" => product.to_string(), "kind" => format!("{op}_{}", refusal.kind()))
    .increment(1);
}

/// The answer to a failed create.
pub(super) fn create_error(err: CreateError) -> ApiError {
    let no_server = |detail: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::NoGameServer,
            detail,
        )
    };
    match err {
        CreateError::NoServer { .. }
        | CreateError::OutOfServers { .. }
        | CreateError::ServersFailed { .. }
        | CreateError::Refused { .. } => no_server(err.to_string()),
        CreateError::IdTaken(_) => ApiError::internal("recording the new game", &err),
        CreateError::Record(err) => ApiError::store("recording the new game", &err),
        CreateError::Admit(err) => ApiError::store("checking the player's limits", &err),
        CreateError::Limited(refusal) => {
            ApiError::limited("creating a game", refusal, QUOTA_RETRY_AFTER_SECS)
        }
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
        TooManyRequests,
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
    let labels = Labels::new(request.labels.unwrap_or_default(), ctx.lobby().max_labels)
        .map_err(|err| ApiError::invalid(format!("request body `labels`: {err}")))?;
    check_product(&ctx, &request.product)?;
    let new_game = NewGame {
        product: request.product,
        region: request.region,
        capacity: request.capacity,
        creator: player,
        settings: request.settings.unwrap_or_default(),
        labels,
    };
    let created = run_detached("creating a game", async move {
        let product = new_game.product.clone();
        let limits = ctx.limits().player_limits();
        let created = flows::create_game(ctx.store(), &server_calls(&ctx), new_game, &limits)
            .await
            .inspect_err(|err| {
                if let CreateError::Limited(refusal) = err {
                    count_refusal(product.as_str(), "create", *refusal);
                }
            })
            .map_err(create_error)?;
        metrics::counter!(telemetry::GAMES_CREATED_TOTAL, "product" => created.game.product.to_string())
            .increment(1);
        Ok::<_, ApiError>(created)
    })
    .await??;
    let view = GameView::of(&created.game, created.game.created_at_ms);
    Ok((
        StatusCode::CREATED,
        Json(GameWithJoin {
            game: view,
            join: created.ticket.into(),
        }),
    ))
}

/// List open games (the creator has joined and a seat is free), of one product or all, from
/// this instance's in-memory view.
///
/// Label filters: any number of `labels.<key>=<value>` query parameters (at most
/// `lobby.max_labels`, keys and values as at create); a game is listed only if it carries
/// every one of them with that value.
#[utoipa::path(get, path = "/v1/games", tag = "games",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of open games, oldest (or fullest) first", body = GamePage),
        BadRequest,
        Unauthenticated,
        UnknownProduct,
        NotReady,
    ))]
pub async fn list_games(
    State(ctx): State<ApiContext>,
    Player(_player): Player,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (query, labels) = list_query(raw.as_deref().unwrap_or(""), ctx.lobby().max_labels)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "query parameter `limit`: must be between 1 and {MAX_LIST_LIMIT}, got {limit}"
        )));
    }
    let min_seats_free = query.min_seats_free.unwrap_or(1);
    // The document's bound (an int32, as every integer of the API): a client generated from
    // it never sends more, and a value it calls invalid is refused, not answered.
    if min_seats_free == 0 || min_seats_free > MAX_MIN_SEATS_FREE {
        return Err(ApiError::invalid(format!(
            "query parameter `min_seats_free`: must be between 1 and {MAX_MIN_SEATS_FREE}, got \
             {min_seats_free}"
        )));
    }
    // No game has more seats than `lobby.max_capacity`: such a filter is an empty page at
    // once, never a scan of every open game.
    let none_can_match = min_seats_free > ctx.lobby().max_capacity;
    check_region(query.region.as_deref(), "query parameter")?;
    if let Some(product) = &query.product {
        check_product(&ctx, product)?;
    }
    // An empty cursor (`cursor=`) means the first page, like an absent one.
    let after = query
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(Cursor::decode)
        .transpose()
        .map_err(|err| ApiError::invalid(format!("query parameter `cursor`: {err}")))?;
    // `sort` orders the first page; a cursor continues in the order it was issued for (it
    // carries it), whatever `sort` says, so that every cursor the API hands out stays valid.
    let sort = match &after {
        Some(cursor) => cursor.sort(),
        None => match query.sort.unwrap_or_default() {
            ListSort::Oldest => Sort::Oldest,
            ListSort::Fullest => Sort::Fullest,
        },
    };
    let view = ctx.open_games();
    if !view.is_ready() && !view.wait_ready(VIEW_READY_WAIT).await {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::NotReady,
            "the view of open games is still loading; retry shortly",
        ));
    }
    let now = now_ms();
    let page = if none_can_match && after.as_ref().is_none_or(|c| c.sort() == sort) {
        ViewPage {
            games: Vec::new(),
            next: None,
        }
    } else {
        view.page(
            &PageQuery {
                product: query.product,
                region: query.region,
                min_seats_free,
                labels,
                sort,
                after,
                limit: limit as usize,
                scan_max: ctx.lobby().list_scan_max as usize,
            },
            now,
        )
        .map_err(|err| ApiError::invalid(format!("query parameter `cursor`: {err}")))?
    };
    // The `GamePage` schema, assembled from the games' JSON the view rendered once.
    let next_cursor = serde_json::to_string(&page.next.map(|c| c.encode()))
        .map_err(|err| ApiError::internal("rendering a page of open games", &err))?;
    let size: usize = page.games.iter().map(|game| game.len() + 1).sum();
    let mut body = Vec::with_capacity(size + next_cursor.len() + 32);
    body.extend_from_slice(br#"{"games":["#);
    for (n, game) in page.games.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(game);
    }
    body.extend_from_slice(br#"],"next_cursor":"#);
    body.extend_from_slice(next_cursor.as_bytes());
    body.push(b'}');
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(body),
    )
        .into_response())
}

/// The listing's query: `labels.<key>=<value>` pairs (the label filter, validated like a
/// create's labels, each key at most once) and the fixed parameters of [`ListQuery`] (unknown
/// ones refused).
fn list_query(raw: &str, max_labels: u32) -> Result<(ListQuery, Labels), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|err| ApiError::invalid(format!("query string: {err}")))?;
    let (label_pairs, rest): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(name, _)| name.starts_with(LABEL_PARAM_PREFIX));
    let mut wanted = BTreeMap::new();
    for (name, value) in label_pairs {
        let key = name[LABEL_PARAM_PREFIX.len()..].to_string();
        if wanted.insert(key, value).is_some() {
            return Err(ApiError::invalid(format!(
                "query parameter `{name}`: given more than once"
            )));
        }
    }
    let labels = Labels::new(wanted, max_labels)
        .map_err(|err| ApiError::invalid(format!("query parameters `labels.…`: {err}")))?;
    let rest = serde_urlencoded::to_string(&rest)
        .map_err(|err| ApiError::invalid(format!("query string: {err}")))?;
    let query: ListQuery = serde_urlencoded::from_str(&rest)
        .map_err(|err| ApiError::invalid(format!("query string: {err}")))?;
    Ok((query, labels))
}

/// The prefix of a label filter's query parameter (`labels.map=dust2`).
const LABEL_PARAM_PREFIX: &str = "labels.";

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
        TooManyRequests,
        Unavailable,
    ))]
pub async fn join_game(
    State(ctx): State<ApiContext>,
    Player(player): Player,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GameWithJoin>, ApiError> {
    let id = game_id(&id)?;
    let joined = run_detached("joining a game", async move {
        let ttl = ctx.lobby().reservation_ttl();
        let limits = ctx.limits().player_limits();
        let joined =
            flows::join_game(ctx.store(), &server_calls(&ctx), &id, &player, ttl, &limits).await;
        seat_answered(&ctx, &id, joined)
    })
    .await??;
    Ok(Json(GameWithJoin {
        game: GameView::of(&joined.game, now_ms()),
        join: joined.ticket.into(),
    }))
}

/// A join's or a rejoin's outcome as answered: a per-player limit's refusal is counted, and a
/// seat that changed the game's listing is in this instance's view at once (other instances'
/// changes come through the feed).
pub(super) fn seat_answered(
    ctx: &ApiContext,
    id: &GameId,
    joined: Result<JoinedGame, JoinError>,
) -> Result<JoinedGame, ApiError> {
    if let Err(JoinError::Limited(refusal)) = &joined
        && let Some(product) = id.product()
    {
        count_refusal(product.as_str(), "join", *refusal);
    }
    if let Ok(joined) = &joined
        && let Some(feed_entry) = joined.feed_entry
    {
        ctx.open_games().observe(&joined.game, feed_entry, now_ms());
    }
    joined.map_err(|err| join_error(id, err))
}

fn refusal(refusal: JoinRefusal) -> ApiError {
    let detail = match refusal {
        JoinRefusal::CreatorNotJoined => "nobody but the creator may join before the creator has",
        JoinRefusal::GameFull => "every seat of the game is taken",
        JoinRefusal::GameNotOpen => "the game has started or ended",
        JoinRefusal::NotInGame => {
            "the player is not in the game: only its creator, a player who was in it or one holding a seat may rejoin"
        }
    };
    ApiError::new(StatusCode::CONFLICT, ProblemCode::from(refusal), detail)
}

/// `503 game_server_unavailable`.
fn server_unavailable(detail: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ProblemCode::GameServerUnavailable,
        detail,
    )
}

/// `503 game_server_unavailable`: the game's server is not in the registry.
fn unregistered_server(server: &ServerId) -> ApiError {
    server_unavailable(format!(
        "the game's server {server} is not registered with this matchmaker"
    ))
}

/// The answer to a failed join.
pub(super) fn join_error(id: &GameId, err: JoinError) -> ApiError {
    match err {
        JoinError::Reserve(err) => ApiError::store("reserving a seat", &err),
        JoinError::NotFound | JoinError::Vanished => ApiError::game_not_found(id.as_str()),
        JoinError::Refused(why) => refusal(why),
        JoinError::Limited(refusal) => {
            ApiError::limited("joining a game", refusal, QUOTA_RETRY_AFTER_SECS)
        }
        JoinError::UnknownServer(server) => unregistered_server(&server),
        JoinError::ServerUnavailable(err) => server_unavailable(format!(
            "the game's server could not be reached: {}",
            err.kind()
        )),
        JoinError::ServerRefused(err) => ApiError::new(
            StatusCode::CONFLICT,
            ProblemCode::JoinRefused,
            format!(
                "the game's server refused the join (HTTP {})",
                err.status().unwrap_or(0)
            ),
        ),
    }
}

/// Cancel a game that has not started (creator only).
#[utoipa::path(delete, path = "/v1/games/{id}", tag = "games",
    params(("id" = String, Path, description = "The game's id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 204, description = "Cancelled: deleted on the game server and removed (or cancelled already: a resent cancel gets the same answer)"),
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
    run_detached("cancelling a game", async move {
        let cancelled = flows::cancel_game(ctx.store(), &server_calls(&ctx), &id, &player).await;
        if cancelled
            .as_ref()
            .map_or_else(CancelError::reached_removal, |()| true)
        {
            ctx.open_games().forget(&id);
        }
        cancelled.map_err(|err| cancel_error(&id, err))
    })
    .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to a failed cancel.
fn cancel_error(id: &GameId, err: CancelError) -> ApiError {
    match err {
        CancelError::Read(err) => ApiError::store("reading the game", &err),
        CancelError::NotFound | CancelError::VanishedMeanwhile => {
            ApiError::game_not_found(id.as_str())
        }
        CancelError::NotCreator => ApiError::new(
            StatusCode::FORBIDDEN,
            ProblemCode::NotCreator,
            "only the game's creator may cancel it",
        ),
        CancelError::NotOpen | CancelError::EndedMeanwhile => ApiError::new(
            StatusCode::CONFLICT,
            ProblemCode::GameNotOpen,
            "the game has started or ended; it can no longer be cancelled",
        ),
        CancelError::UnknownServer(server) => unregistered_server(&server),
        CancelError::ServerFailed(err) => server_unavailable(format!(
            "the game's server did not delete the game ({}); nothing was changed",
            err.kind()
        )),
        CancelError::Remove(err) => ApiError::store("removing the cancelled game", &err),
    }
}
