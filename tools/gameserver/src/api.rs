//! The HTTP API of contract section 6, plus the players' WebSocket route.
//!
//! Every route but `/ws/{game_id}` requires `Authorization: Bearer <api_key>`. Errors are
//! JSON `{"error": "..."}` with the status the contract names.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State, WebSocketUpgrade};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use mm_common::GameId;
use mm_common::gameserver::{AddPlayerRequest, CreateGameRequest, GameList, ServerHealth};
use serde::Deserialize;
use serde_json::json;

use super::game::{Refusal, Server};
use super::ws;

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The router of one server.
pub(crate) fn router(server: Arc<Server>) -> Router {
    let api = Router::new()
        .route("/games", post(create_game).get(list_games))
        .route("/games/{game_id}", delete(delete_game))
        .route("/games/{game_id}/players", post(add_player))
        .route("/health", get(health))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&server),
            require_api_key,
        ));
    Router::new()
        .route("/ws/{game_id}", get(connect))
        .merge(api)
        .fallback(|| async { Refusal::new(StatusCode::NOT_FOUND, "no such route") })
        .with_state(server)
}

async fn require_api_key(
    State(server): State<Arc<Server>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(key) if constant_time_eq(key.as_bytes(), server.config.api_key.as_bytes()) => {
            next.run(request).await
        }
        _ => {
            tracing::warn!(
                method = %request.method(),
                path = request.uri().path(),
                "API call refused: missing or wrong API key"
            );
            Refusal::new(StatusCode::UNAUTHORIZED, "missing or invalid API key").into_response()
        }
    }
}

/// Compares without an early exit, so timing does not reveal how much of the key matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bad_body(rejection: JsonRejection) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, rejection.body_text())
}

fn game_id(raw: &str) -> Result<GameId, Refusal> {
    GameId::new(raw).map_err(|_| Refusal::new(StatusCode::NOT_FOUND, format!("no game {raw:?}")))
}

async fn create_game(
    State(server): State<Arc<Server>>,
    body: Result<Json<CreateGameRequest>, JsonRejection>,
) -> Result<Response, Refusal> {
    let Json(request) = body.map_err(bad_body)?;
    let delay = server.config.create_delay;
    let ticket = if delay.is_zero() {
        server.create(request)?
    } else {
        // In a task of its own, so the game is created even if the caller hangs up first.
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            server.create(request)
        })
        .await
        .map_err(|err| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))??
    };
    Ok((StatusCode::CREATED, Json(ticket)).into_response())
}

/// `GET /games`: the ids of every game held (contract section 6.1).
async fn list_games(State(server): State<Arc<Server>>) -> Json<GameList> {
    Json(GameList {
        games: server.game_ids(),
    })
}

async fn add_player(
    State(server): State<Arc<Server>>,
    Path(raw_id): Path<String>,
    body: Result<Json<AddPlayerRequest>, JsonRejection>,
) -> Result<Response, Refusal> {
    let id = game_id(&raw_id)?;
    let Json(request) = body.map_err(bad_body)?;
    let ticket = server.add_player(&id, &request.player_id)?;
    Ok(Json(ticket).into_response())
}

async fn delete_game(
    State(server): State<Arc<Server>>,
    Path(raw_id): Path<String>,
) -> Result<StatusCode, Refusal> {
    server.delete(&game_id(&raw_id)?)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn health(State(server): State<Arc<Server>>) -> Json<ServerHealth> {
    Json(ServerHealth {
        games: server.game_count() as u32,
        max_games: server.config.max_games,
    })
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `GET /ws/{game_id}?token=…`: the token is checked (and consumed) before the upgrade.
async fn connect(
    State(server): State<Arc<Server>>,
    Path(raw_id): Path<String>,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Refusal> {
    let id = game_id(&raw_id)?;
    let game = server
        .game(&id)
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, format!("no game {id}")))?;
    let token = query
        .token
        .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "missing token"))?;
    let admission = game.admit(&server, &token).inspect_err(|refusal| {
        tracing::info!(game = %id, status = refusal.status.as_u16(), reason = %refusal.message, "connection refused");
    })?;
    let (player, connection) = (admission.player.clone(), admission.connection);
    let (failed_game, failed_server) = (Arc::clone(&game), Arc::clone(&server));
    Ok(upgrade
        .on_failed_upgrade(move |error| {
            tracing::info!(game = %failed_game.id, player = %player, %error, "WebSocket upgrade failed");
            failed_game.disconnected(&failed_server, &player, connection);
        })
        .on_upgrade(move |socket| ws::run(server, game, admission, socket)))
}
