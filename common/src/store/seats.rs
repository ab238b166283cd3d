//! Taking seats beyond the plain join: rejoining a game one is in, and quick join (a seat in
//! the best matching open game of a product). Each is one atomic script sharing the join's
//! rules, reservation quota and join bucket (`lua/seat_prelude.lua`, contract section 5.4).

use std::time::Duration;

use super::Store;
use super::codec;
use super::error::{StoreError, StoreResult, unexpected};
use super::outcomes::{ReserveOutcome, SeatGrant};
use super::scripts::SCRIPTS;
use crate::gameserver::JoinTicket;
use crate::ids::{GameId, PlayerId, ProductId};
use crate::labels::Labels;
use crate::limits::{LimitRefusal, PlayerLimits};
use crate::model::{EntryId, Game, JoinRefusal};

/// What a rejoin attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejoinOutcome {
    /// The game is in progress and the player is in its roster (or its creator, or holds a
    /// reservation): they may have a fresh ticket; nothing changed. The game as it is.
    InProgress(Box<Game>),
    /// Before the start, the join rules' answer: a seat the player holds (with the ticket kept
    /// for them, if any), a new reservation (a player who left the lobby), a refusal
    /// ([`JoinRefusal::NotInGame`] for a stranger, [`JoinRefusal::GameNotOpen`] for an ended
    /// game), a per-player limit, or no such game.
    Seat(SeatGrant),
}

/// What a quick join should match: the game's region (when given) and every label pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuickJoinFilter {
    /// Only games on servers of this region.
    pub region: Option<String>,
    /// Only games carrying every one of these labels (equal values).
    pub labels: Labels,
    /// Games not to pick: those whose game server failed an earlier attempt of the same
    /// request. An attempt with any is a retry and takes no token from the join bucket.
    pub exclude: Vec<GameId>,
}

/// What a quick join attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuickJoinOutcome {
    /// A new seat in `game`, held until the given time (Unix ms).
    Reserved {
        /// The game the seat is in.
        game: GameId,
        /// Expiry of the reservation.
        expires_at_ms: u64,
        /// The game as the script left it.
        record: Box<Game>,
        /// The change feed entry the script wrote, when the seat changed the game's listing.
        feed_entry: Option<EntryId>,
    },
    /// The player already holds a seat in the matching `game`: nothing changed.
    Held {
        /// The game.
        game: GameId,
        /// The ticket kept for the player there, if one was kept.
        kept_ticket: Option<JoinTicket>,
        /// The game as it is.
        record: Box<Game>,
    },
    /// No open game among those scanned matches.
    NoMatch,
    /// A per-player limit refused it (nothing changed but the join bucket).
    Limited(LimitRefusal),
}

/// Decodes the game record a seat-taking script appends to its reply (`with_record` in
/// `lua/seat_prelude.lua`): field name, value pairs of the game hash at `key`, and the id of
/// the change feed entry the script wrote, if any (`:feed_entry`).
pub(super) fn record_in_reply(
    op: &'static str,
    key: &str,
    pairs: &[String],
    reply: &[String],
) -> StoreResult<(Box<Game>, Option<EntryId>)> {
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(unexpected(op, reply));
    }
    // A reply holds about 20 pairs: a scan finds a field sooner than a map could be built.
    let lookup = |name: &str| {
        pairs
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str())
    };
    let feed_entry = match lookup(":feed_entry") {
        Some(raw) => Some(raw.parse().map_err(|_| unexpected(op, reply))?),
        None => None,
    };
    let game = codec::game_from_fields(lookup).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })?;
    Ok((Box::new(game), feed_entry))
}

