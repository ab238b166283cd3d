//! The change feed of open games (contract 3.2, `P:{product}:feed`): what an API instance
//! needs to keep an in-memory view of every open game up to date.
//!
//! The game scripts append one entry whenever a game enters or leaves a product's open index,
//! or its players, reservations or ending mark change while it is listed, in the same atomic
//! call as the change (`prelude.lua`'s `save_game`). A view loads a product once
//! ([`Store::open_snapshot`]: the feed's position first, then every open game), then follows
//! the feed from that position ([`FeedReader`], a blocking `XREAD` on a connection of its
//! own) and checks after each read that nothing it has not read was trimmed and that the feed
//! did not go back or vanish ([`FeedState::continues`]); when either happened it loads the
//! product again. Entries carry a whole listing, so applying one twice, or applying entries
//! older than a snapshot on top of it, converges to the newest state.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::AsyncCommands;

use super::connection::RedisConn;
use super::error::{StoreError, StoreResult};
use super::reply::{RawEntry, XreadReply, xread};
use super::scripts::SCRIPTS;
use super::{Store, codec, decode};
use crate::ids::{PlayerId, ProductId};
use crate::model::{EntryId, Game, GameState, RosterEntry};

/// Where a product's feed stands (`XINFO STREAM`, read atomically by one script).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedState {
    /// Whether the feed exists.
    pub exists: bool,
    /// The id of the newest entry ever added (`0-0` when none).
    pub last_id: EntryId,
    /// The largest id ever deleted by `XDEL` (`0-0` when none; trims do not set it).
    pub max_deleted: EntryId,
    /// How many entries were ever added.
    pub entries_added: u64,
    /// How many entries it holds now.
    pub length: u64,
}

impl FeedState {
    /// Whether a reader that has read every entry up to `last_read` (and `read_count` entries
    /// in all, counting the snapshot's `entries_added`) can go on from there: false when an
    /// entry after it was trimmed or deleted ([`FeedState::has_gap`]), or when the feed went
    /// back or vanished after entries were read (Redis lost its data, or was replaced by an
    /// empty one).
    pub fn continues(&self, last_read: EntryId, read_count: u64, existed: bool) -> bool {
        let started = existed || read_count > 0 || last_read != EntryId::default();
        if !self.exists {
            return !started;
        }
        self.last_id >= last_read
            && self.entries_added >= read_count
            && !self.has_gap(last_read, read_count)
    }

    /// Whether an entry the reader has not read is gone: the feed holds fewer entries than
    /// were added after the reader's position (trims drop the oldest first, so while every
    /// unread entry is there, at least that many are held), or `XDEL` removed one after it.
    pub fn has_gap(&self, last_read: EntryId, read_count: u64) -> bool {
        let unread = self.entries_added.saturating_sub(read_count);
        self.length < unread || self.max_deleted > last_read
    }
}

/// One product's open games with the feed position they are current at.
#[derive(Debug)]
pub struct OpenSnapshot {
    /// The feed's state read before the games: every change after it is in the feed.
    pub feed: FeedState,
    /// Every game of the open index (decoded; hashes gone meanwhile are left out).
    pub games: Vec<Game>,
}

/// What one feed entry says.
#[derive(Debug, Clone)]
pub enum FeedChange {
    /// The game entered the open index, as it is listed now.
    Open(Box<Game>),
    /// A listed game's roster or reservations changed; it stays listed.
    Update(FeedUpdate),
    /// The game (its raw id) left the open index.
    Gone(String),
}

/// What changed of a game that stays listed (`op update`): absolute values, so applying it
/// twice changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedUpdate {
    /// The game's raw id.
    pub id: String,
    /// Its last activity as of this entry (Unix ms).
    pub updated_at_ms: u64,
    /// Its whole roster, when it changed.
    pub roster: Option<BTreeMap<PlayerId, RosterEntry>>,
    /// All its reservations, when they changed.
    pub reservations: Option<BTreeMap<PlayerId, u64>>,
}

impl FeedUpdate {
    /// `game` with this update applied.
    pub fn apply_to(&self, game: &mut Game) {
        game.updated_at_ms = self.updated_at_ms;
        if let Some(roster) = &self.roster {
            game.roster = roster.clone();
        }
        if let Some(reservations) = &self.reservations {
            game.reservations = reservations.clone();
        }
    }
}

