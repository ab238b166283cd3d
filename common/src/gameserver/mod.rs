//! The game-server API client (contract section 6), used by `matchmakerd` and `mm-console`.
//!
//! One [`GameServerClient`] (cheap to clone) holds one pooled HTTP client for every registered
//! server and a [circuit breaker](breaker) per server. Each call sends the server's
//! `Authorization: Bearer <api_key>`, runs in a tracing span `gameserver_call` with the
//! fields `server`, `op`, `outcome` and `latency_ms`, and never logs the key.
//!
//! Failures are [`CallError`]s that name the server and the operation.
//! [`CallError::is_server_fault`] tells a broken server (unreachable, timeout, 5xx, breaker
//! open) from a refusal (4xx).
//!
//! Retries: only the idempotent calls (`delete_game`, `health`, `list_games`) are retried, with a short
//! jittered exponential backoff, and only after connect errors, timeouts and 5xx answers.
//! `create_game` and `add_player` are sent exactly once: a retry after a lost answer could
//! create a second game or hand out a second seat.

pub mod breaker;
mod error;

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::ids::{GameId, PlayerId, ProductId, ServerId};
pub use breaker::BreakerState;
use breaker::{Breakers, Verdict};
pub use error::{CallError, MAX_ERROR_BODY, Operation};
pub use secrecy::SecretString;

/// `POST /games` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateGameRequest {
    /// The matchmaker's id for the game.
    pub game_id: GameId,
    /// The game's product; a server hosts one product.
    pub product: ProductId,
    /// Number of seats, creator included.
    pub capacity: u32,
    /// The player who created the game (gets the first ticket).
    pub creator_id: PlayerId,
    /// Free-form game settings, passed through from the player.
    #[serde(default)]
    pub settings: serde_json::Value,
}

/// Where and with what one player connects to a game: `<socket_url>?token=<token>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTicket {
    /// The game's WebSocket URL.
    pub socket_url: String,
    /// The player's single-use token.
    pub token: String,
}

impl std::fmt::Debug for JoinTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTicket")
            .field("socket_url", &self.socket_url)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// `POST /games/{id}/players` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPlayerRequest {
    /// The player who gets a seat.
    pub player_id: PlayerId,
}

/// `GET /health` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    /// Games the server holds now.
    pub games: u32,
    /// Games it accepts at most.
    pub max_games: u32,
}

/// `GET /games` answer: the ids of the games the server holds (contract section 6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameList {
    /// Ids of every game the server holds now, in any order. Kept as strings: a server may
    /// hold games whose ids the matchmaker did not issue.
    pub games: Vec<String>,
}

/// What `GET /games` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListOutcome {
    /// 2xx: the ids of the games the server holds.
    Listed(Vec<String>),
    /// 404 or 405: the server does not implement the optional call.
    Unsupported,
}

/// What `DELETE /games/{id}` found. Both are success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// 2xx: the server deleted the game.
    Deleted,
    /// 404: the server did not have it (already ended or deleted).
    AlreadyGone,
}

/// One registered game server, as the client needs it. `Debug` never shows the key, nor
/// credentials inside the URL (it shows [`public_url`]).
#[derive(Clone)]
pub struct GameServerEndpoint {
    /// The server's id.
    pub id: ServerId,
    /// Base URL of its API; may carry a path prefix (`https://gs1/api/`).
    pub api_url: Url,
    /// Its API key, sent as `Authorization: Bearer`.
    pub api_key: SecretString,
}

impl std::fmt::Debug for GameServerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameServerEndpoint")
            .field("id", &self.id)
            .field("api_url", &public_url(&self.api_url).as_str())
            .field("api_key", &"[REDACTED]")
            .finish()
    }
}

/// `url` as it may be shown: without user name, password, query or fragment, which may carry
/// credentials (`https://user:pass@gs1/api/?token=…` → `https://gs1/api/`). Calls keep using
/// the full URL; `P:servers`, logs and errors show this one.
pub fn public_url(url: &Url) -> Url {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have credentials (`cannot-be-a-base`).
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown
}

impl GameServerEndpoint {
    /// [`public_url`] of `api_url`: the base URL without credentials, for publishing.
    pub fn public_api_url(&self) -> Url {
        public_url(&self.api_url)
    }

