//! Reconciliation: make the game servers and the record agree (contract section 6.5).
//!
//! Every `curation.reconcile_interval_secs`, the holder of the curation lease runs one pass:
//!
//! 1. **Republish the registry** (`P:servers`, `P:products`), so a Redis that lost its data
//!    has them back within one interval.
//! 2. Per product, ask each of its registered servers for `GET /games`. A server answering
//!    404 or 405 does not implement the optional call: it is skipped (logged once). A server
//!    that fails is skipped for this pass; nothing is concluded from silence.
//! 3. **Orphans**: a game a server lists that has no live record on that server (no hash, a
//!    tombstone, or a record naming another server) is remembered with the time it was first
//!    seen so; once that is `curation.orphan_grace_secs` ago it is deleted on the server. The
//!    grace is validated to outlast the longest create (a game exists on its server before its
//!    record is written), so a create in flight is never taken for an orphan.
//! 4. **Lost games**: the product's live records are scanned in bounded batches
//!    ([`Store::live_games_scan`]); a record on a listed server that the server did not list is
//!    remembered with the time it was first missing; once that is `curation.lost_grace_secs`
//!    ago it ends with reason `lost_on_server`, through the store's remove script guarded with
//!    [`RemoveGuard::StaleIn`] at the set and score the scan saw, so a record that moved or
//!    was refreshed since is left alone (and its clock restarts). The grace is counted up to
//!    the product's applied watermark, not now (as curation is, see the curator's docs): a
//!    game whose own `game_ended` still waits in the stream ends by that event, not as lost,
//!    and a lagging worker delays the judgment rather than mislabelling it. The servers are listed
//!    before the records are read, so a game created in between is only "first missing" on
//!    this pass, never ended on first sight.
//!
//! The "first seen" times live in this process's memory, not in Redis: they belong to the
//! lease holder's observations and are forgotten when it loses the lease, so a new holder
//! (or this one, regaining it) starts its graces afresh. Everything is conservative: a clock
//! that restarts only delays an action.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mm_common::gameserver::{DeleteOutcome, GameServerClient, ListOutcome, Operation};
use mm_common::model::GameSet;
use mm_common::store::{RecordPresence, RemoveGuard, RemoveOutcome, Store, StoreError};
use mm_common::time::now_ms;
use mm_common::{GameId, ProductId, ServerId};
use mm_config::CurationSettings;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;
use crate::telemetry;

/// The `end_reason` of a live record whose server no longer had the game.
pub const LOST_ON_SERVER: &str = "lost_on_server";

/// How reconciliation works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// Time between passes.
    pub interval: Duration,
    /// How long a game a server holds may have no live record before it is deleted there.
    pub orphan_grace: Duration,
    /// How long a live record's server may not list it before it ends `lost_on_server`.
    pub lost_grace: Duration,
    /// Records read per scan step and ids looked up per round trip.
    pub batch_size: usize,
    /// Log, change nothing.
    pub dry_run: bool,
}

impl ReconcileOptions {
    /// Options from the `[curation]` settings.
    pub fn from_settings(settings: &CurationSettings) -> Self {
        Self {
            interval: settings
                .reconcile_interval()
                .max(Duration::from_millis(100)),
            orphan_grace: settings.orphan_grace(),
            lost_grace: settings.lost_grace(),
            batch_size: settings.batch_size.max(1),
            dry_run: settings.dry_run,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Servers whose `GET /games` answered.
    pub servers_listed: u64,
    /// Servers that do not implement `GET /games`.
    pub servers_unsupported: u64,
    /// Servers whose `GET /games` failed (skipped this pass).
    pub servers_failed: u64,
    /// Games held by a server without a live record, still within their grace.
    pub orphans_waiting: u64,
    /// Orphans deleted on their server (or already gone there).
    pub orphans_deleted: u64,
    /// Orphans whose delete failed (tried again next pass).
    pub orphans_failed: u64,
    /// Listed ids that are not this product's game ids (left alone).
    pub foreign_ids: u64,
    /// Live records their server did not list, still within their grace.
    pub lost_waiting: u64,
    /// Live records ended `lost_on_server`.
    pub lost_ended: u64,
    /// Lost candidates that changed (moved, refreshed or ended) before they could be ended.
    pub lost_changed: u64,
    /// Actions a dry run only logged.
    pub dry_run: u64,
    /// Whether `P:servers`/`P:products` were republished.
    pub published: bool,
}

impl std::fmt::Display for ReconcileReport {
    /// One line for the log: the non-zero counters as `name=count`
    /// (`servers_listed=2 orphans_deleted=1`), and `not_published` when the registry could not
    /// be republished.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::write_counters(
            f,
            &[
                ("servers_listed", self.servers_listed),
                ("servers_unsupported", self.servers_unsupported),
                ("servers_failed", self.servers_failed),
                ("orphans_waiting", self.orphans_waiting),
                ("orphans_deleted", self.orphans_deleted),
                ("orphans_failed", self.orphans_failed),
                ("foreign_ids", self.foreign_ids),
                ("lost_waiting", self.lost_waiting),
                ("lost_ended", self.lost_ended),
                ("lost_changed", self.lost_changed),
                ("dry_run", self.dry_run),
            ],
        )?;
        if !self.published {
            f.write_str(" not_published")?;
        }
        Ok(())
    }
}

