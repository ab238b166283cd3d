//! [`TestApp`]: the lobby API running in-process against real parts, for end-to-end tests.
//!
//! One [`TestApp::spawn`] starts a private `redis-server`, N reference game servers
//! (in-process, short timers) registered for their products, and `matchmakerd` with its API
//! on `127.0.0.1:0`, with settings in `test` mode built in code (no files). Tests talk to it
//! over real HTTP ([`TestApp::create_game`], [`TestApp::join`], …) and connect real WebSocket
//! players ([`TestApp::connect`]).
//!
//! The daemon is the real one — [`matchmakerd::startup::Daemon`] with every role (lobby API,
//! event consumer, curator) in-process — so state changes go through the real consumer and
//! expired reservations are released by the real curator.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use matchmakerd::cli::Roles;
use matchmakerd::registry::Registry;
use matchmakerd::startup::{Daemon, DaemonOptions};
use mm_common::gameserver::{ClientOptions, GameServerClient};
use mm_common::store::Store;
use mm_common::{ProductId, ServerId};
use mm_config::{AuthMode, GameServerSettings, SecretString, Settings};
use mm_gameserver::{GameServerConfig, RunningGameServer};
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::invariants::{self, Census};
use crate::redis_cluster::RedisCluster;
use crate::redis_server::RedisServer;

/// A test cluster shared by the tests of one binary (each test uses its own products).
pub type SharedCluster = std::sync::Arc<std::sync::Mutex<RedisCluster>>;

/// The Redis a [`TestApp`] runs on: its own private `redis-server`, or a shared cluster.
#[derive(Debug)]
pub enum TestRedis {
    /// A private single Redis (the default).
    Node(RedisServer),
    /// A shared 3-master, 3-replica cluster.
    Cluster(SharedCluster),
}

/// A connection to a [`TestRedis`]: commands on a cluster are routed by key.
#[derive(Clone)]
pub enum TestConnection {
    /// To the single Redis.
    Node(redis::aio::MultiplexedConnection),
    /// To the cluster.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for TestConnection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            TestConnection::Node(conn) => conn.req_packed_command(cmd),
            TestConnection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            TestConnection::Node(conn) => conn.req_packed_commands(pipeline, offset, count),
            TestConnection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            TestConnection::Node(conn) => conn.get_db(),
            TestConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

impl TestRedis {
    /// A connection (panics if the Redis cannot be reached).
    pub async fn connection(&self) -> TestConnection {
        match self {
            TestRedis::Node(server) => TestConnection::Node(server.connection().await),
            TestRedis::Cluster(cluster) => {
                let client = cluster.lock().expect("cluster lock").client();
                TestConnection::Cluster(
                    client
                        .get_async_connection()
                        .await
                        .expect("connecting to the test cluster"),
                )
            }
        }
    }

    /// The single Redis's URL, or the cluster's node URLs joined by commas (what the
    /// reference game server takes).
    pub fn url(&self) -> String {
        match self {
            TestRedis::Node(server) => server.url(),
            TestRedis::Cluster(cluster) => cluster.lock().expect("cluster lock").joined_urls(),
        }
    }

    /// The cluster's node URLs (`redis.cluster_nodes`); empty for a single Redis.
    pub fn cluster_nodes(&self) -> Vec<String> {
        match self {
            TestRedis::Node(_) => Vec::new(),
            TestRedis::Cluster(cluster) => cluster.lock().expect("cluster lock").urls(),
        }
    }

    /// The private single Redis (panics on a cluster: for tests that kill or restart it).
    pub fn server(&mut self) -> &mut RedisServer {
        match self {
            TestRedis::Node(server) => server,
            TestRedis::Cluster(_) => panic!("this test needs a private single Redis"),
        }
    }

    /// A client of the single Redis (panics on a cluster).
    pub fn client(&self) -> redis::Client {
        match self {
            TestRedis::Node(server) => server.client(),
            TestRedis::Cluster(_) => panic!("this test needs a private single Redis"),
        }
    }

    /// Kills the single Redis (panics on a cluster).
    pub fn kill(&mut self) {
        self.server().kill();
    }

    /// Restarts the single Redis (panics on a cluster).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.server().restart()
    }
}

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
    /// How long its `POST /games` takes before the game exists (default zero; see
    /// `mm_gameserver::GameServerConfig::create_delay`).
    pub create_delay: Duration,
}

