//! Cross-origin requests from browser games (contract section 5.8): the CORS layer built from
//! `http.cors_origins`.
//!
//! Off when the list is empty (the default): no CORS header is sent and an `OPTIONS` preflight
//! is answered like any unknown method. On, it answers preflights itself (`200`, before the
//! request middleware, so they are neither counted nor limited) and adds
//! `Access-Control-Allow-Origin` to every answer for an allowed origin, problems included, and
//! exposes the headers a client reads (`Retry-After`, `Location`, `X-Request-Id`). A refused
//! origin gets no CORS header, so the browser withholds the answer from the page.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The methods of the lobby API's routes.
const METHODS: [Method; 3] = [Method::GET, Method::POST, Method::DELETE];

/// The request headers a browser client sends.
fn allowed_headers() -> [HeaderName; 4] {
    [
        header::CONTENT_TYPE,
        header::AUTHORIZATION,
        HeaderName::from_static("x-player-id"),
        HeaderName::from_static("x-request-id"),
    ]
}

/// The answer headers a browser client may read.
fn exposed_headers() -> [HeaderName; 3] {
    [
        header::RETRY_AFTER,
        header::LOCATION,
        HeaderName::from_static("x-request-id"),
    ]
}

/// The CORS layer for `origins` (`http.cors_origins`, already validated), or `None` when CORS
/// is off. Entries that are not valid header values are skipped (validation refuses them).
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods(METHODS)
            .allow_headers(allowed_headers())
            .expose_headers(exposed_headers())
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_is_off() {
        assert!(layer(&[]).is_none());
        assert!(layer(&["https://play.example.com".into()]).is_some());
        assert!(layer(&["*".into()]).is_some());
    }
}
