//! `mm-gameserver`: the reference game server (contract section 6).
//!
//! A game server as a studio would write one, configured like any other (the matchmaker
//! treats it like any registered server). It implements the game-server HTTP API, accepts
//! players on a WebSocket at the `socket_url` it hands out (checking single-use tokens), and
//! writes the events of contract section 4 to `P:{product}:events` as players connect, fill the
//! game, play and leave. Timers start a full game after `start_delay` and end it after
//! `play_time`, which makes it usable for demos, end-to-end tests and load.
//!
//! Run it in-process with [`spawn`] (tests, on port 0) or as the `mm-gameserver` binary.
//!
//! Modules: [`config`] (settings), `api` (HTTP handlers), `ws` (player sessions), `game`
//! (per-game state and timers), `events` (the Redis writer).
//!
//! # Events
//!
//! - `creator_joined` (with the creator's `player_id`) when the creator's socket first
//!   connects; `player_joined` for any other connection (a creator reconnecting included).
//! - `all_players_joined` right after the connection that fills the game; `game_started`
//!   `start_delay` later, unless someone leaves first (then the start is cancelled and
//!   re-armed when the game fills again).
//! - `game_ended` after `play_time` of play; then every socket gets `{"type":"ended"}` and a
//!   normal close frame, and the game is dropped.
//! - `player_left` when a live socket closes (or the player sends `{"type":"leave"}`) before
//!   the game ended.
//! - `heartbeat` every `heartbeat_interval` for each game with at least one player connected
//!   (a game nobody is connected to is not kept alive, so the matchmaker can curate it).
//! - Deleting a game (`DELETE`) or shutting the server down writes no event.

pub mod config;

mod api;
mod events;
mod game;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mm_common::Keys;
use mm_common::gameserver::{GameServerEndpoint, SecretString};
use reqwest::Url;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::GameServerConfig;

use events::EventWriter;
use game::Server;

/// How long [`RunningGameServer::shutdown`] waits for in-flight requests and queued events.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A reference game server serving on a bound listener.
#[derive(Debug)]
pub struct RunningGameServer {
    addr: SocketAddr,
    api_url: Url,
    id: mm_common::ServerId,
    api_key: String,
    server: Arc<Server>,
    stop: watch::Sender<bool>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    writer: Option<JoinHandle<()>>,
    heartbeat: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.config.id)
            .finish_non_exhaustive()
    }
}

/// Starts a server on `listener` (bind port 0 for tests). Redis is connected lazily: the
/// server starts even when Redis is down, and its events wait for it.
pub async fn spawn(
    config: GameServerConfig,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<RunningGameServer> {
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let api_url = Url::parse(&format!("http://{addr}")).context("building the API URL")?;
    let ws_base = config
        .public_ws_base
        .clone()
        .unwrap_or_else(|| format!("ws://{addr}"));
    let stream = Keys::new(config.key_prefix.clone())
        .product(&config.product)
        .events();
    let (writer, sink) = EventWriter::new(&config.redis_url, stream.clone(), config.id.clone())?;
    let (stop, stopped) = watch::channel(false);

    let heartbeat_interval = config.heartbeat_interval;
    let (id, api_key) = (config.id.clone(), config.api_key.clone());
    tracing::info!(
        server = %config.id,
        product = %config.product,
        %addr,
        %stream,
        max_games = config.max_games,
        "reference game server starting"
    );
    let server = Arc::new(Server::new(config, ws_base, sink));

    let writer = tokio::spawn(writer.run(stopped.clone()));
    let heartbeat = (!heartbeat_interval.is_zero()).then(|| {
        let server = Arc::clone(&server);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(heartbeat_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = ticks.tick() => server.heartbeat(),
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        })
    });
    let app = api::router(Arc::clone(&server));
    let mut http_stopped = stopped;
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stopped.wait_for(|s| *s).await;
            })
            .await
    });
    Ok(RunningGameServer {
        addr,
        api_url,
        id,
        api_key,
        server,
        stop,
        http: Some(http),
        writer: Some(writer),
        heartbeat,
    })
}

impl RunningGameServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL (`http://addr`).
    pub fn api_url(&self) -> Url {
        self.api_url.clone()
    }

    /// How the matchmaker's client reaches this server (its id, URL and key).
    pub fn endpoint(&self) -> GameServerEndpoint {
        GameServerEndpoint {
            id: self.id.clone(),
            api_url: self.api_url(),
            api_key: SecretString::from(self.api_key.clone()),
        }
    }

    /// Number of games the server holds.
    pub fn game_count(&self) -> usize {
        self.server.game_count()
    }

    /// Graceful stop: closes every player socket (1001 going away, no events), stops taking
    /// requests, lets in-flight ones finish, writes the events already queued, and returns.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        tracing::info!(server = %self.id, "reference game server shutting down");
        self.server.close_all();
        let _ = self.stop.send(true);
        let mut result = Ok(());
        if let Some(http) = self.http.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, http).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(err))) => result = Err(anyhow::Error::new(err).context("HTTP server")),
                Ok(Err(join)) => result = Err(anyhow::anyhow!("HTTP server task failed: {join}")),
                Err(_) => tracing::warn!("HTTP connections still open after the grace period"),
            }
        }
        if let Some(writer) = self.writer.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, writer).await.is_err()
        {
            tracing::warn!("queued events not written within the grace period");
        }
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        result
    }
}

impl Drop for RunningGameServer {
    fn drop(&mut self) {
        // Dropped without shutdown(): stop the tasks rather than leak a listening server.
        if self.http.is_some() {
            self.server.close_all();
            let _ = self.stop.send(true);
        }
    }
}
