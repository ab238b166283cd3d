//! The store's one connection type, over a single Redis or a Redis Cluster (contract section
//! 9, `redis.url` / `redis.cluster_nodes`).
//!
//! [`RedisConn`] is either a self-reconnecting connection manager to one Redis or the
//! `redis` crate's cluster connection, which routes each command (and each script, by its
//! first key) to the master owning the key's slot, follows `MOVED`/`ASK` redirections and
//! refreshes its slot map. Both implement [`ConnectionLike`], so every store operation runs
//! unchanged over either: every command and script of the store touches keys of one slot
//! only (one product's `{product}` hash tag, or one of the tagged global keys of contract
//! section 3), which is what makes that legal on a cluster.
//!
//! Blocking stream reads get a connection of their own ([`Backend::blocking`]): on a single
//! Redis a dedicated multiplexed connection, on a cluster a dedicated cluster connection (one
//! per reader, so one per product for the consumer), with a reply timeout longer than the
//! block time. A blocked read therefore never holds up the shared connection's commands.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::ClusterConfig;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use super::StoreOptions;
use super::error::{StoreError, StoreResult};

/// How the store reaches Redis: one server, or a cluster through its seed nodes.
#[derive(Clone)]
pub(crate) enum Backend {
    /// A single Redis at `redis.url`.
    Node(redis::Client),
    /// A Redis Cluster reached through `redis.cluster_nodes`.
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// A connection to the backend: cheap to clone, clones share the underlying connections.
#[derive(Clone)]
pub(crate) enum RedisConn {
    /// A single Redis, reconnecting by itself.
    Node(ConnectionManager),
    /// A dedicated connection to a single Redis (blocking reads).
    Dedicated(MultiplexedConnection),
    /// A Redis Cluster: one connection per node, commands routed by slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Node(conn) => conn.req_packed_command(cmd),
            RedisConn::Dedicated(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Node(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConn::Dedicated(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Node(conn) => conn.get_db(),
            RedisConn::Dedicated(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
    }
}

impl RedisConn {
    /// Sends `cmd` (a command without keys, such as `WAIT` or `CLUSTER INFO`) to the node
    /// serving `key`'s slot: on a single Redis, simply to the server.
    pub(crate) async fn query_at_key<T: redis::FromRedisValue>(
        &mut self,
        key: &str,
        cmd: Cmd,
    ) -> StoreResult<T> {
        let value = match self {
            RedisConn::Cluster(conn) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                conn.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await?
            }
            other => cmd.query_async::<Value>(other).await?,
        };
        Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?)
    }

    /// Whether this is a cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }
}

impl Backend {
    /// The backend the options name: a cluster when `cluster_nodes` is not empty.
    pub(crate) fn open(options: &StoreOptions) -> StoreResult<Backend> {
        if options.cluster_nodes.is_empty() {
            return Ok(Backend::Node(redis::Client::open(options.url.as_str())?));
        }
        let client = redis::cluster::ClusterClientBuilder::new(options.cluster_nodes.clone())
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.command_timeout)
            .retries(4)
            .max_retry_wait(1_000)
            .build()?;
        Ok(Backend::Cluster(Box::new(client)))
    }

    /// The shared connection, connected now.
    pub(crate) async fn connect(&self, options: &StoreOptions) -> StoreResult<RedisConn> {
        match self {
            Backend::Node(client) => Ok(RedisConn::Node(
                client
                    .get_connection_manager_with_config(manager_config(options))
                    .await?,
            )),
            Backend::Cluster(client) => client
                .get_async_connection_with_config(cluster_config(options, options.command_timeout))
                .await
                .map(RedisConn::Cluster)
                .map_err(|err| {
                    if err.to_string().contains("cluster support disabled") {
                        mode_mismatch(true, false)
                    } else {
                        err.into()
                    }
                }),
        }
    }

    /// The shared connection, connecting on first use and reconnecting by itself.
    pub(crate) fn connect_lazy(&self, options: &StoreOptions) -> StoreResult<RedisConn> {
        match self {
            Backend::Node(client) => Ok(RedisConn::Node(ConnectionManager::new_lazy_with_config(
                client.clone(),
                manager_config(options),
            )?)),
            Backend::Cluster(client) => Ok(RedisConn::Cluster(
                client.get_pending_async_connection_with_config(cluster_config(
                    options,
                    options.command_timeout,
                )),
            )),
        }
    }

    /// A dedicated connection for blocking commands (`XREAD … BLOCK`), whose reply timeout
    /// is `block` plus the command timeout, so a blocking read never trips it.
    pub(crate) async fn blocking(
        &self,
        options: &StoreOptions,
        block: Duration,
    ) -> StoreResult<RedisConn> {
        let timeout = block + options.command_timeout;
        match self {
            Backend::Node(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(timeout));
                Ok(RedisConn::Dedicated(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            Backend::Cluster(client) => Ok(RedisConn::Cluster(
                client
                    .get_async_connection_with_config(cluster_config(options, timeout))
                    .await?,
            )),
        }
    }

    /// Whether the options ask for a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Backend::Cluster(_))
    }
}

fn manager_config(options: &StoreOptions) -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.command_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1))
}

fn cluster_config(options: &StoreOptions, response_timeout: Duration) -> ClusterConfig {
    ClusterConfig::new()
        .set_connection_timeout(options.connect_timeout)
        .set_response_timeout(response_timeout)
}

/// The error for a backend that is not what the configuration says it is.
pub(crate) fn mode_mismatch(configured_cluster: bool, node_is_cluster: bool) -> StoreError {
    let message = match (configured_cluster, node_is_cluster) {
        (false, true) => {
            "redis.url points at a Redis Cluster node (INFO cluster says cluster_enabled:1): \
             list the cluster's nodes in redis.cluster_nodes instead of redis.url"
        }
        _ => {
            "redis.cluster_nodes points at a Redis that is not in cluster mode \
             (INFO cluster says cluster_enabled:0): set redis.url instead and leave \
             redis.cluster_nodes empty"
        }
    };
    StoreError::Misconfigured(message.to_string())
}
