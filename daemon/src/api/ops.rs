//! Operational endpoints: liveness, readiness, metrics and the OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::error::{ApiError, Problem};
use super::{ApiContext, ApiDoc};
use crate::telemetry;

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// Always `ok`.
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, description = "The process is alive", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: Redis answers `PING`.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()),
    responses(
        (status = 200, description = "Redis is reachable", body = Status),
        (status = 503, description = "Redis is not reachable", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(ctx): State<ApiContext>) -> Result<Json<Status>, ApiError> {
    let limit = ctx.store().options().command_timeout + Duration::from_millis(500);
    match tokio::time::timeout(limit, ctx.store().ping()).await {
        Ok(Ok(())) => Ok(Json(Status { status: "ok" })),
        Ok(Err(err)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("redis is not reachable: {err}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "redis did not answer PING in time",
        )),
    }
}

/// Prometheus text exposition of the process's metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain")))]
pub async fn metrics(State(ctx): State<ApiContext>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::render(ctx.metrics()),
    )
        .into_response()
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", security(()),
    responses((status = 200, description = "OpenAPI 3 document", body = Object)))]
pub async fn openapi() -> Response {
    let doc = ApiDoc::openapi();
    match doc.to_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(err) => {
            ApiError::internal("could not render the OpenAPI document", &err).into_response()
        }
    }
}

/// Any path that is not a route.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
}
