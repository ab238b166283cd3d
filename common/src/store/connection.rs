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
//! # Riding through a failover (`redis.retry_budget_ms`)
//!
//! A master failing over, a slot migrating or a Redis restarting answer for a few seconds
//! with errors that go away by themselves: `MOVED`/`ASK` to a node not yet known,
//! `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, `READONLY`, a refused connection to the
//! dead master, a dropped connection. Two layers retry them within the budget:
//!
//! - the `redis` crate's cluster client, configured here ([`Backend::open`]): it follows
//!   redirections, refreshes its slot map, reconnects and waits between attempts
//!   (`retries`, `min_retry_wait`, `max_retry_wait`, `retry_wait_formula`), the whole request
//!   bounded by the command timeout (`overall_response_timeout`);
//! - [`RedisConn`] itself, over either backend, for what the client gives up on (its
//!   reconnects to a dead master do not wait, so they run out long before the replica is
//!   promoted) and for the single-node connection manager, which reconnects but never resends:
//!   it resends a command or pipeline after a backoff ([`RETRY_BACKOFF`]) as long as the
//!   budget, counted from the first attempt, is not spent. A call therefore fails after at
//!   most about the budget plus one command timeout.
//!
//! Resending is only safe for operations whose second run answers what the first would have
//! (the first may have been applied before its reply was lost): every store script is written
//! so (the game scripts say how in their doc comments; `apply_events` and `dead_letter` act
//! only on entries still pending in the group, so a second run changes nothing; the leases
//! renew for the same owner; the heartbeat, trimming, `XAUTOCLAIM` and the dead-consumer sweep
//! reach the same state twice), reads trivially are. An operation that is not — the
//! audit append (`XADD` with a fresh id) — takes a connection [`RedisConn::refusals_only`],
//! which resends only after an error that says the command did not run (a redirection,
//! `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, a refused connection). Blocking stream reads are
//! never resent here: their callers (the consumer, the console) retry with their own backoff.
//!
//! Blocking stream reads get a connection of their own ([`Backend::blocking`]): on a single
//! Redis a dedicated multiplexed connection, on a cluster a dedicated cluster connection (one
//! per reader, so one per product for the consumer), with a reply timeout longer than the
//! block time. A blocked read therefore never holds up the shared connection's commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::{ErrorKind, RedisError, RetryMethod, ServerErrorKind};
use tokio::time::Instant;

use crate::backoff::Backoff;
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

/// The first wait before a command is resent after a transient failure, doubling up to the
/// cap, with jitter so that many clients do not resend in lockstep.
pub(crate) const RETRY_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(20), Duration::from_millis(400)).with_jitter(0.5, 1.0);

/// The cluster client's own waits between attempts (ms): at least, at most, and the
/// formula's factor (`factor * 2^attempt`, a random wait in between).
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 10;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 400;
const CLUSTER_RETRY_FACTOR_MS: u64 = 10;

/// A connection to the backend: cheap to clone, clones share the underlying connections.
/// Commands sent through it are resent after transient failures within its retry budget (see
/// the module docs).
#[derive(Clone)]
pub(crate) struct RedisConn {
    link: Link,
    /// How long after the first attempt a command may still be resent (zero: never).
    retry_budget: Duration,
    /// Whether errors after which the command may have run (dropped connection, timeout) are
    /// retried too, or only refusals.
    retry_ambiguous: bool,
    /// Commands and pipelines resent so far, shared by every connection of one store
    /// ([`RedisConn::counting`]; [`super::Store::resends`]).
    resends: Option<Arc<AtomicU64>>,
}

/// The underlying connection.
#[derive(Clone)]
enum Link {
    /// A single Redis, reconnecting by itself.
    Node(ConnectionManager),
    /// A dedicated connection to a single Redis (blocking reads, `WAIT` pool).
    Dedicated(MultiplexedConnection),
    /// A Redis Cluster: one connection per node, commands routed by slot.
    Cluster(ClusterConnection),
}

/// How an error bears on resending the command that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transience {
    /// Redis (or the network) refused before running the command: resending is always safe.
    Refused,
    /// The command may have run before the failure (a dropped connection, a timeout):
    /// resending is safe only for operations that answer the same when run twice.
    Ambiguous,
    /// Not transient: a bug, bad data, or an answer.
    Permanent,
}

