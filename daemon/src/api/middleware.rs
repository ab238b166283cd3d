//! The request middleware every API request passes through.
//!
//! [`around`] wraps the router in, outermost first:
//!
//! 1. [`drop_insane_request_id`]: a client's `x-request-id` is kept only if it is 1..=128
//!    visible ASCII characters;
//! 2. tower-http's `SetRequestIdLayer` (a fresh UUID when the request has no id) and
//!    `PropagateRequestIdLayer` (the id echoed on the answer);
//! 3. tower-http's `TraceLayer`: the `http_request` span (request id, method, path, and once
//!    answered route, status and latency), which every log line of the request carries;
//! 4. [`observe`]: makes the request id visible to handlers
//!    ([`super::error::current_request_id`]), shapes every error answer that is not yet a
//!    problem document into one (axum's own 404/405/413 answers, the timeout's 503), answers
//!    a head larger than `http.max_header_bytes` `431 header_too_large`, and records the HTTP
//!    metrics by route template and method (unknown methods as `other`: [`method_label`]);
//! 5. tower-http's `TimeoutLayer`: a request still running after `http.request_timeout_ms` is
//!    answered 503, which [`observe`] turns into a `timeout` problem;
//! 6. tower-http's `CatchPanicLayer` with [`panic_problem`]: a panicking handler is answered
//!    with a `500 internal_error` problem.
//!
//! [`record_route`] (inside the router) tells [`observe`] which route template matched.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::error::{PROBLEM_JSON, Problem, ProblemCode, REQUEST_ID};
use crate::telemetry;

/// The request id header (read and echoed).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Limits applied by [`around`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request still running after this is answered `503 timeout`.
    pub timeout: Duration,
    /// A request whose header names and values add up to more is answered `431
    /// header_too_large` (`http.max_header_bytes`).
    pub max_header_bytes: usize,
}

/// `router` behind the whole request middleware; see the module docs.
pub fn around<S>(router: Router<S>, limits: Limits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(CatchPanicLayer::custom(panic_problem))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(limits, observe))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(())
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_insane_request_id))
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

/// Whether a client-supplied request id is kept: 1..=128 visible ASCII characters.
fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic)
}