    /// `api_url` with `segments` appended (each percent-encoded as one path segment).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// Timeouts, retries and breaker settings of a [`GameServerClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for a whole call (one attempt), connection included.
    pub request_timeout: Duration,
    /// Extra attempts for idempotent calls after a transient failure.
    pub retries: u32,
    /// First retry delay; doubles per attempt (capped at 2 s), with ±50 % jitter.
    pub retry_backoff: Duration,
    /// Consecutive failures that open a server's breaker (0: never open).
    pub breaker_failures: u32,
    /// How long an open breaker fails calls fast before letting a trial call through.
    pub breaker_cooldown: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            retries: 2,
            retry_backoff: Duration::from_millis(100),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(15),
        }
    }
}

/// The client of every game server's API. Clones share the connection pool and breakers.
#[derive(Debug, Clone)]
pub struct GameServerClient {
    http: reqwest::Client,
    options: ClientOptions,
    breakers: Breakers,
}

/// An answer with an acceptable status.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl GameServerClient {
    /// A client with `options`. Fails only if the TLS backend cannot initialise.
    pub fn new(options: ClientOptions) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("mm-common/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            breakers: Breakers::new(options.breaker_failures, options.breaker_cooldown),
            options,
        })
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The circuit-breaker state of `server` (closed if it was never called).
    pub fn breaker_state(&self, server: &ServerId) -> BreakerState {
        self.breakers.state(server)
    }

    /// `POST /games`: creates the game; the answer is the creator's ticket. Never retried.
    pub async fn create_game(
        &self,
        endpoint: &GameServerEndpoint,
        request: &CreateGameRequest,
    ) -> Result<JoinTicket, CallError> {
        let op = Operation::CreateGame;
        let body = serde_json::to_vec(request).expect("request types always serialise");
        let answer = self
            .call(endpoint, op, Method::POST, &["games"], Some(body), &[])
            .await?;
        expect_status(endpoint, op, &answer, StatusCode::CREATED);
        decode(endpoint, op, &answer)
    }

    /// `POST /games/{id}/players`: reserves a seat; the answer is that player's ticket.
    /// Never retried.
    pub async fn add_player(
        &self,
        endpoint: &GameServerEndpoint,
        game: &GameId,
        player: &PlayerId,
    ) -> Result<JoinTicket, CallError> {
        let op = Operation::AddPlayer;
        let request = AddPlayerRequest {
            player_id: player.clone(),
        };
        let body = serde_json::to_vec(&request).expect("request types always serialise");
        let answer = self
            .call(
                endpoint,
                op,
                Method::POST,
                &["games", game.as_str(), "players"],
                Some(body),
                &[],
            )
            .await?;
        expect_status(endpoint, op, &answer, StatusCode::OK);
        decode(endpoint, op, &answer)
    }

    /// `DELETE /games/{id}`: 2xx is [`DeleteOutcome::Deleted`], 404
    /// [`DeleteOutcome::AlreadyGone`]. Retried after transient failures.
    pub async fn delete_game(
        &self,
        endpoint: &GameServerEndpoint,
        game: &GameId,
    ) -> Result<DeleteOutcome, CallError> {
        let answer = self
            .call(
                endpoint,
                Operation::DeleteGame,
                Method::DELETE,
                &["games", game.as_str()],
                None,
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        Ok(if answer.status == StatusCode::NOT_FOUND {
            DeleteOutcome::AlreadyGone
        } else {
            DeleteOutcome::Deleted
        })
    }

    /// `GET /health`. Retried after transient failures.
    pub async fn health(&self, endpoint: &GameServerEndpoint) -> Result<ServerHealth, CallError> {
        let op = Operation::Health;
        let answer = self
            .call(endpoint, op, Method::GET, &["health"], None, &[])
            .await?;
        decode(endpoint, op, &answer)
    }

    /// `GET /games`: the ids of the games the server holds, or
    /// [`ListOutcome::Unsupported`] when it answers 404 or 405 (the call is optional).
    /// Retried after transient failures.
    pub async fn list_games(
        &self,
        endpoint: &GameServerEndpoint,
    ) -> Result<ListOutcome, CallError> {
        let op = Operation::ListGames;
        let answer = self
            .call(
                endpoint,
                op,
                Method::GET,
                &["games"],
                None,
                &[StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED],
            )
            .await?;
        if !answer.status.is_success() {
            return Ok(ListOutcome::Unsupported);
        }
        let list: GameList = decode(endpoint, op, &answer)?;
        Ok(ListOutcome::Listed(list.games))
    }

    /// One call, with breaker, retries (idempotent operations only) and a tracing span.
    /// Succeeds on 2xx and on the statuses in `also_ok`.
    async fn call(
        &self,
        endpoint: &GameServerEndpoint,
        op: Operation,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
        also_ok: &[StatusCode],
    ) -> Result<Answer, CallError> {
        let span = tracing::info_span!(
            "gameserver_call",
            server = %endpoint.id,
            op = op.as_str(),
            outcome = tracing::field::Empty,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        let url = endpoint.url(segments);
        async move {
            let started = tokio::time::Instant::now();
            let attempts = if op.is_idempotent() {
                1 + self.options.retries
            } else {
                1
            };
            let mut attempt = 0;
            let mut delays = retry_schedule(self.options.retry_backoff).delays();
            let result = loop {
                attempt += 1;
                let result = self
                    .attempt(
                        endpoint,
                        op,
                        method.clone(),
                        url.clone(),
                        body.clone(),
                        also_ok,
                    )
                    .await;
                match result {
                    Err(err) if err.is_transient() && attempt < attempts => {
                        let delay = delays.next_delay();
                        tracing::debug!(
                            error = %err,
                            attempt,
                            retry_in_ms = delay.as_millis() as u64,
                            "transient failure; retrying"
                        );
                        tokio::time::sleep(delay).await;
                    }
                    other => break other,
                }
            };
            let span = tracing::Span::current();
            span.record("attempts", attempt);
            span.record("latency_ms", started.elapsed().as_millis() as u64);
            match &result {
                Ok(answer) => {
                    span.record("outcome", "ok");
                    span.record("status", answer.status.as_u16());
                    tracing::debug!("game server call succeeded");
                }
                Err(err) => {
                    span.record("outcome", err.kind());
                    if let Some(status) = err.status() {
                        span.record("status", status);
                    }
                    if err.is_server_fault() {
                        tracing::warn!(error = %err, "game server call failed");
                    } else {
                        tracing::info!(error = %err, "game server refused the call");
                    }
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    /// A single attempt through the breaker.
    async fn attempt(
        &self,
        endpoint: &GameServerEndpoint,
        op: Operation,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        also_ok: &[StatusCode],
    ) -> Result<Answer, CallError> {
        let server = || endpoint.id.clone();
        let Some(permit) = self.breakers.acquire(&endpoint.id) else {
            return Err(CallError::CircuitOpen {
                server: server(),
                op,
            });
        };
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(endpoint.api_key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let transport = |source: reqwest::Error| {
            // The transport error names the URL it failed on: never with its credentials.
            let source = match source.url().map(public_url) {
                Some(shown) => source.with_url(shown),
                None => source,
            };
            if source.is_timeout() {
                CallError::Timeout {
                    server: server(),
                    op,
                }
            } else {
                CallError::Connect {
                    server: server(),
                    op,
                    source,
                }
            }
        };
        let result = async {
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            let body = response.bytes().await.map_err(transport)?.to_vec();
            if status.is_success() || also_ok.contains(&status) {
                Ok(Answer { status, body })
            } else {
                Err(CallError::Status {
                    server: server(),
                    op,
                    status: status.as_u16(),
                    body: error::truncate_body(&String::from_utf8_lossy(&body)),
                })
            }
        }
        .await;
        permit.record(match &result {
            Err(err) if err.is_transient() => Verdict::Failure,
            _ => Verdict::Healthy,
        });
        result
    }
}

/// Notes a success status other than the one the contract names (accepted all the same).
fn expect_status(endpoint: &GameServerEndpoint, op: Operation, answer: &Answer, want: StatusCode) {
    if answer.status != want {
        tracing::debug!(
            server = %endpoint.id,
            op = op.as_str(),
            status = answer.status.as_u16(),
            expected = want.as_u16(),
            "game server answered an unexpected success status"
        );
    }
}

fn decode<T: DeserializeOwned>(
    endpoint: &GameServerEndpoint,
    op: Operation,
    answer: &Answer,
) -> Result<T, CallError> {
    serde_json::from_slice(&answer.body).map_err(|source| CallError::Decode {
        server: endpoint.id.clone(),
        op,
        source,
    })
}

/// Delays between the attempts of an idempotent call: `first`, doubling per attempt, capped
/// at 2 s, each scaled by a random factor in [0.5, 1.5).
fn retry_schedule(first: Duration) -> Backoff {
    Backoff::new(first, Duration::from_secs(2)).with_jitter(0.5, 1.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> GameServerEndpoint {
        GameServerEndpoint {
            id: ServerId::new("gs-1").unwrap(),
            api_url: Url::parse(url).unwrap(),
            api_key: SecretString::from("hunter2-secret".to_string()),
        }
    }

    #[test]
    fn public_urls_carry_no_credentials_but_calls_keep_them() {
        let secret = endpoint("https://gs-user:gs-pass@gs1:8443/api/?token=tok-123#frag");
        assert_eq!(secret.public_api_url().as_str(), "https://gs1:8443/api/");
        assert_eq!(
            secret.url(&["health"]).as_str(),
            "https://gs-user:gs-pass@gs1:8443/api/health?token=tok-123#frag",
            "calls still use the credentials"
        );
        let debug = format!("{secret:?}");
        for hidden in ["gs-user", "gs-pass", "tok-123"] {
            assert!(!debug.contains(hidden), "{debug}");
        }
        assert_eq!(
            endpoint("http://gs:1/").public_api_url().as_str(),
            "http://gs:1/"
        );
    }

    #[tokio::test]
    async fn transport_errors_do_not_repeat_credentials() {
        // Nothing listens on a just-freed port: the call fails with a transport error.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let secret = endpoint(&format!(
            "http://gs-user:gs-pass@127.0.0.1:{port}/api/?token=tok-123"
        ));
        let client = GameServerClient::new(ClientOptions {
            retries: 0,
            breaker_failures: 0,
            ..ClientOptions::default()
        })
        .unwrap();
        let err = client.health(&secret).await.unwrap_err();
        let text = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
        assert!(matches!(err, CallError::Connect { .. }), "{text}");
        for hidden in ["gs-user", "gs-pass", "tok-123"] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
    }

    #[test]
    fn urls_keep_the_base_path_prefix() {
        let game = "chess.0197";
        for base in ["http://gs:1/api/v1", "http://gs:1/api/v1/"] {
            assert_eq!(
                endpoint(base).url(&["games", game, "players"]).as_str(),
                "http://gs:1/api/v1/games/chess.0197/players"
            );
        }
        assert_eq!(
            endpoint("http://gs:1").url(&["health"]).as_str(),
            "http://gs:1/health"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!("{:?}", endpoint("http://gs:1"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("gs-1"), "{shown}");
        let ticket = JoinTicket {
            socket_url: "ws://x/ws/g".into(),
            token: "tok-secret".into(),
        };
        assert!(!format!("{ticket:?}").contains("tok-secret"));
    }

    #[test]
    fn errors_name_server_and_operation_and_classify_fault() {
        let server = ServerId::new("gs-eu-1").unwrap();
        let refused = CallError::Status {
            server: server.clone(),
            op: Operation::AddPlayer,
            status: 409,
            body: "full".into(),
        };
        let message = refused.to_string();
        assert!(
            message.contains("gs-eu-1") && message.contains("add_player"),
            "{message}"
        );
        assert!(!refused.is_server_fault());
        let broken = CallError::Status {
            server: server.clone(),
            op: Operation::DeleteGame,
            status: 503,
            body: String::new(),
        };
        assert!(broken.is_server_fault() && broken.is_transient());
        let open = CallError::CircuitOpen {
            server,
            op: Operation::Health,
        };
        assert!(open.is_server_fault() && !open.is_transient());
        assert!(open.to_string().contains("health"));
    }

    #[test]
    fn error_bodies_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let cut = error::truncate_body(&long);
        assert!(cut.len() <= MAX_ERROR_BODY + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let schedule = retry_schedule(Duration::from_millis(100));
        for _ in 0..50 {
            let mut delays = schedule.delays();
            let first = delays.next_delay();
            assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(150));
            let _second = delays.next_delay();
            let third = delays.next_delay();
            assert!(third >= Duration::from_millis(200) && third < Duration::from_millis(600));
            assert!(schedule.delays().nth(29).unwrap() < Duration::from_secs(3));
        }
    }
}
