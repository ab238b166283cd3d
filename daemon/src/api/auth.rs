//! Player identity: the [`Player`] extractor.
//!
//! - `auth.mode = "header"` (development, test): the `X-Player-Id` header names the player.
//!   Missing → `401 unauthenticated`; not a valid player id → `400 invalid_request`.
//! - `auth.mode = "jwt"` (production): `Authorization: Bearer <JWT>` (the scheme in any
//!   case), HS256-signed with `auth.jwt_secret`, with an `exp` in the future, an `nbf` (when
//!   present) in the past, both with [`CLOCK_LEEWAY_SECS`] of leeway, the configured `iss` and
//!   `aud` (when `auth.jwt_issuer` / `auth.jwt_audience` are set) and a `sub` that is a valid
//!   player id. A header longer than `auth.max_token_bytes` is refused before any decoding.
//!   Anything else (missing, oversized, malformed, expired, not yet valid, wrong issuer or
//!   audience, wrongly signed, no `sub`) → `401 unauthenticated`, whose detail says which it
//!   was but never echoes the token.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mm_common::PlayerId;
use mm_config::AuthSettings;
use serde::Deserialize;

use super::ApiContext;
use super::error::ApiError;

/// The header naming the player in `header` mode.
pub const PLAYER_HEADER: &str = "x-player-id";

/// Clock leeway for a token's `exp` and `nbf`, in seconds.
pub const CLOCK_LEEWAY_SECS: u64 = 5;

/// What a valid token must carry besides its signature (from `[auth]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRules {
    /// The required `iss`, if any (`auth.jwt_issuer`).
    pub issuer: Option<String>,
    /// The required `aud`, if any (`auth.jwt_audience`).
    pub audience: Option<String>,
    /// Longest accepted `Authorization` value, in bytes (`auth.max_token_bytes`).
    pub max_token_bytes: usize,
}

