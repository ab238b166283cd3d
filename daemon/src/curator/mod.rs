//! The curator: deletes stale games on their game servers and removes them from the record.
//!
//! Every `curation.interval_secs`, the instance holding the curation lease looks, per product,
//! for
//!
//! - pending games created longer than `pending_timeout` ago (`curated_pending`),
//! - lobbies with no activity for `lobby_idle_timeout` (`curated_lobby_idle`),
//! - active games with no event for `active_idle_timeout` (`curated_active_idle`),
//!
//! with `ZRANGE set -inf <cutoff> BYSCORE LIMIT offset batch_size` (the sets are scored by
//! creation time for pending, last activity otherwise), and releases expired seat
//! reservations.
//!
//! # Never ahead of the record
//!
//! A record is only as fresh as the events applied to it: with the worker stopped or behind,
//! a game whose creator has joined still looks pending, and a lobby full of players looks
//! idle. So every cutoff is `min(now, watermark) − timeout`, where the product's applied
//! watermark ([`Store::watermark`]) is the time of the oldest stream entry the consumer group
//! has not acknowledged (now when there is none): every event written before the cutoff has
//! then been applied, and a game is curated only if the complete record says it is stale.
//! While the worker lags, curation of that product waits; once it catches up, stale games are
//! curated as before. If the watermark cannot be read, the product is not curated in this
//! pass (logged, counted in `mm_curation_skipped_total`) rather than curated blind.
//!
//! # Mark first, server second, record last
//!
//! Each stale game goes through the end step shared with cancel and force-delete
//! ([`mm_common::flows::end_game`]): it is marked as ending under
//! [`RemoveGuard::StaleIn`] — a game that came alive since it was picked (an event moved or
//! refreshed it) is left alone and its server is not called — which unlists it at once; then
//! it is deleted on its game server (`DELETE /games/{id}`, at most `concurrency` calls at a
//! time). When the server confirms — 2xx, or 404 for a game it no longer has — the record is
//! removed, whatever events arrived meanwhile (the server no longer has the game). A server
//! that refuses (4xx other than 404) or cannot be reached has the mark cleared and keeps its
//! games in the record; they are retried on later passes with a per-game exponential delay,
//! and the game-server client's per-server circuit breaker turns an outage into fast failures
//! instead of a flood of calls. An outage never removes games. A game whose server id is not
//! registered is logged and skipped, never removed blindly.
//!
//! # Interrupted end steps
//!
//! An end step (the curator's, a cancel's, a force-delete's) interrupted between its mark and
//! its removal — a crash, a lost connection — leaves the game marked in `P:{product}:ending`.
//! Each pass finishes the marks older than `stuck_ending_after` (longer than any delete call
//! can take with its retries, so an end step still in flight is not raced): the game is
//! deleted on its server again and removed with the mark's reason, or, unconfirmed, the mark
//! is cleared (a stale game is then picked again by its timeout). Counted in
//! `mm_endings_finished_total`.
//!
//! # Several daemons
//!
//! Only the holder of the lease `P:lease:curator` (value: its instance name, `SET NX PX`,
//! renewed by its holder with a compare-and-set script) curates. The lease is an efficiency
//! measure: the per-game guard already makes two curators racing on one game harmless.
//!
//! The lease holder also reconciles the record with the game servers' `GET /games` every
//! `curation.reconcile_interval_secs` (see [`reconcile`]).
//!
//! `curation.dry_run` logs what would be curated and changes nothing. On shutdown the curator
//! stops between games: a game whose server call has started is finished (record updated),
//! the rest of the pass is skipped.

pub mod reconcile;
mod servers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mm_common::backoff::{Backoff, Delays};
use mm_common::flows::{self, EndGame, Ended, FinishEnding, Unconfirmed};
use mm_common::model::GameSet;
use mm_common::store::{RemoveGuard, RemoveOutcome, Store, StoreError};
use mm_common::time::now_ms;
use mm_common::{GameId, ProductId};
use mm_config::{CurationSettings, GameServerClientSettings};
use tokio_util::sync::CancellationToken;