/// Decodes the reply of a script that takes a seat (`take_seat` in `lua/seat_prelude.lua`)
/// on the game at `key`: `{reserved, expiry, record...}`, `{held, ticket, record...}`,
/// `{refused, code}`, `{not_found}`, or a limit.
pub(super) fn decode_seat_reply(
    op: &'static str,
    key: &str,
    reply: &[String],
) -> StoreResult<SeatGrant> {
    let grant = |outcome| SeatGrant {
        outcome,
        kept_ticket: None,
        game: None,
        feed_entry: None,
    };
    let refused = |why| Ok(grant(ReserveOutcome::Refused(why)));
    let record = || record_in_reply(op, key, reply.get(2..).unwrap_or_default(), reply);
    match (
        reply.first().map(String::as_str),
        reply.get(1).map(String::as_str),
    ) {
        (Some("reserved"), Some(expiry)) => {
            let (game, feed_entry) = record()?;
            Ok(SeatGrant {
                outcome: ReserveOutcome::Reserved {
                    expires_at_ms: expiry.parse().map_err(|_| unexpected(op, reply))?,
                },
                kept_ticket: None,
                game: Some(game),
                feed_entry,
            })
        }
        (Some("held"), ticket) => {
            let (game, feed_entry) = record()?;
            Ok(SeatGrant {
                outcome: ReserveOutcome::AlreadyHeld,
                kept_ticket: decode_ticket(ticket),
                game: Some(game),
                feed_entry,
            })
        }
        (Some("not_found"), _) => Ok(grant(ReserveOutcome::NotFound)),
        (Some("refused"), Some("creator_not_joined")) => refused(JoinRefusal::CreatorNotJoined),
        (Some("refused"), Some("game_full")) => refused(JoinRefusal::GameFull),
        (Some("refused"), Some("game_not_open")) => refused(JoinRefusal::GameNotOpen),
        (Some("refused"), Some("not_in_game")) => refused(JoinRefusal::NotInGame),
        (Some(kind), Some(millis)) => LimitRefusal::from_reply(kind, millis)
            .map(|refusal| grant(ReserveOutcome::Limited(refusal)))
            .ok_or_else(|| unexpected(op, reply)),
        _ => Err(unexpected(op, reply)),
    }
}

/// A kept ticket as the scripts answer it: JSON, or empty when none was kept.
fn decode_ticket(raw: Option<&str>) -> Option<JoinTicket> {
    raw.filter(|raw| !raw.is_empty())
        .and_then(|raw| serde_json::from_str(raw).ok())
}

impl Store {
    /// Lets `player` back into `game` (the rejoin API), under the player's join rate and
    /// reservation quota: in progress, a member of the game (creator, roster, reservation) is
    /// let back as they are; before the start, the join rules decide (a player who left the
    /// lobby needs a free seat again, reserved for `ttl`).
    ///
    /// Resent safely (connection.rs): a second run finds the player in the game or holding
    /// the seat the first run reserved, and answers as a second rejoin would (the seat held,
    /// a second join token taken). With `wait_replicas`, the write and its `WAIT` share a
    /// pooled connection.
    pub async fn rejoin(
        &self,
        game: &GameId,
        player: &PlayerId,
        now_ms: u64,
        ttl: Duration,
        limits: &PlayerLimits,
    ) -> StoreResult<RejoinOutcome> {
        let Some(product) = game.product() else {
            return Ok(RejoinOutcome::Seat(SeatGrant {
                outcome: ReserveOutcome::NotFound,
                kept_ticket: None,
                game: None,
                feed_entry: None,
            }));
        };
        let keys = self.product_keys(&product);
        let mut invocation = SCRIPTS.rejoin.prepare_invoke();
        Self::game_script_keys(&mut invocation, &keys, game);
        invocation
            .key(keys.player_reservations(player))
            .key(keys.player_join_bucket(player))
            .arg(player.as_str())
            .arg(now_ms)
            .arg(ttl.as_millis() as u64)
            .arg(limits.max_reservations)
            .arg(limits.joins_per_sec)
            .arg(limits.join_burst)
            .arg(keys.game_prefix())
            .arg(self.options.feed_max_len.max(1));
        let mut conn = self.write_connection().await?;
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        let key = keys.game(game);
        if reply.first().map(String::as_str) == Some("back") {
            let pairs = reply.get(2..).unwrap_or_default();
            let (record, _) = record_in_reply("rejoin", &key, pairs, &reply)?;
            return Ok(RejoinOutcome::InProgress(record));
        }
        if reply.first().map(String::as_str) == Some("reserved") {
            self.wait_for_replicas(&mut conn, &keys.pending()).await?;
        }
        decode_seat_reply("rejoin", &key, &reply).map(RejoinOutcome::Seat)
    }