/// One feed entry.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    /// Its stream id.
    pub id: EntryId,
    /// What changed.
    pub change: FeedChange,
}

/// An entry read from the feed by [`FeedReader::read_after_skipping`].
#[derive(Debug, Clone)]
pub enum ReadEntry {
    /// Decoded.
    Decoded(FeedEntry),
    /// Passed over without decoding (the reader's caller knew its game newer): only its id.
    Skipped(EntryId),
}

/// Games per pipelined `HGETALL` batch of a snapshot.
const SNAPSHOT_BATCH: usize = 500;

impl Store {
    /// Where `product`'s feed stands.
    pub async fn feed_state(&self, product: &ProductId) -> StoreResult<FeedState> {
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let (exists, last, deleted, added, length): (i64, String, String, i64, i64) = SCRIPTS
            .feed_state
            .key(keys.feed())
            .invoke_async(&mut conn)
            .await?;
        let parse = |raw: &str| {
            raw.parse::<EntryId>()
                .map_err(|_| StoreError::UnexpectedReply {
                    script: "feed_state",
                    reply: vec![raw.to_string()],
                })
        };
        Ok(FeedState {
            exists: exists == 1,
            last_id: parse(&last)?,
            max_deleted: parse(&deleted)?,
            entries_added: u64::try_from(added).unwrap_or(0),
            length: u64::try_from(length).unwrap_or(0),
        })
    }

    /// Every open game of `product`, after the feed's position: the view's full load. Costs
    /// one round trip per 500 games.
    pub async fn open_snapshot(&self, product: &ProductId) -> StoreResult<OpenSnapshot> {
        let feed = self.feed_state(product).await?;
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.zrange(keys.open(), 0, -1).await?;
        let mut games = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(SNAPSHOT_BATCH) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HGETALL").arg(keys.game_by_raw_id(id));
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
            for (id, hash) in chunk.iter().zip(hashes) {
                let key = keys.game_by_raw_id(id);
                match decode(&key, &hash) {
                    Ok(Some(game)) if game.state() == GameState::CreatorJoined => games.push(game),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(%err, "open index names an undecodable game"),
                }
            }
        }
        Ok(OpenSnapshot { feed, games })
    }

    /// A follower of `product`'s feed blocking up to `block` per read (connects on first
    /// read, on a connection of its own).
    pub fn feed_reader(&self, product: &ProductId, block: Duration) -> FeedReader {
        FeedReader {
            store: self.clone(),
            product: product.clone(),
            key: self.product_keys(product).feed(),
            conn: None,
            block,
        }
    }
}

/// Follows one product's feed with `XREAD … BLOCK` on a dedicated connection whose reply
/// timeout exceeds the block time, so it never holds up other commands. The connection is
/// dropped after an error and opened again by the next read.
pub struct FeedReader {
    store: Store,
    product: ProductId,
    key: String,
    conn: Option<RedisConn>,
    block: Duration,
}

impl std::fmt::Debug for FeedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedReader")
            .field("product", &self.product)
            .field("block", &self.block)
            .finish_non_exhaustive()
    }
}

impl FeedReader {
    /// Up to `count` entries after `after`, waiting up to the block time for the first; in
    /// feed order. An entry that does not decode is an error (the view then loads the
    /// product again).
    pub async fn read_after(
        &mut self,
        after: EntryId,
        count: usize,
    ) -> StoreResult<Vec<FeedEntry>> {
        self.read_raw(after, count)
            .await?
            .into_iter()
            .map(|raw| feed_entry(&self.product, &self.key, raw))
            .collect()
    }

    /// As [`FeedReader::read_after`], but an entry about a game for which `known(game id,
    /// entry id)` says the caller already holds that change or a newer one is passed over
    /// without decoding (a view's own writes, applied before the feed gives them).
    pub async fn read_after_skipping(
        &mut self,
        after: EntryId,
        count: usize,
        known: impl Fn(&str, EntryId) -> bool,
    ) -> StoreResult<Vec<ReadEntry>> {
        self.read_raw(after, count)
            .await?
            .into_iter()
            .map(|raw| read_entry(&self.product, &self.key, raw, &known))
            .collect()
    }