pub use mm_common::flows::{DeleteAttempt, GameServers};
pub use reconcile::{ReconcileOptions, ReconcileReport, Reconciler};
pub use servers::{EndpointLookup, RegisteredServers};

/// Name of the curation lease (`P:lease:curator`).
pub const LEASE_NAME: &str = "curator";

/// How the curator works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CuratorOptions {
    /// Time between passes.
    pub interval: Duration,
    /// Pending games older than this are curated.
    pub pending_timeout: Duration,
    /// Lobbies idle longer than this are curated.
    pub lobby_idle_timeout: Duration,
    /// Active games idle longer than this are curated.
    pub active_idle_timeout: Duration,
    /// Log, change nothing.
    pub dry_run: bool,
    /// Game-server deletes at the same time.
    pub concurrency: usize,
    /// Members read from a set per `ZRANGE`.
    pub batch_size: usize,
    /// Lease duration.
    pub lease: Duration,
    /// This instance's name (the lease value).
    pub instance_name: String,
    /// Longest delay before retrying a game whose server failed.
    pub max_retry_delay: Duration,
    /// Ending marks older than this are end steps that were interrupted; the curator finishes
    /// them ([`stuck_ending_bound`]).
    pub stuck_ending_after: Duration,
}

/// How old an ending mark must be before the curator treats its end step as interrupted: four
/// times the longest a `DELETE` can take with its retries (`(retries + 1) ×
/// request_timeout_ms`), at least 30 seconds.
pub fn stuck_ending_bound(client: &GameServerClientSettings) -> Duration {
    let longest_call = client.request_timeout() * (client.retries.saturating_add(1));
    (longest_call * 4).max(Duration::from_secs(30))
}

impl CuratorOptions {
    /// Options from the `[curation]` settings.
    pub fn from_settings(settings: &CurationSettings, instance_name: impl Into<String>) -> Self {
        Self {
            interval: settings.interval().max(Duration::from_millis(100)),
            pending_timeout: settings.pending_timeout(),
            lobby_idle_timeout: settings.lobby_idle_timeout(),
            active_idle_timeout: settings.active_idle_timeout(),
            dry_run: settings.dry_run,
            concurrency: settings.concurrency.max(1),
            batch_size: settings.batch_size.max(1),
            lease: settings.lease().max(Duration::from_secs(1)),
            instance_name: instance_name.into(),
            max_retry_delay: Duration::from_secs(300),
            stuck_ending_after: stuck_ending_bound(&GameServerClientSettings::default()),
        }
    }

    fn timeout_of(&self, set: GameSet) -> Duration {
        match set {
            GameSet::Pending => self.pending_timeout,
            GameSet::Lobby => self.lobby_idle_timeout,
            GameSet::Active => self.active_idle_timeout,
        }
    }
}

/// The `end_reason` a curated game gets, by the set it was found in.
pub fn reason_for(set: GameSet) -> &'static str {
    match set {
        GameSet::Pending => "curated_pending",
        GameSet::Lobby => "curated_lobby_idle",
        GameSet::Active => "curated_active_idle",
    }
}

