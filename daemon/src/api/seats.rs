//! `POST /v1/games/quick-join` and `POST /v1/games/{id}/rejoin`: a seat in the best matching
//! open game, and a way back into a game the player is in (contract section 5.4).
//!
//! Both run their flow ([`mm_common::flows::quick_join`], [`mm_common::flows::rejoin_game`])
//! detached from the request, as join does, and answer like join: the game and the player's
//! `join` ticket.

use std::sync::Mutex;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mm_common::flows::{
    self, QuickJoin, QuickJoinCreate, QuickJoinError, QuickJoinView, ViewPicks,
};
use mm_common::labels::Labels;
use mm_common::model::EntryId;
use mm_common::store::QuickJoinFilter;
use mm_common::time::now_ms;
use mm_common::{Game, PlayerId, ProductId};

use super::ApiContext;
use super::auth::Player;
use super::error::responses::{
    BadRequest, Conflict, GameNotFound, NoOpenGame, PayloadTooLarge, RejoinConflict,
    TooManyRequests, Unauthenticated, Unavailable, UnsupportedMediaType,
};
use super::error::{ApiError, ProblemCode};
use super::extract::{ApiJson, ApiPath};
use super::games::{
    QUOTA_RETRY_AFTER_SECS, check_product, check_region, count_refusal, create_error, game_id,
    join_error, run_detached, seat_answered, server_calls,
};
use super::open_games::{OpenGames, SeatClaim};
use super::views::{GameView, GameWithJoin, QuickJoinRequest};

/// The instance's view of the open games as a quick join uses it: it names the games to try
/// (the script checks them against the record), counts a seat of the first as taken while
/// the script runs, and shows the seat taken at once, so that concurrent quick joins of this
/// instance pick with it counted.
struct ViewOfOpenGames<'a> {
    games: &'a OpenGames,
    product: &'a ProductId,
    player: &'a PlayerId,
    scan: usize,
    claim: Mutex<Option<SeatClaim<'a>>>,
}

impl<'a> ViewOfOpenGames<'a> {
    fn claim(&self) -> std::sync::MutexGuard<'_, Option<SeatClaim<'a>>> {
        self.claim
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl QuickJoinView for ViewOfOpenGames<'_> {
    fn picks(&self, filter: &QuickJoinFilter) -> ViewPicks {
        let (picks, claim) =
            self.games
                .quick_join_picks(self.product, self.player, filter, self.scan, now_ms());
        *self.claim() = Some(claim);
        picks
    }

    fn answered(&self, seated: Option<(&Game, EntryId)>) {
        // The seat is in the view before the claim that stood for it goes.
        if let Some((game, feed_entry)) = seated {
            self.games.observe(game, feed_entry, now_ms());
        }
        self.claim().take();
    }
}

/// Reserve a seat in the fullest matching open game of a product (or create one).
#[utoipa::path(post, path = "/v1/games/quick-join", tag = "games",
    request_body = QuickJoinRequest,
    responses(
        (status = 200, description = "A seat in an open game (or the one the player already holds); connect with `join`", body = GameWithJoin),
        (status = 201, description = "No open game matched: a game was created, the player is its creator; connect with `join`", body = GameWithJoin),
        BadRequest,
        Unauthenticated,
        NoOpenGame,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        TooManyRequests,
        Unavailable,
    ))]
