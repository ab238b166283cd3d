//! Extractors whose rejections are problem documents.
//!
//! axum's own `Json`, `Path` and `Query` answer bad input with plain-text bodies. These
//! wrappers run them and turn every rejection into `400 invalid_request` (or `413`/`415`
//! where the status says so) with a detail that names the part of the request at fault:
//! `request body: capacity: invalid type: string "x", expected u32 at line 1 column 14`.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ProblemCode};

/// A JSON request body (`application/json`) that is a JSON object: every body of the API is
/// one, and serde would otherwise read a struct from an array of its fields in order.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json_content_type(req.headers()) {
            return Err(json_rejection(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| json_rejection(JsonRejection::from(rejection)))?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(ApiError::invalid(
                "request body must be a JSON object (`{...}`)",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Whether the request says its body is JSON: `application/json` or `application/*+json`
/// (what axum's own `Json` accepts), parameters such as `charset` ignored.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    match rejection {
        JsonRejection::JsonDataError(err) => {
            ApiError::invalid(format!("request body: {}", inner_message(&err.body_text())))
        }
        JsonRejection::JsonSyntaxError(err) => ApiError::invalid(format!(
            "request body is not valid JSON: {}",
            inner_message(&err.body_text())
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemCode::UnsupportedMediaType,
            "request body must be JSON, sent with `Content-Type: application/json`",
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::PayloadTooLarge,
            "request body is larger than this server accepts",
        ),
        other => ApiError::invalid(format!(
            "request body could not be read: {}",
            other.body_text()
        )),
    }
}

/// Path parameters.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(err) => {
            ApiError::invalid(format!("path: {}", inner_message(&err.body_text())))
        }
        other => ApiError::internal("path parameters missing for a route", &other.body_text()),
    }
}

/// The query string.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::invalid(format!(
        "query string: {}",
        inner_message(&rejection.body_text())
    ))
}

/// axum's rejection texts start with a generic sentence ("Failed to deserialize the JSON body
/// into the target type: …"); keep what follows it, which names the field and the fault.
fn inner_message(text: &str) -> String {
    const PREFIXES: [&str; 5] = [
        "Failed to deserialize the JSON body into the target type: ",
        "Failed to parse the request body as JSON: ",
        "Failed to deserialize query string: ",
        "Failed to deserialize query string. Error: ",
        "Invalid URL: ",
    ];
    PREFIXES
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))
        .unwrap_or(text)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            is_json_content_type(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/problem+json"));
        assert!(!with("text/json"));
        assert!(!with("application/jsonx"));
        assert!(!is_json_content_type(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_object_is_refused() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            a: u32,
        }
        for body in ["[1]", " \n[1]", "1", "\"a\"", "null"] {
            let request = Request::post("/")
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(body))
                .unwrap();
            let err = ApiJson::<Body>::from_request(request, &())
                .await
                .unwrap_err();
            assert_eq!(err.0.code, ProblemCode::InvalidRequest, "{body}");
            assert!(
                err.0.detail.contains("JSON object"),
                "{body}: {}",
                err.0.detail
            );
        }
        let request = Request::post("/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(r#" {"a": 1}"#))
            .unwrap();
        assert_eq!(
            ApiJson::<Body>::from_request(request, &())
                .await
                .unwrap()
                .0
                .a,
            1
        );
    }

    #[test]
    fn strips_axums_generic_sentence() {
        assert_eq!(
            inner_message(
                "Failed to deserialize the JSON body into the target type: capacity: bad"
            ),
            "capacity: bad"
        );
        assert_eq!(inner_message("something else"), "something else");
    }
}
