//! The registry of game servers: who hosts which product, which servers are healthy, and
//! where the next game goes.
//!
//! Built once from the configuration's `[[game_servers]]` tables. A background task
//! ([`Registry::spawn_health_checks`]) asks every server for `GET /health` at an interval and
//! records whether it answered and how many games it holds. [`Registry::pick`] places a new
//! game on the least-loaded healthy server of a product (optionally of one region); load is
//! the server's last reported game count plus the games this instance placed on it since, so
//! a burst of creates between two health checks spreads over the servers instead of piling
//! onto the one that looked emptiest at the last check.
//!
//! A server whose call fails with a server fault can be taken out of rotation at once with
//! [`Registry::mark_unhealthy`]; the next successful health check brings it back.
//!
//! The registry also publishes what it knows to Redis for the operator console
//! ([`Registry::publish`]): `P:servers` (server id → JSON description, never the API key nor
//! credentials inside `api_url`) and `P:products`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mm_common::flows::{Placement, ServerDirectory, ServerPlacement};
use mm_common::gameserver::Operation;
use mm_common::store::{Store, StoreError};
use mm_common::{ProductId, ServerId};
use mm_config::GameServerSettings;
use reqwest::Url;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::telemetry;

pub use mm_common::gameserver::{GameServerClient, GameServerEndpoint, ServerHealth};

/// Why the registry could not be built from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two `[[game_servers]]` tables share an id.
    #[error("game_servers[{index}].id: server id {id:?} is registered twice")]
    DuplicateServer {
        /// Index of the second table.
        index: usize,
        /// The repeated id.
        id: String,
    },
    /// An `api_url` does not parse as an http(s) URL. The value is not repeated: it may hold
    /// credentials.
    #[error("game_servers[{index}].api_url: is not an http(s) URL: {reason}")]
    BadApiUrl {
        /// Index of the table.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Something that can ask a game server for its health: the real [`GameServerClient`], or a
/// fake in unit tests.
pub trait HealthProbe: Send + Sync + 'static {
    /// `GET /health` of `endpoint`; the error is a one-line description for logs.
    fn health(
        &self,
        endpoint: &GameServerEndpoint,
    ) -> impl Future<Output = Result<ServerHealth, String>> + Send;
}

impl HealthProbe for GameServerClient {
    async fn health(&self, endpoint: &GameServerEndpoint) -> Result<ServerHealth, String> {
        GameServerClient::health(self, endpoint)
            .await
            .map_err(|err| err.to_string())
    }
}

/// Health of one server as the registry last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not checked yet: not used for placement until a check succeeds.
    Unknown,
    /// The last check (or call) succeeded.
    Healthy,
    /// The last check failed, or a call failed with a server fault since.
    Unhealthy,
}

/// Mutable per-server state.
#[derive(Debug, Clone)]
struct Status {
    health: Health,
    /// Games the server reported at its last successful check.
    reported_games: u32,
    /// The most games the server said it accepts at its last successful check.
    reported_max: Option<u32>,
    /// Games this instance placed on the server since that check.
    placed_since_check: u32,
    /// Why it is unhealthy.
    last_error: Option<String>,
}

/// One registered server.
#[derive(Debug)]
struct Server {
    product: ProductId,
    region: Option<String>,
    socket_url: String,
    max_games: u32,
    endpoint: GameServerEndpoint,
    status: Mutex<Status>,
}

impl Server {
    /// The most games the server accepts: the configured limit, lowered by what it reports.
    fn capacity(&self, status: &Status) -> u32 {
        status
            .reported_max
            .map_or(self.max_games, |reported| reported.min(self.max_games))
    }
}

