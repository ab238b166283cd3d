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
use mm_common::limits::LimitRefusal;
use mm_common::model::JoinRefusal;
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

/// Declares [`ProblemCode`] from one table: per code its doc line (also its meaning in the
/// README), its variant, its wire name and the HTTP status it is answered with.
macro_rules! problem_codes {
    ($( #[doc = $meaning:literal] $variant:ident = $code:literal, $status:ident; )*) => {
        /// The stable machine-readable `code` of a problem document: every code the API answers.
        // README.md's table of codes is generated from this enum
        // ([`ProblemCode::markdown_table`]); a test fails when the two differ.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ProblemCode {
            $( #[doc = $meaning] $variant, )*
        }

        impl ProblemCode {
            /// Every code, in the README's order.
            pub const ALL: &'static [ProblemCode] = &[$( ProblemCode::$variant ),*];

            /// The code as it appears in `code` (snake case).
            pub fn as_str(self) -> &'static str {
                match self { $( ProblemCode::$variant => $code, )* }
            }

            /// The HTTP status a problem with this code is answered with.
            pub fn status(self) -> StatusCode {
                match self { $( ProblemCode::$variant => StatusCode::$status, )* }
            }

            /// What the code means, for a client's author (the variant's doc line).
            pub fn meaning(self) -> &'static str {
                match self { $( ProblemCode::$variant => $meaning.trim(), )* }
            }
        }
    };
}

problem_codes! {
    /// The request is malformed: bad JSON, or a field, parameter or header out of its rules; `detail` says what and where.
    InvalidRequest = "invalid_request", BAD_REQUEST;
    /// No player identity, or an invalid, expired or unsigned token.
    Unauthenticated = "unauthenticated", UNAUTHORIZED;
    /// Only the game's creator may cancel it.
    NotCreator = "not_creator", FORBIDDEN;
    /// No game server is registered for the product.
    UnknownProduct = "unknown_product", NOT_FOUND;
    /// There is no game with this id (never created, or ended and forgotten).
    GameNotFound = "game_not_found", NOT_FOUND;
    /// No route has this path.
    NotFound = "not_found", NOT_FOUND;
    /// Quick join: no open game of the product matches (region, labels) and the request did not ask to create one.
    NoOpenGame = "no_open_game", NOT_FOUND;
    /// The route does not support the request's method (the `Allow` header lists those it does).
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED;
    /// Only the creator may join a game before the creator has connected to its game server.
    CreatorNotJoined = "creator_not_joined", CONFLICT;
    /// Every seat of the game is taken or reserved.
    GameFull = "game_full", CONFLICT;
    /// The game has started or ended: it can no longer be joined or cancelled.
    GameNotOpen = "game_not_open", CONFLICT;
    /// The game server refused the player (the reserved seat is released).
    JoinRefused = "join_refused", CONFLICT;
    /// Rejoin: the player is not in the game (not its creator, never in its roster, no seat reserved).
    NotInGame = "not_in_game", CONFLICT;
    /// The player holds as many live games (`limits.max_live_games_per_player`) or seat reservations (`limits.max_reservations_per_player`) of the product as allowed; `Retry-After` says when to try again.
    QuotaExceeded = "quota_exceeded", TOO_MANY_REQUESTS;
    /// Too many requests: the player's create or join rate (`[limits]`), or failing requests from this client address; `Retry-After` says when to try again.
    RateLimited = "rate_limited", TOO_MANY_REQUESTS;
    /// The request body is larger than `http.body_limit_bytes`.
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE;
    /// The request body was not sent with `Content-Type: application/json`.
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE;
    /// The request's head (its header names and values) is larger than `http.max_header_bytes`.
    HeaderTooLarge = "header_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE;
    /// The server failed; it logged the cause under the problem's `request_id`.
    InternalError = "internal_error", INTERNAL_SERVER_ERROR;
    /// No healthy game server of the product (and region) can take a new game; nothing was recorded.
    NoGameServer = "no_game_server", SERVICE_UNAVAILABLE;
    /// The game's server could not be reached or is not registered; nothing changed.
    GameServerUnavailable = "game_server_unavailable", SERVICE_UNAVAILABLE;
    /// Redis could not be reached or did not answer in time; try again later.
    StoreUnavailable = "store_unavailable", SERVICE_UNAVAILABLE;
    /// `/readyz`: Redis does not answer `PING`, or the view of open games is still loading (then listings too).
    NotReady = "not_ready", SERVICE_UNAVAILABLE;
    /// The request did not finish within `http.request_timeout_secs`; try again later.
    Timeout = "timeout", SERVICE_UNAVAILABLE;
}

