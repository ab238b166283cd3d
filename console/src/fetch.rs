//! Reading the store for the console: the header's statistics, the table's window, one game's
//! detail, and following the product streams.
//!
//! Everything here only reads, and only through the store's operations. The event tail uses
//! the store's group-free reads ([`Store::recent_events`], [`TailReader`]): the console must
//! never take entries from the daemon's consumer group.

use std::collections::BTreeMap;
use std::time::Duration;

use mm_common::model::GameSet;
use mm_common::store::{Store, StoreError, StreamEntry, TailReader, Watermark};
use mm_common::{GameId, ProductId};

use crate::data::{
    AuditRow, DeadLetter, FilterScan, GameDetail, GameRow, GamesPage, GroupStats, Overview,
    PageQuery, ProductStats, Snapshot, TailEvent,
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
    // The configured products alone when `P:products` cannot be read (its slot unreachable),
    // unless there are none.
    let mut products = match store.products().await {
        Ok(products) => products,
        Err(err) if !configured.is_empty() => {
            tracing::warn!(%err, "could not read the product set; showing the configured products");
            Vec::new()
        }
        Err(err) => return Err(err),
    };
    for product in configured {
        if !products.contains(product) {
            products.push(product.clone());
        }
    }
    products.sort();
    Ok(products)
}

async fn product_stats(
    store: &Store,
    product: &ProductId,
    now_ms: u64,
) -> Result<ProductStats, StoreError> {
    let (counts, group, dead, watermark, node) = tokio::join!(
        store.set_counts(product),
        store.group_info(product),
        store.dead_letter_count(product),
        store.watermark(product),
        store.serving_node(product),
    );
    Ok(ProductStats {
        product: product.to_string(),
        counts: counts?,
        group: group?.map(|info| GroupStats {
            lag: info.lag,
            pending: info.pending,
            consumers: info.consumers,
        }),
        dead_letters: dead?,
        // On this machine's clock: the age is measured on Redis's.
        watermark_ms: match watermark? {
            Watermark::CaughtUp => None,
            behind => Some(behind.applied_until(now_ms)),
        },
        // Where the product lives is shown when known; not knowing it hides nothing else.
        node: node.unwrap_or_default(),
    })
}

