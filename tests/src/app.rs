//! [`TestApp`]: the lobby API running in-process against real parts, for end-to-end tests.
//!
//! One [`TestApp::spawn`] starts a private `redis-server`, N reference game servers
//! (in-process, short timers) registered for their products, and the `matchmakerd` API router
//! on `127.0.0.1:0`, with settings in `test` mode built in code (no files). Tests talk to it
//! over real HTTP ([`TestApp::create_game`], [`TestApp::join`], …) and connect real WebSocket
//! players ([`TestApp::connect`]).
//!
//! # Temporary stand-ins
//!
//! The real event consumer and curator are written on another branch. Until they are merged,
//! two clearly separated tasks here stand in for them, and are the only code to replace:
//! - [`EventPump`]: reads every product stream through the consumer group and applies each
//!   entry with `Store::apply_entry` (which applies and acknowledges atomically).
//! - the reservation sweep ([`spawn_reservation_sweep`]): calls
//!   `Store::release_expired_reservations` every 100 ms.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use matchmakerd::api::{self, ApiContext};
use matchmakerd::registry::Registry;
use matchmakerd::telemetry;
use mm_common::gameserver::{ClientOptions, GameServerClient};
use mm_common::keys::CONSUMER_GROUP;
use mm_common::store::{Store, StoreOptions};
use mm_common::{ProductId, ServerId};
use mm_config::{AuthMode, GameServerSettings, SecretString, Settings};
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::gameserver::{self, GameServerConfig, RunningGameServer};
use crate::invariants::{self, Census};
use crate::redis_server::RedisServer;

/// The API key every test game server expects.
pub const TEST_API_KEY: &str = "test-api-key-0123456789";
/// The key prefix of every test app.
pub const TEST_PREFIX: &str = "mm";

/// One reference game server to start.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Its id.
    pub id: String,
    /// The product it hosts.
    pub product: String,
    /// Its region.
    pub region: Option<String>,
    /// Games it accepts (registry and server).
    pub max_games: u32,
}