/// `GET /games` calls in flight at once.
const LISTINGS_IN_FLIGHT: usize = 8;

/// What one server's `GET /games` gave.
enum Listing {
    Listed(HashSet<String>),
    Unsupported,
    Failed,
}

/// The lease holder's observations, kept between passes.
#[derive(Debug, Default)]
struct Observations {
    /// (server, game id) → when the server was first seen holding it without a live record.
    orphans_since: HashMap<(ServerId, String), u64>,
    /// game id → its server and when that server was first seen not listing it.
    missing_since: HashMap<String, (ServerId, u64)>,
    /// Servers known not to implement `GET /games` (logged once each).
    unsupported: HashSet<ServerId>,
}

/// The reconciliation pass of the curator.
pub struct Reconciler {
    store: Store,
    registry: Registry,
    client: GameServerClient,
    options: ReconcileOptions,
    observations: Mutex<Observations>,
    next_due: Mutex<Instant>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// Reconciles the servers of `registry` (called with `client`) with the record in
    /// `store`. The first pass is due one interval from now.
    pub fn new(
        store: Store,
        registry: Registry,
        client: GameServerClient,
        options: ReconcileOptions,
    ) -> Self {
        let next_due = Instant::now() + options.interval;
        Self {
            store,
            registry,
            client,
            options,
            observations: Mutex::default(),
            next_due: Mutex::new(next_due),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &ReconcileOptions {
        &self.options
    }

    /// Runs a pass if one is due (the curator calls this on each tick while it holds the
    /// lease); logs and times it.
    pub async fn tick(&self, shutdown: &CancellationToken) {
        {
            let mut next_due = self.next_due.lock().expect("not poisoned");
            let now = Instant::now();
            if now < *next_due {
                return;
            }
            *next_due = now + self.options.interval;
        }
        let started = Instant::now();
        match self.pass(now_ms(), shutdown).await {
            Ok(report) => {
                let acted = report.orphans_deleted
                    + report.orphans_failed
                    + report.lost_ended
                    + report.lost_changed
                    + report.dry_run;
                if acted > 0 || report.servers_failed > 0 {
                    tracing::info!("reconciliation pass: {report}");
                } else {
                    tracing::debug!("reconciliation pass: {report}");
                }
            }
            Err(err) => tracing::warn!(%err, "reconciliation pass failed; retrying next interval"),
        }
        metrics::histogram!("mm_reconcile_pass_duration_seconds")
            .record(started.elapsed().as_secs_f64());
    }

    /// Forgets every observation (the lease was lost: another instance observes now).
    pub fn forget(&self) {
        let mut observations = self.observations.lock().expect("not poisoned");
        observations.orphans_since.clear();
        observations.missing_since.clear();
    }

    /// One pass at time `now_ms` (does not check the lease or the interval).
    pub async fn pass(
        &self,
        now_ms: u64,
        shutdown: &CancellationToken,
    ) -> Result<ReconcileReport, StoreError> {
        let mut report = ReconcileReport::default();
        match self.registry.publish(&self.store).await {
            Ok(()) => report.published = true,
            Err(err) => tracing::warn!(%err, "could not republish the game-server registry"),
        }
        for product in self.registry.products() {
            if shutdown.is_cancelled() {
                break;
            }
            self.reconcile_product(&product, now_ms, shutdown, &mut report)
                .await?;
        }
        Ok(report)
    }

    async fn reconcile_product(
        &self,
        product: &ProductId,
        now_ms: u64,
        shutdown: &CancellationToken,
        report: &mut ReconcileReport,
    ) -> Result<(), StoreError> {
        // Listings first, records second: see the module docs.
        // Concurrently, so a few slow or unreachable servers do not hold the pass (and the
        // lease renewal behind it) for their timeouts one after another.
        let listings: Vec<(ServerId, Listing)> =
            futures::stream::iter(self.registry.servers_of(product))
                .map(|server| async move {
                    let listing = self.list(&server).await;
                    (server, listing)
                })
                .buffer_unordered(LISTINGS_IN_FLIGHT)
                .collect()
                .await;
        let mut listed: HashMap<ServerId, HashSet<String>> = HashMap::new();
        for (server, listing) in listings {
            match listing {
                Listing::Listed(ids) => {
                    report.servers_listed += 1;
                    listed.insert(server, ids);
                }
                Listing::Unsupported => report.servers_unsupported += 1,
                Listing::Failed => report.servers_failed += 1,
            }
        }
        if listed.is_empty() {
            return Ok(());
        }
        for (server, ids) in &listed {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            self.handle_orphans(product, server, ids, now_ms, report)
                .await?;
        }
        self.handle_lost(product, &listed, now_ms, shutdown, report)
            .await
    }

    /// `GET /games` of `server`.
    async fn list(&self, server: &ServerId) -> Listing {
        let Some(endpoint) = self.registry.endpoint(server) else {
            return Listing::Failed;
        };
        let result = self.client.list_games(&endpoint).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) => err.kind(),
        };
        telemetry::game_server_call(server.as_str(), Operation::ListGames.as_str(), outcome);
        match result {
            Ok(ListOutcome::Listed(ids)) => {
                let mut observations = self.observations.lock().expect("not poisoned");
                if observations.unsupported.remove(server) {
                    tracing::info!(%server, "game server now answers GET /games; reconciling it");
                }
                Listing::Listed(ids.into_iter().collect())
            }
            Ok(ListOutcome::Unsupported) => {
                let mut observations = self.observations.lock().expect("not poisoned");
                if observations.unsupported.insert(server.clone()) {
                    tracing::info!(
                        %server,
                        "game server does not implement GET /games (404/405); not reconciled"
                    );
                }
                Listing::Unsupported
            }
            Err(err) => {
                tracing::warn!(%server, %err, "GET /games failed; server not reconciled this pass");
                Listing::Failed
            }
        }
    }

