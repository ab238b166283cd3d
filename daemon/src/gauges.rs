//! Periodically refreshed gauges of the shared state, kept by every `matchmakerd` whatever
//! its roles: consumer lag and pending entries per product (the group's figures), the age of
//! each product's applied watermark, and games per set; and how many commands this process's
//! store resent after transient Redis failures.
//!
//! They describe Redis, not this process, so any role can read them; startup spawns
//! [`run`] for every process, so a split deployment (`--roles api,curator` here, `--roles
//! worker` elsewhere) still exports lag and watermark age even while no worker runs —
//! exactly when they matter.

use std::time::Duration;

use mm_common::ProductId;
use mm_common::model::GameSet;
use mm_common::store::{GroupInfo, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::telemetry;

/// How often the gauges are refreshed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// Refreshes the gauges every `interval` for `P:products` ∪ `configured_products`, until
/// `shutdown`.
pub async fn run(
    store: Store,
    configured_products: Vec<ProductId>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        // Counted in the process, so it is current even while Redis is unreachable.
        metrics::counter!(telemetry::REDIS_RESENDS_TOTAL).absolute(store.resends());
        for counts in store.group_counts() {
            metrics::counter!(telemetry::STORE_GROUPED_CALLS_TOTAL, "script" => counts.script)
                .absolute(counts.calls);
            metrics::counter!(telemetry::STORE_GROUPED_REQUESTS_TOTAL, "script" => counts.script)
                .absolute(counts.requests);
        }
        let mut products = match store.products().await {
            Ok(products) => products,
            Err(err) => {
                tracing::debug!(%err, "could not read the product list for the gauges");
                Vec::new()
            }
        };
        for product in &configured_products {
            if !products.contains(product) {
                products.push(product.clone());
            }
        }
        // Read-only: a refresh slowed by an unreachable Redis is simply abandoned on shutdown.
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = refresh(&store, &products) => {}
        }
    }
}

/// Sets `mm_consumer_lag{product}`, `mm_consumer_pending{product}`,
/// `mm_event_watermark_age_seconds{product}` and `mm_games{product,set}` for every product.
/// Failures are logged at debug level: a gauge is simply not updated while Redis is
/// unavailable.
pub async fn refresh(store: &Store, products: &[ProductId]) {
    for product in products {
        if let Err(err) = refresh_product(store, product).await {
            tracing::debug!(%product, %err, "could not refresh gauges");
        }
    }
}

async fn refresh_product(store: &Store, product: &ProductId) -> Result<(), StoreError> {
    let label = product.to_string();
    let counts = store.set_counts(product).await?;
    for (set, count) in GameSet::ALL.into_iter().zip(counts) {
        metrics::gauge!("mm_games", "product" => label.clone(), "set" => set.as_str())
            .set(count as f64);
    }
    // Without the group (no worker ever ran), every entry of the stream is undelivered.
    let info = match store.group_info(product).await? {
        Some(info) => info,
        None => GroupInfo {
            lag: Some(store.stream_length(product).await?),
            ..GroupInfo::default()
        },
    };
    metrics::gauge!("mm_consumer_pending", "product" => label.clone()).set(info.pending as f64);
    if let Some(lag) = info.lag {
        metrics::gauge!("mm_consumer_lag", "product" => label.clone()).set(lag as f64);
    }
    let watermark = store.watermark(product).await?;
    metrics::gauge!("mm_event_watermark_age_seconds", "product" => label)
        .set(watermark.age().as_secs_f64());
    Ok(())
}