/// What one pass did, game by game.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Deleted on the server and removed from the record.
    pub removed: u64,
    /// The server refused the delete; kept.
    pub server_refused: u64,
    /// The server could not be reached; kept, retried later.
    pub server_unreachable: u64,
    /// Deleted on the server but came alive (or ended) meanwhile; the record was left alone.
    pub skipped_alive: u64,
    /// Would have been curated (dry run).
    pub dry_run: u64,
    /// Its server is not registered; skipped.
    pub unknown_server: u64,
    /// Waiting for its retry delay after an earlier failure.
    pub deferred: u64,
    /// Expired seat reservations released.
    pub reservations_released: u64,
    /// Malformed id or no game record behind a set member; skipped.
    pub invalid: u64,
    /// Games not looked at because shutdown began.
    pub interrupted: u64,
    /// Products not curated because their applied watermark could not be read.
    pub watermark_unknown: u64,
    /// Products whose curation stopped part-way on a Redis error (their slot unreachable,
    /// failing over or migrating); the other products were curated all the same.
    pub products_failed: u64,
    /// Interrupted end steps finished: deleted on the server and removed from the record.
    pub endings_finished: u64,
    /// Interrupted end steps whose server did not confirm: the mark was cleared.
    pub endings_unmarked: u64,
    /// Ending marks of games that had ended or vanished meanwhile: dropped.
    pub endings_dropped: u64,
}

impl PassReport {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Removed => self.removed += 1,
            Outcome::ServerRefused => self.server_refused += 1,
            Outcome::ServerUnreachable => self.server_unreachable += 1,
            Outcome::SkippedAlive => self.skipped_alive += 1,
            Outcome::DryRun => self.dry_run += 1,
            Outcome::UnknownServer => self.unknown_server += 1,
            Outcome::Deferred => self.deferred += 1,
            Outcome::Invalid => self.invalid += 1,
            Outcome::Interrupted => self.interrupted += 1,
        }
    }

    /// Whether the pass found nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == PassReport::default()
    }
}

impl std::fmt::Display for PassReport {
    /// One line for the log: the non-zero counters as `name=count`, in the order of the
    /// fields (`removed=3 server_unreachable=1`), or `nothing to do`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_counters(
            f,
            &[
                ("removed", self.removed),
                ("server_refused", self.server_refused),
                ("server_unreachable", self.server_unreachable),
                ("skipped_alive", self.skipped_alive),
                ("dry_run", self.dry_run),
                ("unknown_server", self.unknown_server),
                ("deferred", self.deferred),
                ("reservations_released", self.reservations_released),
                ("invalid", self.invalid),
                ("interrupted", self.interrupted),
                ("watermark_unknown", self.watermark_unknown),
                ("endings_finished", self.endings_finished),
                ("endings_unmarked", self.endings_unmarked),
                ("endings_dropped", self.endings_dropped),
            ],
        )
    }
}

/// Writes the non-zero `counters` as `name=count` separated by spaces, or `nothing to do`.
pub(crate) fn write_counters(
    f: &mut std::fmt::Formatter<'_>,
    counters: &[(&str, u64)],
) -> std::fmt::Result {
    let mut shown = counters.iter().filter(|(_, count)| *count > 0).peekable();
    if shown.peek().is_none() {
        return f.write_str("nothing to do");
    }
    let mut first = true;
    for (name, count) in shown {
        if !first {
            f.write_str(" ")?;
        }
        write!(f, "{name}={count}")?;
        first = false;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Removed,
    ServerRefused,
    ServerUnreachable,
    SkippedAlive,
    DryRun,
    UnknownServer,
    Deferred,
    Invalid,
    Interrupted,
}

impl Outcome {
    /// The `outcome` label of `mm_curated_games_total` (none: not counted).
    fn label(self) -> Option<&'static str> {
        match self {
            Outcome::Removed => Some("removed"),
            Outcome::ServerRefused => Some("server_refused"),
            Outcome::ServerUnreachable => Some("server_unreachable"),
            Outcome::SkippedAlive => Some("skipped_alive"),
            Outcome::DryRun => Some("dry_run"),
            Outcome::UnknownServer => Some("unknown_server"),
            Outcome::Invalid => Some("skipped_invalid"),
            Outcome::Deferred | Outcome::Interrupted => None,
        }
    }

    /// Whether the game stays in the set (so the next page starts after it).
    fn stays(self) -> bool {
        !matches!(self, Outcome::Removed | Outcome::SkippedAlive)
    }
}

