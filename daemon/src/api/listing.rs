//! The in-memory cache of open-games listings: first pages only, bounded by
//! `lobby.list_max_staleness_ms`.
//!
//! Asking Redis for every listing caps the API at what Redis can serve (a page of 100 games is
//! one `ZRANGE` and 100 `HGETALL`s). Players list far more often than games change, so the
//! first page of each `(product, region, limit)` is kept as ready-to-send JSON bytes:
//!
//! - a page read less than half the bound ago is served as is;
//! - between half the bound and the bound, it is still served, and one background task
//!   (single flight per page) reads a fresh copy;
//! - at or past the bound, it is never served: the request waits for the refresh in flight,
//!   or reads Redis itself if none is.
//!
//! So no listing is ever older than the bound (measured from the moment its Redis read
//! started), and under steady traffic requests never wait for Redis. Pages after a cursor are
//! read from Redis every time (their cursors make them too many to cache). A bound of zero
//! turns the cache off. Writes this process makes to a product's open games (a seat reserved
//! or released, a game cancelled) drop that product's pages at once.
//!
//! No client can push real pages out (issue 13): only the configured products and regions
//! have room in the cache (fixed at start from `[[game_servers]]`); a listing of any other
//! region is read from Redis without being kept. Each product's pages live in a bounded
//! `quick_cache` map of [`PAGES_PER_PRODUCT`] entries (CLOCK-Pro eviction: pages read once
//! do not displace pages read often), so one product's clients cannot evict another's.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use mm_common::ProductId;
use tokio::time::Instant;

/// Most first pages cached per product (regions in use × page sizes in use).
pub const PAGES_PER_PRODUCT: usize = 512;

/// Which first page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// Product listed.
    pub product: ProductId,
    /// Region filter.
    pub region: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// Whether [`ListingCache::get`] answered from the cache, for `mm_listing_cache_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A cached page was served.
    Hit,
    /// The page was read from Redis (absent or too old) and kept.
    Read,
    /// The page has no room in the cache (an unconfigured region, or caching off): read from
    /// Redis and not kept.
    Uncached,
}

impl CacheOutcome {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Read => "read",
            CacheOutcome::Uncached => "uncached",
        }
    }
}

/// A page as sent, and when the Redis read that produced it started.
#[derive(Debug)]
struct Page {
    body: Bytes,
    read_at: Instant,
}

#[derive(Debug, Default)]
struct Slot {
    page: RwLock<Option<Arc<Page>>>,
    /// Held by whoever is reading this page from Redis (single flight).
    refresh: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    /// The cached page, unless a write this process made came after its read.
    fn page(&self, floor: Option<Instant>) -> Option<Arc<Page>> {
        let page = self.page.read().expect("listing cache slot lock").clone()?;
        if floor.is_some_and(|floor| page.read_at <= floor) {
            return None;
        }
        Some(page)
    }

    /// Keeps `page` unless a newer read is already there or a write came after its read.
    fn offer(&self, page: Page, floor: Option<Instant>) {
        if floor.is_some_and(|floor| page.read_at <= floor) {
            return;
        }
        let mut current = self.page.write().expect("listing cache slot lock");
        if current.as_ref().is_none_or(|c| c.read_at <= page.read_at) {
            *current = Some(Arc::new(page));
        }
    }
}

/// One product's pages.
struct ProductPages {
    /// The regions its servers are configured with; pages of other regions are not kept.
    regions: BTreeSet<String>,
    /// Reads that started at or before this instant are older than a write this process
    /// made (see [`ListingCache::invalidate`]): never served, never kept.
    floor: Arc<RwLock<Option<Instant>>>,
    pages: quick_cache::sync::Cache<(Option<String>, u32), Arc<Slot>>,
}

impl std::fmt::Debug for ProductPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductPages")
            .field("regions", &self.regions)
            .field("pages", &self.pages.len())
            .finish_non_exhaustive()
    }
}

impl ProductPages {
    fn floor(&self) -> Option<Instant> {
        read_floor(&self.floor)
    }
}

fn read_floor(floor: &RwLock<Option<Instant>>) -> Option<Instant> {
    *floor.read().expect("listing cache floor lock")
}

/// The cache; one per API process, shared by every request.
#[derive(Debug)]
pub struct ListingCache {
    max_staleness: Duration,
    products: HashMap<ProductId, ProductPages>,
}

impl ListingCache {
    /// A cache whose pages are never older than `max_staleness` (zero: no caching), with
    /// room for the pages of `servers` (each configured game server's product and region).
    pub fn new(
        max_staleness: Duration,
        servers: impl IntoIterator<Item = (ProductId, Option<String>)>,
    ) -> ListingCache {
        let mut products: HashMap<ProductId, ProductPages> = HashMap::new();
        for (product, region) in servers {
            let pages = products.entry(product).or_insert_with(|| ProductPages {
                regions: BTreeSet::new(),
                floor: Arc::new(RwLock::new(None)),
                pages: quick_cache::sync::Cache::new(PAGES_PER_PRODUCT),
            });
            if let Some(region) = region.filter(|r| !r.is_empty()) {
                pages.regions.insert(region);
            }
        }
        ListingCache {
            max_staleness,
            products,
        }
    }

