//! The request middleware every API request passes through.
//!
//! [`observe`] (outermost) gives each request an id (the client's `x-request-id` if it is
//! sane, else a fresh UUID), runs the request in a tracing span and under the request
//! timeout, catches panics, shapes every error answer as a problem document carrying the
//! request id, echoes `x-request-id`, and records the HTTP metrics by route template.
//! [`record_route`] (inside the router) tells it which route template matched.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::FutureExt;
use tracing::Instrument;

use super::error::{PROBLEM_JSON, Problem, REQUEST_ID};
use crate::telemetry;

/// The request id header (read and echoed).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Limits applied by [`observe`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request still running after this is answered `503 timeout`.
    pub timeout: Duration,
}

/// Where [`record_route`] leaves the matched route template for [`observe`].
#[derive(Debug, Clone, Default)]
struct RouteSlot(Arc<OnceLock<String>>);

/// Records the matched route template (route layer: runs only for matched routes).
pub async fn record_route(request: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) = (
        request.extensions().get::<RouteSlot>(),
        request.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(path.as_str().to_string());
    }
    next.run(request).await
}

/// A client-supplied request id is kept if it is 1..=128 visible ASCII characters.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| text.to_string())
}

/// The outermost middleware; see the module docs.
pub async fn observe(State(limits): State<Limits>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %method,
        path = %request.uri().path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let work = AssertUnwindSafe(next.run(request)).catch_unwind();
    let outcome = REQUEST_ID
        .scope(
            request_id.clone(),
            tokio::time::timeout(limits.timeout, work),
        )
        .instrument(span.clone())
        .await;
    let mut response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic payload".into());
            span.in_scope(|| tracing::error!(panic = %message, "request handler panicked"));
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the server failed while handling the request; it logged the cause under this request id",
            )
            .into_response_with_id(Some(request_id.clone()))
        }
        Err(_) => {
            span.in_scope(|| {
                tracing::warn!(
                    timeout_ms = limits.timeout.as_millis() as u64,
                    "request timed out"
                )
            });
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request did not finish within {} s; try again later",
                    limits.timeout.as_secs_f64()
                ),
            )
            .into_response_with_id(Some(request_id.clone()))
        }
    };
    if response.status().is_client_error() || response.status().is_server_error() {
        response = ensure_problem(response, &request_id);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let route = slot
        .0
        .get()
        .cloned()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.record("route", route.as_str());
    span.record("status", status);
    span.record("latency_ms", elapsed.as_millis() as u64);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!("request answered");
        } else {
            tracing::debug!("request answered");
        }
    });
    metrics::counter!(
        telemetry::HTTP_REQUESTS_TOTAL,
        "route" => route.clone(),
        "method" => method.to_string(),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        telemetry::HTTP_REQUEST_DURATION_SECONDS,
        "route" => route,
        "method" => method.to_string(),
    )
    .record(elapsed.as_secs_f64());
    response
}

/// Replaces an error answer that is not a problem document (axum's own 404/405/413 answers)
/// with one.
fn ensure_problem(response: Response, request_id: &str) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let status = response.status();
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this resource does not support the request's method".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "request body is larger than this server accepts".to_string(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "request body must be JSON, sent with `Content-Type: application/json`".to_string(),
        ),
        s if s.is_client_error() => ("invalid_request", format!("the request was refused ({s})")),
        s => ("internal_error", format!("the server failed ({s})")),
    };
    let mut shaped =
        Problem::new(status, code, detail).into_response_with_id(Some(request_id.to_string()));
    // Keep headers such as `Allow` on 405.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            shaped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    shaped
}
