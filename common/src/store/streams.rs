//! The consumer group on a product's event stream: creating it, reading it, claiming and
//! inspecting pending entries, acknowledging entries whose bodies are gone, the group's
//! figures (`XINFO GROUPS`, parsed here once for the daemon's gauges and the console), the
//! applied [`Watermark`] and trimming the stream behind the group.
//!
//! The watermark and the trim are scripts (`lua/watermark.lua`, `lua/trim_events.lua`) so that
//! the group's pending summary, its last-delivered id and the stream's entries are read as one
//! snapshot (a product's keys share a slot, so this is legal on a cluster too): a consumer
//! acknowledging or a game server appending between two separate reads could otherwise make
//! the watermark jump past an entry never applied, or the trim cut one.
//!
//! Blocking reads go through a [`GroupReader`], which owns a dedicated connection whose reply
//! timeout exceeds its `BLOCK` time, so a read that waits its full time never trips it (the
//! shared connection's timeout is the short command timeout).

use std::time::Duration;

use super::connection::RedisConn;
use redis::Value;

use super::Store;
use super::error::{StoreResult, unexpected};
use super::reply::{self, AutoClaim, DeliveredEntry, GroupInfo, PendingRow};
use super::scripts::SCRIPTS;
use crate::ids::ProductId;
use crate::keys::CONSUMER_GROUP;

/// How far the record has caught up with a product's event stream: the oldest entry the
/// consumer group `matchmakerd` has not acknowledged (pending, or not yet delivered; with no
/// group yet, the stream's first entry). Every entry older than it has been applied (or
/// dead-lettered), so a game's record is complete for everything written before
/// [`Watermark::applied_until`].
///
/// The age is measured on Redis's clock (the entry id's time against Redis's `TIME`, in the
/// same script) and applied to the caller's: the result holds even if the two clocks differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watermark {
    /// Every entry of the stream is acknowledged (or there is no stream).
    CaughtUp,
    /// `oldest_id` is the oldest entry not yet acknowledged.
    Behind {
        /// Its stream entry id.
        oldest_id: String,
        /// The milliseconds part of the id: when Redis appended it, on Redis's clock.
        oldest_ms: u64,
        /// How long ago that was when the watermark was read, on Redis's clock.
        age: Duration,
    },
}

impl Watermark {
    /// The time (on the caller's clock, `now_ms` being when the watermark was read) up to
    /// which every event has been applied: `now_ms` when caught up, else `now_ms` minus the
    /// age of the oldest unacknowledged entry.
    pub fn applied_until(&self, now_ms: u64) -> u64 {
        match self {
            Watermark::CaughtUp => now_ms,
            Watermark::Behind { age, .. } => now_ms.saturating_sub(age.as_millis() as u64),
        }
    }

    /// How far the record is behind (zero when caught up).
    pub fn age(&self) -> Duration {
        match self {
            Watermark::CaughtUp => Duration::ZERO,
            Watermark::Behind { age, .. } => *age,
        }
    }

    /// The oldest unacknowledged entry's id; `None` when caught up.
    pub fn oldest_id(&self) -> Option<&str> {
        match self {
            Watermark::CaughtUp => None,
            Watermark::Behind { oldest_id, .. } => Some(oldest_id),
        }
    }
}

/// Reads one product stream through the consumer group as one named consumer, on its own
/// connection (see the module doc). Made by [`Store::group_reader`].
pub struct GroupReader {
    conn: RedisConn,
    stream: String,
    consumer: String,
    count: usize,
    block: Duration,
}

impl std::fmt::Debug for GroupReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupReader")
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl GroupReader {
    /// Up to `count` entries never delivered to the group (`>`). With `wait`, blocks up to the
    /// reader's block time for the first one; without, returns at once (possibly empty).
    pub async fn read_new(&mut self, wait: bool) -> StoreResult<Vec<DeliveredEntry>> {
        let block = wait.then_some(self.block);
        self.read(">", block).await
    }

    /// Up to `count` of this consumer's own pending entries (delivered to it, never
    /// acknowledged) after entry id `after` (`0`: from the first). Never blocks.
    pub async fn read_own_pending(&mut self, after: &str) -> StoreResult<Vec<DeliveredEntry>> {
        self.read(after, None).await
    }

    /// `XREADGROUP GROUP matchmakerd <consumer> COUNT <count> [BLOCK <ms>] STREAMS <stream> <id>`.
    async fn read(
        &mut self,
        id: &str,
        block: Option<Duration>,
    ) -> StoreResult<Vec<DeliveredEntry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(CONSUMER_GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(id);
        let reply: Value = cmd.query_async(&mut self.conn).await?;
        Ok(reply::read_group(&reply)?)
    }
}

