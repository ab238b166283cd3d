//! This daemon instance's identity and its heartbeat in Redis.
//!
//! # Names
//!
//! The instance name is also the consumer name in the `matchmakerd` group, so it must be the
//! same after a restart: a restarted daemon then drains its *own* pending entries at once
//! instead of waiting for the claim timeout. It is `consumer.name` when configured, otherwise
//! `<hostname>-<instance>`, where `<instance>` comes from `--instance` (or the environment
//! variable `MM_INSTANCE`), default `1`. Several daemons on one host must each get a distinct
//! `--instance` (or `consumer.name`); a supervisor (systemd template unit `%i`, a StatefulSet
//! ordinal) provides exactly such a stable suffix.
//!
//! # Heartbeat
//!
//! Every [`HEARTBEAT_INTERVAL`], a running daemon writes `ZADD P:{instances} <now_ms> <name>` and
//! `HSET P:{instances}:<name>` (roles, version, pid, started_at, host, last_seen) with a TTL of
//! three intervals; a clean shutdown removes both. The console lists live instances from
//! them: an instance whose score is older than the TTL is gone (crashed), and heartbeats prune
//! such entries.

use std::time::Duration;

use mm_common::store::{InstanceHeartbeat, Store, StoreError};
use mm_common::time::now_ms;
use tokio_util::sync::CancellationToken;

/// How often the heartbeat is written.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Who this daemon is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIdentity {
    /// The instance (and consumer) name.
    pub name: String,
    /// The host name it runs on.
    pub host: String,
}

impl InstanceIdentity {
    /// The identity from the configured consumer name, or `<hostname>-<instance>`.
    pub fn resolve(configured_name: Option<&str>, instance: &str) -> Self {
        let host = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let name = match configured_name {
            Some(name) if !name.trim().is_empty() => name.trim().to_string(),
            _ => format!("{host}-{instance}"),
        };
        Self { name, host }
    }
}

/// What the heartbeat publishes about this instance.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    /// Identity.
    pub identity: InstanceIdentity,
    /// Roles it runs (`api,worker,curator`).
    pub roles: String,
    /// When it started (Unix ms).
    pub started_at_ms: u64,
}

/// Writes the heartbeat until `shutdown`, then removes this instance's entries. Redis errors
/// are logged and the next beat retried.
pub async fn run_heartbeat(store: Store, info: InstanceInfo, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                if let Err(err) = beat(&store, &info).await {
                    tracing::warn!(%err, "could not write the instance heartbeat");
                }
            }
        }
    }
    match remove(&store, &info.identity.name).await {
        Ok(()) => tracing::debug!(instance = %info.identity.name, "instance heartbeat removed"),
        Err(err) => tracing::warn!(%err, "could not remove the instance heartbeat"),
    }
}

async fn beat(store: &Store, info: &InstanceInfo) -> Result<(), StoreError> {
    let heartbeat = InstanceHeartbeat {
        name: &info.identity.name,
        roles: &info.roles,
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
        started_at_ms: info.started_at_ms,
        host: &info.identity.host,
    };
    store
        .write_heartbeat(&heartbeat, now_ms(), HEARTBEAT_INTERVAL * 3)
        .await
}

async fn remove(store: &Store, name: &str) -> Result<(), StoreError> {
    store.remove_instance(name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_name_wins_over_host_and_instance() {
        let id = InstanceIdentity::resolve(Some("worker-a"), "7");
        assert_eq!(id.name, "worker-a");
        let id = InstanceIdentity::resolve(None, "7");
        assert_eq!(id.name, format!("{}-7", id.host));
        let blank = InstanceIdentity::resolve(Some("  "), "2");
        assert!(blank.name.ends_with("-2"));
    }
}
