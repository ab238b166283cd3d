//! Create admissions, committed in groups.
//!
//! Every create is admitted under the per-player limits (`admit_create.lua`) before any game
//! server is called, so the admission is a Redis round trip on every create's path. The
//! admissions of one product that wait at the same moment go to Redis as one script call,
//! through that product's lane (`lanes`): the script decides them one after the other, in
//! arrival order, exactly as separate calls would. A group holds admissions under the same
//! limits only (only tests mix them).

use std::time::Duration;

use super::connection::RedisConn;
use super::error::{StoreResult, unexpected};
use super::lanes::GroupedCall;
use super::scripts::SCRIPTS;
use crate::ids::{GameId, PlayerId};
use crate::keys::ProductKeys;
use crate::limits::{LimitRefusal, PlayerLimits};

/// How long a player's creates hash (with its live games) outlives its last admission: a game
/// live longer than this is no longer counted against its creator's quota (a lenient failure).
const PLAYER_CREATES_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// One create waiting for its admission.
pub(super) struct Admission {
    pub(super) player: PlayerId,
    pub(super) game: GameId,
    pub(super) now_ms: u64,
    pub(super) limits: PlayerLimits,
    pub(super) grace: Duration,
}

/// Create admissions, sent in groups (`admit_create.lua`).
pub(super) struct AdmitCreates;

impl GroupedCall for AdmitCreates {
    type Request = Admission;
    type Answer = Option<LimitRefusal>;
    const SCRIPT: &'static str = "admit_create";

    fn groups_with(first: &Admission, next: &Admission) -> bool {
        next.limits == first.limits && next.grace == first.grace
    }

    /// One script call deciding every admission of `group`, in order.
    async fn call(
        mut conn: RedisConn,
        keys: ProductKeys,
        group: &[Admission],
    ) -> StoreResult<Vec<StoreResult<Option<LimitRefusal>>>> {
        let (limits, grace) = (&group[0].limits, group[0].grace);
        let mut invocation = SCRIPTS.admit_create.prepare_invoke();
        invocation
            .arg(limits.max_live_games)
            .arg(limits.creates_per_sec)
            .arg(limits.create_burst)
            .arg(keys.game_prefix())
            .arg(grace.as_millis() as u64)
            .arg(PLAYER_CREATES_TTL.as_millis() as u64);
        for waiting in group {
            invocation
                .key(keys.player_creates(&waiting.player))
                .arg(waiting.game.as_str())
                .arg(waiting.now_ms);
        }
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        if reply.len() != group.len() * 2 {
            return Err(unexpected("admit_create", &reply));
        }
        Ok(reply
            .chunks(2)
            .map(|answer| match (answer[0].as_str(), answer[1].as_str()) {
                ("admitted", _) => Ok(None),
                (kind, millis) => LimitRefusal::from_reply(kind, millis)
                    .map(Some)
                    .ok_or_else(|| unexpected("admit_create", &reply)),
            })
            .collect())
    }
}
