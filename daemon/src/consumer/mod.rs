//! The event consumer: applies the events game servers write to `P:{product}:events`.
//!
//! # How it reads
//!
//! Every product stream is read through the consumer group `matchmakerd` by one task per
//! product (so a slow or broken stream never holds up another, and every read names one key:
//! legal on Redis Cluster). The set of products is `P:products` plus the configured ones,
//! re-read every [`ConsumerOptions::refresh_interval`], so products that appear while the
//! daemon runs are picked up.
//!
//! A product task:
//!
//! 1. creates the group if it is missing ([`Store::ensure_group`]: `XGROUP CREATE … 0
//!    MKSTREAM`, `BUSYGROUP` ignored);
//! 2. drains its **own** pending entries first (`XREADGROUP … STREAMS key <cursor>` from `0`
//!    until empty, [`GroupReader::read_own_pending`]) — what a previous run of this instance (same consumer name) received but
//!    had not acknowledged when it was killed;
//! 3. then reads new entries (`>`) in batches of `batch_size`, blocking up to `block` on a
//!    dedicated connection whose reply timeout exceeds the block time; while a batch is being
//!    applied, the next one is read without blocking (read-ahead), so Redis does not sit idle
//!    between batches;
//! 4. every `claim_interval`, dead-letters entries delivered more than `max_deliveries` times
//!    (`XPENDING` extended form, reason `max_deliveries_exceeded`) and claims entries idle
//!    longer than `claim_idle` from any consumer (`XAUTOCLAIM`), e.g. a crashed instance's.
//!
//! 5. every [`ConsumerOptions::dead_consumer_sweep_interval`], removes from the group the
//!    consumers crashed instances left behind ([`Store::remove_dead_consumers`]): not a live
//!    instance (`P:{instances}`), no pending entries, idle at least `dead_consumer_idle`; one
//!    atomic script, so a consumer that holds or receives entries is never removed (removing
//!    it would drop them). Counted in `mm_consumers_removed_total`.
//!
//! Entries are applied with [`Store::apply_entries`], `apply_batch_size` per script call: the
//! script applies each event and `XACK`s it atomically (and dead-letters unparseable or
//! unknown-game entries), so an entry is applied exactly once however often it is delivered.
//! A read batch is sorted by game first, so a game's entries share a call (loaded and saved
//! once), and its calls run concurrently (about `apply_concurrency` entries in flight): the
//! model's rules make the final record independent of the order in which one game's events
//! are applied.
//!
//! # Trimming
//!
//! Every `trim_interval` (a few seconds, not per batch) the consumer trims each product
//! stream behind the group ([`Store::trim_events`], one script: `XTRIM MINID ~` to the older
//! of the group's oldest unacknowledged entry and `now − events.retain_secs`). An entry the
//! group has not acknowledged, or not yet received, is never trimmed; acknowledged entries
//! are kept for `retain` for the console's tail and a game's history. The stream's memory is
//! thus bounded by the event rate × `retain` (about 93 bytes an entry) plus the backlog.
//!
//! Entries that were trimmed from the stream while still pending (delivered with a nil body,
//! or reported deleted by `XAUTOCLAIM`) are acknowledged, logged as errors and counted in
//! `mm_events_lost_total`.
//!
//! # Failures
//!
//! Redis being down or restarted is logged and retried with capped exponential backoff; after
//! such a failure the task drops what it had read ahead and re-drains its own pending entries,
//! so nothing it had received is left behind. An entry the apply script fails on (a corrupt
//! game hash) fails only itself — a failed batch is retried one entry per call — and stays
//! pending until claimed again and, after `max_deliveries`, dead-lettered. If the group
//! disappears (`NOGROUP`), it is recreated at id `0` — never `$`, which would skip the entries
//! written meanwhile; re-delivered old entries change nothing and are counted as stale, never as
//! applied (contract section 4.3). The consumer never exits because of Redis.
//!
//! # Shutdown
//!
//! On cancellation a task stops reading, finishes applying (and acknowledging) the batch in
//! flight and the one read ahead, and returns. A blocking read that is interrupted may have
//! had entries delivered to it: they are pending under this consumer's name, and the task
//! applies its own pending entries once more, on a new connection, before it returns. Those
//! that still fail, or that the abandoned read is delivered after that (only entries written
//! during the stop), are drained at its next start (or claimed by another instance after
//! `claim_idle`).

