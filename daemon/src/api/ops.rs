//! Operational endpoints: liveness, readiness, metrics and the OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use mm_common::store::Store;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::error::responses::NotReady;
use super::error::{ApiError, ProblemCode};
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
        NotReady,
    ))]
pub async fn readyz(State(ctx): State<ApiContext>) -> Result<Json<Status>, ApiError> {
    check_redis(ctx.store()).await?;
    if !ctx.open_games().is_ready() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::NotReady,
            "the view of open games is still loading",
        ));
    }
    Ok(Json(Status { status: "ok" }))
}

/// The readiness check of every listener: Redis answers `PING` within the command timeout
/// plus 0.5 s; otherwise `503 not_ready` saying why.
pub async fn check_redis(store: &Store) -> Result<(), ApiError> {
    let limit = store.options().command_timeout + Duration::from_millis(500);
    match tokio::time::timeout(limit, store.ping()).await {
        Ok(Ok(())) => check_cluster(store, limit).await,
        Ok(Err(err)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::NotReady,
            format!("redis is not reachable: {err}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::NotReady,
            "redis did not answer PING in time",
        )),
    }
}

/// On a Redis Cluster, not ready while the node serving any product's slot says its
/// `cluster_state` is not ok (or does not answer), naming the products affected (contract
/// section 9.1); on a single Redis nothing more to check.
async fn check_cluster(store: &Store, limit: Duration) -> Result<(), ApiError> {
    let not_ready = |detail: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::NotReady,
            detail,
        )
    };
    match tokio::time::timeout(limit, store.products_not_ok(&[])).await {
        Ok(Ok(affected)) if affected.is_empty() => Ok(()),
        Ok(Ok(affected)) => {
            let names: Vec<&str> = affected.iter().map(|p| p.as_str()).collect();
            Err(not_ready(format!(
                "redis cluster_state is not ok for the slots of products {}",
                names.join(", ")
            )))
        }
        Ok(Err(err)) => Err(not_ready(format!(
            "redis cluster: cannot read the product set: {err}"
        ))),
        Err(_) => Err(not_ready(
            "redis cluster: CLUSTER INFO did not answer in time".to_string(),
        )),
    }
}

/// Prometheus text exposition of the process's metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain")))]
pub async fn metrics(State(ctx): State<ApiContext>) -> Response {
    metrics_response(ctx.metrics())
}

/// The Prometheus text exposition of `handle` (the lobby port's and the admin listener's
/// `/metrics`).
pub fn metrics_response(handle: &PrometheusHandle) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::render(handle),
    )
        .into_response()
}

/// The OpenAPI 3 document of this API, with this deployment's limits filled in (the largest
/// `capacity` is `lobby.max_capacity`, the most `labels` `lobby.max_labels`).
#[utoipa::path(get, path = "/openapi.json", tag = "ops", security(()),
    responses((status = 200, description = "OpenAPI 3 document", body = Object)))]
pub async fn openapi(State(ctx): State<ApiContext>) -> Response {
    openapi_response(ctx.lobby().max_capacity, ctx.lobby().max_labels)
}

/// The OpenAPI document with the deployment's limits filled in, as an answer (the lobby
/// port's and the admin listener's `/openapi.json`).
pub fn openapi_response(max_capacity: u32, max_labels: u32) -> Response {
    match document(max_capacity, max_labels) {
        Ok(doc) => Json(doc).into_response(),
        Err(err) => {
            ApiError::internal("could not render the OpenAPI document", &err).into_response()
        }
    }
}

/// [`ApiDoc`] as JSON with `max_capacity` as the create request's `capacity` maximum and
/// the label rules (`mm_common::labels`) on its `labels`, `max_labels` pairs at most (and the
/// same on quick join's `create.capacity` and `labels`).
pub fn document(
    max_capacity: u32,
    max_labels: u32,
) -> Result<serde_json::Value, serde_json::Error> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    // Quick join's `create.capacity` and `labels` follow the same rules as create's.
    for pointer in [
        "/components/schemas/CreateGameRequest/properties/capacity",
        "/components/schemas/QuickJoinCreateRequest/properties/capacity",
    ] {
        if let Some(capacity) = doc
            .pointer_mut(pointer)
            .and_then(serde_json::Value::as_object_mut)
        {
            capacity.insert("maximum".into(), max_capacity.into());
        }
    }
    for pointer in [
        "/components/schemas/CreateGameRequest/properties/labels",
        "/components/schemas/QuickJoinRequest/properties/labels",
    ] {
        let Some(labels) = doc
            .pointer_mut(pointer)
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        labels.insert("maxProperties".into(), max_labels.into());
        labels.insert(
            "propertyNames".into(),
            serde_json::json!({ "pattern": LABEL_KEY_PATTERN }),
        );
        labels.insert(
            "additionalProperties".into(),
            serde_json::json!({
                "type": "string",
                "minLength": 1,
                "maxLength": mm_common::labels::MAX_VALUE_CHARS,
                "pattern": LABEL_VALUE_PATTERN,
            }),
        );
    }
    Ok(doc)
}

/// A label key, as a JSON Schema pattern (`mm_common::labels`).
const LABEL_KEY_PATTERN: &str = "^[a-z0-9_.-]{1,32}$";
/// A label value: no control characters (Unicode category Cc), as a JSON Schema pattern.
const LABEL_VALUE_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$";

/// Any path that is not a route.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ProblemCode::NotFound,
        "no such resource",
    )
}

/// Largest body the benchmark's static route serves.
#[cfg(feature = "bench-routes")]
const BENCH_STATIC_MAX_BYTES: usize = 1 << 20;

/// `GET /bench/static/{bytes}` (only in a build with the `bench-routes` feature): a JSON body
/// of exactly `bytes` bytes (at least 11, at most 1 MiB), the HTTP ceiling the listing is
/// measured against.
#[cfg(feature = "bench-routes")]
pub(crate) async fn bench_static(
    axum::extract::Path(bytes): axum::extract::Path<usize>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let size = bytes.clamp(11, BENCH_STATIC_MAX_BYTES);
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"pad\":\"");
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
