//! Building the daemon from its settings and running it until a shutdown signal.
//!
//! [`Daemon::build`] connects to Redis (lazily: the daemon starts, and keeps running, while
//! Redis is down), publishes the registered game servers, binds the admin listener (every
//! process, whatever its roles) and the API listener, exports every counter at zero and
//! prepares the selected roles; [`Daemon::run_until`] runs them until the given future completes
//! (`main` passes SIGTERM/SIGINT, tests a channel), then shuts down in order:
//!
//! 1. the consumer stops reading, finishes and acknowledges the batch in flight;
//! 2. the curator stops between games and releases its lease;
//! 3. the HTTP servers (lobby API and admin listener) stop accepting and drain in-flight
//!    requests (and the registry's health checks stop);
//! 4. the instance heartbeat is removed and the gauge refresher stops.
//!
//! Whatever the roles, every process also refreshes the gauges of the shared state
//! ([`crate::gauges`]: consumer lag, pending entries, watermark age, games per set).
//!
//! All of this must finish within `http.shutdown_grace_secs`; otherwise the remaining tasks
//! are abandoned and [`StartupError::ShutdownTimedOut`] is returned.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mm_common::gameserver::GameServerClient;
use mm_common::store::{Store, StoreError};
use mm_common::time::now_ms;
use mm_common::{ProductId, ServerId};
use mm_config::Settings;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminContext};
use crate::api::{self, ApiContext};
use crate::cli::{Role, Roles};
use crate::consumer::{Consumer, ConsumerOptions};
use crate::curator::{
    Curator, CuratorOptions, EndpointLookup, ReconcileOptions, Reconciler, RegisteredServers,
    stuck_ending_bound,
};
use crate::gauges;
use crate::http_server::ConnectionLimits;
use crate::instance::{InstanceIdentity, InstanceInfo, run_heartbeat};
use crate::registry::Registry;
use crate::telemetry;

/// A failure to start or to stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// No role selected.
    #[error("no role selected: pass --roles with at least one of api, worker, curator")]
    NoRoles,
    /// The Redis URL (or cluster nodes) or options are unusable.
    #[error("{key}: {source}")]
    Redis {
        /// The setting: `redis.url` or `redis.cluster_nodes`.
        key: &'static str,
        /// Why.
        source: StoreError,
    },
    /// The Redis reached is a cluster node while `redis.url` is set, or a single Redis while
    /// `redis.cluster_nodes` is (the message names the setting to change).
    #[error("{0}")]
    RedisMode(String),
    /// The API address could not be bound.
    #[error("http.bind: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The admin address could not be bound.
    #[error("http.admin_bind: cannot listen on {addr}: {source}")]
    AdminBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A part of the daemon could not be set up.
    #[error("{0}")]
    Setup(String),
    /// A role's task ended by itself (a bug: roles run until shutdown).
    #[error("the {0} role stopped unexpectedly")]
    RoleFailed(&'static str),
    /// Shutdown took longer than `http.shutdown_grace_secs`.
    #[error("shutdown did not finish within {0:?}; remaining tasks were abandoned")]
    ShutdownTimedOut(Duration),
}

/// How to run the daemon, beyond its settings.
#[derive(Debug)]
pub struct DaemonOptions {
    /// Roles to run.
    pub roles: Roles,
    /// Instance suffix (see [`crate::instance`]).
    pub instance: String,
    /// A listener for the API instead of binding `http.bind` (tests pass one on port 0).
    pub api_listener: Option<TcpListener>,
    /// A listener for the admin routes instead of binding `http.admin_bind`.
    pub admin_listener: Option<TcpListener>,
}

impl DaemonOptions {
    /// Every role, instance `1`, listener from the settings.
    pub fn new(roles: Roles) -> Self {
        Self {
            roles,
            instance: "1".into(),
            api_listener: None,
            admin_listener: None,
        }
    }
}