mod backoff;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mm_common::ProductId;
use mm_common::model::EventKind;
use mm_common::store::{ApplyResult, DeliveredEntry, GroupReader, Store, StoreError};
use mm_common::time::now_ms;
use mm_config::{ConsumerSettings, EventsSettings};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::instance::HEARTBEAT_INTERVAL;
use backoff::REDIS_RETRY;

/// Reason recorded for entries dead-lettered after too many deliveries.
pub const MAX_DELIVERIES_REASON: &str = "max_deliveries_exceeded";

/// How the consumer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// This instance's consumer name in the group; must be stable across restarts.
    pub name: String,
    /// Entries per read.
    pub batch_size: usize,
    /// How long one read of new entries blocks.
    pub block: Duration,
    /// Pending entries idle this long are claimed from whichever consumer holds them.
    pub claim_idle: Duration,
    /// An entry delivered more often than this is dead-lettered.
    pub max_deliveries: u64,
    /// Entries of one read batch being applied at the same time (in calls of
    /// `apply_batch_size`).
    pub apply_concurrency: usize,
    /// Entries applied by one script call.
    pub apply_batch_size: usize,
    /// How often the product list is refreshed.
    pub refresh_interval: Duration,
    /// Acknowledged entries younger than this are kept in the stream (`events.retain_secs`).
    pub retain: Duration,
    /// How often each product stream is trimmed behind the group.
    pub trim_interval: Duration,
    /// A consumer of the group idle this long, with nothing pending and no live instance of
    /// its name, is removed from the group.
    pub dead_consumer_idle: Duration,
}

