//! A misbehaving game server, for tests of the client's timeouts, retries and breaker.
//!
//! This is the only fake in the test kit: everything else runs the real reference server.
//! Each route of the game-server API can be told to answer normally, answer a fixed status,
//! answer late, or drop the connection without answering; a behaviour can be the route's
//! default ([`FakeGameServer::set`]) or queued for the next calls ([`FakeGameServer::push`]).
//! Calls are counted per route, dropped ones included. Every answer carries
//! `Connection: close`, so each call arrives on a fresh connection.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use mm_common::ServerId;
use mm_common::gameserver::{GameServerEndpoint, SecretString};
use reqwest::Url;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The API key the fake accepts (it does not check it; the endpoint carries it).
pub const FAKE_API_KEY: &str = "fake-api-key";

/// A route of the game-server API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /games`.
    CreateGame,
    /// `POST /games/{id}/players`.
    AddPlayer,
    /// `DELETE /games/{id}`.
    DeleteGame,
    /// `GET /health`.
    Health,
}

impl Route {
    fn of(method: &str, path: &str) -> Option<Route> {
        let segments: Vec<&str> = path
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_matches('/')
            .split('/')
            .collect();
        match (method, segments.as_slice()) {
            ("POST", ["games"]) => Some(Route::CreateGame),
            ("POST", ["games", _, "players"]) => Some(Route::AddPlayer),
            ("DELETE", ["games", _]) => Some(Route::DeleteGame),
            ("GET", ["health"]) => Some(Route::Health),
            _ => None,
        }
    }
}

/// How the fake answers a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A valid answer as the contract describes it.
    Normal,
    /// This status with a JSON `{error}` body.
    Status(u16),
    /// A valid answer after this delay.
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
}

#[derive(Debug, Default)]
struct RouteState {
    default: Option<Behaviour>,
    queued: VecDeque<Behaviour>,
    calls: usize,
}

#[derive(Debug, Default)]
struct Shared {
    routes: Mutex<HashMap<Route, RouteState>>,
}

impl Shared {
    fn routes(&self) -> MutexGuard<'_, HashMap<Route, RouteState>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a call and takes the behaviour for it.
    fn take(&self, route: Route) -> Behaviour {
        let mut routes = self.routes();
        let state = routes.entry(route).or_default();
        state.calls += 1;
        state
            .queued
            .pop_front()
            .or(state.default)
            .unwrap_or(Behaviour::Normal)
    }

    /// Whether the next call of `route` is to be dropped; if so, counts and consumes it.
    fn take_if_drop(&self, route: Route) -> bool {
        let mut routes = self.routes();
        let state = routes.entry(route).or_default();
        let next = state.queued.front().copied().or(state.default);
        if next == Some(Behaviour::Drop) {
            state.queued.pop_front();
            state.calls += 1;
            true
        } else {
            false
        }
    }
}