/// A placement decision of [`Registry::pick`].
#[derive(Debug, Clone)]
pub struct ServerPick {
    /// The chosen server.
    pub server_id: ServerId,
    /// How to call it.
    pub endpoint: GameServerEndpoint,
    /// Its region, recorded with the game.
    pub region: Option<String>,
    /// Its configured socket URL (may be empty: the server answers one per game).
    pub socket_url: String,
    /// Its load before this placement (games), for logs.
    pub load: u32,
    /// Its capacity (games), for logs.
    pub capacity: u32,
}

/// A server's public description as published in `P:servers`: no API key, and its URL without
/// user name, password or query (`mm_common::gameserver::public_url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerDescription {
    /// Server id.
    pub id: String,
    /// Product it hosts.
    pub product: String,
    /// Its management API base URL, without credentials.
    pub api_url: String,
    /// Where players connect (may be empty: answered per game).
    pub socket_url: String,
    /// Region, if any.
    pub region: Option<String>,
    /// Configured game limit.
    pub max_games: u32,
}

/// A snapshot of one server's state, for logs, tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSnapshot {
    /// Server id.
    pub id: ServerId,
    /// Health.
    pub health: Health,
    /// Games at the last check plus games placed since.
    pub load: u32,
    /// Effective capacity.
    pub capacity: u32,
    /// Why it is unhealthy, if it is.
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Inner {
    /// Servers by id (sorted, so iteration and tie-breaking are deterministic).
    servers: BTreeMap<ServerId, Server>,
    /// Server ids per product.
    by_product: BTreeMap<ProductId, Vec<ServerId>>,
}