/// A built daemon, ready to run.
pub struct Daemon {
    settings: Arc<Settings>,
    roles: Roles,
    identity: InstanceIdentity,
    shared: Shared,
    products: Vec<ProductId>,
    api: Option<ApiRole>,
    admin: AdminServer,
    /// Whether the start-up mode check got an answer (false: Redis was down).
    mode_checked: bool,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("roles", &self.roles)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Stops start-up when the Redis reached is not in the mode the settings name (a cluster node
/// behind `redis.url`, or a single Redis behind `redis.cluster_nodes`). Redis being down is
/// not an error here (the daemon starts and waits for it): the answer is then `false` (not
/// checked yet), and [`watch_redis_mode`] checks once Redis answers.
async fn check_redis_mode(store: &Store) -> Result<bool, StartupError> {
    match store.check_mode().await {
        Ok(()) => Ok(true),
        Err(StoreError::Misconfigured(message)) => Err(StartupError::RedisMode(message)),
        Err(err) => {
            tracing::warn!(
                %err,
                "could not check whether Redis is a cluster node (is it up?); starting anyway \
                 and checking once it answers"
            );
            Ok(false)
        }
    }
}

/// The start-up mode check of a daemon that started while Redis was down, repeated with a
/// backoff until Redis answers: `Some(message)` when it turns out not to be in the mode the
/// settings name (the daemon then shuts down with that message, as at start-up), `None` when
/// it is.
async fn watch_redis_mode(store: Store) -> Option<String> {
    let mut delay = Duration::from_millis(200);
    loop {
        tokio::time::sleep(delay).await;
        match store.check_mode().await {
            Ok(()) => {
                tracing::info!("Redis answers and is in the mode configured");
                return None;
            }
            Err(StoreError::Misconfigured(message)) => return Some(message),
            Err(_) => delay = (delay * 2).min(Duration::from_secs(5)),
        }
    }
}

impl Daemon {
    /// Prepares the daemon: Redis client, API listener, role state. Fails on unusable
    /// settings or an address that cannot be bound; Redis being down is not an error.
    pub async fn build(settings: Settings, options: DaemonOptions) -> Result<Daemon, StartupError> {
        if options.roles.is_empty() {
            return Err(StartupError::NoRoles);
        }
        let identity =
            InstanceIdentity::resolve(settings.consumer.name.as_deref(), &options.instance);
        // Every metric recorded from here on goes to the Prometheus recorder.
        let metrics = telemetry::prometheus();
        let store = Store::connect_lazy(settings.store_options()).map_err(|source| {
            StartupError::Redis {
                key: settings.redis.target_key(),
                source,
            }
        })?;
        let mode_checked = check_redis_mode(&store).await?;
        let registry = Registry::from_settings(&settings.game_servers)
            .map_err(|err| StartupError::Setup(err.to_string()))?;
        let client = GameServerClient::new(settings.game_server_client.client_options())
            .map_err(|err| StartupError::Setup(format!("game-server client: {err}")))?;
        let shared = Shared {
            store,
            registry,
            client,
        };
        let mut products: Vec<ProductId> = settings
            .game_servers
            .iter()
            .map(|s| s.product.clone())
            .collect();
        products.sort();
        products.dedup();
        let servers: Vec<ServerId> = settings.game_servers.iter().map(|s| s.id.clone()).collect();
        telemetry::register_known_series(&products, &servers);
        let settings = Arc::new(settings);
        let admin_listener = match options.admin_listener {
            Some(listener) => listener,
            None => TcpListener::bind(settings.http.admin_bind)
                .await
                .map_err(|source| StartupError::AdminBind {
                    addr: settings.http.admin_bind,
                    source,
                })?,
        };
        let admin = AdminServer {
            listener: admin_listener,
            router: admin::router(AdminContext::new(
                shared.store.clone(),
                metrics,
                options.roles.to_string(),
                settings.lobby.max_capacity,
                settings.lobby.max_labels,
            )),
            limits: ConnectionLimits::from_settings(&settings.http),
        };
        let api = if options.roles.has(Role::Api) {
            let listener = match options.api_listener {
                Some(listener) => listener,
                None => TcpListener::bind(settings.http.bind)
                    .await
                    .map_err(|source| StartupError::Bind {
                        addr: settings.http.bind,
                        source,
                    })?,
            };
            Some(ApiRole::prepare(&settings, &shared, listener)?)
        } else {
            None
        };
        Ok(Daemon {
            settings,
            roles: options.roles,
            identity,
            shared,
            products,
            api,
            admin,
            mode_checked,
        })
    }

    /// This instance's identity (its consumer name).
    pub fn identity(&self) -> &InstanceIdentity {
        &self.identity
    }

    /// Where the API listens, when the api role runs.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(ApiRole::local_addr)
    }

    /// Where the admin listener (`/metrics`, `/healthz`, `/readyz`) listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// The game-server registry the daemon places games with (shared state: clones see the
    /// same health).
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The store the daemon uses.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Runs every selected role until `shutdown` completes, then stops them in order within
    /// `http.shutdown_grace_secs`.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), StartupError> {
        let Daemon {
            settings,
            roles,
            identity,
            shared,
            products,
            api,
            admin,
            mode_checked,
        } = self;
        let store = shared.store.clone();
        let mode_watch = if mode_checked {
            None
        } else {
            Some(tokio::spawn(watch_redis_mode(store.clone())))
        };
        // The registry's servers and products, for the console and for consumers elsewhere;
        // retried in the background while Redis is unreachable.
        let publisher = {
            let (registry, store) = (shared.registry.clone(), store.clone());
            tokio::spawn(async move {
                let mut delay = Duration::from_millis(200);
                while let Err(err) = registry.publish(&store).await {
                    tracing::warn!(%err, "could not publish the game-server registry; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            })
        };
        tracing::info!(
            instance = %identity.name, %roles, redis = %settings.redis.target_for_messages(),
            source = %settings.source_description(), "matchmakerd starting"
        );
        if settings.header_auth_in_production() {
            tracing::warn!(
                "auth.mode = \"header\" in production (auth.allow_header_auth_in_production = \
                 true): any client can act as any player by sending X-Player-Id"
            );
        }
        let stop_workers = CancellationToken::new();
        let stop_http = CancellationToken::new();
        let stop_heartbeat = CancellationToken::new();
        let mut workers: JoinSet<&'static str> = JoinSet::new();

        if roles.has(Role::Worker) {
            let mut options =
                ConsumerOptions::from_settings(&settings.consumer, identity.name.clone());
            options.retain = settings.events.retain();
            let consumer = Consumer::new(store.clone(), options, products.clone());
            let token = stop_workers.clone();
            workers.spawn(async move {
                consumer.run(token).await;
                "worker"
            });
        }
        if roles.has(Role::Curator) {
            let registry = shared.registry.clone();
            let lookup: EndpointLookup = Arc::new(move |id: &ServerId| registry.endpoint(id));
            let servers = RegisteredServers::new(shared.client.clone(), lookup);
            let curator = Curator::new(
                store.clone(),
                servers,
                CuratorOptions {
                    stuck_ending_after: stuck_ending_bound(&settings.game_server_client),
                    ..CuratorOptions::from_settings(&settings.curation, identity.name.clone())
                },
                products.clone(),
            )
            .with_reconciler(Reconciler::new(
                store.clone(),
                shared.registry.clone(),
                shared.client.clone(),
                ReconcileOptions::from_settings(&settings.curation),
            ));
            let token = stop_workers.clone();
            workers.spawn(async move {
                curator.run(token).await;
                "curator"
            });
        }
        let mut http = JoinSet::new();
        {
            let token = stop_http.clone();
            http.spawn(async move {
                admin.serve(token).await;
                "admin"
            });
        }
        if let Some(api) = api {
            let token = stop_http.clone();
            http.spawn(async move {
                api.serve(token).await;
                "api"
            });
        }
        // Histogram samples are folded into buckets here, scraped or not.
        let upkeep = tokio::spawn(telemetry::run_upkeep(
            telemetry::prometheus(),
            stop_heartbeat.clone(),
        ));
        // The shared state's gauges (lag, pending, watermark age, games), whatever the roles.
        let gauges = tokio::spawn(gauges::run(
            store.clone(),
            products.clone(),
            gauges::REFRESH_INTERVAL,
            stop_heartbeat.clone(),
        ));
        let heartbeat = tokio::spawn(run_heartbeat(
            store.clone(),
            InstanceInfo {
                identity: identity.clone(),
                roles: roles.to_string(),
                started_at_ms: now_ms(),
            },
            stop_heartbeat.clone(),
        ));

        // Run until the signal, or until a role stops by itself (a bug: shut the rest down).
        let mut failure = None;
        tokio::pin!(shutdown);
        let stop_mode_watch = mode_watch.as_ref().map(JoinHandle::abort_handle);
        let wrong_mode = async {
            match mode_watch {
                Some(watch) => match watch.await {
                    Ok(Some(message)) => message,
                    _ => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => tracing::info!("shutdown requested"),
            message = wrong_mode => {
                tracing::error!(%message, "Redis is not in the mode configured; shutting down");
                failure = Some(StartupError::RedisMode(message));
            }
            Some(done) = workers.join_next() => {
                let role = done.unwrap_or("a background");
                tracing::error!(role, "a role stopped unexpectedly; shutting down");
                failure = Some(StartupError::RoleFailed(role));
            }
            Some(done) = http.join_next() => {
                let role = done.unwrap_or("api");
                tracing::error!(role, "the HTTP server stopped unexpectedly; shutting down");
                failure = Some(StartupError::RoleFailed(role));
            }
        }
        if let Some(watch) = stop_mode_watch {
            watch.abort();
        }

        let grace = settings.http.shutdown_grace();
        let orderly = async {
            stop_workers.cancel();
            while workers.join_next().await.is_some() {}
            stop_http.cancel();
            while http.join_next().await.is_some() {}
            stop_heartbeat.cancel();
            let _ = heartbeat.await;
            let _ = gauges.await;
            let _ = upkeep.await;
            publisher.abort();
        };
        if tokio::time::timeout(grace, orderly).await.is_err() {
            tracing::error!(
                ?grace,
                "shutdown took too long; abandoning the remaining tasks"
            );
            return Err(StartupError::ShutdownTimedOut(grace));
        }
        tracing::info!(instance = %identity.name, "matchmakerd stopped");
        failure.map_or(Ok(()), Err)
    }
}

/// The API role: the lobby router over the shared store, registry and game-server client,
/// served on its listener, plus the registry's health checks.
struct ApiRole {
    listener: TcpListener,
    router: axum::Router,
    view: Arc<api::open_games::OpenGames>,
    store: Store,
    products: Vec<ProductId>,
    view_block: Duration,
    registry: Registry,
    client: GameServerClient,
    health_interval: Duration,
    limits: ConnectionLimits,
}

impl ApiRole {
    fn prepare(
        settings: &Settings,
        shared: &Shared,
        listener: TcpListener,
    ) -> Result<ApiRole, StartupError> {
        let context = ApiContext::new(
            settings,
            shared.store.clone(),
            shared.registry.clone(),
            shared.client.clone(),
            telemetry::prometheus(),
        )
        .map_err(|err| StartupError::Setup(err.to_string()))?;
        let mut products: Vec<ProductId> = settings
            .game_servers
            .iter()
            .map(|server| server.product.clone())
            .collect();
        products.sort();
        products.dedup();
        Ok(ApiRole {
            listener,
            view: context.open_games().clone(),
            store: shared.store.clone(),
            products,
            view_block: settings.lobby.view_block(),
            router: api::router(context),
            registry: shared.registry.clone(),
            client: shared.client.clone(),
            health_interval: settings.game_server_client.health_interval(),
            limits: ConnectionLimits::from_settings(&settings.http),
        })
    }

    fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown`, then drains in-flight requests.
    async fn serve(self, shutdown: CancellationToken) {
        let health = self.registry.spawn_health_checks(
            self.client.clone(),
            self.health_interval,
            shutdown.clone(),
        );
        let view = tokio::spawn(self.view.clone().run(
            self.store.clone(),
            self.products.clone(),
            self.view_block,
            shutdown.clone(),
        ));
        let addr = self.local_addr();
        tracing::info!(%addr, "lobby API listening");
        if let Err(err) = api::serve(
            self.listener,
            self.router,
            self.limits,
            shutdown.cancelled_owned(),
        )
        .await
        {
            tracing::error!(%err, "the lobby API server failed");
        }
        let _ = health.await;
        let _ = view.await;
    }
}

/// The admin listener and its router (`crate::admin`), run in every process.
struct AdminServer {
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
}

impl AdminServer {
    fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown`, then drains in-flight requests.
    async fn serve(self, shutdown: CancellationToken) {
        let addr = self.local_addr();
        // Tests read this line to find a daemon's admin port (`http.admin_bind` port 0).
        tracing::info!(%addr, "admin listener listening");
        if let Err(err) = api::serve(
            self.listener,
            self.router,
            self.limits,
            shutdown.cancelled_owned(),
        )
        .await
        {
            tracing::error!(%err, "the admin listener failed");
        }
    }
}

/// What every role shares: one store, one registry, one game-server client (so the circuit
/// breakers see every call to a server).
struct Shared {
    store: Store,
    registry: Registry,
    client: GameServerClient,
}