impl ProblemCode {
    /// README.md's table of codes: code, HTTP status and meaning, one row per code.
    pub fn markdown_table() -> String {
        let mut table = String::from("| code | status | meaning |\n|---|---|---|\n");
        for code in ProblemCode::ALL {
            table.push_str(&format!(
                "| `{}` | {} | {} |\n",
                code.as_str(),
                code.status().as_u16(),
                code.meaning()
            ));
        }
        table
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<JoinRefusal> for ProblemCode {
    fn from(refusal: JoinRefusal) -> ProblemCode {
        match refusal {
            JoinRefusal::CreatorNotJoined => ProblemCode::CreatorNotJoined,
            JoinRefusal::GameFull => ProblemCode::GameFull,
            JoinRefusal::GameNotOpen => ProblemCode::GameNotOpen,
            JoinRefusal::NotInGame => ProblemCode::NotInGame,
        }
    }
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
    pub code: ProblemCode,
    /// The request's id (also in the `x-request-id` header and the server's logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Seconds for the `Retry-After` header (429s), not part of the body.
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after_secs: Option<u64>,
}

impl Problem {
    /// A problem with `status` and `code`; the title is derived from the status.
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: format!("urn:matchmaker:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            request_id: None,
            retry_after_secs: None,
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
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
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
            ProblemCode::InvalidRequest,
            detail,
        ))
    }

    /// `401 unauthenticated`.
    pub fn unauthenticated(detail: impl Into<String>) -> ApiError {
        ApiError::wrap(Problem::new(
            StatusCode::UNAUTHORIZED,
            ProblemCode::Unauthenticated,
            detail,
        ))
    }

    /// `404 game_not_found`.
    pub fn game_not_found(id: &str) -> ApiError {
        ApiError::wrap(Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::GameNotFound,
            format!("there is no game {id:?}"),
        ))
    }

    /// An error with any status and code.
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<String>) -> ApiError {
        ApiError::wrap(Problem::new(status, code, detail))
    }

    /// `500 internal_error` for a real fault: logged here with the request id the answer
    /// carries; the detail shown to the client does not leak internals.
    pub fn internal(what: &str, err: &dyn std::fmt::Display) -> ApiError {
        let request_id = current_request_id().unwrap_or_default();
        tracing::error!(%request_id, error = %err, "{what}");
        ApiError::wrap(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::InternalError,
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
                ProblemCode::StoreUnavailable,
                format!("{what}: the game store is unavailable, try again later"),
            )
        } else {
            ApiError::internal(what, err)
        }
    }

    /// `429 rate_limited` / `quota_exceeded` for a refusal of a per-player limit, with
    /// `Retry-After` (whole seconds, at least 1; `unknown_wait_secs` when the wait cannot be
    /// known: a game must end first).
    pub fn limited(what: &str, refusal: LimitRefusal, unknown_wait_secs: u64) -> ApiError {
        let (code, millis, detail) = match refusal {
            LimitRefusal::RateLimited { retry_after_ms } => (
                ProblemCode::RateLimited,
                retry_after_ms,
                format!("{what}: too many requests from this player, slow down"),
            ),
            LimitRefusal::QuotaExceeded { retry_after_ms } => (
                ProblemCode::QuotaExceeded,
                retry_after_ms,
                format!("{what}: the player holds as many as allowed of this product"),
            ),
        };
        let secs = if millis == 0 {
            unknown_wait_secs
        } else {
            millis.div_ceil(1000)
        };
        ApiError::rate_limited_for(code, detail, secs)
    }

    /// A `429` with `code`, `detail` and `Retry-After: secs` (at least 1).
    pub fn rate_limited_for(code: ProblemCode, detail: String, secs: u64) -> ApiError {
        let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, code, detail);
        problem.retry_after_secs = Some(secs.max(1));
        ApiError::wrap(problem)
    }

    /// The problem's status.
    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// The problem's code.
    pub fn code(&self) -> ProblemCode {
        self.0.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (*self.0).into_response()
    }
}

/// The error responses of the routes' OpenAPI documentation, each written once and listed in
/// a route's `responses(...)` by name (e.g. `responses((status = 200, …), BadRequest,
/// Unauthenticated, GameNotFound)`). Each is an `application/problem+json` [`Problem`];
/// the description names the codes it may carry.
pub mod responses {
    use utoipa::IntoResponses;

    use super::Problem;

