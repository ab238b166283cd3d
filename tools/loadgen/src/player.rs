//! A simulated player: the lobby API over HTTP and the game server over WebSocket, recording
//! every request's outcome and latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::stats::Recorder;

/// Where and with what a player connects (the lobby API's `join` member).
#[derive(Debug, Clone, Deserialize)]
pub struct Ticket {
    /// The game server's WebSocket URL for this game.
    pub socket_url: String,
    /// The one-time token.
    pub token: String,
}

/// The parts of a created or joined game the simulation needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Joined {
    /// Game id.
    pub id: String,
    /// How to connect.
    pub join: Ticket,
}

/// The lobby API as a player uses it.
#[derive(Clone)]
pub struct LobbyClient {
    http: reqwest::Client,
    base: String,
    recorder: Arc<Recorder>,
}

/// Why a lobby call failed (already recorded under its code).
#[derive(Debug, thiserror::Error)]
#[error("{op} failed: {code}")]
pub struct CallFailed {
    /// Operation.
    pub op: &'static str,
    /// The problem code, `http_<status>`, `timeout` or `connect`.
    pub code: String,
}

impl LobbyClient {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, recorder: Arc<Recorder>) -> anyhow::Result<LobbyClient> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(LobbyClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            recorder,
        })
    }

    /// The recorder this client writes to.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        op: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CallFailed> {
        let started = Instant::now();
        let fail = |code: String| {
            self.recorder.error(op, code.clone());
            CallFailed { op, code }
        };
        let response = request.send().await.map_err(|err| {
            fail(if err.is_timeout() {
                "timeout".into()
            } else {
                "connect".into()
            })
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|_| fail("body".into()))?;
        if !status.is_success() {
            // Problem documents carry a stable `code`; fall back to the status.
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_string))
                .unwrap_or_else(|| format!("http_{}", status.as_u16()));
            return Err(fail(code));
        }
        let value = serde_json::from_slice(&body).map_err(|_| fail("bad_json".into()))?;
        self.recorder.ok(op, started.elapsed());
        Ok(value)
    }

    /// `POST /v1/games` as `player`.
    pub async fn create(
        &self,
        player: &str,
        product: &str,
        capacity: u32,
    ) -> Result<Joined, CallFailed> {
        let request = self
            .http
            .post(format!("{}/v1/games", self.base))
            .header("x-player-id", player)
            .json(&serde_json::json!({ "product": product, "capacity": capacity }));
        self.call("create", request).await
    }

    /// `POST /v1/games/{id}/join` as `player`.
    pub async fn join(&self, player: &str, game: &str) -> Result<Ticket, CallFailed> {
        let request = self
            .http
            .post(format!("{}/v1/games/{game}/join", self.base))
            .header("x-player-id", player);
        let joined: Joined = self.call("join", request).await?;
        Ok(joined.join)
    }

    /// Joins, retrying while the creator's arrival has not been processed yet.
    pub async fn join_when_open(
        &self,
        player: &str,
        game: &str,
        timeout: Duration,
    ) -> Result<Ticket, CallFailed> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.join(player, game).await {
                Err(failed) if failed.code == "creator_not_joined" && Instant::now() < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    /// `GET /v1/games?product=…` (one page).
    pub async fn list(&self, product: &str) -> Result<serde_json::Value, CallFailed> {
        let request = self
            .http
            .get(format!("{}/v1/games", self.base))
            .query(&[("product", product), ("limit", "100")])
            .header("x-player-id", "lg-browser");
        self.call("list", request).await
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A player connected to a game server.
pub struct Player {
    socket: Socket,
    recorder: Arc<Recorder>,
    _seat: Option<OwnedSemaphorePermit>,
}

impl Player {
    /// Connects to the game server with a ticket (`<socket_url>?token=<token>`).
    pub async fn connect(lobby: &LobbyClient, ticket: &Ticket) -> Result<Player, CallFailed> {
        let started = Instant::now();
        let separator = if ticket.socket_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{separator}token={}", ticket.socket_url, ticket.token);
        match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url),
        )
        .await
        {
            Ok(Ok((socket, _))) => {
                lobby.recorder.ok("connect", started.elapsed());
                Ok(Player {
                    socket,
                    recorder: lobby.recorder.clone(),
                    _seat: None,
                })
            }
            Ok(Err(err)) => {
                let code = match &err {
                    tokio_tungstenite::tungstenite::Error::Http(response) => {
                        format!("ws_{}", response.status().as_u16())
                    }
                    _ => "ws_connect".into(),
                };
                lobby.recorder.error("connect", code.clone());
                Err(CallFailed {
                    op: "connect",
                    code,
                })
            }
            Err(_) => {
                lobby.recorder.error("connect", "timeout");
                Err(CallFailed {
                    op: "connect",
                    code: "timeout".into(),
                })
            }
        }
    }

    /// Keeps a slot of the player budget until this player is gone.
    pub fn hold_seat(&mut self, permit: OwnedSemaphorePermit) {
        self._seat = Some(permit);
    }

    /// Leaves: says so, then closes the socket.
    pub async fn leave(&mut self) {
        let _ = self.socket.send(Message::text(r#"{"type":"leave"}"#)).await;
        let _ = self.socket.close(None).await;
    }

    /// Stays until the game server says the game ended or closes the socket; records the
    /// whole stay as `play` (or a `play` error on timeout).
    pub async fn play_until_end(&mut self, timeout: Duration) {
        let started = Instant::now();
        let wait = async {
            while let Some(message) = self.socket.next().await {
                match message {
                    Ok(Message::Text(text)) if text.contains(r#""ended""#) => return true,
                    Ok(Message::Close(_)) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
            true
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(_) => self.recorder.ok("play", started.elapsed()),
            Err(_) => {
                self.recorder.error("play", "timeout");
                let _ = self.socket.close(None).await;
            }
        }
    }
}