    /// Up to `count` raw entries after `after`, waiting up to the block time for the first.
    async fn read_raw(&mut self, after: EntryId, count: usize) -> StoreResult<Vec<RawEntry>> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self.store.blocking_connection(self.block).await?;
                self.conn.insert(conn)
            }
        };
        let cmd = xread(
            count,
            Some(self.block.as_millis() as u64),
            std::slice::from_ref(&self.key),
            &[after.to_string()],
        );
        let reply: XreadReply = match cmd.query_async(conn).await {
            Ok(reply) => reply,
            Err(err) => {
                self.conn = None;
                return Err(err.into());
            }
        };
        Ok(reply
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .collect())
    }
}

/// `raw` skipped when its id parses and `known` says its game is known at it, else decoded.
fn read_entry(
    product: &ProductId,
    key: &str,
    raw: RawEntry,
    known: &impl Fn(&str, EntryId) -> bool,
) -> StoreResult<ReadEntry> {
    let skipped = raw.0.parse::<EntryId>().ok().filter(|entry| {
        raw.1
            .iter()
            .find(|(field, _)| field == "id")
            .is_some_and(|(_, game)| known(game, *entry))
    });
    match skipped {
        Some(entry) => Ok(ReadEntry::Skipped(entry)),
        None => feed_entry(product, key, raw).map(ReadEntry::Decoded),
    }
}

