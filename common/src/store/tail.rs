//! Reading product streams without the consumer group, for the operator console: one game's
//! record with its recent events, a stream's newest entries, and following every stream with
//! a [`TailReader`]. Nothing here uses `XREADGROUP`: the console must never take entries from
//! the daemon's group.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::connection::RedisConn;

use futures::stream::{FuturesUnordered, StreamExt};

use super::error::StoreResult;
use super::reply::{RawEntry, XreadReply, xread};
use super::{Store, decode};
use crate::ids::{GameId, ProductId};
use crate::model::Game;

/// One entry of a product's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry id (`<ms>-<seq>`).
    pub id: String,
    /// Its fields, in stream order.
    pub fields: Vec<(String, String)>,
}

/// One game's record and its recent events, for the console's detail view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameHistory {
    /// The game; `None` if its hash is gone (ended and expired, or removed).
    pub game: Option<Game>,
    /// Its most recent events, newest first.
    pub events: Vec<StreamEntry>,
    /// How many stream entries were searched for them.
    pub searched: usize,
}

fn stream_entry((id, fields): RawEntry) -> StreamEntry {
    StreamEntry { id, fields }
}

impl Store {
    /// `game`'s record and up to `shown` of its events among the last `search` entries of its
    /// product's stream, in one round trip.
    pub async fn game_history(
        &self,
        game: &GameId,
        search: usize,
        shown: usize,
    ) -> StoreResult<GameHistory> {
        let Some(product) = game.product() else {
            return Ok(GameHistory {
                game: None,
                events: Vec::new(),
                searched: 0,
            });
        };
        let keys = self.product_keys(&product);
        let key = keys.game(game);
        let mut conn = self.conn.clone();
        let (hash, entries): (HashMap<String, String>, Vec<RawEntry>) = redis::pipe()
            .cmd("HGETALL")
            .arg(&key)
            .cmd("XREVRANGE")
            .arg(keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(search)
            .query_async(&mut conn)
            .await?;
        let searched = entries.len();
        let events = entries
            .into_iter()
            .filter(|(_, fields)| {
                fields
                    .iter()
                    .any(|(k, v)| k == "game_id" && v == game.as_str())
            })
            .take(shown)
            .map(stream_entry)
            .collect();
        Ok(GameHistory {
            game: decode(&key, &hash)?,
            events,
            searched,
        })
    }

    /// The newest `count` entries of `product`'s stream, newest first.
    pub async fn recent_events(
        &self,
        product: &ProductId,
        count: usize,
    ) -> StoreResult<Vec<StreamEntry>> {
        let recent: Vec<RawEntry> = self
            .newest_entries(self.product_keys(product).events(), count)
            .await?;
        Ok(recent.into_iter().map(stream_entry).collect())
    }

    /// The newest `count` entries of the stream at `key`, newest first (`XREVRANGE`), in
    /// whatever shape the caller decodes them to: the one newest-first read of the event
    /// tail and the audit stream.
    pub(super) async fn newest_entries<T: redis::FromRedisValue>(
        &self,
        key: String,
        count: usize,
    ) -> StoreResult<Vec<T>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?)
    }

    /// A follower of product streams blocking up to `block` per read (connects on first read).
    pub fn tail_reader(&self, block: Duration) -> TailReader {
        TailReader {
            store: self.clone(),
            conn: None,
            block,
        }
    }
}

/// Follows product streams with plain `XREAD … BLOCK` on a dedicated connection whose reply
/// timeout exceeds the block time. The connection is opened on first use and dropped after
/// an error, to be opened again by the next read.
///
/// On a Redis Cluster the streams are in different slots, so one `XREAD` over all of them is
/// refused (`CROSSSLOT`), and a blocking read per product would need a connection per
/// product to every node. There each product is read with its own `XREAD` without `BLOCK`,
/// all at once over the store's one cluster connection; when none has entries, the reader
/// asks again every [`CLUSTER_POLL`] until the block time is over. A product whose read fails
/// or takes over a second (its slot failing over, migrating or unreachable) is skipped, so it
/// never stops the tail of the others; the read fails only when every product's does.
pub struct TailReader {
    store: Store,
    conn: Option<RedisConn>,
    block: Duration,
}