/// What resending the command that failed with `err` would risk.
pub(crate) fn transience(err: &RedisError) -> Transience {
    if err.is_connection_refusal() {
        return Transience::Refused;
    }
    match err.kind() {
        ErrorKind::Server(
            ServerErrorKind::Moved
            | ServerErrorKind::Ask
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly,
        )
        | ErrorKind::ClusterConnectionNotFound => Transience::Refused,
        _ if err.is_timeout() || err.is_connection_dropped() || err.is_io_error() => {
            Transience::Ambiguous
        }
        _ => match err.retry_method() {
            RetryMethod::Reconnect | RetryMethod::ReconnectFromInitialConnections => {
                Transience::Ambiguous
            }
            _ => Transience::Permanent,
        },
    }
}

impl RedisConn {
    fn new(link: Link, options: &StoreOptions) -> RedisConn {
        RedisConn {
            link,
            retry_budget: options.retry_budget,
            retry_ambiguous: true,
            resends: None,
        }
    }

    /// A connection that never resends (blocking reads: their callers retry).
    fn without_retries(link: Link) -> RedisConn {
        RedisConn {
            link,
            retry_budget: Duration::ZERO,
            retry_ambiguous: false,
            resends: None,
        }
    }

    /// The same connection, never resending: for a question whose failure the caller
    /// handles at once (the start-up mode check, which must not hold start-up for the
    /// budget while Redis is down).
    pub(crate) fn once(mut self) -> RedisConn {
        self.retry_budget = Duration::ZERO;
        self
    }

    /// The same connection, counting each resend in `resends`.
    pub(crate) fn counting(mut self, resends: Arc<AtomicU64>) -> RedisConn {
        self.resends = Some(resends);
        self
    }

    /// The same connection, resending only after errors that say the command did not run:
    /// for operations that are not safe to run twice (the audit append).
    pub(crate) fn refusals_only(mut self) -> RedisConn {
        self.retry_ambiguous = false;
        self
    }

    /// Whether a command that failed with `err` at `started` is resent after `delay`.
    fn resend_after(&self, err: &RedisError, started: Instant, delay: Duration) -> bool {
        let allowed = match transience(err) {
            Transience::Refused => true,
            Transience::Ambiguous => self.retry_ambiguous,
            Transience::Permanent => false,
        };
        let resend = allowed && started.elapsed() + delay < self.retry_budget;
        if resend && let Some(resends) = &self.resends {
            resends.fetch_add(1, Ordering::Relaxed);
        }
        resend
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let started = Instant::now();
            let mut delays = RETRY_BACKOFF.delays();
            loop {
                let result = match &mut self.link {
                    Link::Node(conn) => conn.req_packed_command(cmd).await,
                    Link::Dedicated(conn) => conn.req_packed_command(cmd).await,
                    Link::Cluster(conn) => conn.req_packed_command(cmd).await,
                };
                match result {
                    Err(err) => {
                        let delay = delays.next_delay();
                        if !self.resend_after(&err, started, delay) {
                            return Err(err);
                        }
                        tracing::debug!(error = %err, ?delay, "redis: resending a command");
                        tokio::time::sleep(delay).await;
                    }
                    ok => return ok,
                }
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let started = Instant::now();
            let mut delays = RETRY_BACKOFF.delays();
            loop {
                let result = match &mut self.link {
                    Link::Node(conn) => conn.req_packed_commands(pipeline, offset, count).await,
                    Link::Dedicated(conn) => {
                        conn.req_packed_commands(pipeline, offset, count).await
                    }
                    Link::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count).await,
                };
                match result {
                    Err(err) => {
                        let delay = delays.next_delay();
                        if !self.resend_after(&err, started, delay) {
                            return Err(err);
                        }
                        tracing::debug!(error = %err, ?delay, "redis: resending a pipeline");
                        tokio::time::sleep(delay).await;
                    }
                    ok => return ok,
                }
            }
        })
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Node(conn) => conn.get_db(),
            Link::Dedicated(conn) => conn.get_db(),
            Link::Cluster(conn) => conn.get_db(),
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
        let value = match &mut self.link {
            Link::Cluster(conn) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                conn.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await?
            }
            _ => cmd.query_async::<Value>(self).await?,
        };
        Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?)
    }

    /// Whether this is a cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }
}