impl ServerSpec {
    /// A server `id` of `product` for 100 games, no region.
    pub fn new(id: &str, product: &str) -> ServerSpec {
        ServerSpec {
            id: id.to_string(),
            product: product.to_string(),
            region: None,
            max_games: 100,
            create_delay: Duration::ZERO,
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
    /// How often the registry checks server health (whole seconds, at least 1; default 1 s).
    pub health_interval: Duration,
    /// The daemon's roles (default: api, worker and curator).
    pub roles: Roles,
    /// Port of the API on 127.0.0.1 (default 0: any free port).
    pub api_port: u16,
    /// Changes the daemon's settings last, after the kit's own (default: none).
    pub adjust_settings: Option<fn(&mut Settings)>,
    /// Run on this shared cluster instead of a private single Redis (default: `None`). Tests
    /// sharing a cluster must use products of their own, or key prefixes of their own.
    pub cluster: Option<SharedCluster>,
    /// `redis.key_prefix` of the daemon, its game servers and the store (default
    /// [`TEST_PREFIX`]): apps sharing one Redis with prefixes of their own share nothing, not
    /// even the curation lease.
    pub key_prefix: String,
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
            health_interval: Duration::from_secs(1),
            roles: Roles::all(),
            api_port: 0,
            adjust_settings: None,
            cluster: None,
            key_prefix: TEST_PREFIX.to_string(),
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
    /// The admin listener's address (`/metrics`, `/healthz`, `/readyz`).
    pub admin_addr: SocketAddr,
    /// A store on the app's Redis.
    pub store: Store,
    /// The Redis: a private single one, or the shared cluster of `TestAppOptions::cluster`.
    pub redis: TestRedis,
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
        let redis = match &options.cluster {
            Some(cluster) => TestRedis::Cluster(cluster.clone()),
            None => TestRedis::Node(RedisServer::start()?),
        };
        let mut game_servers = Vec::new();
        let mut registered = Vec::new();
        for spec in &options.servers {
            let id = ServerId::new(&spec.id)?;
            let product = ProductId::new(&spec.product)?;
            let mut config =
                GameServerConfig::new(id.clone(), product.clone(), TEST_API_KEY, redis.url());
            config.key_prefix = options.key_prefix.clone();
            config.max_games = spec.max_games;
            config.start_delay = options.start_delay;
            config.play_time = options.play_time;
            config.heartbeat_interval = Duration::from_millis(500);
            // A server holds a seat while its join token is unused and unexpired: keep that
            // no longer than the matchmaker's reservation, or a seat the matchmaker released
            // would still be refused by the server.
            config.token_ttl = Duration::from_secs(options.reservation_ttl_secs);
            config.create_delay = spec.create_delay;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let server = mm_gameserver::spawn(config, listener)
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
        settings.redis.url = match &redis {
            TestRedis::Node(server) => server.url(),
            TestRedis::Cluster(_) => Settings::default().redis.url,
        };
        settings.redis.cluster_nodes = redis.cluster_nodes();
        settings.redis.key_prefix = options.key_prefix.clone();
        settings.auth.mode = options.auth_mode;
        settings.auth.jwt_secret = options.jwt_secret.clone().map(SecretString::from);
        settings.lobby.max_capacity = options.max_capacity;
        settings.lobby.reservation_ttl_secs = options.reservation_ttl_secs;
        settings.http.body_limit_bytes = options.body_limit_bytes;
        settings.http.request_timeout_secs = options.request_timeout_secs;
        settings.game_servers = registered;
        settings.consumer.block_ms = 100;
        settings.curation.interval_secs = 1;
        settings.http.shutdown_grace_secs = 5;
        // No per-player limits unless a test turns them on (`adjust_settings`).
        settings.limits = mm_config::LimitsSettings::disabled();
        // A free admin port per app (tests run many in parallel); the lobby port serves
        // /metrics too, as in test mode.
        settings.http.admin_bind = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.http.public_metrics = true;
        // The lobby port serves /openapi.json too, as in test mode (Schemathesis reads it).
        settings.http.public_openapi = true;
        settings.game_server_client.connect_timeout_ms = 500;
        settings.game_server_client.request_timeout_ms = 2000;
        settings.game_server_client.retries = 0;
        settings.game_server_client.breaker_failures = 0;
        settings.game_server_client.health_interval_secs = options.health_interval.as_secs().max(1);
        if let Some(adjust) = options.adjust_settings {
            adjust(&mut settings);
        }

        let mut store_options = settings.store_options();
        store_options.key_prefix = options.key_prefix.clone();
        store_options.command_timeout = Duration::from_millis(1000);
        store_options.connect_timeout = Duration::from_millis(1000);
        let store = Store::connect(store_options).await?;
        // Published by the daemon too, in the background; done here first so that the
        // products exist in Redis before any test looks.
        Registry::from_settings(&settings.game_servers)?
            .publish(&store)
            .await?;
        let client = GameServerClient::new(ClientOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            retries: 0,
            retry_backoff: Duration::from_millis(20),
            breaker_failures: 0,
            breaker_cooldown: Duration::from_secs(1),
        })?;

        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.api_port))
            .await
            .with_context(|| format!("binding the API to port {}", options.api_port))?;
        let mut daemon_options = DaemonOptions::new(options.roles.clone());
        daemon_options.instance = "testapp".into();
        daemon_options.api_listener = Some(listener);
        let daemon = Daemon::build(settings.clone(), daemon_options)
            .await
            .context("building the in-process matchmakerd")?;
        let addr = daemon
            .api_addr()
            .context("the in-process matchmakerd runs no api role")?;
        let admin_addr = daemon.admin_addr();
        // The daemon health-checks its servers at start; check once more here so that no
        // test races the first check (servers take games only once known healthy).
        let registry = daemon.registry().clone();
        registry.check_health_now(&client).await;
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(err) = daemon.run_until(stop.cancelled_owned()).await {
                tracing::error!(%err, "in-process matchmakerd failed");
            }
        }));
        // Idle connections are dropped well before the daemon closes them
        // (`http.keepalive_idle_timeout_ms`, 5 s), so a request never races that close on a
        // reused connection (`IncompleteMessage`).
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(2))
            .build()?;
        let base_url = format!("http://{addr}");
        // Tests start once the lobby port is ready (Redis answers, the view of open games
        // has loaded), as a load balancer would send traffic.
        wait_ready(&http, &base_url).await?;
        Ok(TestApp {
            base_url,
            addr,
            admin_addr,
            store,
            redis,
            registry,
            http,
            settings,
            game_servers,
            shutdown,
            tasks,
        })
    }

    /// Starts another in-process daemon with the `api` role only, on the same Redis and
    /// settings (instance `instance`), stopped with the app; its base URL
    /// (`http://127.0.0.1:<port>`). For tests of what one instance sees of another's writes.
    pub async fn spawn_api_instance(&mut self, instance: &str) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let mut daemon_options = DaemonOptions::new(Roles::of([matchmakerd::cli::Role::Api]));
        daemon_options.instance = instance.into();
        daemon_options.api_listener = Some(listener);
        let daemon = Daemon::build(self.settings.clone(), daemon_options)
            .await
            .context("building a second in-process matchmakerd")?;
        let addr = daemon
            .api_addr()
            .context("the second matchmakerd runs no api role")?;
        let stop = self.shutdown.clone();
        self.tasks.push(tokio::spawn(async move {
            if let Err(err) = daemon.run_until(stop.cancelled_owned()).await {
                tracing::error!(%err, "second in-process matchmakerd failed");
            }
        }));
        let base_url = format!("http://{addr}");
        wait_ready(&self.http, &base_url).await?;
        Ok(base_url)
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

    /// `POST /v1/games` of `capacity` seats for `product`; panics unless 201.
    pub async fn create_of(&self, player: &str, product: &str, capacity: u32) -> ApiResponse {
        let created = self
            .create_game(
                player,
                serde_json::json!({"product": product, "capacity": capacity}),
            )
            .await;
        assert_eq!(created.status, 201, "create failed: {}", created.text);
        created
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

    /// `POST /v1/games/quick-join` as `player` with a JSON body.
    pub async fn quick_join(&self, player: &str, body: Value) -> ApiResponse {
        self.send(
            self.request(Method::POST, "/v1/games/quick-join", Some(player))
                .json(&body),
        )
        .await
    }

    /// `POST /v1/games/{id}/rejoin`.
    pub async fn rejoin(&self, player: &str, id: &str) -> ApiResponse {
        self.send(self.request(
            Method::POST,
            &format!("/v1/games/{id}/rejoin"),
            Some(player),
        ))
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
    ///
    /// The app's game servers keep writing events (heartbeats) while the checker reads, and
    /// its reads (sets, then hashes) are not one atomic step, so an event applied in between
    /// can make a consistent record look inconsistent; the check is therefore taken up to
    /// three times, and fails only if every attempt finds a violation (a real one persists).
    pub async fn check_invariants(&self) -> anyhow::Result<Census> {
        let mut conn = self.redis.connection().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = invariants::check_all(
                &mut conn,
                self.store.keys().prefix(),
                &self.registry.products(),
                mm_common::time::now_ms(),
            )
            .await;
            if result.is_ok() || attempt == 3 {
                return result;
            }
        }
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

/// Waits (polling, 30 s at most) until the lobby port at `base_url` answers `/readyz` with
/// 200; fails with the last answer otherwise.
async fn wait_ready(http: &reqwest::Client, base_url: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let last = match http.get(format!("{base_url}/readyz")).send().await {
            Ok(answer) if answer.status().is_success() => return Ok(()),
            Ok(answer) => format!(
                "{}: {}",
                answer.status(),
                answer.text().await.unwrap_or_default()
            ),
            Err(err) => err.to_string(),
        };
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("{base_url}/readyz was not ready within 30 s; last answer: {last}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