/// Removes a client's `x-request-id` that is not sane, so a fresh one is made instead.
async fn drop_insane_request_id(mut request: Request) -> Request {
    if request
        .headers()
        .get(REQUEST_ID_HEADER)
        .is_some_and(|value| !is_sane_request_id(value))
    {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    request
}

/// The request's id as set by `SetRequestIdLayer` (empty outside the middleware).
fn request_id_of(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The `http_request` span of one request.
fn request_span(request: &Request) -> tracing::Span {
    tracing::info_span!(
        "http_request",
        request_id = %request_id_of(request),
        method = %request.method(),
        path = %request.uri().path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// The answer to a panicking handler: logged (in the request's span), then a `500
/// internal_error` problem carrying the request id.
fn panic_problem(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".into());
    tracing::error!(panic = %message, "request handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ProblemCode::InternalError,
        "the server failed while handling the request; it logged the cause under this request id",
    )
    .into_response_with_id(None)
}

/// Request id for handlers, problem shaping and metrics; see the module docs.
pub async fn observe(State(limits): State<Limits>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id_of(&request);
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = method_label(request.method());
    let header_bytes = header_bytes(&request);
    let mut response = if header_bytes > limits.max_header_bytes {
        Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProblemCode::HeaderTooLarge,
            format!(
                "the request's headers take {header_bytes} bytes; this server accepts at most {}",
                limits.max_header_bytes
            ),
        )
        .into_response_with_id(Some(request_id.clone()))
    } else {
        REQUEST_ID
            .scope(request_id.clone(), next.run(request))
            .await
    };
    if response.status().is_client_error() || response.status().is_server_error() {
        response = ensure_problem(response, &request_id, limits);
    }
    let route = slot
        .0
        .get()
        .cloned()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let span = tracing::Span::current();
    span.record("route", route.as_str());
    span.record("status", status);
    span.record("latency_ms", elapsed.as_millis() as u64);
    if status >= 500 {
        tracing::warn!("request answered");
    } else {
        tracing::debug!("request answered");
    }
    metrics::counter!(
        telemetry::HTTP_REQUESTS_TOTAL,
        "route" => route.clone(),
        "method" => method,
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        telemetry::HTTP_REQUEST_DURATION_SECONDS,
        "route" => route,
        "method" => method,
    )
    .record(elapsed.as_secs_f64());
    response
}

/// The `method` label of the HTTP metrics: the methods of RFC 9110 and `PATCH` as they are,
/// any other (a client may send any token) as `other`, so clients cannot grow the series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The size of a request's header section as counted against `http.max_header_bytes`: every
/// name and value plus the `": "` and CRLF around them.
fn header_bytes(request: &Request) -> usize {
    request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Replaces an error answer that is not a problem document (axum's own 404/405/413 answers,
/// the timeout layer's 503) with one.
fn ensure_problem(response: Response, request_id: &str, limits: Limits) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let status = response.status();
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => (ProblemCode::NotFound, "no such resource".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            ProblemCode::MethodNotAllowed,
            "this resource does not support the request's method".to_string(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ProblemCode::PayloadTooLarge,
            "request body is larger than this server accepts".to_string(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ProblemCode::UnsupportedMediaType,
            "request body must be JSON, sent with `Content-Type: application/json`".to_string(),
        ),
        // Every handler answers its errors as problems: a bare 503 is the timeout layer's.
        StatusCode::SERVICE_UNAVAILABLE => {
            tracing::warn!(
                timeout_ms = limits.timeout.as_millis() as u64,
                "request timed out"
            );
            (
                ProblemCode::Timeout,
                format!(
                    "the request did not finish within {} s; try again later",
                    limits.timeout.as_secs_f64()
                ),
            )
        }
        s if s.is_client_error() => (
            ProblemCode::InvalidRequest,
            format!("the request was refused ({s})"),
        ),
        s => (
            ProblemCode::InternalError,
            format!("the server failed ({s})"),
        ),
    };
    let mut shaped =
        Problem::new(status, code, detail).into_response_with_id(Some(request_id.to_string()));
    // Keep headers such as `Allow` on 405 (and the echoed request id).
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            shaped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    shaped
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::api::error::current_request_id;

    async fn panics() -> &'static str {
        panic!("boom")
    }

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(60)).await;
        "too late"
    }

    async fn request_id() -> String {
        current_request_id().unwrap_or_default()
    }

    fn app() -> Router {
        let routes = Router::new()
            .route("/panics", get(panics))
            .route("/slow", get(slow))
            .route("/id", get(request_id))
            .route_layer(axum::middleware::from_fn(record_route));
        around(
            routes,
            Limits {
                timeout: Duration::from_secs(5),
                max_header_bytes: 4096,
            },
        )
    }

    struct Answer {
        status: StatusCode,
        header_id: String,
        content_type: String,
        body: Vec<u8>,
    }

    impl Answer {
        fn problem(&self) -> serde_json::Value {
            assert_eq!(self.content_type, PROBLEM_JSON);
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    async fn get_path(path: &str, request_id: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(id) = request_id {
            request = request.header(REQUEST_ID_HEADER, id);
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        Answer {
            status: response.status(),
            header_id: header(REQUEST_ID_HEADER),
            content_type: header(header::CONTENT_TYPE.as_str()),
            body: axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        }
    }

    #[tokio::test]
    async fn a_sane_client_request_id_reaches_the_handler_and_is_echoed() {
        let answer = get_path("/id", Some("trace-42")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header_id, "trace-42");
        assert_eq!(answer.body, b"trace-42");
    }

    #[tokio::test]
    async fn a_missing_or_insane_request_id_is_replaced_by_a_fresh_one() {
        for sent in [None, Some("has space"), Some(&*"x".repeat(129))] {
            let answer = get_path("/id", sent).await;
            assert_eq!(answer.status, StatusCode::OK);
            let seen = String::from_utf8(answer.body).unwrap();
            assert_eq!(seen.len(), 36, "{sent:?} gave {seen:?}");
            assert_eq!(answer.header_id, seen);
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_problem_with_the_request_id() {
        let answer = get_path("/panics", Some("panic-1")).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        let problem = answer.problem();
        assert_eq!(problem["code"], "internal_error");
        assert_eq!(problem["request_id"], "panic-1");
        assert_eq!(answer.header_id, "panic-1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_past_the_timeout_is_a_503_timeout_problem() {
        let answer = get_path("/slow", Some("slow-1")).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        let problem = answer.problem();
        assert_eq!(problem["code"], "timeout");
        assert_eq!(problem["request_id"], "slow-1");
        assert!(
            problem["detail"].as_str().unwrap().contains("5 s"),
            "{problem}"
        );
        assert_eq!(answer.header_id, "slow-1");
    }

    #[test]
    fn unknown_methods_share_one_metric_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for junk in ["FOO", "get", "XYZZY123"] {
            assert_eq!(
                method_label(&Method::from_bytes(junk.as_bytes()).unwrap()),
                "other"
            );
        }
    }

    #[tokio::test]
    async fn a_head_over_the_limit_is_a_431_problem() {
        let request = Request::get("/id")
            .header("x-padding", "p".repeat(5000))
            .body(Body::empty())
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "header_too_large");
    }

    #[tokio::test]
    async fn axums_own_error_answers_become_problems() {
        let answer = get_path("/nowhere", None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        let problem = answer.problem();
        assert_eq!(problem["code"], "not_found");
        assert_eq!(
            problem["request_id"].as_str(),
            Some(answer.header_id.as_str())
        );
    }
}