/// The game-server registry. Cheap to clone: clones share state.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Registry {
    /// Builds the registry from `[[game_servers]]`. Every server starts as
    /// [`Health::Unknown`] and takes games only after its first successful health check
    /// (see [`Registry::check_health_now`]).
    pub fn from_settings(servers: &[GameServerSettings]) -> Result<Registry, RegistryError> {
        let mut by_id = BTreeMap::new();
        let mut by_product: BTreeMap<ProductId, Vec<ServerId>> = BTreeMap::new();
        for (index, settings) in servers.iter().enumerate() {
            if by_id.contains_key(&settings.id) {
                return Err(RegistryError::DuplicateServer {
                    index,
                    id: settings.id.to_string(),
                });
            }
            let bad_url = |reason: String| RegistryError::BadApiUrl { index, reason };
            let api_url = Url::parse(&settings.api_url).map_err(|err| bad_url(err.to_string()))?;
            if !matches!(api_url.scheme(), "http" | "https") {
                return Err(bad_url(format!(
                    "scheme {:?} is not http(s)",
                    api_url.scheme()
                )));
            }
            let server = Server {
                product: settings.product.clone(),
                region: settings.region.clone().filter(|r| !r.is_empty()),
                socket_url: settings.socket_url.clone(),
                max_games: settings.max_games,
                endpoint: GameServerEndpoint {
                    id: settings.id.clone(),
                    api_url,
                    api_key: settings.api_key.clone(),
                },
                status: Mutex::new(Status {
                    health: Health::Unknown,
                    reported_games: 0,
                    reported_max: None,
                    placed_since_check: 0,
                    last_error: None,
                }),
            };
            by_product
                .entry(settings.product.clone())
                .or_default()
                .push(settings.id.clone());
            by_id.insert(settings.id.clone(), server);
        }
        Ok(Registry {
            inner: Arc::new(Inner {
                servers: by_id,
                by_product,
            }),
        })
    }

    /// How to call `server`, if it is registered.
    pub fn endpoint(&self, server: &ServerId) -> Option<GameServerEndpoint> {
        self.inner
            .servers
            .get(server)
            .map(|server| server.endpoint.clone())
    }

    /// Every registered server's endpoint, sorted by id.
    pub fn endpoints(&self) -> Vec<GameServerEndpoint> {
        self.inner
            .servers
            .values()
            .map(|server| server.endpoint.clone())
            .collect()
    }

    /// The ids of the servers hosting `product`, sorted (empty if the product is unknown).
    pub fn servers_of(&self, product: &ProductId) -> Vec<ServerId> {
        self.inner
            .by_product
            .get(product)
            .cloned()
            .unwrap_or_default()
    }

    /// Every product some server hosts, sorted.
    pub fn products(&self) -> Vec<ProductId> {
        self.inner.by_product.keys().cloned().collect()
    }

    /// Whether some server hosts `product`.
    pub fn knows_product(&self, product: &ProductId) -> bool {
        self.inner.by_product.contains_key(product)
    }

    /// The public description of every server (what [`Registry::publish`] writes).
    pub fn descriptions(&self) -> Vec<ServerDescription> {
        self.inner
            .servers
            .iter()
            .map(|(id, server)| ServerDescription {
                id: id.to_string(),
                product: server.product.to_string(),
                api_url: server.endpoint.public_api_url().to_string(),
                socket_url: server.socket_url.clone(),
                region: server.region.clone(),
                max_games: server.max_games,
            })
            .collect()
    }

    /// Writes `P:servers` (one field per server, JSON without the API key) and adds every
    /// product to `P:products`. Idempotent; fields of servers no longer configured are left
    /// alone (another instance may run with a different configuration).
    pub async fn publish(&self, store: &Store) -> Result<(), StoreError> {
        let descriptions = self.descriptions();
        if !descriptions.is_empty() {
            let fields: Vec<(String, String)> = descriptions
                .iter()
                .map(|d| {
                    let json = serde_json::to_string(d).expect("descriptions always serialise");
                    (d.id.clone(), json)
                })
                .collect();
            store.publish_servers(&fields).await?;
        }
        store.register_products(&self.products()).await
    }

    /// The least-loaded healthy server of `product` (of `region`, when given) that has room,
    /// and counts the new game against it. `None` when there is none.
    pub fn pick(&self, product: &ProductId, region: Option<&str>) -> Option<ServerPick> {
        self.pick_excluding(product, region, &[])
    }

    /// [`Registry::pick`], skipping the servers in `exclude` (a retry after a failed create).
    pub fn pick_excluding(
        &self,
        product: &ProductId,
        region: Option<&str>,
        exclude: &[ServerId],
    ) -> Option<ServerPick> {
        let ids = self.inner.by_product.get(product)?;
        // Lock one server at a time; the chosen one is re-checked under its lock, and the
        // rare race (two picks choosing the same server) only costs a slightly uneven spread.
        let mut best: Option<(&ServerId, u64, u64, u32)> = None; // id, load*cap', cap, load
        for id in ids {
            if exclude.contains(id) {
                continue;
            }
            let server = &self.inner.servers[id];
            if region.is_some_and(|want| server.region.as_deref() != Some(want)) {
                continue;
            }
            let status = server.status.lock().expect("registry lock poisoned");
            if status.health != Health::Healthy {
                continue;
            }
            let capacity = server.capacity(&status);
            let load = status.reported_games + status.placed_since_check;
            if load >= capacity {
                continue;
            }
            // Compare load/capacity fractions without floats: a/b < c/d ⇔ a*d < c*b.
            let better = match best {
                None => true,
                Some((_, best_load, best_cap, _)) => {
                    u64::from(load) * best_cap < best_load * u64::from(capacity)
                }
            };
            if better {
                best = Some((id, u64::from(load), u64::from(capacity), load));
            }
        }
        let (id, _, _, _) = best?;
        let server = &self.inner.servers[id];
        let mut status = server.status.lock().expect("registry lock poisoned");
        let capacity = server.capacity(&status);
        let load = status.reported_games + status.placed_since_check;
        if status.health != Health::Healthy || load >= capacity {
            drop(status);
            // Changed under us; try again without it.
            let mut exclude = exclude.to_vec();
            exclude.push(id.clone());
            return self.pick_excluding(product, region, &exclude);
        }
        status.placed_since_check += 1;
        Some(ServerPick {
            server_id: id.clone(),
            endpoint: server.endpoint.clone(),
            region: server.region.clone(),
            socket_url: server.socket_url.clone(),
            load,
            capacity,
        })
    }

    /// Takes back a placement counted by [`Registry::pick`] whose game was not created.
    pub fn unplace(&self, server: &ServerId) {
        if let Some(server) = self.inner.servers.get(server) {
            let mut status = server.status.lock().expect("registry lock poisoned");
            status.placed_since_check = status.placed_since_check.saturating_sub(1);
        }
    }

    /// Takes `server` out of rotation until its next successful health check (a call to it
    /// failed with a server fault).
    pub fn mark_unhealthy(&self, server: &ServerId, reason: impl Into<String>) {
        if let Some(server) = self.inner.servers.get(server) {
            let mut status = server.status.lock().expect("registry lock poisoned");
            status.health = Health::Unhealthy;
            status.last_error = Some(reason.into());
        }
    }

    /// Records the outcome of one health check of `server`.
    pub fn record_health(&self, server: &ServerId, result: Result<ServerHealth, String>) {
        let Some(entry) = self.inner.servers.get(server) else {
            return;
        };
        let mut status = entry.status.lock().expect("registry lock poisoned");
        let was = status.health;
        match result {
            Ok(health) => {
                status.health = Health::Healthy;
                status.reported_games = health.games;
                status.reported_max = Some(health.max_games);
                status.placed_since_check = 0;
                status.last_error = None;
                if was != Health::Healthy {
                    tracing::info!(server = %server, games = health.games,
                        max_games = health.max_games, "game server is healthy");
                }
            }
            Err(reason) => {
                status.health = Health::Unhealthy;
                if was != Health::Unhealthy {
                    tracing::warn!(server = %server, error = %reason, "game server is unhealthy");
                }
                status.last_error = Some(reason);
            }
        }
    }

    /// Checks every server once, concurrently, and records the results.
    pub async fn check_health_now<P: HealthProbe>(&self, probe: &P) {
        let checks = self.inner.servers.iter().map(|(id, server)| async move {
            let result = probe.health(&server.endpoint).await;
            metrics::counter!(
                "mm_game_server_calls_total",
                "server" => id.to_string(),
                "op" => "health",
                "outcome" => if result.is_ok() { "ok" } else { "error" },
            )
            .increment(1);
            (id, result)
        });
        for (id, result) in futures::future::join_all(checks).await {
            self.record_health(id, result);
        }
    }

    /// Checks every server now and then every `interval` until `shutdown` is cancelled.
    pub fn spawn_health_checks<P: HealthProbe>(
        &self,
        probe: P,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticker.tick() => registry.check_health_now(&probe).await,
                }
            }
        })
    }

    /// The current state of every server, sorted by id.
    pub fn snapshot(&self) -> Vec<ServerSnapshot> {
        self.inner
            .servers
            .iter()
            .map(|(id, server)| {
                let status = server.status.lock().expect("registry lock poisoned");
                ServerSnapshot {
                    id: id.clone(),
                    health: status.health,
                    load: status.reported_games + status.placed_since_check,
                    capacity: server.capacity(&status),
                    last_error: status.last_error.clone(),
                }
            })
            .collect()
    }

    /// The ids of the registered servers of `product`, as a set (for tests and diagnostics).
    pub fn server_set(&self, product: &ProductId) -> BTreeSet<ServerId> {
        self.servers_of(product).into_iter().collect()
    }
}

