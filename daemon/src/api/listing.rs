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
//! or released, a game cancelled) drop that product's pages at once. At most [`MAX_PAGES`] distinct pages are kept; beyond that, requests
//! for new ones go straight to Redis.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use mm_common::ProductId;
use tokio::time::Instant;

/// Most distinct first pages cached (products × regions × limits in use).
pub const MAX_PAGES: usize = 4096;

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

/// A page as sent, and when the Redis read that produced it started.
#[derive(Debug)]
struct Page {
    body: Bytes,
    read_at: Instant,
}

#[derive(Debug, Default)]
struct SlotState {
    page: Option<Arc<Page>>,
    /// Reads that started before this instant are older than a write this process made
    /// (see [`ListingCache::invalidate`]) and are not kept.
    floor: Option<Instant>,
}

#[derive(Debug, Default)]
struct Slot {
    state: RwLock<SlotState>,
    /// Held by whoever is reading this page from Redis (single flight).
    refresh: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    fn page(&self) -> Option<Arc<Page>> {
        self.state
            .read()
            .expect("listing cache slot lock")
            .page
            .clone()
    }

    /// Keeps `page` unless a newer read is already there or a write came after its read.
    fn offer(&self, page: Page) {
        let mut state = self.state.write().expect("listing cache slot lock");
        if state.floor.is_some_and(|floor| page.read_at <= floor) {
            return;
        }
        if state
            .page
            .as_ref()
            .is_none_or(|c| c.read_at <= page.read_at)
        {
            state.page = Some(Arc::new(page));
        }
    }

    fn invalidate(&self, now: Instant) {
        let mut state = self.state.write().expect("listing cache slot lock");
        state.page = None;
        state.floor = Some(now);
    }
}

/// The cache; one per API process, shared by every request.
#[derive(Debug)]
pub struct ListingCache {
    max_staleness: Duration,
    slots: Mutex<HashMap<PageKey, Arc<Slot>>>,
}

