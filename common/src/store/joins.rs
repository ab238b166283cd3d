//! Reserving seats for joins and quick joins, committed in groups.
//!
//! Every join of a game takes its seat through `reserve_seat.lua`, every quick join through
//! `quick_join.lua`: a Redis round trip and the costliest script on its path, whose fixed
//! cost (the call, its preludes) is a fifth of a lone join's. The joins of one product waiting
//! at the same moment go to Redis as one script call, through that product's lane (`lanes`),
//! and so do its quick joins: the script handles them one after the other, in arrival order,
//! exactly as separate calls would (each sees the seats the ones before it in its group
//! took). The script keeps each game it loads for the rest of the call and writes it once at
//! the end, so a popular lobby's group pays one load and one write; the game an answer
//! carries is the game as the call left it, one record string for all the answers of that
//! game, decoded here once per call ([`RecordDecoder`]). A join or quick join whose game hash
//! cannot be read fails alone. A group holds requests under the same reservation TTL and
//! limits (and, for quick joins, scan) only.
//!
//! With `wait_replicas`, nothing is grouped: each script call and the `WAIT` after it share a
//! pooled connection (see [`Store::reserve_seat_limited`](super::Store) and
//! [`Store::quick_join`](super::Store)).

use std::time::Duration;

use super::Store;
use super::connection::RedisConn;
use super::error::{StoreResult, unexpected};
use super::lanes::{GroupedCall, Lanes};
use super::outcomes::SeatGrant;
use super::scripts::SCRIPTS;
use super::seats::{QuickJoinOutcome, RecordDecoder, decode_quick_join_reply, decode_seat_reply};
use crate::ids::{GameId, PlayerId, ProductId};
use crate::keys::ProductKeys;
use crate::limits::PlayerLimits;

/// One answer per request of a grouped seat script's `replies`, each decoded by `decode`
/// with its position in the group; a `failed` reply (its game could not be read) is that
/// request's error alone.
fn each_reply<A>(
    script: &'static str,
    replies: Vec<Vec<String>>,
    group_len: usize,
    mut decode: impl FnMut(usize, &[String]) -> StoreResult<A>,
) -> StoreResult<Vec<StoreResult<A>>> {
    if replies.len() != group_len {
        let flat: Vec<String> = replies.into_iter().flatten().collect();
        return Err(unexpected(script, &flat));
    }
    Ok(replies
        .iter()
        .enumerate()
        .map(|(at, reply)| match reply.first().map(String::as_str) {
            Some("failed") => Err(unexpected(script, reply)),
            _ => decode(at, reply),
        })
        .collect())
}

impl Store {
    /// Sends a join or quick join `request` of `product`: through the product's lane of
    /// `lanes`, or, with `wait_replicas`, alone on a pooled connection followed by the `WAIT`
    /// when `wrote` says its answer changed the record.
    pub(super) async fn send_seat_request<C: GroupedCall>(
        &self,
        lanes: &Lanes<C>,
        keys: ProductKeys,
        product: &ProductId,
        request: C::Request,
        wrote: impl Fn(&C::Answer) -> bool,
    ) -> StoreResult<C::Answer> {
        if self.options.wait_replicas == 0 {
            return lanes.send(&self.conn, keys, product, request).await;
        }
        let mut conn = self.write_connection().await?;
        let answer = C::call(conn.clone(), keys.clone(), std::slice::from_ref(&request))
            .await?
            .pop()
            .unwrap_or_else(|| Err(unexpected(C::SCRIPT, &[])))?;
        if wrote(&answer) {
            self.wait_for_replicas(&mut conn, &keys.pending()).await?;
        }
        Ok(answer)
    }
}

/// One join waiting for its seat.
pub(super) struct SeatRequest {
    pub(super) game: GameId,
    pub(super) player: PlayerId,
    pub(super) now_ms: u64,
    pub(super) ttl: Duration,
    pub(super) limits: PlayerLimits,
    /// The cap of the product's change feed (`XADD … MAXLEN ~`).
    pub(super) feed_cap: u64,
}

/// Seat reservations for joins, sent in groups (`reserve_seat.lua`).
pub(super) struct ReserveSeats;

impl GroupedCall for ReserveSeats {
    type Request = SeatRequest;
    type Answer = SeatGrant;
    const SCRIPT: &'static str = "reserve_seat";

    fn groups_with(first: &SeatRequest, next: &SeatRequest) -> bool {
        next.ttl == first.ttl && next.limits == first.limits && next.feed_cap == first.feed_cap
    }

