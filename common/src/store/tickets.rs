//! Keeping join tickets, committed in groups.
//!
//! Every join that reached the game server keeps the ticket it got (`keep_ticket.lua`,
//! `ticket:<player>` in the game hash), so a re-join gets it back without another game-server
//! call: a Redis round trip on every join's path. The tickets of one product waiting at the
//! same moment go to Redis as one script call, through that product's lane (`lanes`); the
//! script keeps each one as a separate call would, and one ticket it cannot keep (its game
//! hash unreadable) fails only that ticket.

use super::connection::RedisConn;
use super::error::{StoreResult, unexpected};
use super::lanes::GroupedCall;
use super::scripts::SCRIPTS;
use crate::ids::{GameId, PlayerId};
use crate::keys::ProductKeys;

/// One ticket to keep.
pub(super) struct TicketToKeep {
    pub(super) game: GameId,
    pub(super) player: PlayerId,
    /// The ticket, as JSON.
    pub(super) ticket: String,
}

/// Join tickets, kept in groups (`keep_ticket.lua`).
pub(super) struct KeepTickets;

impl GroupedCall for KeepTickets {
    type Request = TicketToKeep;
    /// Whether the ticket was kept.
    type Answer = bool;
    const SCRIPT: &'static str = "keep_ticket";

    /// One script call keeping every ticket of `group`, in order.
    async fn call(
        mut conn: RedisConn,
        keys: ProductKeys,
        group: &[TicketToKeep],
    ) -> StoreResult<Vec<StoreResult<bool>>> {
        let mut invocation = SCRIPTS.keep_ticket.prepare_invoke();
        invocation.key(keys.reservations());
        for keep in group {
            invocation
                .key(keys.game(&keep.game))
                .arg(keep.player.as_str())
                .arg(keep.ticket.as_str())
                .arg(keep.game.as_str());
        }
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        if reply.len() != group.len() {
            return Err(unexpected("keep_ticket", &reply));
        }
        Ok(reply
            .iter()
            .map(|answer| match answer.as_str() {
                "kept" => Ok(true),
                "not_kept" => Ok(false),
                _ => Err(unexpected("keep_ticket", std::slice::from_ref(answer))),
            })
            .collect())
    }
}
