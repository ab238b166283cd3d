//! The lobby HTTP API (contract section 5): players create, list, join and cancel games.
//!
//! [`router`] builds the axum router over an [`ApiContext`]; [`serve`] runs it on a listener
//! until a shutdown future completes, then lets in-flight requests finish.
//!
//! Module map:
//! - [`games`]: the `/v1/games` handlers (they call the lifecycle flows of
//!   `mm_common::flows`).
//! - [`views`]: the JSON types of those routes.
//! - [`seats`]: quick join and rejoin (they call the flows too).
//! - [`open_games`]: the in-memory view of every open game, kept by the change feed, which
//!   answers every listing.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics` (when `http.public_metrics`), `/openapi.json`
//!   (when `http.public_openapi`).
//! - [`auth`]: the [`auth::Player`] extractor (X-Player-Id or JWT).
//! - [`extract`]: JSON/path/query extractors whose rejections are problem documents.
//! - [`error`]: RFC 9457 problems.
//! - [`client_limits`]: the per-client-address limit of failing requests.
//! - [`cors`]: cross-origin requests from browser games (`http.cors_origins`).
//! - [`middleware`]: request id, tracing span, timeout and panic (tower-http), metrics and
//!   error shaping.

pub mod auth;
pub mod client_limits;
pub mod cors;
pub mod error;
pub mod extract;
pub mod games;
pub mod middleware;
pub mod open_games;
pub mod ops;
pub mod seats;
pub mod views;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use mm_common::gameserver::GameServerClient;
use mm_common::store::Store;
use mm_config::{AuthMode, ExposeSecret, HttpSettings, LimitsSettings, LobbySettings, Settings};
use tokio::net::TcpListener;
use utoipa::OpenApi;

use crate::registry::Registry;
use auth::Authenticator;
use auth_docs::PlayerAuth;

/// Why an [`ApiContext`] could not be built from the settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiConfigError {
    /// `auth.mode = "jwt"` without `auth.jwt_secret`.
    #[error("auth.jwt_secret: required when auth.mode is \"jwt\"")]
    MissingJwtSecret,
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    store: Store,
    registry: Registry,
    game_servers: GameServerClient,
    authenticator: Authenticator,
    lobby: LobbySettings,
    limits: LimitsSettings,
    http: HttpSettings,
    metrics: PrometheusHandle,
    open_games: Arc<open_games::OpenGames>,
}

impl std::fmt::Debug for ApiContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiContext")
            .field("store", &self.inner.store)
            .field("authenticator", &self.inner.authenticator)
            .finish_non_exhaustive()
    }
}

impl ApiContext {
    /// The context for `settings` (`auth`, `lobby` and `http` are read).
    pub fn new(
        settings: &Settings,
        store: Store,
        registry: Registry,
        game_servers: GameServerClient,
        metrics: PrometheusHandle,
    ) -> Result<ApiContext, ApiConfigError> {
        let authenticator = match settings.auth.mode {
            AuthMode::Header => Authenticator::Header,
            AuthMode::Jwt => {
                let secret = settings
                    .auth
                    .jwt_secret
                    .as_ref()
                    .ok_or(ApiConfigError::MissingJwtSecret)?;
                Authenticator::jwt(
                    secret.expose_secret().as_bytes(),
                    &auth::TokenRules::from_settings(&settings.auth),
                )
            }
        };
        Ok(ApiContext {
            inner: Arc::new(ContextInner {
                store,
                registry,
                game_servers,
                authenticator,
                lobby: settings.lobby.clone(),
                limits: settings.limits.clone(),
                http: settings.http.clone(),
                metrics,
                open_games: Arc::default(),
            }),
        })
    }

    /// The in-memory view of open games.
    pub fn open_games(&self) -> &Arc<open_games::OpenGames> {
        &self.inner.open_games
    }

    /// The game store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The game-server registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The game-server API client.
    pub fn game_servers(&self) -> &GameServerClient {
        &self.inner.game_servers
    }

    /// How players are authenticated.
    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.authenticator
    }

    /// Lobby rules.
    pub fn lobby(&self) -> &LobbySettings {
        &self.inner.lobby
    }

    /// The per-player limits (`[limits]`).
    pub fn limits(&self) -> &LimitsSettings {
        &self.inner.limits
    }

    /// HTTP limits.
    pub fn http(&self) -> &HttpSettings {
        &self.inner.http
    }

    /// The Prometheus handle `/metrics` renders.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }
}

