//! Reserving seats for joins, committed in groups.
//!
//! Every join of a game takes its seat through `reserve_seat.lua`, a Redis round trip and the
//! costliest script on the join path. The joins of one product waiting at the same moment go
//! to Redis as one script call, through that product's lane (`lanes`): the script handles
//! them one after the other, in arrival order, exactly as separate calls would (a join
//! sees the seats the joins before it in its group took). A join whose game hash cannot be
//! read fails alone. A group holds joins under the same reservation TTL and limits only.
//!
//! With `wait_replicas`, a join is not grouped: its script call and the `WAIT` after it share
//! a pooled connection (see [`Store::reserve_seat_limited`](super::Store)).

use std::time::Duration;

use super::Store;
use super::connection::RedisConn;
use super::error::{StoreResult, unexpected};
use super::lanes::GroupedCall;
use super::outcomes::SeatGrant;
use super::scripts::SCRIPTS;
use super::seats::decode_seat_reply;
use crate::ids::{GameId, PlayerId};
use crate::keys::ProductKeys;
use crate::limits::PlayerLimits;

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
        if replies.len() != group.len() {
            let flat: Vec<String> = replies.into_iter().flatten().collect();
            return Err(unexpected("reserve_seat", &flat));
        }
        Ok(replies
            .iter()
            .zip(group)
            .map(|(reply, join)| match reply.first().map(String::as_str) {
                Some("failed") => Err(unexpected("reserve_seat", reply)),
                _ => decode_seat_reply("reserve_seat", &keys.game(&join.game), reply),
            })
            .collect())
    }
}