/// Entries one trim call removes at most (`XTRIM … LIMIT`): a thousand radix-tree nodes of
/// Redis's default 100 entries, freed in a few milliseconds.
pub const TRIM_CALL_LIMIT: u64 = 100_000;

/// Trim calls one [`Store::trim_events`] makes at most: with the worker's trim every few
/// seconds, up to a few hundred thousand events a second are trimmed as fast as they come.
pub const TRIM_CALLS: usize = 20;

impl Store {
    /// A reader of `product`'s stream as group consumer `consumer`, `count` entries per read,
    /// blocking up to `block` in [`GroupReader::read_new`]. Connects now.
    pub async fn group_reader(
        &self,
        product: &ProductId,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> StoreResult<GroupReader> {
        Ok(GroupReader {
            conn: self.blocking_connection(block).await?,
            stream: self.product_keys(product).events(),
            consumer: consumer.to_string(),
            count,
            block,
        })
    }

    /// Creates the consumer group of `product`'s stream at id 0 (and the stream) unless it
    /// exists (`XGROUP CREATE … 0 MKSTREAM`, `BUSYGROUP` ignored). Returns whether it was
    /// created now.
    pub async fn ensure_group(&self, product: &ProductId) -> StoreResult<bool> {
        let stream = self.product_keys(product).events();
        let mut conn = self.conn.clone();
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(CONSUMER_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => {
                tracing::info!(%stream, group = CONSUMER_GROUP, "consumer group created");
                Ok(true)
            }
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Acknowledges entries of `product`'s stream for the group without applying them (their
    /// bodies were trimmed away). Returns how many were still pending.
    pub async fn acknowledge(&self, product: &ProductId, ids: &[String]) -> StoreResult<u64> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XACK")
            .arg(self.product_keys(product).events())
            .arg(CONSUMER_GROUP)
            .arg(ids)
            .query_async(&mut conn)
            .await?)
    }

    /// Up to `count` of the group's pending entries (any consumer's) idle at least `min_idle`,
    /// oldest first, with their delivery counts (`XPENDING … IDLE`).
    pub async fn idle_pending(
        &self,
        product: &ProductId,
        min_idle: Duration,
        count: usize,
    ) -> StoreResult<Vec<PendingRow>> {
        let mut conn = self.conn.clone();
        let pending: Value = redis::cmd("XPENDING")
            .arg(self.product_keys(product).events())
            .arg(CONSUMER_GROUP)
            .arg("IDLE")
            .arg(min_idle.as_millis() as u64)
            .arg("-")
            .arg("+")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(reply::pending_rows(&pending)?)
    }

    /// Claims for `consumer` up to `count` pending entries idle at least `min_idle`, scanning
    /// from `cursor` (`0-0` to start; `XAUTOCLAIM`). Pending entries that no longer exist
    /// come back as [`AutoClaim::deleted`].
    pub async fn claim_idle(
        &self,
        product: &ProductId,
        consumer: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> StoreResult<AutoClaim> {
        let mut conn = self.conn.clone();
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(self.product_keys(product).events())
            .arg(CONSUMER_GROUP)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(reply::auto_claim(&reply)?)
    }

    /// The fields of one entry of `product`'s stream; `None` if it is gone (trimmed).
    pub async fn stream_entry(
        &self,
        product: &ProductId,
        id: &str,
    ) -> StoreResult<Option<Vec<(String, String)>>> {
        let mut conn = self.conn.clone();
        let body: Value = redis::cmd("XRANGE")
            .arg(self.product_keys(product).events())
            .arg(id)
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(reply::range(&body)?
            .into_iter()
            .next()
            .and_then(|entry| entry.fields))
    }

    /// The figures of the daemon's consumer group on `product`'s stream (`XINFO GROUPS`);
    /// `None` if the stream or the group does not exist.
    pub async fn group_info(&self, product: &ProductId) -> StoreResult<Option<GroupInfo>> {
        let mut conn = self.conn.clone();
        let groups: Result<Value, redis::RedisError> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.product_keys(product).events())
            .query_async(&mut conn)
            .await;
        match groups {
            Ok(value) => Ok(reply::group_info(&value, CONSUMER_GROUP)?),
            // "ERR no such key": the stream does not exist yet.
            Err(err) if err.code() == Some("ERR") => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// The applied watermark of `product`'s stream (one read-only script: one snapshot).
    pub async fn watermark(&self, product: &ProductId) -> StoreResult<Watermark> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = SCRIPTS
            .watermark
            .key(self.product_keys(product).events())
            .arg(CONSUMER_GROUP)
            .invoke_async(&mut conn)
            .await?;
        match reply.as_slice() {
            [] => Ok(Watermark::CaughtUp),
            [id, redis_now_ms] => {
                let oldest_ms: u64 = id
                    .split_once('-')
                    .and_then(|(ms, _)| ms.parse().ok())
                    .ok_or_else(|| unexpected("watermark", &reply))?;
                let redis_now_ms: u64 = redis_now_ms
                    .parse()
                    .map_err(|_| unexpected("watermark", &reply))?;
                Ok(Watermark::Behind {
                    oldest_id: id.clone(),
                    oldest_ms,
                    age: Duration::from_millis(redis_now_ms.saturating_sub(oldest_ms)),
                })
            }
            _ => Err(unexpected("watermark", &reply)),
        }
    }

    /// Trims `product`'s stream behind the consumer group (`XTRIM MINID ~`): removes entries
    /// older than both `retain_from_ms` and the group's oldest unacknowledged entry, so an
    /// entry the group has not acknowledged is never removed; without a group nothing is.
    /// In calls of at most [`TRIM_CALL_LIMIT`] entries, repeated until nothing more can go (at
    /// most [`TRIM_CALLS`] calls), so a large backlog is trimmed without one long call. Returns
    /// how many entries were removed (`~` removes whole radix-tree nodes only, so possibly
    /// fewer than allowed).
    pub async fn trim_events(&self, product: &ProductId, retain_from_ms: u64) -> StoreResult<u64> {
        self.trim_events_in_calls(product, retain_from_ms, TRIM_CALL_LIMIT)
            .await
    }

    /// [`Store::trim_events`] with at most `per_call` entries per call. Each call is one script:
    /// its floor and its trim are one snapshot.
    pub async fn trim_events_in_calls(
        &self,
        product: &ProductId,
        retain_from_ms: u64,
        per_call: u64,
    ) -> StoreResult<u64> {
        let mut conn = self.conn.clone();
        let mut total = 0;
        for _ in 0..TRIM_CALLS {
            let trimmed: u64 = SCRIPTS
                .trim_events
                .key(self.product_keys(product).events())
                .arg(CONSUMER_GROUP)
                .arg(retain_from_ms)
                .arg(per_call.max(1))
                .invoke_async(&mut conn)
                .await?;
            total += trimmed;
            if trimmed < per_call.max(1) {
                break;
            }
        }
        Ok(total)
    }

    /// Entries in `product`'s event stream (0 when it does not exist).
    pub async fn stream_length(&self, product: &ProductId) -> StoreResult<u64> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XLEN")
            .arg(self.product_keys(product).events())
            .query_async(&mut conn)
            .await?)
    }

