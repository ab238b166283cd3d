//! Player identity: the [`Player`] extractor.
//!
//! - `auth.mode = "header"` (development, test): the `X-Player-Id` header names the player.
//!   Missing → `401 unauthenticated`; not a valid player id → `400 invalid_request`.
//! - `auth.mode = "jwt"` (production): `Authorization: Bearer <JWT>`, HS256-signed with
//!   `auth.jwt_secret`, with an `exp` in the future and a `sub` that is a valid player id.
//!   Anything else (missing, malformed, expired, wrongly signed, no `sub`) → `401
//!   unauthenticated`, whose detail says which it was but never echoes the token.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mm_common::PlayerId;
use serde::Deserialize;

use super::ApiContext;
use super::error::ApiError;

/// The header naming the player in `header` mode.
pub const PLAYER_HEADER: &str = "x-player-id";

/// How requests are authenticated (built from `[auth]`).
#[derive(Clone)]
pub enum Authenticator {
    /// Trust `X-Player-Id`.
    Header,
    /// Verify an HS256 bearer token.
    Jwt {
        /// The verification key.
        key: DecodingKey,
        /// What a valid token must satisfy.
        validation: Box<Validation>,
    },
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authenticator::Header => f.write_str("Authenticator::Header"),
            Authenticator::Jwt { .. } => f.write_str("Authenticator::Jwt([REDACTED])"),
        }
    }
}

impl Authenticator {
    /// JWT verification with the HS256 `secret`: `exp` and `sub` are required, 5 s of clock
    /// leeway.
    pub fn jwt(secret: &[u8]) -> Authenticator {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        validation.validate_aud = false;
        Authenticator::Jwt {
            key: DecodingKey::from_secret(secret),
            validation: Box::new(validation),
        }
    }

    /// The player a request's headers identify.
    pub fn authenticate(&self, parts: &Parts) -> Result<PlayerId, ApiError> {
        match self {
            Authenticator::Header => {
                let value = parts.headers.get(PLAYER_HEADER).ok_or_else(|| {
                    ApiError::unauthenticated("the X-Player-Id header is required")
                })?;
                let text = value.to_str().map_err(|_| {
                    ApiError::invalid("header X-Player-Id: must be visible ASCII text")
                })?;
                PlayerId::new(text)
                    .map_err(|err| ApiError::invalid(format!("header X-Player-Id: {err}")))
            }
            Authenticator::Jwt { key, validation } => {
                let value = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
                    ApiError::unauthenticated(
                        "an `Authorization: Bearer <token>` header is required",
                    )
                })?;
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        ApiError::unauthenticated(
                            "the Authorization header must be `Bearer <token>`",
                        )
                    })?;
                let data = jsonwebtoken::decode::<Claims>(token, key, validation)
                    .map_err(|err| ApiError::unauthenticated(jwt_refusal(&err)))?;
                let sub = data
                    .claims
                    .sub
                    .ok_or_else(|| ApiError::unauthenticated("the token has no `sub` claim"))?;
                PlayerId::new(sub).map_err(|err| {
                    ApiError::unauthenticated(format!(
                        "the token's `sub` is not a player id: {err}"
                    ))
                })
            }
        }
    }
}

/// The claims we read.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
}

/// Why a token was refused, in words that do not repeat the token.
fn jwt_refusal(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::InvalidSignature => "the token's signature is not valid".into(),
        ErrorKind::InvalidAlgorithm => "the token must be signed with HS256".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        _ => "the token is malformed".into(),
    }
}

/// The authenticated player of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player(pub PlayerId);

impl FromRequestParts<ApiContext> for Player {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, ApiError> {
        ctx.authenticator().authenticate(parts).map(Player)
    }
}
