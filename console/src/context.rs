//! What every console mode needs, built from the settings: the store, the game-server client
//! and endpoints, the curation thresholds.

use std::collections::HashMap;

use mm_common::admin::{self, AdminError, ForceDeleteReport, ForceDeleteRequest};
use mm_common::flows::ServerCalls;
use mm_common::gameserver::{GameServerClient, GameServerEndpoint};
use mm_common::store::Store;
use mm_common::time::now_ms;
use mm_common::{ProductId, ServerId};
use mm_config::Settings;

use crate::app::Thresholds;

/// A configuration the console cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// `redis.url` (or `redis.cluster_nodes`) does not parse as a Redis URL.
    #[error("{key}: {error}")]
    RedisUrl {
        /// The setting: `redis.url` or `redis.cluster_nodes`.
        key: &'static str,
        /// Why.
        error: String,
    },
    /// A `game_servers[i].api_url` is not a URL. The value is not repeated: it may hold
    /// credentials.
    #[error("game_servers[{index}].api_url: {error}")]
    ApiUrl {
        /// Position of the table.
        index: usize,
        /// Why.
        error: String,
    },
    /// The HTTP client could not be built.
    #[error("game-server client: {0}")]
    Client(String),
}

/// Shared handles of one console run.
#[derive(Debug, Clone)]
pub struct Console {
    /// The store the console reads through (lazy: connects on first use and reconnects by
    /// itself). Its reads are never resent: every screen and scripted read is asked again by
    /// the operator or the next refresh, so an outage shows at once rather than after
    /// `redis.retry_budget_ms`.
    pub store: Store,
    /// The same store for the force-delete's writes, which ride a failover for up to
    /// `redis.retry_budget_ms` as the daemon's do (each is safe to run twice).
    pub writes: Store,
    /// The configured game servers by id, called through the game-server API client.
    pub servers: ServerCalls<HashMap<ServerId, GameServerEndpoint>>,
    /// Products named in the configuration.
    pub configured_products: Vec<ProductId>,
    /// Curation thresholds (for colouring).
    pub thresholds: Thresholds,
    /// Where Redis is, without credentials, for error messages: `redis.url`, or the cluster
    /// nodes when `redis.cluster_nodes` is set.
    pub redis_target: String,
}

impl Console {
    /// Force-deletes a game through its game server's API, then from the record, now (the
    /// interactive delete and `--delete` alike).
    pub async fn force_delete(
        &self,
        request: &ForceDeleteRequest,
    ) -> Result<ForceDeleteReport, AdminError> {
        admin::force_delete(&self.writes, &self.servers, request, now_ms()).await
    }

    /// A Redis error as the operator should read it: naming the URL or the cluster nodes
    /// (without credentials).
    pub fn redis_error(&self, error: impl std::fmt::Display) -> String {
        format!("Redis at {}: {error}", self.redis_target)
    }

    /// Builds the handles; nothing connects yet.
    pub fn from_settings(settings: &Settings) -> Result<Console, ContextError> {
        let store =
            Store::connect_lazy(settings.store_options()).map_err(|e| ContextError::RedisUrl {
                key: settings.redis.target_key(),
                error: e.to_string(),
            })?;
        let client = GameServerClient::new(settings.game_server_client.client_options())
            .map_err(|e| ContextError::Client(e.to_string()))?;
        let mut endpoints = HashMap::new();
        let mut configured_products = Vec::new();
        for (index, server) in settings.game_servers.iter().enumerate() {
            let api_url =
                reqwest::Url::parse(&server.api_url).map_err(|e| ContextError::ApiUrl {
                    index,
                    error: e.to_string(),
                })?;
            endpoints.insert(
                server.id.clone(),
                GameServerEndpoint {
                    id: server.id.clone(),
                    api_url,
                    api_key: server.api_key.clone(),
                },
            );
            if !configured_products.contains(&server.product) {
                configured_products.push(server.product.clone());
            }
        }
        configured_products.sort();
        let curation = &settings.curation;
        Ok(Console {
            redis_target: settings.redis.target_for_messages(),
            store: store.without_resends(),
            writes: store,
            servers: ServerCalls::new(client, endpoints),
            configured_products,
            thresholds: Thresholds {
                pending_ms: curation.pending_timeout_secs * 1000,
                lobby_ms: curation.lobby_idle_timeout_secs * 1000,
                active_ms: curation.active_idle_timeout_secs * 1000,
            },
        })
    }
}
