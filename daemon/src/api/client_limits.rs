//! Per-client-address limit of failing requests (contract section 5.7): a token bucket per
//! client address that every failing answer (4xx but `409` and `429`: a 401 storm, junk
//! paths, malformed bodies) takes a token from; an address whose bucket is empty is answered
//! `429 rate_limited` with `Retry-After` before its request is handled, while other
//! addresses are served. Successful requests cost nothing. A request is checked when it
//! arrives and charged when it is answered, so requests in flight together may overrun the
//! burst by their number once.
//!
//! Checking costs a successful request one atomic load: the limiter keeps the time until
//! which some bucket may still be empty, and only while that time lies ahead does a check
//! look the client up (behind the LRU's mutex).
//!
//! The buckets live in this process's memory, not in Redis: they guard the process itself
//! (a storm costs it nothing once refused here, without a Redis round trip per junk request),
//! and a bounded LRU (`limits.max_tracked_clients`) keeps their memory fixed whatever the
//! number of addresses. Behind a load balancer each instance limits on its own share.
//!
//! The client address is the connection's peer, unless the peer is one of
//! `http.trusted_proxies`: then it is the rightmost address of `X-Forwarded-For` (or of
//! `Forwarded: for=`) that is not itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use lru::LruCache;
use mm_config::{HttpSettings, LimitsSettings};

use super::error::{ApiError, ProblemCode};
use crate::telemetry;

/// One address's bucket: tokens left when last seen.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The limiter shared by every request of a listener.
#[derive(Debug, Clone)]
pub struct ClientLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Tokens per second.
    rate: f64,
    burst: f64,
    trusted: Vec<IpNet>,
    buckets: Mutex<LruCache<IpAddr, Bucket>>,
    /// The limiter's clock origin.
    epoch: Instant,
    /// Nanoseconds after `epoch` until which some bucket may hold less than one token
    /// (the latest refill deadline of a charge that left a bucket below one token); a
    /// check before it looks the client up, a check after it knows no client is refused.
    refusals_until_nanos: AtomicU64,
}

impl ClientLimiter {
    /// The limiter of `limits` and `http.trusted_proxies`; `None` when the limit is off.
    pub fn new(limits: &LimitsSettings, http: &HttpSettings) -> Option<ClientLimiter> {
        if limits.client_failures_per_minute == 0 {
            return None;
        }
        let trusted = http
            .trusted_proxies
            .iter()
            .filter_map(|raw| {
                raw.parse::<IpNet>()
                    .ok()
                    .or_else(|| raw.parse::<IpAddr>().ok().map(IpNet::from))
            })
            .collect();
        let capacity = NonZeroUsize::new(limits.max_tracked_clients).unwrap_or(NonZeroUsize::MIN);
        Some(ClientLimiter {
            inner: Arc::new(Inner {
                rate: f64::from(limits.client_failures_per_minute) / 60.0,
                burst: f64::from(limits.client_failure_burst.max(1)),
                trusted,
                buckets: Mutex::new(LruCache::new(capacity)),
                epoch: Instant::now(),
                refusals_until_nanos: AtomicU64::new(0),
            }),
        })
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        self.inner.trusted.iter().any(|net| net.contains(&address))
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded = forwarded_chain(headers);
        forwarded
            .into_iter()
            .rev()
            .find(|address| !self.is_trusted(*address))
            .unwrap_or(peer)
    }

    /// Seconds until `client` has a token again, if its bucket is empty now.
    fn refused_for(&self, client: IpAddr, now: Instant) -> Option<u64> {
        if self.nanos_since_epoch(now) >= self.inner.refusals_until_nanos.load(Ordering::Relaxed) {
            return None;
        }
        let mut buckets = self.inner.buckets.lock().expect("client buckets lock");
        let bucket = buckets.get(&client)?;
        let tokens = self.refill(*bucket, now);
        (tokens < 1.0).then(|| ((1.0 - tokens) / self.inner.rate).ceil() as u64)
    }

    /// Takes a token from `client`'s bucket (a failing answer).
    fn charge(&self, client: IpAddr, now: Instant) {
        let mut buckets = self.inner.buckets.lock().expect("client buckets lock");
        let tokens = buckets
            .get(&client)
            .map_or(self.inner.burst, |bucket| self.refill(*bucket, now));
        let left = (tokens - 1.0).max(0.0);
        buckets.put(
            client,
            Bucket {
                tokens: left,
                at: now,
            },
        );
        if left < 1.0 {
            // Under the lock, so deadlines of concurrent charges are not lost.
            let refilled = now + std::time::Duration::from_secs_f64((1.0 - left) / self.inner.rate);
            self.inner
                .refusals_until_nanos
                .fetch_max(self.nanos_since_epoch(refilled), Ordering::Relaxed);
        }
    }

    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.inner.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn refill(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.inner.rate).min(self.inner.burst)
    }
}

