//! One scenario, two topologies: a test body that runs on a private single Redis and, beside
//! other scenarios, on one shared Redis Cluster (issue 14, item 3).
//!
//! A scenario is an async function of a [`Placement`]: the Redis to run on, the product its
//! games belong to and the key prefix of its app. On a single Redis that is `chess` under
//! `mm`, as everywhere else in the suite. On a cluster, [`cluster_placements`] gives each
//! scenario a product of its own, spread round-robin over the masters, and a key prefix of
//! its own, so scenarios run at once on one cluster without sharing a key — not even the
//! curation lease or the instance heartbeats — while their products' slots sit on different
//! masters. The `it` binary runs each scenario as its own test on a single Redis, and all of
//! them together in `cluster::scenarios_of_every_area_run_on_a_shared_cluster`.

use std::collections::BTreeMap;

use anyhow::bail;

use mm_common::store::StoreOptions;

use crate::RedisServer;
use crate::app::{ServerSpec, SharedCluster, TEST_PREFIX, TestAppOptions, TestRedis};

/// Where a scenario runs and under which names.
#[derive(Clone)]
pub struct Placement {
    cluster: Option<SharedCluster>,
    /// The product of the scenario's games.
    pub product: String,
    /// The key prefix of the scenario's app.
    pub key_prefix: String,
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement")
            .field("cluster", &self.cluster.is_some())
            .field("product", &self.product)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

impl Placement {
    /// A private single Redis (started by the app), product `chess`, prefix `mm`.
    pub fn node() -> Placement {
        Placement {
            cluster: None,
            product: "chess".into(),
            key_prefix: TEST_PREFIX.into(),
        }
    }

    /// Whether the scenario runs on a cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// The app options of the scenario: the defaults with two game servers (`gs-1`, `gs-2`)
    /// of its product, on its Redis, under its prefix. Adjust the rest with struct update.
    pub fn options(&self) -> TestAppOptions {
        TestAppOptions {
            servers: self.servers(&["gs-1", "gs-2"]),
            cluster: self.cluster.clone(),
            key_prefix: self.key_prefix.clone(),
            ..TestAppOptions::default()
        }
    }

    /// The scenario's Redis: a new private single one, or the shared cluster.
    pub fn redis(&self) -> anyhow::Result<TestRedis> {
        Ok(match &self.cluster {
            Some(cluster) => TestRedis::Cluster(cluster.clone()),
            None => TestRedis::Node(RedisServer::start()?),
        })
    }

    /// Store options for `redis` (from [`Placement::redis`]) under the scenario's prefix.
    pub fn store_options(&self, redis: &TestRedis) -> StoreOptions {
        let mut options = match redis {
            TestRedis::Node(_) => StoreOptions::new(redis.url()),
            TestRedis::Cluster(_) => StoreOptions::cluster(redis.cluster_nodes()),
        };
        options.key_prefix = self.key_prefix.clone();
        options
    }

    /// Game servers of the scenario's product, one per id.
    pub fn servers(&self, ids: &[&str]) -> Vec<ServerSpec> {
        ids.iter()
            .map(|id| ServerSpec::new(id, &self.product))
            .collect()
    }

    /// A game id of the scenario's product that names no game.
    pub fn unknown_game(&self) -> String {
        format!("{}.nope", self.product)
    }
}

/// Placements for `count` scenarios on one cluster: products from `candidates` taken
/// round-robin over the masters their `{product}` slot lands on (so consecutive scenarios
/// use different masters), each scenario with its own key prefix `s<n>`.
pub fn cluster_placements(
    cluster: &SharedCluster,
    candidates: &[&str],
    count: usize,
) -> anyhow::Result<Vec<Placement>> {
    let mut by_master: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    {
        let mut cluster = cluster.lock().expect("cluster lock");
        for product in candidates {
            // The slot depends on the hash tag only, not on the prefix.
            let master = cluster.master_of(&format!("{TEST_PREFIX}:{{{product}}}:events"))?;
            by_master.entry(master).or_default().push(product);
        }
    }
    let mut columns: Vec<std::vec::IntoIter<&str>> =
        by_master.into_values().map(Vec::into_iter).collect();
    let mut placements = Vec::new();
    'fill: while placements.len() < count {
        let before = placements.len();
        for column in &mut columns {
            if let Some(product) = column.next() {
                let n = placements.len();
                placements.push(Placement {
                    cluster: Some(cluster.clone()),
                    product: product.to_string(),
                    key_prefix: format!("s{n}"),
                });
                if placements.len() == count {
                    break 'fill;
                }
            }
        }
        if placements.len() == before {
            bail!(
                "{} candidate products for {count} scenarios: name more",
                candidates.len()
            );
        }
    }
    Ok(placements)
}