    async fn handle_orphans(
        &self,
        product: &ProductId,
        server: &ServerId,
        listed: &HashSet<String>,
        now_ms: u64,
        report: &mut ReconcileReport,
    ) -> Result<(), StoreError> {
        let mut ours = Vec::with_capacity(listed.len());
        for raw in listed {
            match GameId::new(raw) {
                Ok(id) if id.product().as_ref() == Some(product) => ours.push(raw.clone()),
                _ => {
                    report.foreign_ids += 1;
                    tracing::debug!(%server, id = %raw, "listed id is not a game id of this product; left alone");
                }
            }
        }
        let mut orphans = Vec::new();
        for chunk in ours.chunks(self.options.batch_size) {
            let presence = self.store.record_presence(product, chunk).await?;
            for (raw, presence) in chunk.iter().zip(presence) {
                let ours = matches!(&presence, RecordPresence::Live { server_id } if server_id == server.as_str());
                if !ours {
                    orphans.push(raw.clone());
                }
            }
        }
        let due: Vec<String> = {
            let mut observations = self.observations.lock().expect("not poisoned");
            let current: HashSet<&String> = orphans.iter().collect();
            observations
                .orphans_since
                .retain(|(on, id), _| on != server || current.contains(id));
            orphans
                .iter()
                .filter(|id| {
                    let since = *observations
                        .orphans_since
                        .entry((server.clone(), (*id).clone()))
                        .or_insert(now_ms);
                    now_ms.saturating_sub(since) >= self.options.orphan_grace.as_millis() as u64
                })
                .cloned()
                .collect()
        };
        report.orphans_waiting += (orphans.len() - due.len()) as u64;
        let Some(endpoint) = self.registry.endpoint(server) else {
            return Ok(());
        };
        for raw in due {
            let Ok(id) = GameId::new(&raw) else { continue };
            if self.options.dry_run {
                report.dry_run += 1;
                tracing::info!(%server, game = %id, "dry run: would delete an orphan on its server");
                continue;
            }
            match self.client.delete_game(&endpoint, &id).await {
                Ok(outcome) => {
                    report.orphans_deleted += 1;
                    metrics::counter!("mm_reconcile_orphans_deleted_total", "server" => server.to_string())
                        .increment(1);
                    self.observations
                        .lock()
                        .expect("not poisoned")
                        .orphans_since
                        .remove(&(server.clone(), raw.clone()));
                    tracing::info!(
                        %server, game = %id, already_gone = outcome == DeleteOutcome::AlreadyGone,
                        "orphan deleted on its game server (no live record)"
                    );
                }
                Err(err) => {
                    report.orphans_failed += 1;
                    tracing::warn!(%server, game = %id, %err, "could not delete an orphan; trying again next pass");
                }
            }
        }
        Ok(())
    }