/// The header data: every product's counts, group state, applied watermark and dead letters,
/// and live daemons.
pub async fn overview(
    store: &Store,
    products: &[ProductId],
    now_ms: u64,
) -> Result<Overview, StoreError> {
    let stats =
        futures::future::join_all(products.iter().map(|p| product_stats(store, p, now_ms))).await;
    // Per product: one product's keys unreachable (on a cluster, its slot failing over or
    // migrating) leaves it out of this refresh but never blanks the others; the header fails
    // only when nothing could be read.
    let mut shown = Vec::new();
    let mut first_error = None;
    for (product, result) in products.iter().zip(stats) {
        match result {
            Ok(stats) => shown.push(stats),
            Err(err) => {
                tracing::warn!(%product, %err, "could not read this product's figures");
                first_error.get_or_insert(err);
            }
        }
    }
    let instances = store
        .live_instances(now_ms.saturating_sub(INSTANCE_ALIVE_MS))
        .await;
    match (first_error, instances) {
        (Some(err), _) if shown.is_empty() => Err(err),
        (_, Err(err)) if shown.is_empty() => Err(err),
        (_, instances) => Ok(Overview {
            products: shown,
            instances: instances.unwrap_or_default(),
        }),
    }
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
            set_size,
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

/// A stream entry of `product` as the console shows it.
fn tail_event(product: &ProductId, entry: StreamEntry) -> TailEvent {
    TailEvent {
        product: product.to_string(),
        entry_id: entry.id,
        fields: entry.fields,
    }
}

/// One game's record (as the fields the store keeps, [`record_fields`]) and its recent events
/// (from the last [`DETAIL_EVENT_SEARCH`] entries of its product's stream).
pub async fn detail(store: &Store, id: &str) -> Result<GameDetail, StoreError> {
    let Some((game, product)) = GameId::new(id).ok().and_then(|game| {
        let product = game.product()?;
        Some((game, product))
    }) else {
        return Ok(GameDetail {
            id: id.to_string(),
            game: None,
            events: Vec::new(),
            searched: 0,
        });
    };
    let history = store
        .game_history(&game, DETAIL_EVENT_SEARCH, DETAIL_EVENTS)
        .await?;
    Ok(GameDetail {
        id: id.to_string(),
        game: history.game,
        events: history
            .events
            .into_iter()
            .map(|entry| tail_event(&product, entry))
            .collect(),
        searched: history.searched,
    })
}

/// Dead letters read per product for the `:dead` view.
pub const DEAD_LETTERS_PER_PRODUCT: usize = 200;
/// Audit entries read for the `:audit` view.
pub const AUDIT_ENTRIES: usize = 500;

/// The newest dead letters of every product (at most [`DEAD_LETTERS_PER_PRODUCT`] each),
/// newest first.
pub async fn dead_letters(
    store: &Store,
    configured: &[ProductId],
) -> Result<Vec<DeadLetter>, StoreError> {
    let products = products(store, configured).await?;
    let reads = futures::future::join_all(
        products
            .iter()
            .map(|p| store.recent_dead_letters(p, DEAD_LETTERS_PER_PRODUCT)),
    )
    .await;
    let mut letters = Vec::new();
    for (product, entries) in products.iter().zip(reads) {
        letters.extend(entries?.into_iter().map(|entry| DeadLetter {
            product: product.to_string(),
            entry_id: entry.id,
            fields: entry.fields,
        }));
    }
    letters.sort_by_key(|letter| std::cmp::Reverse(entry_order(&letter.entry_id)));
    Ok(letters)
}

/// The newest [`AUDIT_ENTRIES`] operator actions, newest first.
pub async fn audit(store: &Store) -> Result<Vec<AuditRow>, StoreError> {
    Ok(store
        .recent_audit(AUDIT_ENTRIES)
        .await?
        .into_iter()
        .map(|(entry_id, entry)| AuditRow { entry_id, entry })
        .collect())
}

/// Follows every product stream with plain `XREAD` (never a consumer group).
pub struct TailFollower {
    store: Store,
    configured: Vec<ProductId>,
    only: Option<Vec<ProductId>>,
    reader: TailReader,
    last_ids: BTreeMap<ProductId, String>,
    backfill: usize,
    block: Duration,
}

impl TailFollower {
    /// A follower that starts each stream with its last `backfill` entries (0: only new ones),
    /// blocking up to `block` per read.
    pub fn new(store: Store, configured: Vec<ProductId>, backfill: usize, block: Duration) -> Self {
        Self {
            reader: store.tail_reader(block),
            store,
            configured,
            only: None,
            last_ids: BTreeMap::new(),
            backfill,
            block,
        }
    }

    /// Follows only these products' streams.
    pub fn only(mut self, products: Vec<ProductId>) -> Self {
        self.only = Some(products);
        self
    }

    /// The next events (possibly none after `block`), in entry-id order per stream.
    pub async fn next_batch(&mut self) -> Result<Vec<TailEvent>, StoreError> {
        let mut events = Vec::new();
        let products = match &self.only {
            Some(only) => only.clone(),
            None => products(&self.store, &self.configured).await?,
        };
        for product in products {
            if self.last_ids.contains_key(&product) {
                continue;
            }
            let recent = self
                .store
                .recent_events(&product, self.backfill.max(1))
                .await?;
            let last = recent
                .first()
                .map_or("0-0".to_string(), |entry| entry.id.clone());
            if self.backfill > 0 {
                events.extend(
                    recent
                        .into_iter()
                        .rev()
                        .map(|entry| tail_event(&product, entry)),
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
        for (product, entries) in self.reader.read_after(&self.last_ids, 1000).await? {
            if let Some(last) = entries.last() {
                self.last_ids.insert(product.clone(), last.id.clone());
            }
            events.extend(entries.into_iter().map(|entry| tail_event(&product, entry)));
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
