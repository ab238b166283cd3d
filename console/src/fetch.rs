//! Reading Redis for the console: the header's statistics, the table's window, one game's
//! detail, and following the product streams.
//!
//! Everything here only reads. The event tail uses plain `XREAD` and `XREVRANGE`, never
//! `XREADGROUP`: the console must never take entries from the daemon's consumer group.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mm_common::keys::CONSUMER_GROUP;
use mm_common::model::GameSet;
use mm_common::store::{Store, StoreError};
use mm_common::{GameId, ProductId};
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::data::{
    FilterScan, GameDetail, GameRow, GamesPage, GroupStats, Overview, PageQuery, ProductStats,
    Snapshot, TailEvent,
};

/// A daemon instance counts as alive if it wrote a heartbeat this recently.
pub const INSTANCE_ALIVE_MS: u64 = 15_000;
/// A filtered table examines at most this many games of a set.
pub const FILTER_SCAN_LIMIT: u64 = 20_000;
/// Rows read per round trip while filtering.
const FILTER_CHUNK: u64 = 1_000;
/// Stream entries searched for one game's recent events.
pub const DETAIL_EVENT_SEARCH: usize = 2_000;
/// Events shown for one game.
pub const DETAIL_EVENTS: usize = 30;

/// Products to show: those in `P:products` plus the configured ones, sorted.
pub async fn products(
    store: &Store,
    configured: &[ProductId],
) -> Result<Vec<ProductId>, StoreError> {
    let mut products = store.products().await?;
    for product in configured {
        if !products.contains(product) {
            products.push(product.clone());
        }
    }
    products.sort();
    Ok(products)
}

fn value_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(text) => text.parse().ok(),
        _ => None,
    }
}

fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a reply that is a flat `[name, value, name, value…]` array or a map.
fn pairs(value: &Value) -> Vec<(String, &Value)> {
    match value {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|pair| match pair {
                [name, value] => Some((value_text(name)?, value)),
                _ => None,
            })
            .collect(),
        Value::Map(items) => items
            .iter()
            .filter_map(|(name, value)| Some((value_text(name)?, value)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The daemon's consumer group on `product`'s stream (`XINFO GROUPS`); `None` if the stream or
/// the group does not exist.
async fn group_stats(store: &Store, product: &ProductId) -> Result<Option<GroupStats>, StoreError> {
    let mut conn = store.connection();
    let reply: Result<Value, redis::RedisError> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(store.keys().product(product).events())
        .query_async(&mut conn)
        .await;
    let reply = match reply {
        Ok(reply) => reply,
        // "ERR no such key": the stream does not exist yet.
        Err(err) if matches!(err.kind(), redis::ErrorKind::Server(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let Value::Array(groups) = reply else {
        return Ok(None);
    };
    for group in &groups {
        let fields: HashMap<String, &Value> = pairs(group).into_iter().collect();
        if fields.get("name").and_then(|v| value_text(v)).as_deref() != Some(CONSUMER_GROUP) {
            continue;
        }
        return Ok(Some(GroupStats {
            lag: fields.get("lag").and_then(|v| value_u64(v)),
            pending: fields
                .get("pending")
                .and_then(|v| value_u64(v))
                .unwrap_or(0),
            consumers: fields
                .get("consumers")
                .and_then(|v| value_u64(v))
                .unwrap_or(0),
        }));
    }
    Ok(None)
}

async fn product_stats(store: &Store, product: &ProductId) -> Result<ProductStats, StoreError> {
    let mut conn = store.connection();
    let (counts, group, dead) = tokio::join!(
        store.set_counts(product),
        group_stats(store, product),
        async {
            let dead: Result<u64, redis::RedisError> = redis::cmd("XLEN")
                .arg(store.keys().product(product).dead_letters())
                .query_async(&mut conn)
                .await;
            dead
        }
    );
    Ok(ProductStats {
        product: product.to_string(),
        counts: counts?,
        group: group?,
        dead_letters: dead?,
    })
}

/// The header data: every product's counts, group state and dead letters, and live daemons.
pub async fn overview(
    store: &Store,
    products: &[ProductId],
    now_ms: u64,
) -> Result<Overview, StoreError> {
    let stats = futures::future::join_all(products.iter().map(|p| product_stats(store, p))).await;
    let mut conn = store.connection();
    let instances: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(store.keys().instances())
        .arg(now_ms.saturating_sub(INSTANCE_ALIVE_MS))
        .arg("+inf")
        .query_async(&mut conn)
        .await?;
    Ok(Overview {
        products: stats.into_iter().collect::<Result<_, _>>()?,
        instances,
    })
}

/// The table's window. Unfiltered: one `set_window` of exactly the rows on screen, so its cost
/// does not depend on the set's size. Filtered: the set is read in chunks (at most
/// [`FILTER_SCAN_LIMIT`] games) and matched here.
pub async fn games_page(store: &Store, query: &PageQuery) -> Result<GamesPage, StoreError> {
    if query.filter.is_empty() {
        let window = store
            .set_window(
                &query.product,
                query.set,
                query.offset,
                query.count,
                query.newest_first,
            )
            .await?;
        return Ok(GamesPage {
            query: query.clone(),
            rows: window
                .rows
                .iter()
                .map(|row| GameRow::from_window(&query.product, row))
                .collect(),
            total: window.total,
            scan: None,
        });
    }
    let mut matches = Vec::new();
    let mut scanned = 0;
    let mut set_size = 0;
    while scanned < FILTER_SCAN_LIMIT {
        let window = store
            .set_window(
                &query.product,
                query.set,
                scanned,
                FILTER_CHUNK,
                query.newest_first,
            )
            .await?;
        set_size = window.total;
        let got = window.rows.len() as u64;
        matches.extend(
            window
                .rows
                .iter()
                .map(|row| GameRow::from_window(&query.product, row))
                .filter(|row| row.matches(&query.filter)),
        );
        scanned += got;
        if got < FILTER_CHUNK {
            break;
        }
    }
    let total = matches.len() as u64;
    let rows = matches
        .into_iter()
        .skip(query.offset as usize)
        .take(query.count as usize)
        .collect();
    Ok(GamesPage {
        query: query.clone(),
        rows,
        total,
        scan: Some(FilterScan {
            scanned,
            truncated: set_size > scanned,
        }),
    })
}

/// One full refresh: products, header data and the table's window.
pub async fn snapshot(
    store: &Store,
    configured: &[ProductId],
    query: Option<&PageQuery>,
    now_ms: u64,
) -> Result<Snapshot, StoreError> {
    let products = products(store, configured).await?;
    let overview_fut = overview(store, &products, now_ms);
    let page_fut = async {
        match query {
            Some(q) if products.contains(&q.product) => games_page(store, q).await.map(Some),
            _ => Ok(None),
        }
    };
    let (overview, page) = tokio::join!(overview_fut, page_fut);
    Ok(Snapshot {
        overview: overview?,
        products,
        page: page?,
    })
}

type RawEntry = (String, Vec<(String, String)>);

/// One game's hash and its recent events (from the last [`DETAIL_EVENT_SEARCH`] entries of its
/// product's stream).
pub async fn detail(store: &Store, id: &str) -> Result<GameDetail, StoreError> {
    let game = GameId::new(id).ok();
    let product = game.as_ref().and_then(GameId::product);
    let Some(product) = product else {
        return Ok(GameDetail {
            id: id.to_string(),
            fields: Vec::new(),
            events: Vec::new(),
            searched: 0,
        });
    };
    let keys = store.keys().product(&product);
    let mut conn = store.connection();
    let (mut fields, entries): (Vec<(String, String)>, Vec<RawEntry>) = redis::pipe()
        .cmd("HGETALL")
        .arg(keys.game_by_raw_id(id))
        .cmd("XREVRANGE")
        .arg(keys.events())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(DETAIL_EVENT_SEARCH)
        .query_async(&mut conn)
        .await?;
    fields.sort();
    let searched = entries.len();
    let events = entries
        .into_iter()
        .filter(|(_, fields)| fields.iter().any(|(k, v)| k == "game_id" && v == id))
        .take(DETAIL_EVENTS)
        .map(|(entry_id, fields)| TailEvent {
            product: product.to_string(),
            entry_id,
            fields,
        })
        .collect();
    Ok(GameDetail {
        id: id.to_string(),
        fields,
        events,
        searched,
    })
}

/// Follows every product stream with plain `XREAD` (never a consumer group).
pub struct TailFollower {
    store: Store,
    configured: Vec<ProductId>,
    conn: Option<MultiplexedConnection>,
    last_ids: BTreeMap<ProductId, String>,
    backfill: usize,
    block: Duration,
}

impl TailFollower {
    /// A follower that starts each stream with its last `backfill` entries (0: only new ones),
    /// blocking up to `block` per read.
    pub fn new(store: Store, configured: Vec<ProductId>, backfill: usize, block: Duration) -> Self {
        Self {
            store,
            configured,
            conn: None,
            last_ids: BTreeMap::new(),
            backfill,
            block,
        }
    }

    /// The next events (possibly none after `block`), in entry-id order per stream.
    pub async fn next_batch(&mut self) -> Result<Vec<TailEvent>, StoreError> {
        let mut events = Vec::new();
        let products = products(&self.store, &self.configured).await?;
        for product in products {
            if self.last_ids.contains_key(&product) {
                continue;
            }
            let mut conn = self.store.connection();
            let recent: Vec<RawEntry> = redis::cmd("XREVRANGE")
                .arg(self.store.keys().product(&product).events())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(self.backfill.max(1))
                .query_async(&mut conn)
                .await?;
            let last = recent
                .first()
                .map_or("0-0".to_string(), |(id, _)| id.clone());
            if self.backfill > 0 {
                events.extend(
                    recent
                        .into_iter()
                        .rev()
                        .map(|(entry_id, fields)| TailEvent {
                            product: product.to_string(),
                            entry_id,
                            fields,
                        }),
                );
            }
            self.last_ids.insert(product, last);
        }
        if !events.is_empty() || self.last_ids.is_empty() {
            if self.last_ids.is_empty() {
                tokio::time::sleep(self.block).await;
            }
            events.sort_by_key(|e| entry_order(&e.entry_id));
            return Ok(events);
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self.store.blocking_connection(self.block).await?;
                self.conn.insert(conn)
            }
        };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(self.block.as_millis() as u64)
            .arg("STREAMS");
        for product in self.last_ids.keys() {
            cmd.arg(self.store.keys().product(product).events());
        }
        for id in self.last_ids.values() {
            cmd.arg(id);
        }
        type Reply = Option<Vec<(String, Vec<RawEntry>)>>;
        let reply: Result<Reply, redis::RedisError> = cmd.query_async(conn).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => {
                self.conn = None;
                return Err(err.into());
            }
        };
        let by_key: HashMap<String, ProductId> = self
            .last_ids
            .keys()
            .map(|p| (self.store.keys().product(p).events(), p.clone()))
            .collect();
        for (key, entries) in reply.unwrap_or_default() {
            let Some(product) = by_key.get(&key) else {
                continue;
            };
            if let Some((last, _)) = entries.last() {
                self.last_ids.insert(product.clone(), last.clone());
            }
            events.extend(entries.into_iter().map(|(entry_id, fields)| TailEvent {
                product: product.to_string(),
                entry_id,
                fields,
            }));
        }
        events.sort_by_key(|e| entry_order(&e.entry_id));
        Ok(events)
    }
}

fn entry_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Every game of `set` (of one product or all), stalest first, read in chunks.
pub async fn list_games(
    store: &Store,
    products: &[ProductId],
    set: GameSet,
) -> Result<Vec<GameRow>, StoreError> {
    let mut rows = Vec::new();
    for product in products {
        let mut offset = 0;
        loop {
            let window = store
                .set_window(product, set, offset, FILTER_CHUNK, false)
                .await?;
            let got = window.rows.len() as u64;
            rows.extend(
                window
                    .rows
                    .iter()
                    .map(|row| GameRow::from_window(product, row)),
            );
            offset += got;
            if got < FILTER_CHUNK {
                break;
            }
        }
    }
    Ok(rows)
}
