//! The admin listener (`http.admin_bind`, contract section 11): `/metrics`, `/healthz` and
//! `/readyz` for Prometheus and probes, and `/openapi.json` for operators and tooling, served
//! by every `matchmakerd` process whatever its roles, so a worker-only or curator-only
//! instance is observable too.
//!
//! It is a router of its own, without the lobby API's middleware (no player identity, no
//! request metrics: a scrape must not create series). In production it listens on loopback
//! and the lobby port serves neither `/metrics` nor `/openapi.json`; in development and test
//! the lobby port may serve them as well (`http.public_metrics`, `http.public_openapi`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use mm_common::store::Store;
use serde::Serialize;

use crate::api::error::ApiError;
use crate::api::ops;

/// What the admin routes need. Cheap to clone.
#[derive(Clone)]
pub struct AdminContext {
    store: Store,
    metrics: PrometheusHandle,
    roles: String,
    max_capacity: u32,
    max_labels: u32,
}

impl std::fmt::Debug for AdminContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminContext")
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl AdminContext {
    /// The admin routes of a process running `roles` (as `--roles` spells them), whose
    /// OpenAPI document shows `max_capacity` and `max_labels` (`lobby.max_capacity`,
    /// `lobby.max_labels`).
    pub fn new(
        store: Store,
        metrics: PrometheusHandle,
        roles: impl Into<String>,
        max_capacity: u32,
        max_labels: u32,
    ) -> Self {
        Self {
            store,
            metrics,
            roles: roles.into(),
            max_capacity,
            max_labels,
        }
    }
}

/// What the admin `/readyz` checked, so an operator probing a worker-only process knows what
/// "ready" means there.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ok`.
    pub status: &'static str,
    /// The roles this process runs (`api,worker,curator` or a subset).
    pub roles: String,
    /// What was checked: every role needs Redis, and nothing else is required to be up.
    pub checked: &'static str,
}

/// The description of the readiness check, in the answer and in the refusal.
pub const READINESS_CHECK: &str = "redis answers PING within redis.command_timeout_ms + 0.5 s; \
     on a cluster, every product's slot is served by a node whose cluster_state is ok";

/// The admin router: `GET /metrics`, `/healthz`, `/readyz`, `/openapi.json`; anything else is
/// 404.
pub fn router(ctx: AdminContext) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(readyz))
        .fallback(ops::not_found)
        .with_state(ctx)
}

async fn metrics(State(ctx): State<AdminContext>) -> Response {
    ops::metrics_response(&ctx.metrics)
}

async fn openapi(State(ctx): State<AdminContext>) -> Response {
    ops::openapi_response(ctx.max_capacity, ctx.max_labels)
}

async fn readyz(State(ctx): State<AdminContext>) -> Result<Json<Readiness>, ApiError> {
    ops::check_redis(&ctx.store).await.map_err(|mut err| {
        err.0.detail = format!(
            "{} (roles {}; checked: {READINESS_CHECK})",
            err.0.detail, ctx.roles
        );
        err
    })?;
    Ok(Json(Readiness {
        status: "ok",
        roles: ctx.roles.clone(),
        checked: READINESS_CHECK,
    }))
}