/// The addresses of `X-Forwarded-For` (every header, in order), or else of `Forwarded`'s
/// `for=` parameters; unparseable entries are skipped.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let xff: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| parse_address(entry.trim()))
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split([',', ';']))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            name.eq_ignore_ascii_case("for")
                .then(|| parse_address(value.trim().trim_matches('"')))
                .flatten()
        })
        .collect()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5`, `[::1]`, `[::1]:5` or `::1`.
fn parse_address(raw: &str) -> Option<IpAddr> {
    if let Ok(address) = raw.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = raw.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    raw.strip_prefix('[')?.split(']').next()?.parse().ok()
}

/// Whether an answer counts against its client: a 4xx but `409` (a lost race for a seat is
/// normal play) and `429` (already refused).
fn is_failure(status: StatusCode) -> bool {
    status.is_client_error()
        && status != StatusCode::CONFLICT
        && status != StatusCode::TOO_MANY_REQUESTS
}

/// The middleware: refuses a client address with an empty bucket, and charges failures.
/// Requests without a known peer (a router driven without a socket) are not limited.
pub async fn limit_failing_clients(
    State(limiter): State<ClientLimiter>,
    request: Request,
    next: Next,
) -> Response {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
    else {
        return next.run(request).await;
    };
    let client = limiter.client_address(peer, request.headers());
    if let Some(secs) = limiter.refused_for(client, Instant::now()) {
        metrics::counter!(telemetry::CLIENT_REFUSALS_TOTAL).increment(1);
        return ApiError::rate_limited_for(
            ProblemCode::RateLimited,
            "too many failing requests from this client address; slow down".into(),
            secs,
        )
        .into_response();
    }
    let response = next.run(request).await;
    if is_failure(response.status()) {
        limiter.charge(client, Instant::now());
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(trusted: &[&str]) -> ClientLimiter {
        let limits = LimitsSettings {
            client_failures_per_minute: 60,
            client_failure_burst: 2,
            max_tracked_clients: 2,
            ..LimitsSettings::default()
        };
        let http = HttpSettings {
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
            ..HttpSettings::default()
        };
        ClientLimiter::new(&limits, &http).unwrap()
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let limiter = limiter(&["10.0.0.0/8"]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.9".parse().unwrap(),
        );
        assert_eq!(
            limiter.client_address(ip("10.1.1.1"), &headers),
            ip("1.2.3.4")
        );
        assert_eq!(
            limiter.client_address(ip("5.5.5.5"), &headers),
            ip("5.5.5.5")
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            limiter.client_address(ip("10.1.1.1"), &headers),
            ip("2001:db8::1")
        );
        assert_eq!(
            limiter.client_address(ip("10.1.1.1"), &HeaderMap::new()),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn failures_empty_the_bucket_which_refills_and_memory_is_bounded() {
        let limiter = limiter(&[]);
        let start = Instant::now();
        let bad = ip("6.6.6.6");
        assert_eq!(limiter.refused_for(bad, start), None);
        limiter.charge(bad, start);
        assert_eq!(limiter.refused_for(bad, start), None);
        limiter.charge(bad, start);
        assert_eq!(limiter.refused_for(bad, start), Some(1));
        assert_eq!(
            limiter.refused_for(bad, start + Duration::from_millis(1001)),
            None,
            "one token a second"
        );
        let later = start + Duration::from_secs(3);
        assert!(
            limiter.nanos_since_epoch(later)
                >= limiter.inner.refusals_until_nanos.load(Ordering::Relaxed),
            "once every bucket has a token again, a check needs no lookup"
        );
        assert_eq!(limiter.refused_for(bad, later), None);
        limiter.charge(ip("1.1.1.1"), start);
        limiter.charge(ip("2.2.2.2"), start);
        assert_eq!(
            limiter.inner.buckets.lock().unwrap().len(),
            2,
            "the least recently seen address is dropped"
        );
        assert!(is_failure(StatusCode::UNAUTHORIZED));
        assert!(!is_failure(StatusCode::CONFLICT));
        assert!(!is_failure(StatusCode::OK));
    }
}
