//! Reading many games at once: the open-games listing with its stable cursor, set sizes, the
//! console's windows of a set, and the curator's scan for stale games. Each read costs what
//! it returns, never the size of a set.

use std::collections::HashMap;

use redis::AsyncCommands;

use super::error::StoreResult;
use super::outcomes::{OpenCursor, OpenPage, Window, WindowRow};
use super::{Store, decode};
use crate::ids::ProductId;
use crate::model::{Game, GameSet};

impl Store {
    /// A page of open games of `product` (creator joined, a seat free), oldest first, after
    /// `cursor`, optionally only in `region`. The cursor stays correct while games come and
    /// go: it is a position in creation order, not an offset.
    pub async fn open_games(
        &self,
        product: &ProductId,
        region: Option<&str>,
        limit: usize,
        cursor: Option<&OpenCursor>,
        now_ms: u64,
    ) -> StoreResult<OpenPage> {
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let mut games = Vec::with_capacity(limit);
        let (mut min_score, mut after_id) = match cursor {
            Some(c) => (c.created_at_ms, Some(c.game_id.as_str().to_string())),
            None => (0, None),
        };
        let batch = (limit * 2).clamp(16, 1000);
        // Each batch starts at the last score seen; members with that exact score and an id
        // not after the last one returned are skipped (ZRANGE orders equal scores by member).
        loop {
            let raw: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(keys.open())
                .arg(min_score)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            let exhausted = raw.len() < batch;
            let candidates: Vec<(String, u64)> = raw
                .into_iter()
                .map(|(id, score)| (id, score as u64))
                .filter(|(id, score)| {
                    *score > min_score
                        || after_id.as_deref().is_none_or(|after| id.as_str() > after)
                })
                .collect();
            if candidates.is_empty() {
                return Ok(OpenPage {
                    games,
                    next_cursor: None,
                });
            }
            let mut pipe = redis::pipe();
            for (id, _) in &candidates {
                pipe.cmd("HGETALL").arg(keys.game_by_raw_id(id));
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for ((id, score), hash) in candidates.iter().zip(hashes) {
                min_score = *score;
                after_id = Some(id.clone());
                let key = keys.game_by_raw_id(id);
                let Some(game) = decode(&key, &hash)? else {
                    continue;
                };
                if !game.is_open(now_ms)
                    || region.is_some_and(|r| game.region.as_deref() != Some(r))
                {
                    continue;
                }
                if games.len() == limit {
                    // One more open game exists: the page ends at the previous one.
                    let last: &Game = games.last().expect("limit is at least 1");
                    return Ok(OpenPage {
                        next_cursor: Some(OpenCursor {
                            created_at_ms: last.created_at_ms,
                            game_id: last.id.clone(),
                        }),
                        games,
                    });
                }
                games.push(game);
            }
            if exhausted {
                return Ok(OpenPage {
                    games,
                    next_cursor: None,
                });
            }
        }
    }

    /// Members per set of `product`: `[pending, lobby, active]`.
    pub async fn set_counts(&self, product: &ProductId) -> StoreResult<[u64; 3]> {
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let (pending, lobby, active): (u64, u64, u64) = redis::pipe()
            .zcard(keys.pending())
            .zcard(keys.lobby())
            .zcard(keys.active())
            .query_async(&mut conn)
            .await?;
        Ok([pending, lobby, active])
    }

    /// Rows `offset .. offset + count` of a set, stalest first (or newest first when
    /// `newest_first`), with the games' hashes, plus the set's size: one round trip for the
    /// window and count, one for the hashes. Cost depends on `count`, not the set's size.
    pub async fn set_window(
        &self,
        product: &ProductId,
        set: GameSet,
        offset: u64,
        count: u64,
        newest_first: bool,
    ) -> StoreResult<Window> {
        let keys = self.product_keys(product);
        let set_key = keys.set(set);
        let mut conn = self.conn.clone();
        if count == 0 {
            let total: u64 = conn.zcard(&set_key).await?;
            return Ok(Window {
                total,
                rows: Vec::new(),
            });
        }
        let mut range = redis::cmd("ZRANGE");
        range.arg(&set_key).arg(offset).arg(offset + count - 1);
        if newest_first {
            range.arg("REV");
        }
        range.arg("WITHSCORES");
        let (members, total): (Vec<(String, f64)>, u64) = redis::pipe()
            .add_command(range)
            .zcard(&set_key)
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for (id, _) in &members {
            pipe.cmd("HGETALL").arg(keys.game_by_raw_id(id));
        }
        let hashes: Vec<HashMap<String, String>> = if members.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        let rows = members
            .into_iter()
            .zip(hashes)
            .map(|((id, score), hash)| {
                let key = keys.game_by_raw_id(&id);
                let game = match decode(&key, &hash) {
                    Ok(game) => game,
                    Err(err) => {
                        tracing::warn!(%err, "undecodable game hash in a set window");
                        None
                    }
                };
                WindowRow {
                    id,
                    score: score as u64,
                    game,
                }
            })
            .collect();
        Ok(Window { total, rows })
    }

    /// Up to `limit` ids of `set`'s games whose score (creation time for pending, last
    /// activity otherwise) is at or before `cutoff_ms`, stalest first, skipping the first
    /// `offset` of them: the curator's scan. Ids are returned as stored (not re-validated).
    pub async fn stale_games(
        &self,
        product: &ProductId,
        set: GameSet,
        cutoff_ms: u64,
        offset: usize,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let key = self.product_keys(product).set(set);
        let mut conn = self.conn.clone();
        Ok(redis::cmd("ZRANGE")
            .arg(&key)
            .arg("-inf")
            .arg(cutoff_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(offset)
            .arg(limit)
            .query_async(&mut conn)
            .await?)
    }
}