impl TokenRules {
    /// The rules `[auth]` sets.
    pub fn from_settings(auth: &AuthSettings) -> TokenRules {
        TokenRules {
            issuer: auth.jwt_issuer.clone(),
            audience: auth.jwt_audience.clone(),
            max_token_bytes: auth.max_token_bytes,
        }
    }
}

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
        /// Longest accepted `Authorization` value, in bytes.
        max_token_bytes: usize,
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
    /// JWT verification with the HS256 `secret`: `exp` and `sub` are required, `nbf` is
    /// checked when present, `iss` and `aud` are required to match when `rules` names them;
    /// [`CLOCK_LEEWAY_SECS`] of clock leeway.
    pub fn jwt(secret: &[u8], rules: &TokenRules) -> Authenticator {
        let mut validation = Validation::new(Algorithm::HS256);
        let mut required = vec!["exp", "sub"];
        validation.leeway = CLOCK_LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        if let Some(issuer) = &rules.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &rules.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.validate_aud = true;
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Authenticator::Jwt {
            key: DecodingKey::from_secret(secret),
            validation: Box::new(validation),
            max_token_bytes: rules.max_token_bytes,
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
            Authenticator::Jwt {
                key,
                validation,
                max_token_bytes,
            } => {
                let value = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
                    ApiError::unauthenticated(
                        "an `Authorization: Bearer <token>` header is required",
                    )
                })?;
                // Before anything else looks at it: a huge header costs nothing to refuse.
                if value.len() > *max_token_bytes {
                    return Err(ApiError::unauthenticated(format!(
                        "the Authorization header is longer than {max_token_bytes} bytes"
                    )));
                }
                let token = value.to_str().ok().and_then(bearer_token).ok_or_else(|| {
                    ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
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

/// The token of a `Bearer <token>` value; the scheme is matched in any case (RFC 9110
/// section 11.1), and spaces around the token are ignored.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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
        ErrorKind::ImmatureSignature => {
            "the token is not valid yet (its `nbf` is in the future)".into()
        }
        ErrorKind::InvalidIssuer => "the token's `iss` is not the accepted issuer".into(),
        ErrorKind::InvalidAudience => "the token's `aud` is not the accepted audience".into(),
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("the token's `{claim}` claim is not in the expected format")
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "a-unit-test-secret-that-is-long-enough";

    fn now() -> u64 {
        mm_common::time::now_ms() / 1000
    }

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn parts(authorization: &str) -> Parts {
        Request::builder()
            .header(AUTHORIZATION, authorization)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn rules(issuer: Option<&str>, audience: Option<&str>) -> TokenRules {
        TokenRules {
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
            max_token_bytes: mm_config::DEFAULT_MAX_TOKEN_BYTES,
        }
    }

    /// The detail of a refusal, which must be a 401 `unauthenticated`.
    fn refusal(auth: &Authenticator, authorization: &str) -> String {
        let err = auth.authenticate(&parts(authorization)).unwrap_err();
        assert_eq!(err.0.status, 401, "{}", err.0.detail);
        assert_eq!(err.0.code, crate::api::error::ProblemCode::Unauthenticated);
        err.0.detail
    }

    fn accepted(auth: &Authenticator, authorization: &str) -> String {
        auth.authenticate(&parts(authorization))
            .unwrap_or_else(|err| panic!("{authorization:.40}: {}", err.0.detail))
            .to_string()
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        let auth = Authenticator::jwt(SECRET.as_bytes(), &rules(None, None));
        let t = token(json!({"sub": "alice", "exp": now() + 60}));
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(accepted(&auth, &format!("{scheme} {t}")), "alice");
        }
        assert_eq!(accepted(&auth, &format!("Bearer   {t}  ")), "alice");
        for bad in [
            format!("Basic {t}"),
            format!("Bearer{t}"),
            "Bearer ".into(),
            t.clone(),
        ] {
            assert!(
                refusal(&auth, &bad).contains("must be `Bearer <token>`"),
                "{bad:.20}"
            );
        }
    }

    #[test]
    fn nbf_is_checked_with_the_leeway_of_exp() {
        let auth = Authenticator::jwt(SECRET.as_bytes(), &rules(None, None));
        let later = token(json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 300}));
        assert!(refusal(&auth, &format!("Bearer {later}")).contains("`nbf` is in the future"));
        let within_leeway = token(json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 2}));
        assert_eq!(accepted(&auth, &format!("Bearer {within_leeway}")), "alice");
        let past = token(json!({"sub": "alice", "exp": now() + 600, "nbf": now() - 10}));
        assert_eq!(accepted(&auth, &format!("Bearer {past}")), "alice");
        let malformed = token(json!({"sub": "alice", "exp": now() + 600, "nbf": "soon"}));
        assert!(refusal(&auth, &format!("Bearer {malformed}")).contains("`nbf`"));
    }

    #[test]
    fn a_configured_issuer_and_audience_are_required() {
        let auth = Authenticator::jwt(
            SECRET.as_bytes(),
            &rules(Some("https://auth.example.com/"), Some("matchmaker")),
        );
        let exp = now() + 600;
        let good = token(json!({"sub": "alice", "exp": exp,
            "iss": "https://auth.example.com/", "aud": "matchmaker"}));
        assert_eq!(accepted(&auth, &format!("Bearer {good}")), "alice");
        let among = token(json!({"sub": "alice", "exp": exp,
            "iss": "https://auth.example.com/", "aud": ["billing", "matchmaker"]}));
        assert_eq!(accepted(&auth, &format!("Bearer {among}")), "alice");
        let cases = [
            (
                json!({"sub": "a", "exp": exp, "aud": "matchmaker"}),
                "no `iss` claim",
            ),
            (
                json!({"sub": "a", "exp": exp, "iss": "https://evil/", "aud": "matchmaker"}),
                "`iss` is not the accepted issuer",
            ),
            (
                json!({"sub": "a", "exp": exp, "iss": "https://auth.example.com/"}),
                "no `aud` claim",
            ),
            (
                json!({"sub": "a", "exp": exp, "iss": "https://auth.example.com/", "aud": "other"}),
                "`aud` is not the accepted audience",
            ),
        ];
        for (claims, words) in cases {
            let detail = refusal(&auth, &format!("Bearer {}", token(claims.clone())));
            assert!(detail.contains(words), "{claims}: {detail}");
        }
        // Without configured values, iss and aud are not required and not checked.
        let open = Authenticator::jwt(SECRET.as_bytes(), &rules(None, None));
        let any = token(json!({"sub": "alice", "exp": exp, "iss": "x", "aud": "y"}));
        assert_eq!(accepted(&open, &format!("Bearer {any}")), "alice");
    }

    #[test]
    fn an_oversized_header_is_refused_before_decoding() {
        let auth = Authenticator::jwt(SECRET.as_bytes(), &rules(None, None));
        // 266 KB of token-looking bytes, as in the report: refused for its size alone.
        let huge = format!("Bearer {}", "a".repeat(266 * 1024));
        let started = std::time::Instant::now();
        let detail = refusal(&auth, &huge);
        assert!(detail.contains("longer than 4096 bytes"), "{detail}");
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
        assert!(!detail.contains("aaaa"), "the token is never echoed");
        // A valid token padded with claims past the limit is refused too.
        let padded = token(json!({"sub": "alice", "exp": now() + 60, "pad": "x".repeat(5000)}));
        assert!(refusal(&auth, &format!("Bearer {padded}")).contains("longer than"));
    }
}