impl ServerSpec {
    /// A server `id` of `product` for 100 games, no region.
    pub fn new(id: &str, product: &str) -> ServerSpec {
        ServerSpec {
            id: id.to_string(),
            product: product.to_string(),
            region: None,
            max_games: 100,
        }
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct TestAppOptions {
    /// Game servers (default: `gs-1` and `gs-2` for product `chess`).
    pub servers: Vec<ServerSpec>,
    /// `header` (default) or `jwt`.
    pub auth_mode: AuthMode,
    /// Secret for `jwt` mode.
    pub jwt_secret: Option<String>,
    /// `lobby.reservation_ttl_secs` (default 30).
    pub reservation_ttl_secs: u64,
    /// `lobby.max_capacity` (default 16).
    pub max_capacity: u32,
    /// `http.body_limit_bytes` (default 65536).
    pub body_limit_bytes: usize,
    /// `http.request_timeout_secs` (default 10).
    pub request_timeout_secs: u64,
    /// Reference servers: time from full to `game_started` (default 200 ms).
    pub start_delay: Duration,
    /// Reference servers: time from start to `game_ended` (default 500 ms).
    pub play_time: Duration,
    /// How often the registry checks server health (default 200 ms).
    pub health_interval: Duration,
    /// Run the temporary [`EventPump`] (default true).
    pub event_pump: bool,
    /// Port of the API on 127.0.0.1 (default 0: any free port).
    pub api_port: u16,
}

impl Default for TestAppOptions {
    fn default() -> Self {
        TestAppOptions {
            servers: vec![
                ServerSpec::new("gs-1", "chess"),
                ServerSpec::new("gs-2", "chess"),
            ],
            auth_mode: AuthMode::Header,
            jwt_secret: None,
            reservation_ttl_secs: 30,
            max_capacity: 16,
            body_limit_bytes: 65536,
            request_timeout_secs: 10,
            start_delay: Duration::from_millis(200),
            play_time: Duration::from_millis(500),
            health_interval: Duration::from_millis(200),
            event_pump: true,
            api_port: 0,
        }
    }
}

/// An HTTP answer of the API: status, headers and the body parsed as JSON (`Null` if empty or
/// not JSON; the raw text is kept).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON.
    pub body: Value,
    /// Body as text.
    pub text: String,
}

impl ApiResponse {
    /// The problem `code` of an error answer.
    pub fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    /// The `content-type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A string member of the body.
    pub fn str(&self, member: &str) -> &str {
        self.body.get(member).and_then(Value::as_str).unwrap_or("")
    }
}

/// A running lobby API with its Redis and game servers.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The API's address.
    pub addr: SocketAddr,
    /// A store on the app's Redis.
    pub store: Store,
    /// The private Redis.
    pub redis: RedisServer,
    /// The registry the API uses.
    pub registry: Registry,
    /// Plain HTTP client for requests the helpers do not cover.
    pub http: reqwest::Client,
    /// The settings the API runs with.
    pub settings: Settings,
    game_servers: Vec<Option<RunningGameServer>>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl TestApp {
    /// Starts everything; see the module docs.
    pub async fn spawn(options: TestAppOptions) -> anyhow::Result<TestApp> {
        let redis = RedisServer::start()?;
        let mut game_servers = Vec::new();
        let mut registered = Vec::new();
        for spec in &options.servers {
            let id = ServerId::new(&spec.id)?;
            let product = ProductId::new(&spec.product)?;
            let mut config =
                GameServerConfig::new(id.clone(), product.clone(), TEST_API_KEY, redis.url());
            config.key_prefix = TEST_PREFIX.to_string();
            config.max_games = spec.max_games;
            config.start_delay = options.start_delay;
            config.play_time = options.play_time;
            config.heartbeat_interval = Duration::from_millis(500);
            // A server holds a seat while its join token is unused and unexpired: keep that
            // no longer than the matchmaker's reservation, or a seat the matchmaker released
            // would still be refused by the server.
            config.token_ttl = Duration::from_secs(options.reservation_ttl_secs);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let server = gameserver::spawn(config, listener)
                .await
                .with_context(|| format!("starting game server {id}"))?;
            registered.push(GameServerSettings {
                id,
                product,
                api_url: server.api_url().to_string(),
                socket_url: String::new(),
                region: spec.region.clone(),
                max_games: spec.max_games,
                api_key: SecretString::from(TEST_API_KEY),
            });
            game_servers.push(Some(server));
        }

        let mut settings = Settings::default();
        settings.redis.url = redis.url();
        settings.redis.key_prefix = TEST_PREFIX.to_string();
        settings.auth.mode = options.auth_mode;
        settings.auth.jwt_secret = options.jwt_secret.clone().map(SecretString::from);
        settings.lobby.max_capacity = options.max_capacity;
        settings.lobby.reservation_ttl_secs = options.reservation_ttl_secs;
        settings.http.body_limit_bytes = options.body_limit_bytes;
        settings.http.request_timeout_secs = options.request_timeout_secs;
        settings.game_servers = registered;

        let mut store_options = StoreOptions::new(redis.url());
        store_options.key_prefix = TEST_PREFIX.to_string();
        store_options.command_timeout = Duration::from_millis(1000);
        store_options.connect_timeout = Duration::from_millis(1000);
        let store = Store::connect(store_options).await?;
        let registry = Registry::from_settings(&settings.game_servers)?;
        registry.publish(&store).await?;
        let client = GameServerClient::new(ClientOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            retries: 0,
            retry_backoff: Duration::from_millis(20),
            breaker_failures: 0,
            breaker_cooldown: Duration::from_secs(1),
        })?;
        registry.check_health_now(&client).await;

        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        tasks.push(registry.spawn_health_checks(
            client.clone(),
            options.health_interval,
            shutdown.clone(),
        ));
        if options.event_pump {
            let products = registry.products();
            tasks.push(EventPump::spawn(store.clone(), products, shutdown.clone()).await?);
        }
        tasks.push(spawn_reservation_sweep(
            store.clone(),
            registry.products(),
            shutdown.clone(),
        ));

        let ctx = ApiContext::new(
            &settings,
            store.clone(),
            registry.clone(),
            client,
            telemetry::prometheus(),
        )?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.api_port))
            .await
            .with_context(|| format!("binding the API to port {}", options.api_port))?;
        let addr = listener.local_addr()?;
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(err) = api::serve(listener, api::router(ctx), stop.cancelled_owned()).await {
                tracing::error!(%err, "test API server failed");
            }
        }));
        Ok(TestApp {
            base_url: format!("http://{addr}"),
            addr,
            store,
            redis,
            registry,
            http: reqwest::Client::new(),
            settings,
            game_servers,
            shutdown,
            tasks,
        })
    }

    /// An absolute URL of the API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request as `player` (the `X-Player-Id` header; `None`: no identity).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        player: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match player {
            Some(player) => builder.header("x-player-id", player),
            None => builder,
        }
    }

    /// Sends a request and collects the answer.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> ApiResponse {
        let response = builder.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("the body is readable");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        ApiResponse {
            status,
            headers,
            body,
            text,
        }
    }

    /// `POST /v1/games` as `player` with a JSON body.
    pub async fn create_game(&self, player: &str, body: Value) -> ApiResponse {
        self.send(
            self.request(Method::POST, "/v1/games", Some(player))
                .json(&body),
        )
        .await
    }

    /// `POST /v1/games` of `capacity` seats for product `chess`; panics unless 201.
    pub async fn create_chess(&self, player: &str, capacity: u32) -> ApiResponse {
        let created = self
            .create_game(
                player,
                serde_json::json!({"product": "chess", "capacity": capacity}),
            )
            .await;
        assert_eq!(created.status, 201, "create failed: {}", created.text);
        created
    }

    /// `GET /v1/games/{id}`.
    pub async fn get_game(&self, player: &str, id: &str) -> ApiResponse {
        self.send(self.request(Method::GET, &format!("/v1/games/{id}"), Some(player)))
            .await
    }

    /// `POST /v1/games/{id}/join`.
    pub async fn join(&self, player: &str, id: &str) -> ApiResponse {
        self.send(self.request(Method::POST, &format!("/v1/games/{id}/join"), Some(player)))
            .await
    }

    /// `DELETE /v1/games/{id}`.
    pub async fn cancel(&self, player: &str, id: &str) -> ApiResponse {
        self.send(self.request(Method::DELETE, &format!("/v1/games/{id}"), Some(player)))
            .await
    }

    /// `GET /v1/games?<query>`.
    pub async fn list(&self, player: &str, query: &str) -> ApiResponse {
        self.send(self.request(Method::GET, &format!("/v1/games?{query}"), Some(player)))
            .await
    }

    /// The ids of the open games of `product` (first page of 100).
    pub async fn open_ids(&self, product: &str) -> Vec<String> {
        let page = self
            .list("lister", &format!("product={product}&limit=100"))
            .await;
        assert_eq!(page.status, 200, "list failed: {}", page.text);
        page.body["games"]
            .as_array()
            .expect("games is an array")
            .iter()
            .map(|g| g["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The state of a game as the API reports it (`None` if 404).
    pub async fn state_of(&self, id: &str) -> Option<String> {
        let game = self.get_game("observer", id).await;
        (game.status == 200).then(|| game.str("state").to_string())
    }

    /// Connects a WebSocket player with the `join` member of a create/join answer.
    pub async fn connect(&self, answer: &ApiResponse) -> anyhow::Result<WsPlayer> {
        let socket_url = answer.body["join"]["socket_url"]
            .as_str()
            .context("answer has no join.socket_url")?;
        let token = answer.body["join"]["token"]
            .as_str()
            .context("answer has no join.token")?;
        WsPlayer::connect(socket_url, token).await
    }

    /// The reference game server at `index` of the options' list (`None` once stopped).
    pub fn game_server(&self, index: usize) -> Option<&RunningGameServer> {
        self.game_servers.get(index).and_then(Option::as_ref)
    }

    /// Stops the game server at `index` (graceful; its port then refuses connections).
    pub async fn stop_game_server(&mut self, index: usize) -> anyhow::Result<()> {
        if let Some(server) = self.game_servers.get_mut(index).and_then(Option::take) {
            server.shutdown().await?;
        }
        Ok(())
    }

    /// Runs the invariant checker over every product now.
    pub async fn check_invariants(&self) -> anyhow::Result<Census> {
        let mut conn = self.redis.connection().await;
        invariants::check_all(
            &mut conn,
            TEST_PREFIX,
            &self.registry.products(),
            mm_common::time::now_ms(),
        )
        .await
    }

    /// Stops the API and the background tasks (the API finishes in-flight requests first).
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        for server in self.game_servers.iter_mut().filter_map(Option::take) {
            let _ = server.shutdown().await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// TEMPORARY stand-in for the real event consumer (branch `worker`): reads every product
/// stream through the consumer group and applies each entry with `Store::apply_entry`.
/// Replace this, and only this, with the real consumer once it is merged.
#[derive(Debug)]
pub struct EventPump;

impl EventPump {
    /// Creates the consumer groups and starts the pump.
    pub async fn spawn(
        store: Store,
        products: Vec<ProductId>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<JoinHandle<()>> {
        let mut conn = store.connection();
        let streams: Vec<String> = products
            .iter()
            .map(|p| store.keys().product(p).events())
            .collect();
        for stream in &streams {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(CONSUMER_GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            if let Err(err) = created
                && !err.to_string().contains("BUSYGROUP")
            {
                return Err(err.into());
            }
        }
        let block = Duration::from_millis(100);
        let mut reader = store.blocking_connection(block).await?;
        Ok(tokio::spawn(async move {
            let options = redis::streams::StreamReadOptions::default()
                .group(CONSUMER_GROUP, "testapp-event-pump")
                .count(100)
                .block(block.as_millis() as usize);
            let ids: Vec<&str> = streams.iter().map(|_| ">").collect();
            while !shutdown.is_cancelled() {
                let reply: redis::RedisResult<redis::streams::StreamReadReply> = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    reply = reader.xread_options(&streams, &ids, &options) => reply,
                };
                let reply = match reply {
                    Ok(reply) => reply,
                    Err(err) => {
                        tracing::warn!(%err, "event pump: read failed");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        }
                    }
                };
                for key in reply.keys {
                    let Some(product) = products
                        .iter()
                        .find(|p| store.keys().product(p).events() == key.key)
                    else {
                        continue;
                    };
                    for entry in key.ids {
                        let fields: Vec<(String, String)> = entry
                            .map
                            .iter()
                            .filter_map(|(k, v)| {
                                redis::from_redis_value_ref::<String>(v)
                                    .ok()
                                    .map(|v| (k.clone(), v))
                            })
                            .collect();
                        if let Err(err) = store
                            .apply_entry(product, &entry.id, &fields, mm_common::time::now_ms())
                            .await
                        {
                            tracing::warn!(%err, entry = %entry.id, "event pump: apply failed");
                        }
                    }
                }
            }
        }))
    }
}

/// TEMPORARY stand-in for the curator's reservation sweep (branch `worker`): releases
/// expired seat reservations of every product every 100 ms.
pub fn spawn_reservation_sweep(
    store: Store,
    products: Vec<ProductId>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    for product in &products {
                        if let Err(err) = store
                            .release_expired_reservations(product, mm_common::time::now_ms(), 1000)
                            .await
                        {
                            tracing::warn!(%err, "reservation sweep failed");
                        }
                    }
                }
            }
        }
    })
}

