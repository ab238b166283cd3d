//! Periodically refreshed gauges: consumer lag and pending per product (the group's figures)
//! and games per set.

use mm_common::ProductId;
use mm_common::model::GameSet;
use mm_common::store::{Store, StoreError};

/// Sets `mm_consumer_lag{product}`, `mm_consumer_pending{product}` and
/// `mm_games{product,set}` for every product. Failures are logged at debug level: a gauge is
/// simply not updated while Redis is unavailable.
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
    // A stream (or group) that does not exist yet has neither lag nor pending entries.
    let info = store.group_info(product).await?.unwrap_or_default();
    metrics::gauge!("mm_consumer_pending", "product" => label.clone()).set(info.pending as f64);
    if let Some(lag) = info.lag {
        metrics::gauge!("mm_consumer_lag", "product" => label).set(lag as f64);
    }
    Ok(())
}
