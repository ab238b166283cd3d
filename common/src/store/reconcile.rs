//! The reads behind reconciliation (contract section 6.5): which live games each set holds
//! and on which server, and whether the games a server lists have a live record. Read-only;
//! the pass ends lost games through [`Store::remove_game`] and its guard.
//!
//! A server's live games are found by scanning the product's three sets in bounded batches
//! (`ZSCAN … COUNT`) and reading each member's `server_id`, not through a per-server index:
//! an index would have to be kept by every game script (and the model they are checked
//! against) and backfilled for records written before it existed, while the scan costs one
//! pass over the live games every `curation.reconcile_interval_secs` — a minute by default.

use super::Store;
use super::error::{StoreResult, unexpected};
use crate::ids::ProductId;
use crate::model::GameSet;

/// One member of a set as the reconciliation scan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGame {
    /// The member (a game id, not re-validated).
    pub id: String,
    /// The set it is in.
    pub set: GameSet,
    /// Its score there (ms): a removal guarded with [`RemoveGuard::StaleIn`] at this score
    /// refuses once the game moved or was refreshed.
    ///
    /// [`RemoveGuard::StaleIn`]: super::RemoveGuard::StaleIn
    pub score: u64,
    /// The hash's `server_id`; `None` when the hash is missing or has none.
    pub server_id: Option<String>,
}

/// A page of [`Store::live_games_scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveGamesPage {
    /// The cursor of the next page; 0 when the scan is complete.
    pub next_cursor: u64,
    /// The members of this page (a member may appear again on a later page).
    pub games: Vec<LiveGame>,
}

/// What the record holds for a game id a server listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordPresence {
    /// A live record (any state but `ended`), hosted by this server.
    Live {
        /// The record's `server_id`.
        server_id: String,
    },
    /// A tombstone: the game ended.
    Ended,
    /// No hash (never recorded, or its tombstone expired).
    Absent,
}

impl Store {
    /// One page of `set`'s members of `product` with their scores and servers: `ZSCAN` from
    /// `cursor` (0 to start) asking for about `count` members, then their `server_id`s. Every
    /// member present for the whole scan is returned at least once.
    pub async fn live_games_scan(
        &self,
        product: &ProductId,
        set: GameSet,
        cursor: u64,
        count: usize,
    ) -> StoreResult<LiveGamesPage> {
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let (next_cursor, flat): (u64, Vec<String>) = redis::cmd("ZSCAN")
            .arg(keys.set(set))
            .arg(cursor)
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut conn)
            .await?;
        if flat.len() % 2 != 0 {
            return Err(unexpected("live_games_scan", &flat));
        }
        let members: Vec<(String, u64)> = flat
            .chunks(2)
            .map(|pair| {
                let score = pair[1].parse::<f64>().map(|s| s as u64);
                score.map(|score| (pair[0].clone(), score))
            })
            .collect::<Result<_, _>>()
            .map_err(|_| unexpected("live_games_scan", &flat))?;
        if members.is_empty() {
            return Ok(LiveGamesPage {
                next_cursor,
                games: Vec::new(),
            });
        }
        let mut pipe = redis::pipe();
        for (id, _) in &members {
            pipe.cmd("HGET")
                .arg(keys.game_by_raw_id(id))
                .arg("server_id");
        }
        let servers: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let games = members
            .into_iter()
            .zip(servers)
            .map(|((id, score), server_id)| LiveGame {
                id,
                set,
                score,
                server_id: server_id.filter(|s| !s.is_empty()),
            })
            .collect();
        Ok(LiveGamesPage { next_cursor, games })
    }

    /// What the record holds for each of `ids` (game ids of `product`, as a server listed
    /// them), in order: one pipelined round trip.
    pub async fn record_presence(
        &self,
        product: &ProductId,
        ids: &[String],
    ) -> StoreResult<Vec<RecordPresence>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(keys.game_by_raw_id(id))
                .arg("state")
                .arg("server_id");
        }
        let rows: Vec<(Option<String>, Option<String>)> = pipe.query_async(&mut conn).await?;
        Ok(rows
            .into_iter()
            .map(|(state, server)| match state.as_deref() {
                None => RecordPresence::Absent,
                Some("ended") => RecordPresence::Ended,
                Some(_) => RecordPresence::Live {
                    server_id: server.unwrap_or_default(),
                },
            })
            .collect())
    }
}