/// How often the tail asks a cluster's streams again while none has new entries.
pub const CLUSTER_POLL: Duration = Duration::from_millis(100);

/// How long the tail waits for one product's read on a cluster before skipping that product
/// for this read: a node that does not answer delays the others' entries by at most this.
const CLUSTER_READ_TIMEOUT: Duration = Duration::from_secs(1);

impl std::fmt::Debug for TailReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailReader")
            .field("block", &self.block)
            .finish_non_exhaustive()
    }
}

impl TailReader {
    /// Up to `count` entries per stream after the given entry id of each product, waiting up
    /// to the block time for the first; per product, in entry order.
    pub async fn read_after(
        &mut self,
        positions: &BTreeMap<ProductId, String>,
        count: usize,
    ) -> StoreResult<Vec<(ProductId, Vec<StreamEntry>)>> {
        if self.store.is_cluster() {
            return self.read_each_after(positions, count).await;
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self.store.blocking_connection(self.block).await?;
                self.conn.insert(conn)
            }
        };
        let streams: Vec<String> = positions
            .keys()
            .map(|product| self.store.product_keys(product).events())
            .collect();
        let ids: Vec<String> = positions.values().cloned().collect();
        let cmd = xread(count, Some(self.block.as_millis() as u64), &streams, &ids);
        let reply: XreadReply = match cmd.query_async(conn).await {
            Ok(reply) => reply,
            Err(err) => {
                self.conn = None;
                return Err(err.into());
            }
        };
        let by_key: HashMap<&str, &ProductId> = streams
            .iter()
            .map(String::as_str)
            .zip(positions.keys())
            .collect();
        Ok(reply
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(key, entries)| {
                let product = by_key.get(key.as_str())?;
                Some((
                    (*product).clone(),
                    entries.into_iter().map(stream_entry).collect(),
                ))
            })
            .collect())
    }
}

impl TailReader {
    /// The cluster's read (see the type's doc): every product at once, again every
    /// [`CLUSTER_POLL`] while none has entries, until the block time is over.
    async fn read_each_after(
        &mut self,
        positions: &BTreeMap<ProductId, String>,
        count: usize,
    ) -> StoreResult<Vec<(ProductId, Vec<StreamEntry>)>> {
        let deadline = tokio::time::Instant::now() + self.block;
        loop {
            let mut reads: FuturesUnordered<_> = positions
                .iter()
                .map(|(product, id)| {
                    // Never resent: a product whose read fails is skipped until the next one.
                    let mut conn = self.store.conn.clone().once();
                    let cmd = xread(
                        count,
                        None,
                        &[self.store.product_keys(product).events()],
                        std::slice::from_ref(id),
                    );
                    async move {
                        let reply = tokio::time::timeout(CLUSTER_READ_TIMEOUT, async {
                            cmd.query_async::<XreadReply>(&mut conn).await
                        })
                        .await
                        .unwrap_or_else(|_| {
                            Err(redis::RedisError::from((
                                redis::ErrorKind::Io,
                                "no answer from the product's node within the tail's read timeout",
                            )))
                        });
                        (product, reply)
                    }
                })
                .collect();
            let (mut answered, mut first_error, mut read) = (0, None, Vec::new());
            while let Some((product, reply)) = reads.next().await {
                match reply {
                    Ok(reply) => {
                        answered += 1;
                        let entries: Vec<StreamEntry> = reply
                            .unwrap_or_default()
                            .into_iter()
                            .flat_map(|(_, entries)| entries)
                            .map(stream_entry)
                            .collect();
                        if !entries.is_empty() {
                            read.push((product.clone(), entries));
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%product, %err, "tail: read failed for this product");
                        first_error.get_or_insert(err);
                    }
                }
            }
            if let Some(err) = first_error
                && answered == 0
            {
                return Err(err.into());
            }
            let now = tokio::time::Instant::now();
            if !read.is_empty() || now >= deadline {
                return Ok(read);
            }
            tokio::time::sleep(CLUSTER_POLL.min(deadline - now)).await;
        }
    }
}