impl Backend {
    /// The backend the options name: a cluster when `cluster_nodes` is not empty.
    pub(crate) fn open(options: &StoreOptions) -> StoreResult<Backend> {
        if options.cluster_nodes.is_empty() {
            return Ok(Backend::Node(redis::Client::open(options.url.as_str())?));
        }
        Ok(Backend::Cluster(Box::new(cluster_client(
            options,
            options.command_timeout,
        )?)))
    }

    /// The shared connection, connected now.
    pub(crate) async fn connect(&self, options: &StoreOptions) -> StoreResult<RedisConn> {
        let link = match self {
            Backend::Node(client) => Link::Node(
                client
                    .get_connection_manager_with_config(manager_config(options))
                    .await?,
            ),
            Backend::Cluster(client) => client
                .get_async_connection_with_config(cluster_config(options, options.command_timeout))
                .await
                .map(Link::Cluster)
                .map_err(|err| {
                    if err.to_string().contains("cluster support disabled") {
                        mode_mismatch(true, false)
                    } else {
                        StoreError::from(err)
                    }
                })?,
        };
        Ok(RedisConn::new(link, options))
    }

    /// The shared connection, connecting on first use and reconnecting by itself.
    pub(crate) fn connect_lazy(&self, options: &StoreOptions) -> StoreResult<RedisConn> {
        let link = match self {
            Backend::Node(client) => Link::Node(ConnectionManager::new_lazy_with_config(
                client.clone(),
                manager_config(options),
            )?),
            Backend::Cluster(client) => Link::Cluster(
                client.get_pending_async_connection_with_config(cluster_config(
                    options,
                    options.command_timeout,
                )),
            ),
        };
        Ok(RedisConn::new(link, options))
    }

    /// A dedicated connection (not shared with the store's other traffic) whose commands
    /// are resent like the shared one's: for a write and its `WAIT`.
    pub(crate) async fn dedicated(&self, options: &StoreOptions) -> StoreResult<RedisConn> {
        let link = match self {
            Backend::Node(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.command_timeout));
                Link::Dedicated(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            Backend::Cluster(client) => Link::Cluster(
                client
                    .get_async_connection_with_config(cluster_config(
                        options,
                        options.command_timeout,
                    ))
                    .await?,
            ),
        };
        Ok(RedisConn::new(link, options))
    }

    /// A dedicated connection for blocking commands (`XREAD … BLOCK`), whose reply timeout
    /// is `block` plus the command timeout, so a blocking read never trips it. Never resent
    /// (its callers retry), and on a cluster the client's own retries get no extra budget.
    pub(crate) async fn blocking(
        &self,
        options: &StoreOptions,
        block: Duration,
    ) -> StoreResult<RedisConn> {
        let timeout = block + options.command_timeout;
        let link = match self {
            Backend::Node(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(timeout));
                Link::Dedicated(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            Backend::Cluster(_) => Link::Cluster(
                cluster_client(options, timeout)?
                    .get_async_connection_with_config(cluster_config(options, timeout))
                    .await?,
            ),
        };
        Ok(RedisConn::without_retries(link))
    }

    /// Whether the options ask for a cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Backend::Cluster(_))
    }
}

/// The cluster client. Each of its attempts, and each request as a whole (its redirections,
/// reconnections and waits), is bounded by `timeout`, with about as many attempts as that
/// holds at the average wait; [`RedisConn`] resends what still fails within the retry budget.
fn cluster_client(
    options: &StoreOptions,
    timeout: Duration,
) -> StoreResult<redis::cluster::ClusterClient> {
    // The client computes `factor * 2^attempt` before capping it (overflowing past 2^63), so
    // attempts are counted at about the average wait, and never more than 30.
    let retries =
        (timeout.as_millis() as u64 / (CLUSTER_MAX_RETRY_WAIT_MS / 4)).clamp(4, 30) as u32;
    Ok(
        redis::cluster::ClusterClientBuilder::new(options.cluster_nodes.clone())
            .connection_timeout(options.connect_timeout)
            .response_timeout(timeout)
            .overall_response_timeout(Some(timeout))
            .retries(retries)
            .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
            .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
            .retry_wait_formula(CLUSTER_RETRY_FACTOR_MS, 2)
            .build()?,
    )
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
