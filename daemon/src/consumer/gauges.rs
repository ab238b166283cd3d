//! Periodically refreshed gauges: consumer lag and pending per product (`XINFO GROUPS`) and
//! games per set (`ZCARD`).

use mm_common::ProductId;
use mm_common::keys::CONSUMER_GROUP;
use mm_common::model::GameSet;
use mm_common::store::Store;
use redis::Value;

use super::reply;

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

async fn refresh_product(store: &Store, product: &ProductId) -> Result<(), GaugeError> {
    let label = product.to_string();
    let counts = store.set_counts(product).await?;
    for (set, count) in GameSet::ALL.into_iter().zip(counts) {
        metrics::gauge!("mm_games", "product" => label.clone(), "set" => set.as_str())
            .set(count as f64);
    }
    let mut conn = store.connection();
    let groups: Result<Value, redis::RedisError> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(store.keys().product(product).events())
        .query_async(&mut conn)
        .await;
    // A stream that does not exist yet has neither lag nor pending entries.
    let info = match groups {
        Ok(value) => reply::group_info(&value, CONSUMER_GROUP)?.unwrap_or_default(),
        Err(err) if err.code() == Some("ERR") => Default::default(),
        Err(err) => return Err(err.into()),
    };
    metrics::gauge!("mm_consumer_pending", "product" => label.clone()).set(info.pending as f64);
    if let Some(lag) = info.lag {
        metrics::gauge!("mm_consumer_lag", "product" => label).set(lag as f64);
    }
    Ok(())
}

/// Why a product's gauges could not be refreshed (only logged).
#[derive(Debug, thiserror::Error)]
enum GaugeError {
    #[error(transparent)]
    Store(#[from] mm_common::store::StoreError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Reply(#[from] reply::ReplyError),
}
