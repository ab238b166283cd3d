//! Taking seats beyond the plain join: rejoining a game one is in, and quick join (a seat in
//! the best matching open game of a product). Each is one atomic script sharing the join's
//! rules, reservation quota and join bucket (`lua/seat_prelude.lua`, contract section 5.4).

use std::time::Duration;

use super::Store;
use super::codec;
use super::error::{StoreError, StoreResult, unexpected};
use super::joins::QuickJoinRequest;
use super::outcomes::{ReserveOutcome, SeatGrant};
use super::scripts::SCRIPTS;
use crate::gameserver::JoinTicket;
use crate::ids::{GameId, PlayerId, ProductId};
use crate::keys::ProductKeys;
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

/// The fields of the game record a seat-taking script answers, in the order it answers them
/// (`RECORD_FIELDS` of `lua/seat_prelude.lua`, which a test holds to this list).
pub(super) const RECORD_FIELDS: [&str; 19] = [
    "id",
    "product",
    "server_id",
    "region",
    "capacity",
    "creator_id",
    "socket_url",
    "settings",
    "labels",
    "created_at",
    "updated_at",
    "state",
    "roster",
    "full_mark",
    "last_leave",
    "reservations",
    "end_reason",
    "ending_since",
    "ending_reason",
];

/// The byte between the values of a record in a seat script's reply (ASCII unit separator).
const RECORD_SEPARATOR: char = '\u{1f}';

/// Decodes the game record a seat-taking script appends to its reply (`with_record` in
/// `lua/seat_prelude.lua`), `rest` being the reply after the outcome's own elements: one
/// string, the values of [`RECORD_FIELDS`] in order (empty when absent) and the id of the
/// change feed entry the script wrote (empty when none), joined by [`RECORD_SEPARATOR`]. A
/// value holding the separator makes the count wrong: an error, never a misread game.
pub(super) fn record_in_reply(
    op: &'static str,
    key: &str,
    rest: &[String],
    reply: &[String],
) -> StoreResult<(Box<Game>, Option<EntryId>)> {
    let [record] = rest else {
        return Err(unexpected(op, reply));
    };
    let values: Vec<&str> = record.split(RECORD_SEPARATOR).collect();
    let [fields @ .., feed_entry] = values.as_slice() else {
        return Err(unexpected(op, reply));
    };
    if fields.len() != RECORD_FIELDS.len() {
        return Err(unexpected(op, reply));
    }
    let lookup = |name: &str| {
        RECORD_FIELDS
            .iter()
            .position(|field| *field == name)
            .map(|at| fields[at])
            .filter(|value| !value.is_empty())
    };
    let feed_entry = match *feed_entry {
        "" => None,
        raw => Some(raw.parse().map_err(|_| unexpected(op, reply))?),
    };
    let game = codec::game_from_fields(lookup).map_err(|source| StoreError::Corrupt {
        key: key.to_string(),
        source,
    })?;
    Ok((Box::new(game), feed_entry))
}

/// Decodes the records in the replies of one seat script call. The call answers the game as
/// it left it, so the replies of one game carry the same record: it is decoded once and
/// cloned for the others (a lobby filling up gets most of a group).
#[derive(Default)]
pub(super) struct RecordDecoder {
    /// The last record string decoded, and what it decoded to.
    last: Option<(String, Box<Game>, Option<EntryId>)>,
}

impl RecordDecoder {
    /// [`record_in_reply`], answered from the last record when `rest` repeats it.
    pub(super) fn decode(
        &mut self,
        op: &'static str,
        key: &str,
        rest: &[String],
        reply: &[String],
    ) -> StoreResult<(Box<Game>, Option<EntryId>)> {
        if let ([record], Some((last, game, feed_entry))) = (rest, &self.last)
            && record == last
        {
            return Ok((game.clone(), *feed_entry));
        }
        let (game, feed_entry) = record_in_reply(op, key, rest, reply)?;
        if let [record] = rest {
            self.last = Some((record.clone(), game.clone(), feed_entry));
        }
        Ok((game, feed_entry))
    }
}

