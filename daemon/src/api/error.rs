//! Errors as `application/problem+json` (RFC 9457).
//!
//! Every error the API answers is a [`Problem`]: `type`, `title`, `status`, `detail`, plus the
//! stable machine-readable `code` and the `request_id` that is also in the `x-request-id`
//! response header and in the server's log lines. Handlers return [`ApiError`]; the rejections
//! of axum's extractors are converted into `400 invalid_request` problems saying what was
//! wrong and where (see [`super::extract`]), and the request middleware turns any other error
//! answer (unknown route, wrong method, body too large, timeout, panic) into a problem too.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

tokio::task_local! {
    /// The id of the request being handled (set by the request middleware).
    pub(crate) static REQUEST_ID: String;
}

/// The current request's id, if called while handling one.
pub(crate) fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An RFC 9457 problem document, as every error of the API is answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:matchmaker:problem:<code>`).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What exactly went wrong, for a human.
    pub detail: String,
    /// Stable machine-readable code (`invalid_request`, `game_full`, …).
    pub code: String,
    /// The request's id (also in the `x-request-id` header and the server's logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// A problem with `status` and `code`; the title is derived from the status.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: format!("urn:matchmaker:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            request_id: None,
        }
    }

    /// The problem as an HTTP response, carrying `request_id` (or the current request's).
    pub fn into_response_with_id(mut self, request_id: Option<String>) -> Response {
        if self.request_id.is_none() {
            self.request_id = request_id.or_else(current_request_id);
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("problems always serialise");
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.into_response_with_id(None)
    }
}

/// An error answer of a handler.
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl ApiError {
    fn wrap(problem: Problem) -> ApiError {
        ApiError(Box::new(problem))
    }

    /// `400 invalid_request`: the request is malformed; `detail` says what and where.
    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::wrap(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            detail,
        ))
    }

    /// `401 unauthenticated`.
    pub fn unauthenticated(detail: impl Into<String>) -> ApiError {
        ApiError::wrap(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            detail,
        ))
    }

    /// `404 game_not_found`.
    pub fn game_not_found(id: &str) -> ApiError {
        ApiError::wrap(Problem::new(
            StatusCode::NOT_FOUND,
            "game_not_found",
            format!("there is no game {id:?}"),
        ))
    }

    /// An error with any status and code.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::wrap(Problem::new(status, code, detail))
    }

    /// `500 internal_error` for a real fault: logged here with the request id the answer
    /// carries; the detail shown to the client does not leak internals.
    pub fn internal(what: &str, err: &dyn std::fmt::Display) -> ApiError {
        let request_id = current_request_id().unwrap_or_default();
        tracing::error!(%request_id, error = %err, "{what}");
        ApiError::wrap(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("{what}; the server logged the cause under this request id"),
        ))
    }

    /// A store failure: `503 store_unavailable` when Redis cannot be reached or timed out,
    /// otherwise a `500` (a bug or corrupt data).
    pub fn store(what: &str, err: &mm_common::store::StoreError) -> ApiError {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "{what}: store unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("{what}: the game store is unavailable, try again later"),
            )
        } else {
            ApiError::internal(what, err)
        }
    }

    /// The problem's status.
    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// The problem's code.
    pub fn code(&self) -> &str {
        &self.0.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (*self.0).into_response()
    }
}