/// The lifecycle flows find servers, and count their calls, through the registry.
impl ServerDirectory for Registry {
    fn endpoint(&self, server: &ServerId) -> Option<GameServerEndpoint> {
        Registry::endpoint(self, server)
    }

    fn record_call(&self, server: &ServerId, op: Operation, outcome: &'static str) {
        telemetry::game_server_call(server.as_str(), op.as_str(), outcome);
    }
}

/// The create flow places new games through the registry.
impl ServerPlacement for Registry {
    fn place(
        &self,
        product: &ProductId,
        region: Option<&str>,
        exclude: &[ServerId],
    ) -> Option<Placement> {
        self.pick_excluding(product, region, exclude)
            .map(|pick| Placement {
                endpoint: pick.endpoint,
                region: pick.region,
                load: pick.load,
                capacity: pick.capacity,
            })
    }

    fn unplace(&self, server: &ServerId) {
        Registry::unplace(self, server);
    }

    fn mark_unhealthy(&self, server: &ServerId, reason: String) {
        Registry::mark_unhealthy(self, server, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn server(id: &str, product: &str, region: Option<&str>, max_games: u32) -> GameServerSettings {
        GameServerSettings {
            id: ServerId::new(id).unwrap(),
            product: ProductId::new(product).unwrap(),
            api_url: format!("http://127.0.0.1:1/{id}/"),
            socket_url: String::new(),
            region: region.map(str::to_string),
            max_games,
            api_key: SecretString::from(format!("key-{id}")),
        }
    }

    fn healthy(registry: &Registry, id: &str, games: u32, max_games: u32) {
        registry.record_health(
            &ServerId::new(id).unwrap(),
            Ok(ServerHealth { games, max_games }),
        );
    }

    fn chess() -> ProductId {
        ProductId::new("chess").unwrap()
    }

    #[test]
    fn unknown_servers_take_no_games_until_checked() {
        let registry = Registry::from_settings(&[server("a", "chess", None, 10)]).unwrap();
        assert!(registry.pick(&chess(), None).is_none());
        healthy(&registry, "a", 0, 10);
        assert_eq!(
            registry.pick(&chess(), None).unwrap().server_id.as_str(),
            "a"
        );
    }

    #[test]
    fn picks_least_loaded_and_counts_its_own_placements() {
        let registry = Registry::from_settings(&[
            server("a", "chess", None, 10),
            server("b", "chess", None, 10),
        ])
        .unwrap();
        healthy(&registry, "a", 3, 10);
        healthy(&registry, "b", 0, 10);
        // b gets games until it is as loaded as a, then they alternate.
        let picks: Vec<String> = (0..5)
            .map(|_| registry.pick(&chess(), None).unwrap().server_id.to_string())
            .collect();
        assert_eq!(picks, ["b", "b", "b", "a", "b"]);
        let loads: Vec<u32> = registry.snapshot().iter().map(|s| s.load).collect();
        assert_eq!(loads, [4, 4]);
        // A health check replaces the estimate with what the server reports.
        healthy(&registry, "a", 0, 10);
        assert_eq!(
            registry.pick(&chess(), None).unwrap().server_id.as_str(),
            "a"
        );
    }

    #[test]
    fn load_is_relative_to_capacity() {
        let registry = Registry::from_settings(&[
            server("big", "chess", None, 100),
            server("small", "chess", None, 2),
        ])
        .unwrap();
        healthy(&registry, "big", 10, 100);
        healthy(&registry, "small", 1, 2);
        assert_eq!(
            registry.pick(&chess(), None).unwrap().server_id.as_str(),
            "big"
        );
    }

    #[test]
    fn full_unhealthy_and_other_region_servers_are_skipped() {
        let registry = Registry::from_settings(&[
            server("eu", "chess", Some("eu"), 1),
            server("us", "chess", Some("us"), 10),
            server("poker", "poker", Some("eu"), 10),
        ])
        .unwrap();
        healthy(&registry, "eu", 0, 10); // reports more room than configured: config wins
        healthy(&registry, "us", 0, 10);
        healthy(&registry, "poker", 0, 10);
        let pick = registry.pick(&chess(), Some("eu")).unwrap();
        assert_eq!(pick.server_id.as_str(), "eu");
        assert_eq!(pick.region.as_deref(), Some("eu"));
        assert_eq!(pick.capacity, 1);
        assert!(registry.pick(&chess(), Some("eu")).is_none(), "eu is full");
        registry.unplace(&ServerId::new("eu").unwrap());
        assert!(
            registry.pick(&chess(), Some("eu")).is_some(),
            "unplace frees it"
        );
        assert!(registry.pick(&chess(), Some("mars")).is_none());
        registry.mark_unhealthy(&ServerId::new("us").unwrap(), "connection refused");
        assert!(registry.pick(&chess(), None).is_none());
        healthy(&registry, "us", 0, 10);
        assert_eq!(
            registry.pick(&chess(), None).unwrap().server_id.as_str(),
            "us"
        );
        let failed = ServerId::new("us").unwrap();
        assert!(
            registry
                .pick_excluding(&chess(), None, std::slice::from_ref(&failed))
                .is_none()
        );
        assert!(
            registry
                .pick(&ProductId::new("go").unwrap(), None)
                .is_none()
        );
    }

    #[test]
    fn failed_check_takes_a_server_out_of_rotation() {
        let registry = Registry::from_settings(&[server("a", "chess", None, 10)]).unwrap();
        healthy(&registry, "a", 0, 10);
        registry.record_health(&ServerId::new("a").unwrap(), Err("timeout".into()));
        assert!(registry.pick(&chess(), None).is_none());
        let snapshot = &registry.snapshot()[0];
        assert_eq!(snapshot.health, Health::Unhealthy);
        assert_eq!(snapshot.last_error.as_deref(), Some("timeout"));
    }

    #[test]
    fn refuses_duplicate_ids_and_bad_urls() {
        let err = Registry::from_settings(&[
            server("a", "chess", None, 10),
            server("a", "poker", None, 10),
        ])
        .unwrap_err();
        assert!(err.to_string().starts_with("game_servers[1].id"), "{err}");
        let mut bad = server("a", "chess", None, 10);
        bad.api_url = "ftp://x/".into();
        let err = Registry::from_settings(&[bad]).unwrap_err();
        assert!(err.to_string().contains("not http(s)"), "{err}");
    }

    #[test]
    fn describes_servers_without_secrets() {
        let registry = Registry::from_settings(&[server("a", "chess", Some("eu"), 10)]).unwrap();
        assert_eq!(registry.products(), vec![chess()]);
        assert_eq!(registry.servers_of(&chess()).len(), 1);
        let json = serde_json::to_string(&registry.descriptions()).unwrap();
        assert!(json.contains("\"region\":\"eu\""), "{json}");
        assert!(
            !json.contains("key-a"),
            "the API key must never be published: {json}"
        );
    }

    #[test]
    fn descriptions_strip_credentials_from_the_api_url_but_calls_keep_them() {
        let mut settings = server("a", "chess", None, 10);
        settings.api_url = "https://gs-user:gs-pass@gs1.internal:8443/api/?token=tok-123".into();
        let registry = Registry::from_settings(&[settings]).unwrap();
        let descriptions = registry.descriptions();
        assert_eq!(descriptions[0].api_url, "https://gs1.internal:8443/api/");
        let json = serde_json::to_string(&descriptions).unwrap();
        for secret in ["gs-user", "gs-pass", "tok-123"] {
            assert!(!json.contains(secret), "{secret} published: {json}");
        }
        let endpoint = registry.endpoint(&ServerId::new("a").unwrap()).unwrap();
        assert_eq!(endpoint.api_url.password(), Some("gs-pass"));
        assert_eq!(endpoint.api_url.query(), Some("token=tok-123"));
        // A URL that does not parse is refused without repeating it.
        let mut bad = server("b", "chess", None, 10);
        bad.api_url = "http://gs-user:gs-pass@[bad".into();
        let err = Registry::from_settings(&[bad]).unwrap_err().to_string();
        assert!(err.starts_with("game_servers[0].api_url"), "{err}");
        assert!(!err.contains("gs-pass"), "{err}");
    }
}