/// A player connected to a game's WebSocket.
pub struct WsPlayer {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl std::fmt::Debug for WsPlayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsPlayer")
    }
}

impl WsPlayer {
    /// Connects to `socket_url?token=<token>`.
    pub async fn connect(socket_url: &str, token: &str) -> anyhow::Result<WsPlayer> {
        let separator = if socket_url.contains('?') { '&' } else { '?' };
        let url = format!("{socket_url}{separator}token={token}");
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .with_context(|| format!("connecting to {socket_url}"))?;
        Ok(WsPlayer { socket })
    }

    /// The next text message (JSON), or `None` when the socket closed.
    pub async fn next_message(&mut self) -> Option<Value> {
        while let Some(message) = self.socket.next().await {
            match message.ok()? {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
        None
    }

    /// Leaves the game (`{"type":"leave"}`) and closes the socket.
    pub async fn leave(mut self) {
        let _ = self
            .socket
            .send(Message::Text(r#"{"type":"leave"}"#.into()))
            .await;
        let _ = self.socket.close(None).await;
    }
}

/// The products' keys and JSON helpers some tests need.
pub async fn redis_keys(app: &TestApp, pattern: &str) -> Vec<String> {
    let mut conn = app.redis.connection().await;
    let mut keys: Vec<String> = conn.keys(pattern).await.unwrap_or_default();
    keys.sort();
    keys
}
