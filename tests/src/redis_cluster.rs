//! A private Redis Cluster for tests: three masters and three replicas, real `redis-server`
//! processes on free TCP ports (each with its cluster bus port, +10000), killed on drop.
//!
//! [`RedisCluster::start`] spawns six `redis-server --cluster-enabled yes`, joins them with
//! `redis-cli --cluster create … --cluster-replicas 1`, and waits until every node says
//! `cluster_state:ok` and every replica's link to its master is up. The nodes time out after
//! [`NODE_TIMEOUT`], so a killed master is replaced by its replica within a few seconds.
//!
//! Fault tests use [`RedisCluster::failover`] (`CLUSTER FAILOVER` on a replica),
//! [`RedisCluster::kill`] (SIGKILL of one node) and [`RedisCluster::master_of`] to find the
//! node serving a key. [`products_on_distinct_masters`] picks product names whose slots are
//! on different masters, so tests spread their products over the cluster.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::redis_server::redis_server_binary;

/// `cluster-node-timeout` of every node: how long a master may be unreachable before its
/// replica is promoted.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Masters (and replicas, one each) of the test cluster.
pub const MASTERS: usize = 3;

/// One node of the cluster.
#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a TCP URL always parses")
    }

    fn query(&self, cmd: &mut redis::Cmd) -> anyhow::Result<redis::Value> {
        let mut conn = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .with_context(|| format!("connecting to cluster node {}", self.port))?;
        Ok(cmd.query(&mut conn)?)
    }

    fn info(&self, section: &str) -> anyhow::Result<String> {
        let value = self.query(redis::cmd("INFO").arg(section))?;
        Ok(redis::from_redis_value(value)?)
    }

    fn cluster_info(&self) -> anyhow::Result<String> {
        let value = self.query(redis::cmd("CLUSTER").arg("INFO"))?;
        Ok(redis::from_redis_value(value)?)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(redis_server_binary())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--cluster-enabled")
            .arg("yes")
            .arg("--cluster-config-file")
            .arg(self.dir.join("nodes.conf"))
            .arg("--cluster-node-timeout")
            .arg(NODE_TIMEOUT.as_millis().to_string())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--daemonize")
            .arg("no")
            .arg("--loglevel")
            .arg("warning")
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server for the test cluster")?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

/// A running private Redis Cluster (see the module doc).
#[derive(Debug)]
pub struct RedisCluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts three masters with one replica each and waits until the cluster is ok.
    pub fn start() -> anyhow::Result<RedisCluster> {
        Self::start_with_replicas(1)
    }

    /// Starts three masters with `replicas` replicas each (0: masters only, for benchmarks
    /// that compare the masters' throughput without the cost of replication) and waits until
    /// the cluster is ok.
    pub fn start_with_replicas(replicas: usize) -> anyhow::Result<RedisCluster> {
        let dir = tempfile::Builder::new()
            .prefix("mm-cluster-")
            .tempdir()
            .context("creating a temp dir for the test cluster")?;
        let ports = free_port_pairs(MASTERS * (1 + replicas))?;
        let mut cluster = RedisCluster {
            nodes: ports
                .into_iter()
                .enumerate()
                .map(|(index, port)| Node {
                    port,
                    dir: dir.path().join(format!("node-{index}")),
                    child: None,
                })
                .collect(),
            _dir: dir,
        };
        for node in &mut cluster.nodes {
            std::fs::create_dir_all(&node.dir)?;
            node.spawn()?;
        }
        for index in 0..cluster.nodes.len() {
            cluster.wait_for_ping(index)?;
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let output = Command::new(redis_cli_binary())
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .context("running redis-cli --cluster create (is redis-cli installed?)")?;
        if !output.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        cluster.wait_until_healthy(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// The seed URLs of every node (`redis.cluster_nodes`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The node URLs joined by commas (the reference game server's `redis_url`).
    pub fn joined_urls(&self) -> String {
        self.urls().join(",")
    }

    /// The port of node `index` (0-based, in start order).
    pub fn port(&self, index: usize) -> u16 {
        self.nodes[index].port
    }

    /// A cluster client over every node.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::new(self.urls()).expect("node URLs always parse")
    }

    /// An async cluster connection.
    pub async fn connection(&self) -> redis::cluster_async::ClusterConnection {
        self.client()
            .get_async_connection()
            .await
            .expect("connecting to the test cluster")
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`, asked of any running node).
    pub fn slot_of(&mut self, key: &str) -> anyhow::Result<u16> {
        let index = self.any_running()?;
        let value = self.nodes[index].query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))?;
        Ok(redis::from_redis_value(value)?)
    }

    /// The index of the node that is master of `key`'s slot now (`CLUSTER SHARDS`' view of a
    /// running node, by `CLUSTER NODES`).
    pub fn master_of(&mut self, key: &str) -> anyhow::Result<usize> {
        let slot = self.slot_of(key)?;
        self.master_of_slot(slot)
    }

    /// The index of the node that is master of `slot` now.
    pub fn master_of_slot(&mut self, slot: u16) -> anyhow::Result<usize> {
        let index = self.any_running()?;
        let value = self.nodes[index].query(redis::cmd("CLUSTER").arg("NODES"))?;
        let text: String = redis::from_redis_value(value)?;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(l), Ok(h)) if l <= slot && slot <= h)
            });
            if serves {
                let port: u16 = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .context("parsing a CLUSTER NODES address")?;
                return self
                    .nodes
                    .iter()
                    .position(|node| node.port == port)
                    .context("a master outside the test cluster");
            }
        }
        bail!("no master serves slot {slot}")
    }

    /// The index of a replica of master `master` (by `INFO replication` of each node).
    pub fn replica_of(&mut self, master: usize) -> anyhow::Result<usize> {
        let port = self.nodes[master].port;
        for index in 0..self.nodes.len() {
            if index == master || !self.nodes[index].is_running() {
                continue;
            }
            let info = self.nodes[index].info("replication")?;
            if info.lines().any(|l| l.trim() == "role:slave")
                && info
                    .lines()
                    .any(|l| l.trim() == format!("master_port:{port}"))
            {
                return Ok(index);
            }
        }
        bail!("master {master} has no running replica")
    }

    /// `CLUSTER FAILOVER` on replica `replica`: it takes over from its master with no write
    /// lost (the master stops writes until the replica has caught up). Waits until it is
    /// master and the cluster is healthy again.
    pub fn failover(&mut self, replica: usize) -> anyhow::Result<()> {
        self.nodes[replica].query(redis::cmd("CLUSTER").arg("FAILOVER"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = self.nodes[replica].info("replication")?;
            if info.lines().any(|l| l.trim() == "role:master") {
                break;
            }
            if Instant::now() > deadline {
                bail!("node {replica} did not become master within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_until_healthy(Duration::from_secs(30))
    }

    /// Moves `slot` from its master to master `to` while clients keep using it: the target
    /// imports, the source migrates, the keys move in batches (`MIGRATE`; meanwhile clients
    /// are sent `ASK` or `TRYAGAIN`), then every master is told the slot's new owner.
    pub fn migrate_slot(&mut self, slot: u16, to: usize) -> anyhow::Result<()> {
        let from = self.master_of_slot(slot)?;
        if from == to {
            return Ok(());
        }
        let id = |node: &Node| -> anyhow::Result<String> {
            Ok(redis::from_redis_value(
                node.query(redis::cmd("CLUSTER").arg("MYID"))?,
            )?)
        };
        let (from_id, to_id) = (id(&self.nodes[from])?, id(&self.nodes[to])?);
        self.nodes[to].query(
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("IMPORTING")
                .arg(&from_id),
        )?;
        self.nodes[from].query(
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("MIGRATING")
                .arg(&to_id),
        )?;
        let to_port = self.nodes[to].port;
        loop {
            let keys: Vec<String> = redis::from_redis_value(
                self.nodes[from]
                    .query(redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(50))?,
            )?;
            if keys.is_empty() {
                break;
            }
            self.nodes[from].query(
                redis::cmd("MIGRATE")
                    .arg("127.0.0.1")
                    .arg(to_port)
                    .arg("")
                    .arg(0)
                    .arg(5000)
                    .arg("KEYS")
                    .arg(&keys),
            )?;
        }
        for index in [to, from] {
            self.nodes[index].query(
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&to_id),
            )?;
        }
        self.wait_until_healthy(Duration::from_secs(30))
    }

    /// Kills node `index` abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Waits until every running node says `cluster_state:ok`, knows the same number of
    /// running masters serving every slot, and every running replica's link is up.
    pub fn wait_until_healthy(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let mut healthy = true;
            for index in 0..self.nodes.len() {
                if !self.nodes[index].is_running() {
                    continue;
                }
                let ok = self.nodes[index]
                    .cluster_info()
                    .map(|info| {
                        info.lines().any(|l| l.trim() == "cluster_state:ok")
                            && info.lines().any(|l| l.trim() == "cluster_slots_ok:16384")
                    })
                    .unwrap_or(false);
                let linked = self.nodes[index]
                    .info("replication")
                    .map(|info| {
                        !info.lines().any(|l| l.trim() == "role:slave")
                            || info.lines().any(|l| l.trim() == "master_link_status:up")
                    })
                    .unwrap_or(false);
                healthy &= ok && linked;
            }
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the test cluster was not healthy within {within:?}; first log: {}",
                    self.log(0)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log of node `index`.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.nodes[index].dir.join("redis.log")).unwrap_or_default()
    }

    fn any_running(&mut self) -> anyhow::Result<usize> {
        (0..self.nodes.len())
            .find(|&index| self.nodes[index].is_running())
            .context("no node of the test cluster is running")
    }

    fn wait_for_ping(&mut self, index: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.nodes[index].query(&mut redis::cmd("PING")).is_ok() {
                return Ok(());
            }
            if !self.nodes[index].is_running() {
                bail!(
                    "redis-server (cluster node {index}) exited during start-up; its log says:\n{}",
                    self.log(index)
                );
            }
            if Instant::now() > deadline {
                bail!("cluster node {index} did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// `count` product names from `candidates` whose `{product}` slots are served by different
/// masters of `cluster` (as many as there are masters, at most); fails if the candidates do
/// not cover enough masters.
pub fn products_on_distinct_masters(
    cluster: &mut RedisCluster,
    prefix: &str,
    candidates: &[&str],
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut chosen = Vec::new();
    let mut masters = Vec::new();
    for product in candidates {
        let master = cluster.master_of(&format!("{prefix}:{{{product}}}:events"))?;
        if !masters.contains(&master) {
            masters.push(master);
            chosen.push((*product).to_string());
            if chosen.len() == count {
                return Ok(chosen);
            }
        }
    }
    bail!(
        "the candidates {candidates:?} cover only {} masters",
        masters.len()
    )
}

/// The `redis-cli` binary: `MM_TEST_REDIS_CLI` or the one on PATH.
pub fn redis_cli_binary() -> PathBuf {
    std::env::var_os("MM_TEST_REDIS_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-cli"))
}

/// `count` free TCP ports on 127.0.0.1 whose cluster bus port (+10000) is free too. The
/// listeners are held until all are found, so the ports differ.
fn free_port_pairs(count: usize) -> anyhow::Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..1000 {
        if ports.len() == count {
            break;
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let Some(bus) = port.checked_add(10000) else {
            continue;
        };
        let Ok(bus_listener) = TcpListener::bind(("127.0.0.1", bus)) else {
            continue;
        };
        held.push(listener);
        held.push(bus_listener);
        ports.push(port);
    }
    if ports.len() < count {
        bail!("could not find {count} free port pairs for the test cluster");
    }
    Ok(ports)
}
