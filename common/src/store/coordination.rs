//! What daemons and operators share besides game state: the product list (`P:products`), the
//! registered game servers (`P:servers`), leases (`P:lease:<name>`), the live-instance
//! heartbeats (`P:{instances}`, `P:{instances}:<name>`) and the operator audit trail (`P:audit`).

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;

use super::Store;
use super::error::StoreResult;
use super::scripts::SCRIPTS;
use crate::audit::AuditEntry;
use crate::ids::ProductId;

/// What a daemon instance's heartbeat says about it (`P:{instances}:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHeartbeat<'a> {
    /// The instance (and consumer) name.
    pub name: &'a str,
    /// Roles it runs (`api,worker,curator`).
    pub roles: &'a str,
    /// Its version.
    pub version: &'a str,
    /// Its process id.
    pub pid: u32,
    /// When it started (Unix ms).
    pub started_at_ms: u64,
    /// The host it runs on.
    pub host: &'a str,
}

impl Store {
    /// Records products in `P:products` (idempotent).
    pub async fn register_products(&self, products: &[ProductId]) -> StoreResult<()> {
        if products.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let names: Vec<&str> = products.iter().map(ProductId::as_str).collect();
        let _: () = conn.sadd(self.keys.products(), names).await?;
        Ok(())
    }

    /// Every product in `P:products`, sorted; malformed members are skipped with a warning.
    pub async fn products(&self) -> StoreResult<Vec<ProductId>> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = conn.smembers(self.keys.products()).await?;
        let mut products: Vec<ProductId> = raw
            .into_iter()
            .filter_map(|name| match ProductId::new(&name) {
                Ok(product) => Some(product),
                Err(err) => {
                    tracing::warn!(%err, "skipping malformed member of the products set");
                    None
                }
            })
            .collect();
        products.sort();
        Ok(products)
    }

    /// Writes game-server descriptions to `P:servers`: `(server id, JSON description)`, one
    /// field per server (never its API key). Other servers' fields are left alone.
    pub async fn publish_servers(&self, descriptions: &[(String, String)]) -> StoreResult<()> {
        if descriptions.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: () = conn
            .hset_multiple(self.keys.servers(), descriptions)
            .await?;
        Ok(())
    }

    /// Takes lease `name` for `owner` if it is free, or renews it if `owner` holds it, for
    /// `ttl`. Returns whether `owner` holds it now.
    pub async fn acquire_lease(&self, name: &str, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let mut conn = self.conn.clone();
        let held: i64 = SCRIPTS
            .lease_acquire
            .key(self.keys.lease(name))
            .arg(owner)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }

    /// Gives lease `name` up if `owner` holds it.
    pub async fn release_lease(&self, name: &str, owner: &str) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let _: i64 = SCRIPTS
            .lease_release
            .key(self.keys.lease(name))
            .arg(owner)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Writes one heartbeat of an instance at `now_ms`, atomically: its score in
    /// `P:{instances}`, its description in `P:{instances}:<name>` (expiring after `ttl`), and the
    /// removal of instances whose last beat is older than `ttl`.
    pub async fn write_heartbeat(
        &self,
        beat: &InstanceHeartbeat<'_>,
        now_ms: u64,
        ttl: Duration,
    ) -> StoreResult<()> {
        let key = self.keys.instance(beat.name);
        let instances = self.keys.instances();
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("ZADD")
            .arg(&instances)
            .arg(now_ms)
            .arg(beat.name)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&instances)
            .arg("-inf")
            .arg(now_ms.saturating_sub(ttl.as_millis() as u64))
            .ignore()
            .cmd("HSET")
            .arg(&key)
            .arg("name")
            .arg(beat.name)
            .arg("roles")
            .arg(beat.roles)
            .arg("version")
            .arg(beat.version)
            .arg("pid")
            .arg(beat.pid)
            .arg("started_at")
            .arg(beat.started_at_ms)
            .arg("host")
            .arg(beat.host)
            .arg("last_seen")
            .arg(now_ms)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl.as_millis() as u64)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes an instance's heartbeat (its clean shutdown).
    pub async fn remove_instance(&self, name: &str) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(self.keys.instances())
            .arg(name)
            .ignore()
            .cmd("DEL")
            .arg(self.keys.instance(name))
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Names of the instances whose last heartbeat is at or after `since_ms`, oldest beat
    /// first.
    pub async fn live_instances(&self, since_ms: u64) -> StoreResult<Vec<String>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.instances())
            .arg(since_ms)
            .arg("+inf")
            .query_async(&mut conn)
            .await?)
    }

    /// Appends an operator action to `P:audit`, capped at about
    /// [`StoreOptions::audit_max_len`](super::StoreOptions) entries (`MAXLEN ~`: Redis trims
    /// whole macro nodes, so the stream may hold a little more); returns its stream entry id.
    ///
    /// Not safe to run twice (each run appends an entry with a fresh id), so it is resent
    /// only after an error that says it did not run (`RedisConn::refusals_only`).
    pub async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<String> {
        let mut conn = self.conn.clone().refusals_only();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.audit())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.options.audit_max_len.max(1))
            .arg("*");
        for (name, value) in entry.to_fields() {
            cmd.arg(name).arg(value);
        }
        Ok(cmd.query_async(&mut conn).await?)
    }

    /// The newest `count` audit entries, newest first, with their stream ids.
    pub async fn recent_audit(&self, count: usize) -> StoreResult<Vec<(String, AuditEntry)>> {
        let raw: Vec<(String, HashMap<String, String>)> =
            self.newest_entries(self.keys.audit(), count).await?;
        Ok(raw
            .into_iter()
            .map(|(id, fields)| (id, AuditEntry::from_fields(&fields)))
            .collect())
    }
}

impl Store {
    /// On a Redis Cluster, the products whose slot's master does not say
    /// `cluster_state:ok` (`CLUSTER INFO` asked of the node serving each product's slot), or
    /// does not answer; on a single Redis, none. `P:products` plus `also` are checked.
    pub async fn products_not_ok(&self, also: &[ProductId]) -> StoreResult<Vec<ProductId>> {
        if !self.is_cluster() {
            return Ok(Vec::new());
        }
        let mut products = self.products().await?;
        for product in also {
            if !products.contains(product) {
                products.push(product.clone());
            }
        }
        let states = futures::future::join_all(products.iter().map(|product| async move {
            let mut conn = self.conn.clone();
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("INFO");
            let info: StoreResult<String> = conn
                .query_at_key(&self.product_keys(product).events(), cmd)
                .await;
            info.is_ok_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok"))
        }))
        .await;
        Ok(products
            .into_iter()
            .zip(states)
            .filter(|(_, ok)| !ok)
            .map(|(product, _)| product)
            .collect())
    }
}

impl Store {
    /// On a Redis Cluster, the node serving `product`'s slot and its role as that node sees
    /// itself (`127.0.0.1:7000 master`, from `CLUSTER NODES`' `myself` line, asked of the
    /// node the product's keys are routed to); `None` on a single Redis.
    pub async fn serving_node(&self, product: &ProductId) -> StoreResult<Option<String>> {
        if !self.is_cluster() {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        let nodes: String = conn
            .query_at_key(&self.product_keys(product).events(), cmd)
            .await?;
        Ok(nodes.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = *fields.get(2)?;
            if !flags.split(',').any(|f| f == "myself") {
                return None;
            }
            let address = fields.get(1)?.split('@').next()?;
            let role = if flags.split(',').any(|f| f == "master") {
                "master"
            } else {
                "replica"
            };
            Some(format!("{address} {role}"))
        }))
    }
}