    /// One script call reserving a seat for every join of `group`, in order.
    async fn call(
        mut conn: RedisConn,
        keys: ProductKeys,
        group: &[SeatRequest],
    ) -> StoreResult<Vec<StoreResult<SeatGrant>>> {
        let (ttl, limits) = (group[0].ttl, &group[0].limits);
        let mut invocation = SCRIPTS.reserve_seat.prepare_invoke();
        Store::game_index_keys(&mut invocation, &keys);
        invocation
            .key(keys.feed())
            .arg(ttl.as_millis() as u64)
            .arg(limits.max_reservations)
            .arg(limits.joins_per_sec)
            .arg(limits.join_burst)
            .arg(keys.game_prefix())
            .arg(group[0].feed_cap);
        for join in group {
            invocation
                .key(keys.game(&join.game))
                .key(keys.player_reservations(&join.player))
                .key(keys.player_join_bucket(&join.player))
                .arg(join.player.as_str())
                .arg(join.now_ms);
        }
        let replies: Vec<Vec<String>> = invocation.invoke_async(&mut conn).await?;
        let mut records = RecordDecoder::default();
        each_reply(Self::SCRIPT, replies, group.len(), |at, reply| {
            decode_seat_reply(
                Self::SCRIPT,
                &keys.game(&group[at].game),
                reply,
                &mut records,
            )
        })
    }
}

/// One quick join waiting for its seat (the arguments of [`Store::quick_join`](super::Store)).
pub(super) struct QuickJoinRequest {
    pub(super) player: PlayerId,
    /// The wanted region, `""` for any.
    pub(super) region: String,
    /// The wanted labels as a JSON object, `""` for none.
    pub(super) labels: String,
    /// The view's picks, best first.
    pub(super) picks: Vec<GameId>,
    /// Games not to pick (an earlier attempt of the same request failed there).
    pub(super) exclude: Vec<GameId>,
    pub(super) now_ms: u64,
    pub(super) ttl: Duration,
    pub(super) limits: PlayerLimits,
    /// How many of the oldest open games are candidates when no pick takes the player (0:
    /// none, the caller's view holds no matching open game).
    pub(super) scan: u32,
    /// The cap of the product's change feed (`XADD … MAXLEN ~`).
    pub(super) feed_cap: u64,
}

/// Quick joins, sent in groups (`quick_join.lua`).
pub(super) struct QuickJoins;

impl GroupedCall for QuickJoins {
    type Request = QuickJoinRequest;
    type Answer = QuickJoinOutcome;
    const SCRIPT: &'static str = "quick_join";

    fn groups_with(first: &QuickJoinRequest, next: &QuickJoinRequest) -> bool {
        next.ttl == first.ttl && next.limits == first.limits && next.feed_cap == first.feed_cap
    }

    /// One script call handling every quick join of `group`, in order.
    async fn call(
        mut conn: RedisConn,
        keys: ProductKeys,
        group: &[QuickJoinRequest],
    ) -> StoreResult<Vec<StoreResult<QuickJoinOutcome>>> {
        let first = &group[0];
        let mut invocation = SCRIPTS.quick_join.prepare_invoke();
        Store::game_index_keys(&mut invocation, &keys);
        invocation
            .key(keys.feed())
            .arg(first.ttl.as_millis() as u64)
            .arg(first.limits.max_reservations)
            .arg(first.limits.joins_per_sec)
            .arg(first.limits.join_burst)
            .arg(keys.game_prefix())
            .arg(first.feed_cap);
        let spaced = |ids: &[GameId]| ids.iter().map(GameId::as_str).collect::<Vec<_>>().join(" ");
        for quick in group {
            invocation
                .key(keys.player_reservations(&quick.player))
                .key(keys.player_join_bucket(&quick.player))
                .arg(quick.player.as_str())
                .arg(quick.now_ms)
                .arg(quick.region.as_str())
                .arg(quick.labels.as_str())
                .arg(spaced(&quick.picks))
                .arg(spaced(&quick.exclude))
                .arg(quick.scan);
        }
        let replies: Vec<Vec<String>> = invocation.invoke_async(&mut conn).await?;
        let mut records = RecordDecoder::default();
        each_reply(Self::SCRIPT, replies, group.len(), |_, reply| {
            decode_quick_join_reply(&keys, reply, &mut records)
        })
    }
}