    async fn handle_lost(
        &self,
        product: &ProductId,
        listed: &HashMap<ServerId, HashSet<String>>,
        now_ms: u64,
        shutdown: &CancellationToken,
        report: &mut ReconcileReport,
    ) -> Result<(), StoreError> {
        // Live records on a listed server that the server did not list: id → (server, set, score).
        let mut missing: HashMap<String, (ServerId, GameSet, u64)> = HashMap::new();
        for set in GameSet::ALL {
            let mut cursor = 0;
            loop {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                let page = self
                    .store
                    .live_games_scan(product, set, cursor, self.options.batch_size)
                    .await?;
                for game in page.games {
                    let Some(server) = game
                        .server_id
                        .as_deref()
                        .and_then(|raw| ServerId::new(raw).ok())
                    else {
                        continue;
                    };
                    if listed
                        .get(&server)
                        .is_some_and(|ids| !ids.contains(&game.id))
                    {
                        missing.insert(game.id, (server, game.set, game.score));
                    }
                }
                cursor = page.next_cursor;
                if cursor == 0 {
                    break;
                }
            }
        }
        // Judged at the applied watermark, as curation is: a game that ended on its server by
        // itself, with its `game_ended` still waiting in the stream, is ended by that event
        // (reason `game_ended`), not taken for lost. While the worker lags, this waits.
        let applied_until_ms = match self.store.watermark(product).await {
            Ok(watermark) => watermark.applied_until(now_ms),
            Err(err) => {
                tracing::warn!(%product, %err, "could not read the applied watermark; lost games not judged this pass");
                return Ok(());
            }
        };
        let due: Vec<(String, ServerId, GameSet, u64)> = {
            let mut observations = self.observations.lock().expect("not poisoned");
            observations.missing_since.retain(|id, (server, _)| {
                !listed.contains_key(server) || missing.get(id).is_some_and(|m| &m.0 == server)
            });
            missing
                .into_iter()
                .filter_map(|(id, (server, set, score))| {
                    let since = observations
                        .missing_since
                        .entry(id.clone())
                        .or_insert((server.clone(), now_ms))
                        .1;
                    if applied_until_ms.saturating_sub(since)
                        >= self.options.lost_grace.as_millis() as u64
                    {
                        Some((id, server, set, score))
                    } else {
                        report.lost_waiting += 1;
                        None
                    }
                })
                .collect()
        };
        for (raw, server, set, score) in due {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let Ok(id) = GameId::new(&raw) else { continue };
            if self.options.dry_run {
                report.dry_run += 1;
                tracing::info!(%server, game = %id, "dry run: would end a game its server lost");
                continue;
            }
            let outcome = self
                .store
                .remove_game(
                    &id,
                    LOST_ON_SERVER,
                    RemoveGuard::StaleIn {
                        set,
                        cutoff_ms: score,
                    },
                    now_ms,
                )
                .await?;
            self.observations
                .lock()
                .expect("not poisoned")
                .missing_since
                .remove(&raw);
            match outcome {
                RemoveOutcome::Removed { previous } => {
                    report.lost_ended += 1;
                    metrics::counter!("mm_reconcile_lost_total", "server" => server.to_string())
                        .increment(1);
                    tracing::warn!(
                        %server, game = %id, %previous, reason = LOST_ON_SERVER,
                        "game ended: its server no longer holds it"
                    );
                }
                other => {
                    report.lost_changed += 1;
                    tracing::info!(
                        %server, game = %id, ?other,
                        "game its server did not list changed meanwhile; left alone"
                    );
                }
            }
        }
        Ok(())
    }
}