    /// The slot of `key` and its product, or `None` when the page has no room in the cache.
    fn slot(&self, key: &PageKey) -> Option<(&ProductPages, Arc<Slot>)> {
        let product = self.products.get(&key.product)?;
        if let Some(region) = &key.region
            && !product.regions.contains(region)
        {
            return None;
        }
        let slot_key = (key.region.clone(), key.limit);
        let slot = product
            .pages
            .get_or_insert_with(&slot_key, || {
                Ok::<_, std::convert::Infallible>(Arc::new(Slot::default()))
            })
            .unwrap_or_else(|never| match never {});
        Some((product, slot))
    }

    /// The page for `key`: cached if fresh enough, otherwise produced by `fetch` (a Redis
    /// read rendered to the response body), and how it was answered. `fetch` may also run in
    /// the background to renew a page that is getting old; its errors there are logged, and
    /// the next request past the bound reads again and sees them.
    pub async fn get<F, Fut, E>(&self, key: &PageKey, fetch: F) -> Result<(Bytes, CacheOutcome), E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Debug + Send + 'static,
    {
        let cached = if self.max_staleness.is_zero() {
            None
        } else {
            self.slot(key)
        };
        let Some((product, slot)) = cached else {
            return Ok((fetch().await?, CacheOutcome::Uncached));
        };
        if let Some(page) = slot.page(product.floor()) {
            let age = page.read_at.elapsed();
            if age < self.max_staleness {
                if age >= self.max_staleness / 2 {
                    Self::renew_in_background(product, &slot, fetch);
                }
                return Ok((page.body.clone(), CacheOutcome::Hit));
            }
        }
        // Too old or absent: wait for the read in flight, if any, rather than start another.
        let _flight = slot.refresh.lock().await;
        if let Some(page) = slot.page(product.floor())
            && page.read_at.elapsed() < self.max_staleness
        {
            return Ok((page.body.clone(), CacheOutcome::Hit));
        }
        let read_at = Instant::now();
        let body = fetch().await?;
        slot.offer(
            Page {
                body: body.clone(),
                read_at,
            },
            product.floor(),
        );
        Ok((body, CacheOutcome::Read))
    }

    /// Forgets every cached page of `product`, and any read of them already in flight: for
    /// writes this process just made (a seat reserved or released, a game cancelled), so its
    /// own clients read them back at once. Writes elsewhere (events, other instances) show
    /// within the staleness bound.
    pub fn invalidate(&self, product: &ProductId) {
        if let Some(pages) = self.products.get(product) {
            *pages.floor.write().expect("listing cache floor lock") = Some(Instant::now());
        }
    }

    /// How many pages are cached now (all products).
    pub fn cached_pages(&self) -> usize {
        self.products.values().map(|p| p.pages.len()).sum()
    }