pub async fn quick_join(
    State(ctx): State<ApiContext>,
    Player(player): Player,
    ApiJson(request): ApiJson<QuickJoinRequest>,
) -> Result<(StatusCode, Json<GameWithJoin>), ApiError> {
    check_region(request.region.as_deref(), "request body")?;
    let labels = Labels::new(request.labels.unwrap_or_default(), ctx.lobby().max_labels)
        .map_err(|err| ApiError::invalid(format!("request body `labels`: {err}")))?;
    let max = ctx.lobby().max_capacity;
    if let Some(create) = &request.create
        && (create.capacity == 0 || create.capacity > max)
    {
        return Err(ApiError::invalid(format!(
            "request body `create.capacity`: must be between 1 and {max}, got {}",
            create.capacity
        )));
    }
    check_product(&ctx, &request.product)?;
    let product = request.product.clone();
    let quick_join = QuickJoin {
        product: request.product,
        filter: QuickJoinFilter {
            region: request.region,
            labels,
            exclude: Vec::new(),
        },
        scan: ctx.lobby().quick_join_scan,
        attempts: ctx.lobby().quick_join_attempts,
        create: request.create.map(|create| QuickJoinCreate {
            capacity: create.capacity,
            settings: create.settings.unwrap_or_default(),
        }),
    };
    let joined = run_detached("quick-joining a game", async move {
        let ttl = ctx.lobby().reservation_ttl();
        let limits = ctx.limits().player_limits();
        let view = ViewOfOpenGames {
            games: ctx.open_games(),
            product: &product,
            player: &player,
            scan: quick_join.scan as usize,
            claim: Mutex::new(None),
        };
        let joined = flows::quick_join(
            ctx.store(),
            &server_calls(&ctx),
            &player,
            quick_join,
            &view,
            ttl,
            &limits,
        )
        .await;
        match &joined {
            Err(QuickJoinError::Limited(refusal)) => {
                count_refusal(product.as_str(), "join", *refusal);
            }
            Err(QuickJoinError::Create(mm_common::flows::CreateError::Limited(refusal))) => {
                count_refusal(product.as_str(), "create", *refusal);
            }
            _ => {}
        }
        if let Ok(joined) = &joined
            && joined.created
        {
            metrics::counter!(crate::telemetry::GAMES_CREATED_TOTAL, "product" => product.to_string())
                .increment(1);
        }
        joined.map_err(quick_join_error)
    })
    .await??;
    let status = if joined.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(GameWithJoin {
            game: GameView::of(&joined.joined.game, now_ms()),
            join: joined.joined.ticket.into(),
        }),
    ))
}

/// The answer to a failed quick join.
fn quick_join_error(err: QuickJoinError) -> ApiError {
    match err {
        QuickJoinError::Store(err) => ApiError::store("quick-joining a game", &err),
        QuickJoinError::Limited(refusal) => {
            ApiError::limited("quick-joining a game", refusal, QUOTA_RETRY_AFTER_SECS)
        }
        QuickJoinError::NoMatch => ApiError::new(
            StatusCode::NOT_FOUND,
            ProblemCode::NoOpenGame,
            "no open game of the product matches; send `create` to have one created",
        ),
        QuickJoinError::Join { game, source } => join_error(&game, source),
        QuickJoinError::Create(err) => create_error(err),
    }
}

/// Get back into a game the player is in (a fresh ticket from its game server).
#[utoipa::path(post, path = "/v1/games/{id}/rejoin", tag = "games",
    params(("id" = String, Path, description = "The game's id", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 200, description = "The player is back in; connect with `join` (a fresh ticket)", body = GameWithJoin),
        BadRequest,
        Unauthenticated,
        GameNotFound,
        RejoinConflict,
        TooManyRequests,
        Unavailable,
    ))]
pub async fn rejoin_game(
    State(ctx): State<ApiContext>,
    Player(player): Player,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GameWithJoin>, ApiError> {
    let id = game_id(&id)?;
    let joined = run_detached("rejoining a game", async move {
        let ttl = ctx.lobby().reservation_ttl();
        let limits = ctx.limits().player_limits();
        let joined =
            flows::rejoin_game(ctx.store(), &server_calls(&ctx), &id, &player, ttl, &limits).await;
        seat_answered(&ctx, &id, joined)
    })
    .await??;
    Ok(Json(GameWithJoin {
        game: GameView::of(&joined.game, now_ms()),
        join: joined.ticket.into(),
    }))
}