fn feed_entry(product: &ProductId, key: &str, (id, fields): RawEntry) -> StoreResult<FeedEntry> {
    let corrupt = |field: &'static str, reason: &str| StoreError::Corrupt {
        key: format!("{key} entry {id}"),
        source: codec::CodecError {
            field,
            reason: reason.to_string(),
        },
    };
    let entry_id: EntryId = id.parse().map_err(|_| corrupt("id", "not a stream id"))?;
    let mut map: HashMap<String, String> = fields.into_iter().collect();
    let op = map.remove("op").unwrap_or_default();
    let change = match op.as_str() {
        "gone" => FeedChange::Gone(map.remove("id").ok_or_else(|| corrupt("id", "missing"))?),
        "update" => {
            let codec_error = |source| StoreError::Corrupt {
                key: format!("{key} entry {id}"),
                source,
            };
            FeedChange::Update(FeedUpdate {
                id: map.remove("id").ok_or_else(|| corrupt("id", "missing"))?,
                updated_at_ms: map
                    .get("updated_at")
                    .and_then(|raw| raw.parse().ok())
                    .ok_or_else(|| corrupt("updated_at", "missing or not a number"))?,
                roster: map
                    .get("roster")
                    .map(|raw| codec::roster_from_field(raw))
                    .transpose()
                    .map_err(codec_error)?,
                reservations: map
                    .get("reservations")
                    .map(|raw| codec::reservations_from_field(raw))
                    .transpose()
                    .map_err(codec_error)?,
            })
        }
        "open" => {
            map.insert("product".into(), product.to_string());
            map.insert("state".into(), GameState::CreatorJoined.as_str().into());
            let game = codec::game_from_hash(&map).map_err(|source| StoreError::Corrupt {
                key: format!("{key} entry {id}"),
                source,
            })?;
            FeedChange::Open(Box::new(game))
        }
        _ => return Err(corrupt("op", "not one of open, update, gone")),
    };
    Ok(FeedEntry {
        id: entry_id,
        change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(exists: bool, last: u64, deleted: u64, added: u64, length: u64) -> FeedState {
        FeedState {
            exists,
            last_id: EntryId::new(last, 0),
            max_deleted: EntryId::new(deleted, 0),
            entries_added: added,
            length,
        }
    }

    fn raw(id: &str, fields: &[(&str, &str)]) -> RawEntry {
        (
            id.to_string(),
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn an_entry_of_a_game_known_at_it_is_skipped_undecoded_and_the_others_decoded() {
        let product = ProductId::new("chess").unwrap();
        let known = |game: &str, entry: EntryId| game == "chess.a" && entry <= EntryId::new(7, 0);
        // Known at 5-0: skipped, though its reservations would not decode.
        let garbled = [
            ("op", "update"),
            ("id", "chess.a"),
            ("reservations", "not json"),
        ];
        let skipped = read_entry(&product, "feed", raw("5-0", &garbled), &known).unwrap();
        assert!(
            matches!(skipped, ReadEntry::Skipped(id) if id == EntryId::new(5, 0)),
            "{skipped:?}"
        );
        // Past what the caller holds, or another game: decoded (and refused when bad).
        let newer = read_entry(&product, "feed", raw("8-0", &garbled), &known);
        assert!(newer.is_err(), "{newer:?}");
        let other = [("op", "gone"), ("id", "chess.b")];
        let decoded = read_entry(&product, "feed", raw("5-0", &other), &known).unwrap();
        assert!(
            matches!(&decoded, ReadEntry::Decoded(FeedEntry { change: FeedChange::Gone(id), .. }) if id == "chess.b"),
            "{decoded:?}"
        );
    }

    #[test]
    fn an_update_entry_carries_only_what_changed_and_bad_ones_are_refused() {
        let product = ProductId::new("chess").unwrap();
        let entry = feed_entry(
            &product,
            "feed",
            raw(
                "5-0",
                &[
                    ("op", "update"),
                    ("id", "g1"),
                    ("updated_at", "42"),
                    ("roster", r#"{"ann":["3-0",1],"bob":["4-0",0]}"#),
                ],
            ),
        )
        .unwrap();
        let FeedChange::Update(update) = entry.change else {
            panic!("not an update: {entry:?}");
        };
        assert_eq!(update.id, "g1");
        assert_eq!(update.updated_at_ms, 42);
        let roster = update.roster.as_ref().unwrap();
        assert!(roster[&PlayerId::new("ann").unwrap()].present);
        assert!(!roster[&PlayerId::new("bob").unwrap()].present);
        assert_eq!(
            update.reservations, None,
            "unchanged reservations are absent"
        );

        let missing_time = feed_entry(
            &product,
            "feed",
            raw("6-0", &[("op", "update"), ("id", "g1")]),
        );
        assert!(format!("{}", missing_time.unwrap_err()).contains("updated_at"));
        let bad_roster = feed_entry(
            &product,
            "feed",
            raw(
                "7-0",
                &[
                    ("op", "update"),
                    ("id", "g1"),
                    ("updated_at", "1"),
                    ("roster", "["),
                ],
            ),
        );
        assert!(format!("{}", bad_roster.unwrap_err()).contains("roster"));
        let unknown = feed_entry(
            &product,
            "feed",
            raw("8-0", &[("op", "merge"), ("id", "g1")]),
        );
        assert!(format!("{}", unknown.unwrap_err()).contains("op"));
    }

    #[test]
    fn a_feed_continues_only_without_a_gap_or_a_step_back() {
        let read = EntryId::new(10, 0);
        // 5 read, 7 added: the 2 unread ones must still be held.
        assert!(state(true, 12, 0, 7, 7).continues(read, 5, true));
        assert!(
            state(true, 12, 0, 7, 2).continues(read, 5, true),
            "trimmed up to what was read"
        );
        assert!(
            !state(true, 12, 0, 7, 1).continues(read, 5, true),
            "an unread entry trimmed"
        );
        assert!(
            !state(true, 12, 11, 7, 7).continues(read, 5, true),
            "an unread entry deleted"
        );
        assert!(
            state(true, 12, 10, 7, 6).continues(read, 5, true),
            "a read entry deleted"
        );
        assert!(
            !state(true, 9, 0, 7, 7).continues(read, 5, true),
            "ids went back"
        );
        assert!(
            !state(true, 12, 0, 3, 3).continues(read, 5, true),
            "fewer entries ever added"
        );
        assert!(
            !state(false, 0, 0, 0, 0).continues(read, 5, true),
            "the feed vanished"
        );
        assert!(
            state(false, 0, 0, 0, 0).continues(EntryId::default(), 0, false),
            "a feed that never existed may stay absent"
        );
        assert!(!state(false, 0, 0, 0, 0).continues(EntryId::default(), 0, true));
    }
}
