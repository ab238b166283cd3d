//! Operator reads for the console's inspection views: a product's newest dead letters. (The
//! audit stream's newest entries are [`Store::recent_audit`], next to the append.)
//!
//! Read-only, group-free: nothing here changes a stream or touches the consumer group.

use super::Store;
use super::error::StoreResult;
use super::tail::StreamEntry;
use crate::ids::ProductId;

impl Store {
    /// The newest `count` entries of `product`'s dead letters (`P:{product}:events:dead`,
    /// contract section 3.5), newest first; each keeps its fields in stream order (`reason`,
    /// `source_id`, `dead_at`, then the original entry's fields).
    pub async fn recent_dead_letters(
        &self,
        product: &ProductId,
        count: usize,
    ) -> StoreResult<Vec<StreamEntry>> {
        let raw: Vec<(String, Vec<(String, String)>)> = self
            .newest_entries(self.product_keys(product).dead_letters(), count)
            .await?;
        Ok(raw
            .into_iter()
            .map(|(id, fields)| StreamEntry { id, fields })
            .collect())
    }
}