    /// Quick join: reserves a seat for `player`, held for `ttl`, in the first of `picks` (the
    /// caller's choice, best first, e.g. from a view of the open games) whose record matches
    /// `filter` and takes the player; when none does, in the fullest open game of `product`
    /// matching `filter` among the `scan` oldest (the oldest among equally full ones). Under
    /// the player's join rate and reservation quota. A player who already holds a seat in a
    /// matching game gets that game back, unchanged.
    ///
    /// Resent safely (connection.rs): a second run finds the seat the first reserved and
    /// answers [`QuickJoinOutcome::Held`], as a second quick join would (a second join
    /// token taken). With `wait_replicas`, the write and its `WAIT` share a pooled connection.
    #[allow(clippy::too_many_arguments)]
    pub async fn quick_join(
        &self,
        product: &ProductId,
        player: &PlayerId,
        filter: &QuickJoinFilter,
        picks: &[GameId],
        scan: u32,
        now_ms: u64,
        ttl: Duration,
        limits: &PlayerLimits,
    ) -> StoreResult<QuickJoinOutcome> {
        let keys = self.product_keys(product);
        let labels = filter.labels.to_field();
        let mut invocation = SCRIPTS.quick_join.prepare_invoke();
        invocation
            .key(keys.pending())
            .key(keys.lobby())
            .key(keys.active())
            .key(keys.open())
            .key(keys.reservations())
            .key(keys.ending())
            .key(keys.player_reservations(player))
            .key(keys.player_join_bucket(player))
            .key(keys.feed())
            .arg(player.as_str())
            .arg(now_ms)
            .arg(ttl.as_millis() as u64)
            .arg(limits.max_reservations)
            .arg(limits.joins_per_sec)
            .arg(limits.join_burst)
            .arg(keys.game_prefix())
            .arg(scan.max(1))
            .arg(filter.region.as_deref().unwrap_or(""))
            .arg(labels)
            .arg(self.options.feed_max_len.max(1))
            .arg(picks.len());
        for game in picks {
            invocation.arg(game.as_str());
        }
        for game in &filter.exclude {
            invocation.arg(game.as_str());
        }
        let mut conn = self.write_connection().await?;
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        let game = |raw: &str| GameId::new(raw).map_err(|_| unexpected("quick_join", &reply));
        let record = |id: &GameId| {
            let pairs = reply.get(3..).unwrap_or_default();
            record_in_reply("quick_join", &keys.game(id), pairs, &reply)
        };
        match (
            reply.first().map(String::as_str),
            reply.get(1).map(String::as_str),
            reply.get(2).map(String::as_str),
        ) {
            (Some("reserved"), Some(id), Some(expiry)) => {
                self.wait_for_replicas(&mut conn, &keys.pending()).await?;
                let game = game(id)?;
                let (record, feed_entry) = record(&game)?;
                Ok(QuickJoinOutcome::Reserved {
                    expires_at_ms: expiry
                        .parse()
                        .map_err(|_| unexpected("quick_join", &reply))?,
                    record,
                    feed_entry,
                    game,
                })
            }
            (Some("held"), Some(id), ticket) => {
                let game = game(id)?;
                Ok(QuickJoinOutcome::Held {
                    kept_ticket: decode_ticket(ticket),
                    record: record(&game)?.0,
                    game,
                })
            }
            (Some("none"), _, _) => Ok(QuickJoinOutcome::NoMatch),
            (Some(kind), Some(millis), None) => LimitRefusal::from_reply(kind, millis)
                .map(QuickJoinOutcome::Limited)
                .ok_or_else(|| unexpected("quick_join", &reply)),
            _ => Err(unexpected("quick_join", &reply)),
        }
    }
}