/// A running fake game server.
#[derive(Debug)]
pub struct FakeGameServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeGameServer {
    /// Starts the fake on `127.0.0.1:0`; every route answers normally until told otherwise.
    pub async fn start() -> anyhow::Result<FakeGameServer> {
        let tcp = TcpListener::bind("127.0.0.1:0").await?;
        let addr = tcp.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel(64);
        let gate = tokio::spawn(gate(tcp, Arc::clone(&shared), tx));
        let app = Router::new()
            .route("/games", post(create_game))
            .route("/games/{id}/players", post(add_player))
            .route("/games/{id}", delete(delete_game))
            .route("/health", get(health))
            .layer(axum::middleware::map_response(close_connection))
            .with_state(Arc::clone(&shared));
        let serve = tokio::spawn(async move {
            let _ = axum::serve(GatedListener { rx, addr }, app).await;
        });
        Ok(FakeGameServer {
            addr,
            shared,
            tasks: vec![gate, serve],
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL.
    pub fn api_url(&self) -> Url {
        Url::parse(&format!("http://{}", self.addr)).expect("socket address URLs parse")
    }

    /// An endpoint for the client, with server id `id`.
    pub fn endpoint(&self, id: &str) -> GameServerEndpoint {
        GameServerEndpoint {
            id: ServerId::new(id).expect("a valid server id"),
            api_url: self.api_url(),
            api_key: SecretString::from(FAKE_API_KEY.to_string()),
        }
    }

    /// Sets how `route` answers from now on (after any queued behaviours).
    pub fn set(&self, route: Route, behaviour: Behaviour) {
        self.shared.routes().entry(route).or_default().default = Some(behaviour);
    }

    /// Queues a behaviour for the next call of `route` (queued ones are used in order).
    pub fn push(&self, route: Route, behaviour: Behaviour) {
        self.shared
            .routes()
            .entry(route)
            .or_default()
            .queued
            .push_back(behaviour);
    }

    /// How many calls `route` received (dropped ones included).
    pub fn calls(&self, route: Route) -> usize {
        self.shared.routes().get(&route).map_or(0, |s| s.calls)
    }
}

impl Drop for FakeGameServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Accepts connections, peeks at each request line and drops the connection when the route's
/// next behaviour is [`Behaviour::Drop`]; hands the others to axum.
async fn gate(tcp: TcpListener, shared: Arc<Shared>, tx: mpsc::Sender<(TcpStream, SocketAddr)>) {
    loop {
        let Ok((stream, peer)) = tcp.accept().await else {
            continue;
        };
        let (shared, tx) = (Arc::clone(&shared), tx.clone());
        tokio::spawn(async move {
            let line = tokio::time::timeout(Duration::from_secs(5), request_line(&stream)).await;
            if let Ok(Some((method, path))) = line
                && let Some(route) = Route::of(&method, &path)
                && shared.take_if_drop(route)
            {
                return; // the stream is dropped unanswered
            }
            let _ = tx.send((stream, peer)).await;
        });
    }
}

/// Peeks (without consuming) until the request line is complete; returns method and target.
async fn request_line(stream: &TcpStream) -> Option<(String, String)> {
    let mut buf = vec![0u8; 2048];
    let mut last = 0;
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let seen = &buf[..n];
        if let Some(end) = seen.windows(2).position(|w| w == b"\r\n") {
            let line = std::str::from_utf8(&seen[..end]).ok()?;
            let mut parts = line.split(' ');
            return Some((parts.next()?.to_string(), parts.next()?.to_string()));
        }
        if n == buf.len() {
            return None;
        }
        if n == last {
            // Peek returns at once while data is buffered: wait a little for more.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        last = n;
    }
}

struct GatedListener {
    rx: mpsc::Receiver<(TcpStream, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for GatedListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self.rx.recv().await {
            Some(connection) => connection,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

async fn close_connection(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn answer(shared: &Shared, route: Route, normal: fn() -> Response) -> Response {
    match shared.take(route) {
        Behaviour::Normal => normal(),
        Behaviour::Delay(delay) => {
            tokio::time::sleep(delay).await;
            normal()
        }
        Behaviour::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, axum::Json(json!({"error": "fake failure"}))).into_response()
        }
        // Reached only on a connection that was not gated (cannot happen with
        // `Connection: close`); answer something unmistakable.
        Behaviour::Drop => StatusCode::IM_A_TEAPOT.into_response(),
    }
}

fn ticket() -> axum::Json<serde_json::Value> {
    axum::Json(json!({"socket_url": "ws://fake.invalid/ws/game", "token": "fake-token"}))
}

async fn create_game(State(shared): State<Arc<Shared>>) -> Response {
    answer(&shared, Route::CreateGame, || {
        (StatusCode::CREATED, ticket()).into_response()
    })
    .await
}

async fn add_player(State(shared): State<Arc<Shared>>) -> Response {
    answer(&shared, Route::AddPlayer, || ticket().into_response()).await
}

async fn delete_game(State(shared): State<Arc<Shared>>) -> Response {
    answer(&shared, Route::DeleteGame, || {
        StatusCode::NO_CONTENT.into_response()
    })
    .await
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    answer(&shared, Route::Health, || {
        axum::Json(json!({"games": 0, "max_games": 10})).into_response()
    })
    .await
}