    /// Entries in `product`'s dead-letter stream.
    pub async fn dead_letter_count(&self, product: &ProductId) -> StoreResult<u64> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XLEN")
            .arg(self.product_keys(product).dead_letters())
            .query_async(&mut conn)
            .await?)
    }
}

// ---- Consumers of crashed instances (contract section 9) ----

/// What [`Store::remove_dead_consumers`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadConsumerSweep {
    /// Consumers removed from the group (idle past the bound, nothing pending, not live).
    pub removed: Vec<String>,
    /// Consumers idle past the bound and not live, kept because they still hold pending
    /// entries (another instance claims those after `consumer.claim_idle_secs`; the consumer
    /// goes at a later sweep once they are gone).
    pub kept_with_pending: Vec<String>,
}

impl Store {
    /// Removes from `product`'s consumer group (`XGROUP DELCONSUMER`) every consumer that is
    /// not in `live` (the names of live instances), holds no pending entries and has been
    /// idle for at least `min_idle`, in one atomic script: removing a consumer drops its
    /// pending entries, so one that received entries meanwhile is never removed. A missing
    /// stream or group removes nothing.
    pub async fn remove_dead_consumers(
        &self,
        product: &ProductId,
        live: &[String],
        min_idle: Duration,
    ) -> StoreResult<DeadConsumerSweep> {
        let mut invocation = SCRIPTS.remove_dead_consumers.prepare_invoke();
        invocation
            .key(self.product_keys(product).events())
            .arg(CONSUMER_GROUP)
            .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX));
        for name in live {
            invocation.arg(name);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = invocation.invoke_async(&mut conn).await?;
        let removed_count = reply
            .first()
            .and_then(|v| redis::from_redis_value_ref::<usize>(v).ok())
            .unwrap_or(0);
        let names: Vec<String> = reply
            .iter()
            .skip(1)
            .filter_map(|v| redis::from_redis_value_ref::<String>(v).ok())
            .collect();
        let split = removed_count.min(names.len());
        Ok(DeadConsumerSweep {
            removed: names[..split].to_vec(),
            kept_with_pending: names[split..].to_vec(),
        })
    }
}