/// Decodes the reply of a script that takes a seat (`take_seat` in `lua/seat_prelude.lua`)
/// on the game at `key`: `{reserved, expiry, record...}`, `{held, ticket, record...}`,
/// `{refused, code}`, `{not_found}`, or a limit.
pub(super) fn decode_seat_reply(
    op: &'static str,
    key: &str,
    reply: &[String],
    records: &mut RecordDecoder,
) -> StoreResult<SeatGrant> {
    let grant = SeatGrant::without_game;
    let refused = |why| Ok(grant(ReserveOutcome::Refused(why)));
    let mut record = || records.decode(op, key, reply.get(2..).unwrap_or_default(), reply);
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
            return Ok(RejoinOutcome::Seat(SeatGrant::without_game(
                ReserveOutcome::NotFound,
            )));
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
            let rest = reply.get(2..).unwrap_or_default();
            let (record, _) = record_in_reply("rejoin", &key, rest, &reply)?;
            return Ok(RejoinOutcome::InProgress(record));
        }
        if reply.first().map(String::as_str) == Some("reserved") {
            self.wait_for_replicas(&mut conn, &keys.pending()).await?;
        }
        decode_seat_reply("rejoin", &key, &reply, &mut RecordDecoder::default())
            .map(RejoinOutcome::Seat)
    }

    /// Quick join: reserves a seat for `player`, held for `ttl`, in the first of `picks` (the
    /// caller's choice, best first, e.g. from a view of the open games) whose record matches
    /// `filter` and takes the player; when none does, in the fullest open game of `product`
    /// matching `filter` among the `scan` oldest (the oldest among equally full ones; a `scan`
    /// of 0 reads none, for a caller whose view holds no matching open game). Under
    /// the player's join rate and reservation quota. A player who already holds a seat in a
    /// matching game gets that game back, unchanged. The quick joins of one product waiting
    /// at the same moment are sent as one script call (`joins`), each decided as if alone.
    ///
    /// Resent safely (connection.rs): a second run finds the seat the first reserved and
    /// answers [`QuickJoinOutcome::Held`], as a second quick join would (a second join
    /// token taken). With `wait_replicas`, the quick join is sent alone, and the write and
    /// its `WAIT` share a pooled connection.
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
        let request = QuickJoinRequest {
            player: player.clone(),
            region: filter.region.clone().unwrap_or_default(),
            labels: filter.labels.to_field(),
            picks: picks.to_vec(),
            exclude: filter.exclude.clone(),
            now_ms,
            ttl,
            limits: *limits,
            scan,
            feed_cap: self.options.feed_max_len.max(1),
        };
        self.send_seat_request(&self.quick_joins, keys, product, request, |outcome| {
            matches!(outcome, QuickJoinOutcome::Reserved { .. })
        })
        .await
    }
}