impl ConsumerOptions {
    /// Options from the `[consumer]` settings, under consumer name `name`.
    pub fn from_settings(settings: &ConsumerSettings, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            batch_size: settings.batch_size.max(1),
            block: settings.block(),
            claim_idle: settings.claim_idle(),
            max_deliveries: settings.max_deliveries.max(1),
            // Eight calls of 16 in flight: enough queued work that Redis never waits for the
            // daemon between calls (measured: 64 left Redis idle ~17 % of a drain).
            apply_concurrency: 128,
            apply_batch_size: settings.apply_batch_size.max(1),
            refresh_interval: Duration::from_secs(5),
            retain: EventsSettings::default().retain(),
            trim_interval: Duration::from_secs(5),
            dead_consumer_idle: settings.dead_consumer_idle(),
        }
    }

    /// How often a product task sweeps the group for dead consumers: half the idle bound,
    /// between 1 s and 60 s.
    pub fn dead_consumer_sweep_interval(&self) -> Duration {
        (self.dead_consumer_idle / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// How often a product task looks for idle entries to claim: half the idle time, between
    /// 200 ms and 30 s.
    pub fn claim_interval(&self) -> Duration {
        (self.claim_idle / 2).clamp(Duration::from_millis(200), Duration::from_secs(30))
    }
}

/// The event consumer of one daemon: one task per product stream.
#[derive(Debug)]
pub struct Consumer {
    store: Store,
    options: Arc<ConsumerOptions>,
    configured_products: Vec<ProductId>,
}

impl Consumer {
    /// A consumer over `store`; `configured_products` (the registered game servers' products)
    /// are read even before they appear in `P:products`.
    pub fn new(
        store: Store,
        options: ConsumerOptions,
        configured_products: Vec<ProductId>,
    ) -> Self {
        Self {
            store,
            options: Arc::new(options),
            configured_products,
        }
    }

    /// Runs until `shutdown` is cancelled, then lets every product task finish its batch in
    /// flight. Never returns early: Redis errors are logged and retried.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(consumer = %self.options.name, "event consumer started");
        let mut tasks = JoinSet::new();
        let mut started: HashSet<ProductId> = HashSet::new();
        let mut task_products: HashMap<tokio::task::Id, ProductId> = HashMap::new();
        let mut next_trim = Instant::now();
        loop {
            let products = self.products().await;
            for product in &products {
                if started.insert(product.clone()) {
                    let worker = ProductWorker::new(
                        self.store.clone(),
                        self.options.clone(),
                        product.clone(),
                    );
                    let handle = tasks.spawn(worker.run(shutdown.clone()));
                    task_products.insert(handle.id(), product.clone());
                }
            }
            if Instant::now() >= next_trim {
                self.trim(&products).await;
                next_trim = Instant::now() + self.options.trim_interval;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.options.refresh_interval) => {}
                Some(joined) = tasks.join_next() => {
                    // A product task only ends on shutdown; a panic is a bug worth restarting
                    // the task for rather than silently dropping the product.
                    if let Err(err) = joined
                        && let Some(product) = task_products.remove(&err.id())
                    {
                        tracing::error!(%err, %product, "a product consumer task failed; restarting it");
                        started.remove(&product);
                    }
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!(consumer = %self.options.name, "event consumer stopped");
    }

    /// Trims every product stream behind the group, keeping acknowledged entries younger than
    /// `retain` ([`Store::trim_events`]: never an unacknowledged or undelivered entry).
    /// Failures are logged; the next trim tries again.
    async fn trim(&self, products: &[ProductId]) {
        let retain_from_ms = now_ms().saturating_sub(self.options.retain.as_millis() as u64);
        for product in products {
            match self.store.trim_events(product, retain_from_ms).await {
                Ok(0) => {}
                Ok(trimmed) => {
                    tracing::debug!(%product, trimmed, "event stream trimmed behind the group");
                    metrics::counter!("mm_events_trimmed_total", "product" => product.to_string())
                        .increment(trimmed);
                }
                Err(err) => tracing::warn!(%product, %err, "could not trim the event stream"),
            }
        }
    }

    /// `P:products` ∪ the configured products; on a Redis error, the configured ones (the
    /// products already being read keep their tasks either way).
    async fn products(&self) -> Vec<ProductId> {
        let mut products = match self.store.products().await {
            Ok(products) => products,
            Err(err) => {
                tracing::warn!(%err, "could not read the product list; retrying later");
                Vec::new()
            }
        };
        for product in &self.configured_products {
            if !products.contains(product) {
                products.push(product.clone());
            }
        }
        products.sort();
        products
    }
}

/// The reader of one product stream.
struct ProductWorker {
    store: Store,
    options: Arc<ConsumerOptions>,
    product: ProductId,
    reader: Option<GroupReader>,
    group_ready: bool,
    /// `Some(last id)` while draining this consumer's own pending entries.
    own_cursor: Option<String>,
    /// New entries read while the previous batch was being applied, applied next.
    prefetched: Option<Vec<DeliveredEntry>>,
    /// Whether shutdown cut a blocking read short: Redis may have delivered it entries, which
    /// are then pending under this consumer's name and drained before the task returns.
    read_cut_short: bool,
    next_claim: Instant,
    next_dead_consumer_sweep: Instant,
}

impl ProductWorker {
    fn new(store: Store, options: Arc<ConsumerOptions>, product: ProductId) -> Self {
        Self {
            store,
            options,
            product,
            reader: None,
            group_ready: false,
            own_cursor: Some("0".into()),
            prefetched: None,
            read_cut_short: false,
            next_claim: Instant::now(),
            next_dead_consumer_sweep: Instant::now(),
        }
    }

    async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = REDIS_RETRY.delays();
        while !shutdown.is_cancelled() {
            let Err(err) = self.step(&shutdown).await else {
                backoff.reset();
                continue;
            };
            if err.is_no_group() || err.is_unavailable() {
                // What was read ahead, or belonged to a batch cut short, is pending under this
                // consumer's name: re-draining its own pending entries finds it again.
                self.prefetched = None;
                self.own_cursor = Some("0".into());
                self.group_ready = false;
            }
            if err.is_no_group() {
                tracing::error!(
                    product = %self.product,
                    "the consumer group disappeared; recreating it at id 0 (old entries will be \
                     re-delivered, change nothing and be counted as stale)"
                );
            } else if err.is_unavailable() {
                tracing::warn!(product = %self.product, %err, "redis unavailable; backing off");
                self.reader = None;
            } else {
                // Entries that failed stay pending and are claimed again after `claim_idle`
                // (dead-lettered after `max_deliveries`); the rest of the stream goes on.
                tracing::error!(product = %self.product, %err, "consumer step failed; retrying");
                self.reader = None;
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        if let Some(entries) = self.prefetched.take()
            && let Err(err) = self.process(entries).await
        {
            tracing::warn!(
                product = %self.product, %err,
                "could not apply the entries read ahead before stopping; they stay pending \
                 for the next start"
            );
        }
        if self.read_cut_short {
            self.drain_own_pending_at_stop().await;
        }
        tracing::debug!(product = %self.product, "product consumer stopped");
    }

    async fn step(&mut self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        if !self.group_ready {
            self.store.ensure_group(&self.product).await?;
            self.group_ready = true;
        }
        if Instant::now() >= self.next_claim {
            self.claim_pass().await?;
            self.next_claim = Instant::now() + self.options.claim_interval();
        }
        if Instant::now() >= self.next_dead_consumer_sweep {
            self.next_dead_consumer_sweep =
                Instant::now() + self.options.dead_consumer_sweep_interval();
            self.sweep_dead_consumers().await?;
        }
        if let Some(cursor) = self.own_cursor.clone() {
            return self.drain_own_pending_batch(&cursor).await;
        }
        let entries = match self.prefetched.take() {
            Some(entries) => entries,
            None => {
                let mut reader = self.reader().await?;
                let read = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => None,
                    read = reader.read_new(true) => Some(read),
                };
                // A read cut short by shutdown may still be answered: its connection is not
                // reused, and what it was delivered is drained from the pending list.
                let Some(read) = read else {
                    self.read_cut_short = true;
                    return Ok(());
                };
                self.reader = Some(reader);
                read?
            }
        };
        if entries.is_empty() || shutdown.is_cancelled() {
            return self.process(entries).await;
        }
        // Read the next batch (without blocking) while this one is applied, so Redis is not
        // left waiting for the daemon between batches.
        let mut reader = self.reader().await?;
        let read_ahead = reader.read_new(false);
        let (applied, next) = tokio::join!(self.process(entries), read_ahead);
        self.reader = Some(reader);
        let next = next?;
        if !next.is_empty() {
            self.prefetched = Some(next);
        }
        applied
    }

    /// Applies the next batch of this consumer's own pending entries after `cursor`, and
    /// moves `own_cursor` past it (to `None` once none is left).
    async fn drain_own_pending_batch(&mut self, cursor: &str) -> Result<(), StoreError> {
        let mut reader = self.reader().await?;
        let entries = reader.read_own_pending(cursor).await;
        self.reader = Some(reader);
        let entries = entries?;
        match entries.last() {
            None => {
                tracing::debug!(product = %self.product, "own pending entries drained");
                self.own_cursor = None;
                Ok(())
            }
            Some(last) => {
                self.own_cursor = Some(last.id.clone());
                self.process(entries).await
            }
        }
    }

    /// Applies this consumer's own pending entries on a new connection, after shutdown cut a
    /// read short: the entries Redis delivered to that read, which the task never saw. A
    /// read's worth at most, unless an earlier failure left more; on an error they stay
    /// pending for the next start (or another instance's claim), as the module docs say.
    async fn drain_own_pending_at_stop(&mut self) {
        self.reader = None;
        self.own_cursor = Some("0".into());
        while let Some(cursor) = self.own_cursor.clone() {
            if let Err(err) = self.drain_own_pending_batch(&cursor).await {
                tracing::warn!(
                    product = %self.product, %err,
                    "could not apply the entries delivered to a read cut short by the stop; \
                     they stay pending for the next start"
                );
                return;
            }
        }
    }

    /// The group reader on its dedicated connection, opened if needed; the caller puts it
    /// back.
    async fn reader(&mut self) -> Result<GroupReader, StoreError> {
        match self.reader.take() {
            Some(reader) => Ok(reader),
            None => {
                self.store
                    .group_reader(
                        &self.product,
                        &self.options.name,
                        self.options.batch_size,
                        self.options.block,
                    )
                    .await
            }
        }
    }

    /// Applies a batch: trimmed entries are acknowledged and counted lost, the others applied
    /// concurrently. Returns the first error after the whole batch was tried.
    async fn process(&self, entries: Vec<DeliveredEntry>) -> Result<(), StoreError> {
        let (present, trimmed): (Vec<_>, Vec<_>) =
            entries.into_iter().partition(|e| e.fields.is_some());
        if !trimmed.is_empty() {
            let ids: Vec<String> = trimmed.into_iter().map(|e| e.id).collect();
            self.acknowledge_lost(&ids).await?;
        }
        // Sorting by game puts a game's entries into the same script call, which loads and
        // saves the game once for all of them; the order of application does not matter.
        let mut present: Vec<(String, Vec<(String, String)>)> = present
            .into_iter()
            .map(|entry| (entry.id, entry.fields.unwrap_or_default()))
            .collect();
        present.sort_by(|a, b| game_field(&a.1).cmp(game_field(&b.1)));
        let chunk = self.options.apply_batch_size.max(1);
        let in_flight = (self.options.apply_concurrency / chunk).max(1);
        let mut batches: Vec<Vec<_>> = Vec::with_capacity(present.len().div_ceil(chunk));
        for entry in present {
            match batches.last_mut() {
                Some(batch) if batch.len() < chunk => batch.push(entry),
                _ => batches.push(vec![entry]),
            }
        }
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(batches)
            .map(|entries| self.apply(entries))
            .buffer_unordered(in_flight)
            .collect()
            .await;
        let mut first_error = None;
        for result in results {
            if let Err(err) = result {
                // Prefer reporting an outage: it decides the recovery path.
                if first_error.is_none() || err.is_unavailable() {
                    first_error = Some(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Applies (and acknowledges) `entries` in one script call. If the call fails for another
    /// reason than Redis being unavailable (the script changed nothing then: it writes only
    /// once every entry is decided), they are retried one per call, so an entry the script
    /// cannot apply (a corrupt game, say) holds up only itself: it stays pending, to be
    /// claimed again and dead-lettered after `max_deliveries`.
    async fn apply(&self, entries: Vec<(String, Vec<(String, String)>)>) -> Result<(), StoreError> {
        match self.apply_call(&entries).await {
            Err(err) if entries.len() > 1 && !err.is_unavailable() => {
                tracing::warn!(
                    product = %self.product, %err, count = entries.len(),
                    "applying a batch of events failed; retrying them one by one"
                );
                let mut first_error = None;
                for entry in entries.chunks(1) {
                    if let Err(err) = self.apply_call(entry).await {
                        tracing::error!(
                            product = %self.product, entry = %entry[0].0, %err,
                            "could not apply an event; it stays pending"
                        );
                        first_error.get_or_insert(err);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
            other => other,
        }
    }

    /// One apply script call for `entries`, counting what became of each.
    async fn apply_call(
        &self,
        entries: &[(String, Vec<(String, String)>)],
    ) -> Result<(), StoreError> {
        let batch: Vec<(&str, &[(String, String)])> = entries
            .iter()
            .map(|(id, fields)| (id.as_str(), fields.as_slice()))
            .collect();
        let started = Instant::now();
        let results = self
            .store
            .apply_entries(&self.product, &batch, now_ms())
            .await;
        metrics::histogram!("mm_event_apply_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let product = self.product.to_string();
        for ((id, fields), result) in entries.iter().zip(results?) {
            let fields = fields.as_slice();
            match result {
                ApplyResult::Applied(_) => {
                    metrics::counter!("mm_events_applied_total", "product" => product.clone(), "type" => event_type(fields))
                        .increment(1);
                }
                ApplyResult::Stale(_) => {
                    metrics::counter!("mm_events_stale_total", "product" => product.clone(), "type" => event_type(fields))
                        .increment(1);
                }
                ApplyResult::Duplicate => {
                    metrics::counter!("mm_events_duplicate_total", "product" => product.clone())
                        .increment(1);
                }
                ApplyResult::DeadLettered(reason) => {
                    tracing::warn!(product = %self.product, entry = %id, %reason, "event dead-lettered");
                    metrics::counter!("mm_events_dead_lettered_total", "product" => product.clone(), "reason" => reason_code(&reason))
                        .increment(1);
                }
            }
        }
        Ok(())
    }

    /// Acknowledges entries whose bodies are gone from the stream and counts them as lost.
    async fn acknowledge_lost(&self, ids: &[String]) -> Result<(), StoreError> {
        tracing::error!(
            product = %self.product, count = ids.len(), first = %ids[0],
            "pending stream entries were trimmed before they were applied: events lost"
        );
        self.store.acknowledge(&self.product, ids).await?;
        metrics::counter!("mm_events_lost_total", "product" => self.product.to_string())
            .increment(ids.len() as u64);
        Ok(())
    }

    /// Removes the group's consumers that crashed instances left behind (see the module
    /// docs): never this instance, never a live one, never one holding pending entries.
    async fn sweep_dead_consumers(&self) -> Result<(), StoreError> {
        let since = now_ms().saturating_sub(3 * HEARTBEAT_INTERVAL.as_millis() as u64);
        let mut live = self.store.live_instances(since).await?;
        live.push(self.options.name.clone());
        let sweep = self
            .store
            .remove_dead_consumers(&self.product, &live, self.options.dead_consumer_idle)
            .await?;
        for name in &sweep.removed {
            tracing::info!(
                product = %self.product, consumer = %name,
                idle_bound = ?self.options.dead_consumer_idle,
                "removed the consumer of an instance that is gone (idle, nothing pending)"
            );
        }
        if !sweep.removed.is_empty() {
            metrics::counter!("mm_consumers_removed_total", "product" => self.product.to_string())
                .increment(sweep.removed.len() as u64);
        }
        for name in &sweep.kept_with_pending {
            tracing::debug!(
                product = %self.product, consumer = %name,
                "an idle consumer of a gone instance still holds pending entries; kept until \
                 they are claimed"
            );
        }
        Ok(())
    }

    /// Dead-letters over-delivered entries, then claims idle ones (a dead consumer's).
    async fn claim_pass(&self) -> Result<(), StoreError> {
        let pending = self
            .store
            .idle_pending(
                &self.product,
                self.options.claim_idle,
                self.options.batch_size,
            )
            .await?;
        for row in pending {
            if row.deliveries > self.options.max_deliveries {
                self.dead_letter_over_delivered(&row.id, row.deliveries)
                    .await?;
            }
        }
        let mut cursor = "0-0".to_string();
        // Bounded per pass, so reading new entries is never starved by a huge backlog.
        for _ in 0..8 {
            let claim = self
                .store
                .claim_idle(
                    &self.product,
                    &self.options.name,
                    self.options.claim_idle,
                    &cursor,
                    self.options.batch_size,
                )
                .await?;
            if !claim.entries.is_empty() {
                tracing::info!(
                    product = %self.product, count = claim.entries.len(),
                    "claimed idle pending entries"
                );
            }
            if !claim.deleted.is_empty() {
                self.acknowledge_lost(&claim.deleted).await?;
            }
            self.process(claim.entries).await?;
            if claim.next_cursor == "0-0" {
                break;
            }
            cursor = claim.next_cursor;
        }
        Ok(())
    }

    async fn dead_letter_over_delivered(
        &self,
        id: &str,
        deliveries: u64,
    ) -> Result<(), StoreError> {
        let Some(fields) = self.store.stream_entry(&self.product, id).await? else {
            return self.acknowledge_lost(&[id.to_string()]).await;
        };
        let handled = self
            .store
            .dead_letter(&self.product, id, &fields, MAX_DELIVERIES_REASON, now_ms())
            .await?;
        if handled {
            tracing::warn!(
                product = %self.product, entry = %id, deliveries,
                "entry delivered too often; dead-lettered"
            );
            metrics::counter!("mm_events_dead_lettered_total", "product" => self.product.to_string(), "reason" => MAX_DELIVERIES_REASON)
                .increment(1);
        }
        Ok(())
    }
}

/// The `game_id` field of an entry (empty when missing).
fn game_field(fields: &[(String, String)]) -> &str {
    fields
        .iter()
        .find(|(name, _)| name == "game_id")
        .map_or("", |(_, value)| value.as_str())
}

/// The `type` label of an entry: a known event type, or `invalid`.
fn event_type(fields: &[(String, String)]) -> &'static str {
    fields
        .iter()
        .find(|(name, _)| name == "type")
        .and_then(|(_, value)| value.parse::<EventKind>().ok())
        .map_or("invalid", EventKind::as_str)
}

/// The stable part of a dead-letter reason (`unknown_type: …` → `unknown_type`), so the metric
/// label has a bounded set of values.
fn reason_code(reason: &str) -> String {
    reason
        .split(':')
        .next()
        .unwrap_or(reason)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_bounded() {
        assert_eq!(reason_code("unknown_game"), "unknown_game");
        assert_eq!(
            reason_code("unknown_type: unknown event type \"x\""),
            "unknown_type"
        );
    }

    #[test]
    fn event_type_labels_only_known_types() {
        let fields = |t: &str| vec![("type".to_string(), t.to_string())];
        assert_eq!(event_type(&fields("heartbeat")), "heartbeat");
        assert_eq!(event_type(&fields("drop table")), "invalid");
        assert_eq!(event_type(&[]), "invalid");
    }

    #[test]
    fn claim_interval_is_half_the_idle_time_within_bounds() {
        let mut options = ConsumerOptions::from_settings(&ConsumerSettings::default(), "a");
        options.claim_idle = Duration::from_secs(10);
        assert_eq!(options.claim_interval(), Duration::from_secs(5));
        options.claim_idle = Duration::from_millis(100);
        assert_eq!(options.claim_interval(), Duration::from_millis(200));
    }
}