impl ListingCache {
    /// A cache whose pages are never older than `max_staleness` (zero: no caching).
    pub fn new(max_staleness: Duration) -> ListingCache {
        ListingCache {
            max_staleness,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &PageKey) -> Option<Arc<Slot>> {
        let mut slots = self.slots.lock().expect("listing cache lock");
        if let Some(slot) = slots.get(key) {
            return Some(Arc::clone(slot));
        }
        if slots.len() >= MAX_PAGES {
            return None;
        }
        let slot = Arc::new(Slot::default());
        slots.insert(key.clone(), Arc::clone(&slot));
        Some(slot)
    }

    /// The page for `key`: cached if fresh enough, otherwise produced by `fetch` (a Redis
    /// read rendered to the response body). `fetch` may also run in the background to renew
    /// a page that is getting old; its errors there are logged, and the next request past
    /// the bound reads again and sees them.
    pub async fn get<F, Fut, E>(&self, key: &PageKey, fetch: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Debug + Send + 'static,
    {
        if self.max_staleness.is_zero() {
            return fetch().await;
        }
        let Some(slot) = self.slot(key) else {
            return fetch().await;
        };
        if let Some(page) = slot.page() {
            let age = page.read_at.elapsed();
            if age < self.max_staleness {
                if age >= self.max_staleness / 2 {
                    Self::renew_in_background(&slot, fetch);
                }
                return Ok(page.body.clone());
            }
        }
        // Too old or absent: wait for the read in flight, if any, rather than start another.
        let _flight = slot.refresh.lock().await;
        if let Some(page) = slot.page()
            && page.read_at.elapsed() < self.max_staleness
        {
            return Ok(page.body.clone());
        }
        let read_at = Instant::now();
        let body = fetch().await?;
        slot.offer(Page {
            body: body.clone(),
            read_at,
        });
        Ok(body)
    }

    /// Forgets every cached page of `product`, and any read of them already in flight: for
    /// writes this process just made (a seat reserved or released, a game cancelled), so its
    /// own clients read them back at once. Writes elsewhere (events, other instances) show
    /// within the staleness bound.
    pub fn invalidate(&self, product: &ProductId) {
        let now = Instant::now();
        let slots = self.slots.lock().expect("listing cache lock");
        for (key, slot) in slots.iter() {
            if &key.product == product {
                slot.invalidate(now);
            }
        }
    }

    fn renew_in_background<F, Fut, E>(slot: &Arc<Slot>, fetch: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Debug + Send + 'static,
    {
        let Ok(flight) = Arc::clone(&slot.refresh).try_lock_owned() else {
            return; // A read is already in flight.
        };
        let slot = Arc::clone(slot);
        tokio::spawn(async move {
            let read_at = Instant::now();
            match fetch().await {
                Ok(body) => slot.offer(Page { body, read_at }),
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
        let cache = ListingCache::new(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        assert_eq!(
            cache
                .get(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "1"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(
            cache
                .get(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "1"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_page_at_the_bound_is_never_served() {
        let cache = ListingCache::new(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        cache
            .get(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        tokio::time::advance(BOUND).await;
        // The read takes 50 ms: the caller waits for it instead of getting the old page.
        let page = cache
            .get(&key(), counting(&calls, Duration::from_millis(50)))
            .await;
        assert_eq!(page.unwrap(), "2");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ageing_page_is_renewed_once_in_the_background_while_served() {
        let cache = ListingCache::new(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        cache
            .get(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(150)).await;
        for _ in 0..10 {
            let page = cache
                .get(&key(), counting(&calls, Duration::from_millis(20)))
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
                .get(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "2"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_for_a_missing_page_share_one_read() {
        let cache = Arc::new(ListingCache::new(BOUND));
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let cache = Arc::clone(&cache);
            let fetch = counting(&calls, Duration::from_millis(10));
            tasks.spawn(async move { cache.get(&key(), fetch).await.unwrap() });
        }
        while let Some(page) = tasks.join_next().await {
            assert_eq!(page.unwrap(), "1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_returned_and_not_cached() {
        let cache = ListingCache::new(BOUND);
        let failed = cache
            .get(&key(), || async {
                Err::<Bytes, _>("redis down".to_string())
            })
            .await;
        assert_eq!(failed.unwrap_err(), "redis down");
        let calls = Arc::new(AtomicU64::new(0));
        assert_eq!(
            cache
                .get(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "1"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn invalidation_drops_the_page_and_any_read_that_started_before_it() {
        let cache = Arc::new(ListingCache::new(BOUND));
        let calls = Arc::new(AtomicU64::new(0));
        cache
            .get(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(150)).await;
        // An ageing page starts a 50 ms background renewal; a write lands during it.
        cache
            .get(&key(), counting(&calls, Duration::from_millis(50)))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(10)).await;
        cache.invalidate(&key().product);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The renewal's result predates the write: the next request reads again.
        assert_eq!(
            cache
                .get(&key(), counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "3"
        );
        let mut other = key();
        other.product = ProductId::new("go").unwrap();
        cache
            .get(&other, counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        cache.invalidate(&key().product);
        assert_eq!(
            cache
                .get(&other, counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "4",
            "other products keep their pages"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_bound_reads_every_time() {
        let cache = ListingCache::new(Duration::ZERO);
        let calls = Arc::new(AtomicU64::new(0));
        cache
            .get(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        cache
            .get(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn pages_differ_by_product_region_and_limit() {
        let cache = ListingCache::new(BOUND);
        let calls = Arc::new(AtomicU64::new(0));
        let mut other = key();
        other.limit = 20;
        cache
            .get(&key(), counting(&calls, Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(
            cache
                .get(&other, counting(&calls, Duration::ZERO))
                .await
                .unwrap(),
            "2"
        );
    }
}