    fn renew_in_background<F, Fut, E>(product: &ProductPages, slot: &Arc<Slot>, fetch: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Debug + Send + 'static,
    {
        let Ok(flight) = Arc::clone(&slot.refresh).try_lock_owned() else {
            return; // A read is already in flight.
        };
        let slot = Arc::clone(slot);
        let floor = Arc::clone(&product.floor);
        tokio::spawn(async move {
            let read_at = Instant::now();
            match fetch().await {
                Ok(body) => slot.offer(Page { body, read_at }, read_floor(&floor)),
                Err(err) => tracing::warn!(error = ?err, "renewing a cached listing failed"),
            }
            drop(flight);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    const BOUND: Duration = Duration::from_millis(250);

    /// A cache for products `chess` (region `eu`) and `go`.
    fn cache(bound: Duration) -> ListingCache {
        ListingCache::new(
            bound,
            [
                (ProductId::new("chess").unwrap(), Some("eu".to_string())),
                (ProductId::new("chess").unwrap(), None),
                (ProductId::new("go").unwrap(), None),
            ],
        )
    }

    /// [`ListingCache::get`] without the outcome.
    trait BodyOnly {
        async fn body<F, Fut, E>(&self, key: &PageKey, fetch: F) -> Result<Bytes, E>
        where
            F: FnOnce() -> Fut + Send + 'static,
            Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
            E: std::fmt::Debug + Send + 'static;
    }

    impl BodyOnly for ListingCache {
        async fn body<F, Fut, E>(&self, key: &PageKey, fetch: F) -> Result<Bytes, E>
        where
            F: FnOnce() -> Fut + Send + 'static,
            Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
            E: std::fmt::Debug + Send + 'static,
        {
            self.get(key, fetch).await.map(|(body, _)| body)
        }
    }

    fn key() -> PageKey {
        PageKey {
            product: ProductId::new("chess").unwrap(),
            region: None,
            limit: 100,
        }
    }

    /// A fetch that counts its calls and answers the call number.
    fn counting(
        calls: &Arc<AtomicU64>,
        delay: Duration,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>>
    + Send
    + 'static {
        let calls = Arc::clone(calls);
        move || {
            Box::pin(async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                Ok(Bytes::from(n.to_string()))
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_page_is_served_without_reading_again() {
        let cache = cache(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        assert_eq!(
            cache
                .body(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "1"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(
            cache
                .body(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "1"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_page_at_the_bound_is_never_served() {
        let cache = cache(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        cache
            .body(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        tokio::time::advance(BOUND).await;
        // The read takes 50 ms: the caller waits for it instead of getting the old page.
        let page = cache
            .body(&key(), counting(&calls, Duration::from_millis(50)))
            .await;
        assert_eq!(page.unwrap(), "2");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ageing_page_is_renewed_once_in_the_background_while_served() {
        let cache = cache(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        cache
            .body(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(150)).await;
        for _ in 0..10 {
            let page = cache
                .body(&key(), counting(&calls, Duration::from_millis(20)))
                .await;
            assert_eq!(page.unwrap(), "1", "the ageing page is still served");
        }
        // Sleeping (not just advancing the clock) lets the renewal task run to its end.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one renewal for ten requests"
        );
        assert_eq!(
            cache
                .body(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "2"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_for_a_missing_page_share_one_read() {
        let cache = Arc::new(cache(BOUND));
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let cache = Arc::clone(&cache);
            let fetch = counting(&calls, Duration::from_millis(10));
            tasks.spawn(async move { cache.body(&key(), fetch).await.unwrap() });
        }
        while let Some(page) = tasks.join_next().await {
            assert_eq!(page.unwrap(), "1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_returned_and_not_cached() {
        let cache = cache(BOUND);
        let failed = cache
            .body(&key(), || async {
                Err::<Bytes, _>("redis down".to_string())
            })
            .await;
        assert_eq!(failed.unwrap_err(), "redis down");
        let calls = Arc::new(AtomicU64::new(0));
        assert_eq!(
            cache
                .body(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "1"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn invalidation_drops_the_page_and_any_read_that_started_before_it() {
        let cache = Arc::new(cache(BOUND));
        let calls = Arc::new(AtomicU64::new(0));
        cache
            .body(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(150)).await;
        // An ageing page starts a 50 ms background renewal; a write lands during it.
        cache
            .body(&key(), counting(&calls, Duration::from_millis(50)))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        cache.invalidate(&key().product);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The renewal's result predates the write: the next request reads again.
        assert_eq!(
            cache
                .body(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "3"
        );
        let mut other = key();
        other.product = ProductId::new("go").unwrap();
        cache
            .body(&other, counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        cache.invalidate(&key().product);
        assert_eq!(
            cache
                .body(&other, counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "4",
            "other products keep their pages"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_bound_reads_every_time() {
        let cache = cache(Duration::ZERO);
        let calls = Arc::new(AtomicU64::new(0));
        cache
            .body(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        cache
            .body(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn pages_differ_by_product_region_and_limit() {
        let cache = cache(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        let mut other = key();
        other.limit = 20;
        cache
            .body(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(
            cache
                .body(&other, counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "2"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_configured_products_and_regions_are_kept() {
        let cache = cache(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        let mut eu = key();
        eu.region = Some("eu".into());
        for _ in 0..2 {
            let (_, outcome) = cache
                .get(&eu, counting(&calls, Duration::ZERO))
                .await
                .unwrap();
            assert_ne!(outcome, CacheOutcome::Uncached);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the eu page is cached");
        for junk in 0..5000 {
            let mut junk_key = key();
            junk_key.region = Some(format!("junk-{junk}"));
            let (_, outcome) = cache
                .get(&junk_key, counting(&calls, Duration::ZERO))
                .await
                .unwrap();
            assert_eq!(outcome, CacheOutcome::Uncached);
        }
        let mut unknown = key();
        unknown.product = ProductId::new("checkers").unwrap();
        let (_, outcome) = cache
            .get(&unknown, counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(outcome, CacheOutcome::Uncached);
        assert_eq!(cache.cached_pages(), 1, "junk got no slot");
        let (body, outcome) = cache
            .get(&eu, counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        assert_eq!((body.as_ref(), outcome), (&b"1"[..], CacheOutcome::Hit));
    }

    #[tokio::test(start_paused = true)]
    async fn a_products_pages_are_bounded() {
        let cache = cache(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        for limit in 0..(PAGES_PER_PRODUCT as u32 * 2) {
            let mut sized = key();
            sized.limit = limit;
            cache
                .get(&sized, counting(&calls, Duration::ZERO))
                .await
                .unwrap();
        }
        assert!(
            cache.cached_pages() <= PAGES_PER_PRODUCT,
            "{}",
            cache.cached_pages()
        );
    }
}