    /// `400 invalid_request`.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 400,
        description = "`invalid_request`: a malformed body, path, query or header; `detail` says what and where",
        content_type = "application/problem+json"
    )]
    pub struct BadRequest(pub Problem);

    /// `429 quota_exceeded` / `rate_limited`.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 429,
        description = "`quota_exceeded` or `rate_limited`: a per-player limit (`[limits]`) or the client address's failure limit refused the request; the `Retry-After` header says in how many seconds to try again",
        content_type = "application/problem+json"
    )]
    pub struct TooManyRequests(pub Problem);

    /// `401 unauthenticated`.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 401,
        description = "`unauthenticated`: no or bad player identity",
        content_type = "application/problem+json"
    )]
    pub struct Unauthenticated(pub Problem);

    /// `403 not_creator`.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 403,
        description = "`not_creator`: only the game's creator may do this",
        content_type = "application/problem+json"
    )]
    pub struct NotCreator(pub Problem);

    /// `404 unknown_product`.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 404,
        description = "`unknown_product`: no game server is registered for the product",
        content_type = "application/problem+json"
    )]
    pub struct UnknownProduct(pub Problem);

    /// `404 game_not_found`.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 404,
        description = "`game_not_found`: no such game",
        content_type = "application/problem+json"
    )]
    pub struct GameNotFound(pub Problem);

    /// `409`: the game's state does not allow the request.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 409,
        description = "`creator_not_joined`, `game_full`, `game_not_open` or `join_refused`: the game's state (or its server) does not allow this",
        content_type = "application/problem+json"
    )]
    pub struct Conflict(pub Problem);

    /// `404` of quick join: `unknown_product` or `no_open_game`.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 404,
        description = "`unknown_product`: no game server is registered for the product; `no_open_game`: no open game matches and the request did not ask to create one",
        content_type = "application/problem+json"
    )]
    pub struct NoOpenGame(pub Problem);

    /// `409` of rejoin: the player is not in the game, or its state does not let them back.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 409,
        description = "`not_in_game`: the player is not in the game; `game_not_open`: it ended or is being ended; `creator_not_joined`, `game_full`: a player who left a lobby finds no seat; `join_refused`: the game server refused",
        content_type = "application/problem+json"
    )]
    pub struct RejoinConflict(pub Problem);

    /// `413 payload_too_large`.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 413,
        description = "`payload_too_large`: the body is larger than this server accepts",
        content_type = "application/problem+json"
    )]
    pub struct PayloadTooLarge(pub Problem);

    /// `415 unsupported_media_type`.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 415,
        description = "`unsupported_media_type`: the body was not sent as `application/json`",
        content_type = "application/problem+json"
    )]
    pub struct UnsupportedMediaType(pub Problem);

    /// `503`: something the request needs is unavailable; nothing changed.
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 503,
        description = "`no_game_server`, `game_server_unavailable`, `store_unavailable` or `timeout`: try again later",
        content_type = "application/problem+json"
    )]
    pub struct Unavailable(pub Problem);

    /// `503 not_ready` (readiness).
    #[derive(Debug, IntoResponses)]
    #[response(
        status = 503,
        description = "`not_ready`: Redis is not reachable",
        content_type = "application/problem+json"
    )]
    pub struct NotReady(pub Problem);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE_START: &str = "<!-- problem-codes:start -->\n";
    const TABLE_END: &str = "<!-- problem-codes:end -->";

    #[test]
    fn readme_lists_every_problem_code() {
        let readme = include_str!("../../../README.md");
        let expected = ProblemCode::markdown_table();
        let listed = readme
            .split_once(TABLE_START)
            .and_then(|(_, rest)| rest.split_once(TABLE_END))
            .map(|(table, _)| table);
        assert_eq!(
            listed,
            Some(expected.as_str()),
            "README.md's table of problem codes differs from `ProblemCode`; replace the lines \
             between {TABLE_START:?} and {TABLE_END:?} with:\n\n{expected}"
        );
    }

    #[test]
    fn codes_serialise_as_their_snake_case_names() {
        for code in ProblemCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
            assert!(!code.meaning().is_empty(), "{code} has no meaning");
        }
    }

    #[test]
    fn the_openapi_document_states_the_codes_as_an_enum() {
        let doc = super::super::ops::document(16, 8).unwrap();
        let schemas = &doc["components"]["schemas"];
        let listed: Vec<&str> = schemas["ProblemCode"]["enum"]
            .as_array()
            .expect("ProblemCode is an enum")
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
        let all: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all);
        assert_eq!(
            schemas["Problem"]["properties"]["code"]["$ref"],
            "#/components/schemas/ProblemCode"
        );
    }

    #[test]
    fn every_operation_is_tagged_and_a_server_is_named() {
        let doc = super::super::ops::document(16, 8).unwrap();
        let declared: Vec<&str> = doc["tags"]
            .as_array()
            .expect("tags are declared")
            .iter()
            .filter_map(|tag| tag["name"].as_str())
            .collect();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations += 1;
                let tags = operation["tags"].as_array();
                assert!(
                    tags.is_some_and(|tags| !tags.is_empty()
                        && tags.iter().all(|t| declared.contains(&t.as_str().unwrap()))),
                    "{method} {path} has no declared tag"
                );
            }
        }
        assert!(operations >= 9, "found {operations} operations");
        assert_eq!(doc["servers"][0]["url"], "/");
    }
}