/// Decodes one quick join's answer from `quick_join.lua`.
pub(super) fn decode_quick_join_reply(
    keys: &ProductKeys,
    reply: &[String],
    records: &mut RecordDecoder,
) -> StoreResult<QuickJoinOutcome> {
    let game = |raw: &str| GameId::new(raw).map_err(|_| unexpected("quick_join", reply));
    let mut record = |id: &GameId| {
        let rest = reply.get(3..).unwrap_or_default();
        records.decode("quick_join", &keys.game(id), rest, reply)
    };
    match (
        reply.first().map(String::as_str),
        reply.get(1).map(String::as_str),
        reply.get(2).map(String::as_str),
    ) {
        (Some("reserved"), Some(id), Some(expiry)) => {
            let game = game(id)?;
            let (record, feed_entry) = record(&game)?;
            Ok(QuickJoinOutcome::Reserved {
                expires_at_ms: expiry
                    .parse()
                    .map_err(|_| unexpected("quick_join", reply))?,
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
            .ok_or_else(|| unexpected("quick_join", reply)),
        _ => Err(unexpected("quick_join", reply)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ServerId;

    #[test]
    fn the_script_and_the_decoder_name_the_same_record_fields_in_the_same_order() {
        let prelude = include_str!("lua/seat_prelude.lua");
        let list = prelude
            .split_once("local RECORD_FIELDS = {")
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(list, _)| list)
            .expect("seat_prelude.lua declares RECORD_FIELDS");
        let in_lua: Vec<&str> = list
            .split(',')
            .map(|name| name.trim().trim_matches('\''))
            .collect();
        assert_eq!(in_lua, RECORD_FIELDS);
    }

    fn record_of(game: &Game, feed_entry: &str) -> String {
        let fields = codec::game_to_fields(game);
        let mut values: Vec<String> = RECORD_FIELDS
            .iter()
            .map(|name| {
                fields
                    .iter()
                    .find(|(field, _)| field == name)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default()
            })
            .collect();
        values.push(feed_entry.to_string());
        values.join(&RECORD_SEPARATOR.to_string())
    }

    #[test]
    fn a_record_decodes_whole_and_a_value_holding_the_separator_is_an_error() {
        let game = Game::new(
            GameId::new("chess.g1").unwrap(),
            ProductId::new("chess").unwrap(),
            ServerId::new("gs-1").unwrap(),
            Some("eu".into()),
            4,
            PlayerId::new("host").unwrap(),
            "ws://127.0.0.1:1/ws/chess.g1".into(),
            r#"{"mode":"blitz"}"#.into(),
            1_000,
        );
        let reply = |record: String| vec!["reserved".to_string(), "31000".into(), record];

        let answer = reply(record_of(&game, "1001-0"));
        let (decoded, feed_entry) = record_in_reply("test", "k", &answer[2..], &answer).unwrap();
        assert_eq!(*decoded, game);
        assert_eq!(feed_entry, Some("1001-0".parse().unwrap()));

        let answer = reply(record_of(&game, ""));
        let (_, feed_entry) = record_in_reply("test", "k", &answer[2..], &answer).unwrap();
        assert_eq!(feed_entry, None, "no feed entry written");

        let mut stray = game.clone();
        stray.socket_url = format!("ws://127.0.0.1:1/ws{RECORD_SEPARATOR}x");
        let answer = reply(record_of(&stray, ""));
        assert!(record_in_reply("test", "k", &answer[2..], &answer).is_err());
        assert!(
            record_in_reply("test", "k", &[], &answer).is_err(),
            "no record at all"
        );
    }

    #[test]
    fn the_record_decoder_answers_each_reply_as_its_own_decode_would() {
        let game = |id: &str, capacity: u32| {
            Game::new(
                GameId::new(id).unwrap(),
                ProductId::new("chess").unwrap(),
                ServerId::new("gs-1").unwrap(),
                None,
                capacity,
                PlayerId::new("host").unwrap(),
                "ws://127.0.0.1:1/ws".into(),
                "{}".into(),
                1_000,
            )
        };
        // One call's replies: the same game three times, another game, the first again with
        // another feed entry, and a reply without a record.
        let (first, second) = (game("chess.g1", 4), game("chess.g2", 2));
        let records = [
            Some(record_of(&first, "1001-0")),
            Some(record_of(&first, "1001-0")),
            Some(record_of(&first, "1001-0")),
            Some(record_of(&second, "")),
            Some(record_of(&first, "1002-0")),
            Some(record_of(&first, "1002-0")),
            None,
        ];
        let mut decoder = RecordDecoder::default();
        for record in records {
            let answer: Vec<String> = ["reserved".to_string(), "31000".into()]
                .into_iter()
                .chain(record)
                .collect();
            let alone = record_in_reply("test", "k", &answer[2..], &answer);
            let shared = decoder.decode("test", "k", &answer[2..], &answer);
            match (alone, shared) {
                (Ok(alone), Ok(shared)) => assert_eq!(alone, shared),
                (Err(_), Err(_)) => {}
                (alone, shared) => panic!("alone {alone:?}, in the call {shared:?}"),
            }
        }
    }
}