/// The OpenAPI document of the API, generated from the handlers and their types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "matchmaker lobby API",
        description = "Create, list, join and cancel multiplayer game lobbies."
    ),
    servers((url = "/", description = "This deployment's lobby API (`http.bind`); the document is served there and on the admin listener")),
    tags(
        (name = "games", description = "Game lobbies: create, list, get, join, cancel (a player is required)"),
        (name = "ops", description = "Liveness, readiness, metrics and this document (no player required)"),
    ),
    paths(
        games::create_game,
        games::list_games,
        games::get_game,
        games::join_game,
        games::cancel_game,
        seats::quick_join,
        seats::rejoin_game,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
    ),
    components(schemas(
        games::CreateGameRequest,
        games::GameView,
        games::GameWithJoin,
        games::JoinInfo,
        games::GamePage,
        games::GameStateView,
        views::QuickJoinRequest,
        views::QuickJoinCreateRequest,
        error::Problem,
        error::ProblemCode,
    )),
    modifiers(&PlayerAuth),
    security(("player_id" = []), ("bearer" = [])),
)]
pub struct ApiDoc;

mod auth_docs {
    use utoipa::Modify;
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
    };

    /// Declares both ways a player authenticates (which one applies depends on `auth.mode`).
    pub struct PlayerAuth;

    impl Modify for PlayerAuth {
        fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
            let components = openapi.components.get_or_insert_with(Default::default);
            components.add_security_scheme(
                "player_id",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Player-Id"))),
            );
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        }
    }
}

/// The API's router: the routes of contract section 5 behind the request middleware (request
/// id, tracing span, metrics, timeout, body limit, panic → 500 problem).
pub fn router(ctx: ApiContext) -> Router {
    let body_limit = ctx.http().body_limit_bytes;
    let timeout = ctx.http().request_timeout();
    let routes = Router::new()
        .route("/v1/games", post(games::create_game).get(games::list_games))
        .route(
            "/v1/games/{id}",
            get(games::get_game).delete(games::cancel_game),
        )
        .route("/v1/games/{id}/join", post(games::join_game))
        .route("/v1/games/quick-join", post(seats::quick_join))
        .route("/v1/games/{id}/rejoin", post(seats::rejoin_game))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz));
    // `/openapi.json` on the lobby port only where `http.public_openapi` allows it
    // (development and test); every process serves it on the admin listener.
    let routes = if ctx.http().public_openapi {
        routes.route("/openapi.json", get(ops::openapi))
    } else {
        routes
    };
    // `/metrics` on the lobby port only where `http.public_metrics` allows it (development and
    // test); every process serves it on the admin listener (`crate::admin`).
    let routes = if ctx.http().public_metrics {
        routes.route("/metrics", get(ops::metrics))
    } else {
        routes
    };
    // The benchmark's HTTP ceiling: same build, same middleware, a static body of the size the
    // benchmark asks for. Only in a build with the `bench-routes` feature.
    #[cfg(feature = "bench-routes")]
    let routes = routes.route("/bench/static/{bytes}", get(ops::bench_static));
    let routes = routes
        .route_layer(axum::middleware::from_fn(middleware::record_route))
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(body_limit));
    // Failing requests per client address (contract section 5.7).
    let routes = match client_limits::ClientLimiter::new(ctx.limits(), ctx.http()) {
        Some(limiter) => routes.layer(axum::middleware::from_fn_with_state(
            limiter,
            client_limits::limit_failing_clients,
        )),
        None => routes,
    };
    let limits = middleware::Limits {
        timeout,
        max_header_bytes: ctx.http().max_header_bytes,
    };
    let routes = middleware::around(routes, limits);
    // CORS outermost: preflights are answered before the middleware, and every answer to an
    // allowed origin (problems included) carries its headers (contract section 5.8).
    let routes = match cors::layer(&ctx.http().cors_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes.with_state(ctx)
}

/// Serves `router` on `listener` with the connection limits of `[http]` until `shutdown`
/// completes; then stops accepting and waits for in-flight requests to finish (see
/// [`crate::http_server`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: crate::http_server::ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::http_server::serve(listener, router, limits, shutdown).await
}
