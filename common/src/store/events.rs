//! Applying stream events: a batch of entries applied and acknowledged by one script call (the
//! consumer's hot path), and dead-lettering an entry with its acknowledgement.

use std::collections::HashMap;

use super::Store;
use super::error::{StoreResult, reply_state, unexpected};
use super::outcomes::ApplyResult;
use super::scripts::SCRIPTS;
use crate::ids::{GameId, PlayerId, ProductId};
use crate::keys::CONSUMER_GROUP;
use crate::model::Event;

impl Store {
    /// Applies one stream entry of `product`'s stream and acknowledges it for the consumer
    /// group, in one atomic step: [`Store::apply_entries`] with a batch of one.
    pub async fn apply_entry(
        &self,
        product: &ProductId,
        entry_id: &str,
        fields: &[(String, String)],
        now_ms: u64,
    ) -> StoreResult<ApplyResult> {
        let mut results = self
            .apply_entries(product, &[(entry_id, fields)], now_ms)
            .await?;
        results.pop().ok_or_else(|| unexpected("apply_events", &[]))
    }

    /// Applies a batch of `product`'s stream entries (`(id, fields)`) and acknowledges each
    /// for the consumer group, all in one atomic script; returns what became of each entry,
    /// in order. Every entry has exactly the effect it would have alone (a duplicate of an
    /// entry earlier in the batch is [`ApplyResult::Duplicate`]); one call is cheaper for
    /// Redis than one per entry. Entries that do not parse are dead-lettered, each atomically
    /// with its acknowledgement. `now_ms` caps event times.
    pub async fn apply_entries(
        &self,
        product: &ProductId,
        entries: &[(&str, &[(String, String)])],
        now_ms: u64,
    ) -> StoreResult<Vec<ApplyResult>> {
        let keys = self.product_keys(product);
        let mut results: Vec<Option<ApplyResult>> = vec![None; entries.len()];
        let mut invocation = SCRIPTS.apply_events.prepare_invoke();
        invocation
            .key(keys.pending())
            .key(keys.lobby())
            .key(keys.active())
            .key(keys.open())
            .key(keys.reservations())
            .key(keys.events())
            .key(keys.dead_letters())
            .key(keys.ending())
            .key(keys.feed())
            .arg(CONSUMER_GROUP)
            .arg(now_ms)
            .arg(self.options.tombstone_ttl.as_secs().max(1))
            .arg(self.options.dead_letter_max_len.max(1))
            .arg(self.options.feed_max_len.max(1));
        const FIXED_KEYS: usize = 9;
        let mut game_key_index: HashMap<GameId, usize> = HashMap::new();
        let mut in_script = Vec::with_capacity(entries.len());
        for (position, (entry_id, fields)) in entries.iter().enumerate() {
            let parsed = Event::from_fields(
                entry_id,
                fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let event = match parsed {
                Ok(event) => event,
                Err(err) => {
                    let reason = format!("{}: {err}", err.code());
                    let handled = self
                        .dead_letter(product, entry_id, fields, &reason, now_ms)
                        .await?;
                    results[position] = Some(if handled {
                        ApplyResult::DeadLettered(reason)
                    } else {
                        ApplyResult::Duplicate
                    });
                    continue;
                }
            };
            let next_index = FIXED_KEYS + game_key_index.len() + 1;
            let key_index = *game_key_index
                .entry(event.game_id.clone())
                .or_insert_with(|| {
                    invocation.key(keys.game(&event.game_id));
                    next_index
                });
            invocation
                .arg(*entry_id)
                .arg(event.kind.as_str())
                .arg(event.player_id.as_ref().map(PlayerId::as_str).unwrap_or(""))
                .arg(event.server_id.as_str())
                .arg(event.ts_ms)
                .arg(key_index);
            in_script.push(position);
        }
        if !in_script.is_empty() {
            let mut conn = self.conn.clone();
            let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
            if reply.len() != 2 * in_script.len() {
                return Err(unexpected("apply_events", &reply));
            }
            for (pair, position) in reply.chunks_exact(2).zip(in_script) {
                results[position] = Some(apply_result(pair)?);
            }
        }
        Ok(results
            .into_iter()
            .map(|result| result.expect("every entry was dead-lettered or sent to the script"))
            .collect())
    }

    /// Copies an entry to `P:{product}:events:dead` with `reason` and acknowledges it, in one
    /// atomic step. Returns `false` if the entry was no longer pending (already handled).
    pub async fn dead_letter(
        &self,
        product: &ProductId,
        entry_id: &str,
        fields: &[(String, String)],
        reason: &str,
        now_ms: u64,
    ) -> StoreResult<bool> {
        let keys = self.product_keys(product);
        let mut invocation = SCRIPTS.dead_letter.prepare_invoke();
        invocation
            .key(keys.events())
            .key(keys.dead_letters())
            .arg(CONSUMER_GROUP)
            .arg(entry_id)
            .arg(reason)
            .arg(now_ms)
            .arg(self.options.dead_letter_max_len.max(1));
        for (name, value) in fields {
            invocation.arg(name).arg(value);
        }
        let mut conn = self.conn.clone();
        let handled: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(handled == 1)
    }
}

/// One `{outcome, detail}` pair of the `apply_events` script.
fn apply_result(pair: &[String]) -> StoreResult<ApplyResult> {
    match pair[0].as_str() {
        "applied" => Ok(ApplyResult::Applied(reply_state("apply_events", pair)?)),
        "stale" => Ok(ApplyResult::Stale(reply_state("apply_events", pair)?)),
        "duplicate" => Ok(ApplyResult::Duplicate),
        "dead" => Ok(ApplyResult::DeadLettered(pair[1].clone())),
        _ => Err(unexpected("apply_events", pair)),
    }
}