/// A game whose server failed: when to try again, and the delays after further failures.
#[derive(Debug)]
struct Retry {
    delays: Delays,
    not_before_ms: u64,
}

/// The curator of one daemon.
pub struct Curator<S> {
    store: Store,
    servers: Arc<S>,
    options: CuratorOptions,
    configured_products: Vec<ProductId>,
    retries: Mutex<HashMap<GameId, Retry>>,
    reconciler: Option<Reconciler>,
}

impl<S> std::fmt::Debug for Curator<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Curator")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S: GameServers> Curator<S> {
    /// A curator over `store`, deleting through `servers`; `configured_products` are curated
    /// even before they appear in `P:products`.
    pub fn new(
        store: Store,
        servers: S,
        options: CuratorOptions,
        configured_products: Vec<ProductId>,
    ) -> Self {
        Self {
            store,
            servers: Arc::new(servers),
            options,
            configured_products,
            retries: Mutex::new(HashMap::new()),
            reconciler: None,
        }
    }

    /// Also reconciles the record with the game servers while holding the lease.
    pub fn with_reconciler(mut self, reconciler: Reconciler) -> Self {
        self.reconciler = Some(reconciler);
        self
    }

    /// The options in use.
    pub fn options(&self) -> &CuratorOptions {
        &self.options
    }

    /// Runs a pass every interval while holding the lease, until `shutdown`; then releases
    /// the lease. Errors are logged and the next pass tried.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            instance = %self.options.instance_name, dry_run = self.options.dry_run,
            interval = ?self.options.interval, "curator started"
        );
        let mut ticker = tokio::time::interval(self.options.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut holding = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            match self.try_lease().await {
                Ok(true) => {
                    if !holding {
                        tracing::info!(instance = %self.options.instance_name, "curation lease acquired");
                    }
                    holding = true;
                }
                Ok(false) => {
                    if holding {
                        tracing::info!("curation lease lost to another instance");
                        if let Some(reconciler) = &self.reconciler {
                            reconciler.forget();
                        }
                    }
                    holding = false;
                    continue;
                }
                Err(err) => {
                    tracing::warn!(%err, "could not take the curation lease; skipping this pass");
                    continue;
                }
            }
            let started = Instant::now();
            match self.pass(now_ms(), &shutdown).await {
                Ok(report) if report.is_empty() => {}
                Ok(report) => tracing::info!("curation pass: {report}"),
                Err(err) => tracing::warn!(%err, "curation pass failed; retrying next interval"),
            }
            metrics::histogram!("mm_curation_pass_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            if let Some(reconciler) = &self.reconciler
                && !shutdown.is_cancelled()
            {
                reconciler.tick(&shutdown).await;
            }
        }
        if holding && let Err(err) = self.release_lease().await {
            tracing::warn!(%err, "could not release the curation lease");
        }
        tracing::info!("curator stopped");
    }

    /// Takes or renews the lease; `true` when this instance holds it afterwards.
    pub async fn try_lease(&self) -> Result<bool, StoreError> {
        self.store
            .acquire_lease(LEASE_NAME, &self.options.instance_name, self.options.lease)
            .await
    }

    /// Gives the lease up if this instance holds it.
    pub async fn release_lease(&self) -> Result<(), StoreError> {
        self.store
            .release_lease(LEASE_NAME, &self.options.instance_name)
            .await
    }

    /// One pass at time `now_ms` (does not check the lease). Stops between games once
    /// `shutdown` is cancelled.
    pub async fn pass(
        &self,
        now_ms: u64,
        shutdown: &CancellationToken,
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        for product in self.products().await {
            if shutdown.is_cancelled() {
                break;
            }
            // One product's failure (its slot unreachable, failing over, migrating) never
            // stops the others: logged, counted, and retried next pass.
            if let Err(err) = self
                .curate_product(&product, now_ms, shutdown, &mut report)
                .await
            {
                tracing::warn!(%product, %err, "curation of this product failed; the others go on");
                metrics::counter!("mm_curation_skipped_total", "product" => product.to_string())
                    .increment(1);
                report.products_failed += 1;
            }
        }
        self.forget_old_retries(now_ms);
        Ok(report)
    }

    /// One product's share of a pass: its expired reservations, its sets at its watermark,
    /// its interrupted end steps.
    async fn curate_product(
        &self,
        product: &ProductId,
        now_ms: u64,
        shutdown: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        // First, as it depends on no event: a reservation expires at its own time. So a seat
        // is given back even in a pass whose watermark cannot be read or whose set curation
        // fails part-way.
        if !self.options.dry_run {
            let released = self
                .store
                .release_expired_reservations(product, now_ms, self.options.batch_size)
                .await?;
            report.reservations_released += released as u64;
        }
        // Never curate blind: without the watermark a record may be missing events.
        let applied_until = match self.store.watermark(product).await {
            Ok(watermark) => watermark.applied_until(now_ms),
            Err(err) => {
                tracing::warn!(%product, %err, "could not read the applied watermark; product not curated this pass");
                metrics::counter!("mm_curation_skipped_total", "product" => product.to_string())
                    .increment(1);
                report.watermark_unknown += 1;
                return Ok(());
            }
        };
        for set in GameSet::ALL {
            self.curate_set(product, set, applied_until, now_ms, shutdown, report)
                .await?;
        }
        if !self.options.dry_run && !shutdown.is_cancelled() {
            self.finish_stuck_endings(product, now_ms, shutdown, report)
                .await?;
        }
        Ok(())
    }

    /// The products to curate: `P:products` and the configured ones; the configured ones
    /// alone (logged) when `P:products` cannot be read, so its slot being unreachable never
    /// stops the curation of the others.
    async fn products(&self) -> Vec<ProductId> {
        let mut products = match self.store.products().await {
            Ok(products) => products,
            Err(err) => {
                tracing::warn!(%err, "could not read the product set; curating the configured products");
                Vec::new()
            }
        };
        for product in &self.configured_products {
            if !products.contains(product) {
                products.push(product.clone());
            }
        }
        products
    }

    async fn curate_set(
        &self,
        product: &ProductId,
        set: GameSet,
        applied_until_ms: u64,
        now_ms: u64,
        shutdown: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        // Judged at the watermark, not now: every event before the cutoff has been applied.
        let cutoff_ms =
            applied_until_ms.saturating_sub(self.options.timeout_of(set).as_millis() as u64);
        let mut offset = 0usize;
        // Bounded, so one pass over a huge backlog still ends; the next pass continues.
        for _ in 0..64 {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let ids = self
                .store
                .stale_games(product, set, cutoff_ms, offset, self.options.batch_size)
                .await?;
            let page_len = ids.len();
            let outcomes: Vec<Result<Outcome, StoreError>> = futures::stream::iter(ids)
                .map(|id| self.curate_game(product, set, id, cutoff_ms, now_ms, shutdown))
                .buffer_unordered(self.options.concurrency)
                .collect()
                .await;
            for outcome in outcomes {
                let outcome = outcome?;
                if let Some(label) = outcome.label() {
                    metrics::counter!("mm_curated_games_total", "reason" => reason_for(set), "outcome" => label)
                        .increment(1);
                }
                report.add(outcome);
                if outcome.stays() {
                    offset += 1;
                }
            }
            if page_len < self.options.batch_size {
                break;
            }
        }
        Ok(())
    }

    async fn curate_game(
        &self,
        product: &ProductId,
        set: GameSet,
        raw_id: String,
        cutoff_ms: u64,
        now_ms: u64,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, StoreError> {
        if shutdown.is_cancelled() {
            return Ok(Outcome::Interrupted);
        }
        let reason = reason_for(set);
        let Ok(id) = GameId::new(&raw_id) else {
            tracing::warn!(%product, %set, id = %raw_id, "malformed game id in a set; skipped");
            return Ok(Outcome::Invalid);
        };
        let Some(game) = self.store.game_of(product, &id).await? else {
            tracing::warn!(game = %id, %set, "set member without a game record; skipped");
            return Ok(Outcome::Invalid);
        };
        if self.options.dry_run {
            tracing::info!(game = %id, server = %game.server_id, %reason, "dry run: would curate");
            return Ok(Outcome::DryRun);
        }
        if let Some(retry) = self.retries.lock().expect("not poisoned").get(&id)
            && retry.not_before_ms > now_ms
        {
            return Ok(Outcome::Deferred);
        }
        let ended = flows::end_game(
            &self.store,
            &*self.servers,
            EndGame {
                game: &id,
                server: &game.server_id,
                reason,
                guard: RemoveGuard::StaleIn { set, cutoff_ms },
                remove_unconfirmed: false,
                now_ms,
            },
        )
        .await;
        let ended = match ended {
            Ok(ended) => ended,
            Err(err) => {
                // Deleted on the server: no retry is due, whatever became of the record (a
                // mark left behind is finished by a later pass). Marking failed: nothing
                // changed, the retry state stays as it was.
                if err.server.as_ref().is_some_and(DeleteAttempt::confirmed) {
                    self.retries.lock().expect("not poisoned").remove(&id);
                }
                return Err(err.source);
            }
        };
        let outcome = match ended {
            Ended::NotMarked(marked) => {
                // The guard refused before the server was called: nothing changed.
                self.retries.lock().expect("not poisoned").remove(&id);
                tracing::info!(game = %id, ?marked, "game came alive or ended since it was picked; left alone");
                Outcome::SkippedAlive
            }
            Ended::Removal { record, .. } => {
                self.retries.lock().expect("not poisoned").remove(&id);
                match record {
                    RemoveOutcome::Removed { previous } => {
                        tracing::info!(game = %id, %previous, %reason, "game curated");
                        Outcome::Removed
                    }
                    other => {
                        tracing::info!(game = %id, ?other, "game came alive or ended meanwhile; record left alone");
                        Outcome::SkippedAlive
                    }
                }
            }
            Ended::Kept(Unconfirmed::UnknownServer) => {
                tracing::warn!(
                    game = %id, server = %game.server_id,
                    "stale game on an unregistered server; not removed"
                );
                Outcome::UnknownServer
            }
            Ended::Kept(Unconfirmed::Failed(err)) if err.is_server_fault() => {
                let delay = self.schedule_retry(&id, now_ms);
                tracing::warn!(game = %id, server = %game.server_id, detail = %err, retry_in = ?delay, "game server unreachable; stale game kept");
                Outcome::ServerUnreachable
            }
            Ended::Kept(Unconfirmed::Failed(err)) => {
                let delay = self.schedule_retry(&id, now_ms);
                tracing::warn!(game = %id, server = %game.server_id, detail = %err, retry_in = ?delay, "game server refused to delete a stale game; kept");
                Outcome::ServerRefused
            }
        };
        Ok(outcome)
    }

    /// Finishes `product`'s end steps whose mark is older than `stuck_ending_after` (see the
    /// module docs), at most `batch_size` per pass.
    async fn finish_stuck_endings(
        &self,
        product: &ProductId,
        now_ms: u64,
        shutdown: &CancellationToken,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        let marked_before_ms =
            now_ms.saturating_sub(self.options.stuck_ending_after.as_millis() as u64);
        let stuck = self
            .store
            .stuck_endings(product, marked_before_ms, self.options.batch_size)
            .await?;
        for (raw_id, since_ms) in stuck {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let Ok(id) = GameId::new(&raw_id) else {
                tracing::warn!(%product, id = %raw_id, "malformed game id in the ending index; skipped");
                continue;
            };
            let outcome = self.finish_ending(&id, since_ms, now_ms).await?;
            metrics::counter!("mm_endings_finished_total", "outcome" => outcome).increment(1);
            match outcome {
                "removed" => report.endings_finished += 1,
                "gone" => report.endings_dropped += 1,
                "remarked" => {}
                _ => report.endings_unmarked += 1,
            }
        }
        Ok(())
    }

    /// Finishes one interrupted end step; returns its `mm_endings_finished_total` outcome.
    async fn finish_ending(
        &self,
        id: &GameId,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<&'static str, StoreError> {
        let game = self.store.game(id).await?;
        let (Some(game), Some(ending)) = (
            game.as_ref(),
            game.as_ref().and_then(|game| game.ending.clone()),
        ) else {
            // Ended or vanished meanwhile (a removal drops the member too; this is a leftover).
            self.store
                .remove_game(id, "ending_dropped", RemoveGuard::Any, now_ms)
                .await
                .map(|outcome| {
                    tracing::info!(game = %id, ?outcome, "ending mark of a game no longer live dropped");
                })?;
            return Ok("gone");
        };
        if ending.since_ms != since_ms {
            // Marked again since it was listed: a newer end step owns it.
            return Ok("remarked");
        }
        tracing::warn!(
            game = %id, server = %game.server_id, reason = %ending.reason, since_ms,
            "finishing an end step that was interrupted between its mark and its removal"
        );
        let ended = flows::finish_ending(
            &self.store,
            &*self.servers,
            FinishEnding {
                game: id,
                server: &game.server_id,
                reason: &ending.reason,
                since_ms,
                remove_unconfirmed: false,
                now_ms,
            },
        )
        .await
        .map_err(|err| err.source)?;
        Ok(match ended {
            Ended::Removal { .. } => "removed",
            Ended::NotMarked(_) => "gone",
            Ended::Kept(Unconfirmed::UnknownServer) => "unknown_server",
            Ended::Kept(Unconfirmed::Failed(err)) if err.is_server_fault() => "server_unreachable",
            Ended::Kept(Unconfirmed::Failed(_)) => "server_refused",
        })
    }

    /// Records a failure; returns the delay before the game is tried again (the interval,
    /// doubling per failure, capped at `max_retry_delay`, no jitter).
    fn schedule_retry(&self, id: &GameId, now_ms: u64) -> Duration {
        let mut retries = self.retries.lock().expect("not poisoned");
        let entry = retries.entry(id.clone()).or_insert_with(|| Retry {
            delays: Backoff::new(self.options.interval, self.options.max_retry_delay).delays(),
            not_before_ms: 0,
        });
        let delay = entry.delays.next_delay();
        entry.not_before_ms = now_ms + delay.as_millis() as u64;
        delay
    }

    /// Drops retry entries long past their time (games that vanished by other means).
    fn forget_old_retries(&self, now_ms: u64) {
        let horizon = (self.options.max_retry_delay * 4).as_millis() as u64;
        self.retries
            .lock()
            .expect("not poisoned")
            .retain(|_, retry| retry.not_before_ms + horizon > now_ms);
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn a_pass_report_is_one_line_of_its_non_zero_counters() {
        let report = PassReport {
            removed: 3,
            server_unreachable: 1,
            endings_dropped: 2,
            ..PassReport::default()
        };
        assert_eq!(
            report.to_string(),
            "removed=3 server_unreachable=1 endings_dropped=2"
        );
        assert_eq!(PassReport::default().to_string(), "nothing to do");
    }

    #[test]
    fn a_reconcile_report_says_when_the_registry_was_not_republished() {
        let report = ReconcileReport {
            servers_listed: 2,
            orphans_deleted: 1,
            published: true,
            ..ReconcileReport::default()
        };
        assert_eq!(report.to_string(), "servers_listed=2 orphans_deleted=1");
        let report = ReconcileReport::default();
        assert_eq!(report.to_string(), "nothing to do not_published");
    }
}
