//! One game's record: create it, read it, reserve and release seats, and end it outside the
//! event stream (mark it as ending, clear the mark, remove it). Each change is one atomic script (see `lua/`).

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;

use super::admission::Admission;
use super::codec::game_to_fields;
use super::error::{StoreResult, reply_state, unexpected};
use super::joins::SeatRequest;
use super::outcomes::{MarkOutcome, RemoveGuard, RemoveOutcome, ReserveOutcome, SeatGrant};
use super::scripts::SCRIPTS;
use super::tickets::TicketToKeep;
use super::{Store, decode};
use crate::gameserver::JoinTicket;
use crate::ids::{GameId, PlayerId, ProductId};
use crate::keys::{ProductKeys, RESERVATION_SEPARATOR};
use crate::limits::{LimitRefusal, PlayerLimits};
use crate::model::Game;

impl Store {
    /// Records a new game in `created`/pending. Returns `false` if the id is already taken.
    pub async fn create_game(&self, game: &Game) -> StoreResult<bool> {
        self.create_game_with_ticket(game, None).await
    }

    /// Records a new game in `created`/pending, keeping the creator's ticket (see
    /// [`Store::keep_ticket`]). Returns `false` if the id is already taken.
    ///
    /// Resent safely: a second run finding the very record the first wrote answers `true`.
    /// With `wait_replicas`, the write and its `WAIT` share a pooled connection.
    pub async fn create_game_with_ticket(
        &self,
        game: &Game,
        creator_ticket: Option<&JoinTicket>,
    ) -> StoreResult<bool> {
        let keys = self.product_keys(&game.product);
        let mut invocation = SCRIPTS.create_game.prepare_invoke();
        invocation
            .key(keys.game(&game.id))
            .key(keys.pending())
            .arg(game.id.as_str())
            .arg(game.created_at_ms);
        for (field, value) in game_to_fields(game) {
            invocation.arg(field).arg(value);
        }
        if let Some(ticket) = creator_ticket {
            let encoded =
                serde_json::to_string(ticket).map_err(|_| unexpected("create_game", &[]))?;
            invocation
                .arg(format!("ticket:{}", game.creator_id.as_str()))
                .arg(encoded);
        }
        let mut conn = self.write_connection().await?;
        let created: i64 = invocation.invoke_async(&mut conn).await?;
        if created == 1 {
            self.wait_for_replicas(&mut conn, &keys.pending()).await?;
        }
        Ok(created == 1)
    }

    /// One game by id (its product comes from the id's prefix); `None` if there is none.
    pub async fn game(&self, id: &GameId) -> StoreResult<Option<Game>> {
        match id.product() {
            Some(product) => self.game_of(&product, id).await,
            None => Ok(None),
        }
    }

    /// One game of a product; `None` if there is none.
    pub async fn game_of(&self, product: &ProductId, id: &GameId) -> StoreResult<Option<Game>> {
        let key = self.product_keys(product).game(id);
        let mut conn = self.conn.clone();
        let hash: HashMap<String, String> = conn.hgetall(&key).await?;
        decode(&key, &hash)
    }

    /// The keys a game-changing script declares, in the order the scripts expect.
    pub(super) fn game_script_keys<'a>(
        invocation: &mut redis::ScriptInvocation<'a>,
        keys: &ProductKeys,
        game: &GameId,
    ) {
        invocation.key(keys.game(game));
        Self::game_index_keys(invocation, keys);
        invocation.key(keys.feed());
    }

    /// The product's sets and indexes that a script changing games keeps in step with them,
    /// in the order the scripts declare them: pending, lobby, active, open, reservations,
    /// ending.
    pub(super) fn game_index_keys<'a>(
        invocation: &mut redis::ScriptInvocation<'a>,
        keys: &ProductKeys,
    ) {
        invocation
            .key(keys.pending())
            .key(keys.lobby())
            .key(keys.active())
            .key(keys.open())
            .key(keys.reservations())
            .key(keys.ending());
    }

    /// Reserves a seat for `player` (the join API), held for `ttl`, with no per-player limit.
    pub async fn reserve_seat(
        &self,
        game: &GameId,
        player: &PlayerId,
        now_ms: u64,
        ttl: Duration,
    ) -> StoreResult<ReserveOutcome> {
        Ok(self
            .reserve_seat_limited(game, player, now_ms, ttl, &PlayerLimits::NONE)
            .await?
            .outcome)
    }

    /// Reserves a seat for `player` (the join API), held for `ttl`, under the player's join
    /// rate and reservation quota. A player who already holds a seat gets the ticket kept for
    /// them (if any) and the reservation is not renewed. The joins of one product waiting at
    /// the same moment are sent as one script call (`joins`), each decided as if alone.
    ///
    /// Resent safely: a second run finds the seat the first reserved and answers
    /// [`ReserveOutcome::AlreadyHeld`], which the join flow completes the same way (a
    /// second join token is taken). With `wait_replicas`, the join is sent alone, and the
    /// write and its `WAIT` share a pooled connection.
    pub async fn reserve_seat_limited(
        &self,
        game: &GameId,
        player: &PlayerId,
        now_ms: u64,
        ttl: Duration,
        limits: &PlayerLimits,
    ) -> StoreResult<SeatGrant> {
        let Some(product) = game.product() else {
            return Ok(SeatGrant::without_game(ReserveOutcome::NotFound));
        };
        let keys = self.product_keys(&product);
        let request = SeatRequest {
            game: game.clone(),
            player: player.clone(),
            now_ms,
            ttl,
            limits: *limits,
            feed_cap: self.options.feed_max_len.max(1),
        };
        self.send_seat_request(&self.joins, keys, &product, request, |grant| {
            matches!(grant.outcome, ReserveOutcome::Reserved { .. })
        })
        .await
    }

    /// Keeps the ticket a game server issued to `player` for `game` in the game hash
    /// (`ticket:<player>`), so a re-join gets it back without another game-server call. Kept
    /// only while the game is live and the player holds a seat in it. Returns whether it was.
    /// The tickets of one product waiting at the same moment are sent as one script call
    /// (`tickets`). Resent safely: it sets one field to the same value.
    pub async fn keep_ticket(
        &self,
        game: &GameId,
        player: &PlayerId,
        ticket: &JoinTicket,
    ) -> StoreResult<bool> {
        let Some(product) = game.product() else {
            return Ok(false);
        };
        let ticket = serde_json::to_string(ticket).map_err(|_| unexpected("keep_ticket", &[]))?;
        let keep = TicketToKeep {
            game: game.clone(),
            player: player.clone(),
            ticket,
        };
        self.tickets
            .send(&self.conn, self.product_keys(&product), &product, keep)
            .await
    }

    /// Admits a create of `game` by `player` under the per-player limits, before any game
    /// server is called: takes a token from the player's create bucket and a slot among the
    /// player's live games of `product`, atomically. A slot whose game is never recorded is
    /// given back with [`Store::forget_create`] (or pruned after `grace`). Admissions of one
    /// product that wait at the same time go to Redis as one script call (`admission`).
    ///
    /// Resent safely: a game already admitted is admitted again (see `admit_create.lua`).
    pub async fn admit_create(
        &self,
        product: &ProductId,
        player: &PlayerId,
        game: &GameId,
        now_ms: u64,
        limits: &PlayerLimits,
        grace: Duration,
    ) -> StoreResult<Option<LimitRefusal>> {
        if limits.max_live_games == 0 && limits.creates_per_sec <= 0.0 {
            return Ok(None);
        }
        let admission = Admission {
            player: player.clone(),
            game: game.clone(),
            now_ms,
            limits: *limits,
            grace,
        };
        self.admissions
            .send(&self.conn, self.product_keys(product), product, admission)
            .await
    }

    /// Gives back the live-game slot [`Store::admit_create`] took for `game`, whose create
    /// did not record it. Resent safely: deleting a field twice deletes it once.
    pub async fn forget_create(
        &self,
        product: &ProductId,
        player: &PlayerId,
        game: &GameId,
    ) -> StoreResult<()> {
        let keys = self.product_keys(product);
        let mut invocation = SCRIPTS.forget_create.prepare_invoke();
        invocation
            .key(keys.player_creates(player))
            .arg(game.as_str());
        let mut conn = self.conn.clone();
        let _: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Releases `player`'s reservation on `game` if it expired by `now_ms`, or at once when
    /// `force` (the game server refused the join). Returns whether a seat was freed.
    /// Resent safely: a second run finds no reservation and answers `false`; the seat is
    /// free either way (callers only log or count the answer).
    pub async fn release_seat(
        &self,
        game: &GameId,
        player: &PlayerId,
        now_ms: u64,
        force: bool,
    ) -> StoreResult<bool> {
        let Some(product) = game.product() else {
            return Ok(false);
        };
        self.release_seat_of(&product, game.as_str(), player.as_str(), now_ms, force)
            .await
    }

    async fn release_seat_of(
        &self,
        product: &ProductId,
        game: &str,
        player: &str,
        now_ms: u64,
        force: bool,
    ) -> StoreResult<bool> {
        let keys = self.product_keys(product);
        let mut invocation = SCRIPTS.release_seat.prepare_invoke();
        invocation.key(keys.game_by_raw_id(game));
        Self::game_index_keys(&mut invocation, &keys);
        invocation
            .key(keys.feed())
            .arg(game)
            .arg(player)
            .arg(now_ms)
            .arg(if force { "1" } else { "0" })
            .arg(self.options.feed_max_len.max(1));
        let mut conn = self.conn.clone();
        let released: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(released == 1)
    }

    /// Releases up to `limit` reservations of `product` that expired by `now_ms`. Returns how
    /// many seats were freed.
    pub async fn release_expired_reservations(
        &self,
        product: &ProductId,
        now_ms: u64,
        limit: usize,
    ) -> StoreResult<usize> {
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let expired: Vec<String> = redis::cmd("ZRANGE")
            .arg(keys.reservations())
            .arg("-inf")
            .arg(now_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        let releases = expired.iter().filter_map(|member| {
            let (game, player) = member.split_once(RESERVATION_SEPARATOR)?;
            Some(self.release_seat_of(product, game, player, now_ms, false))
        });
        let results = futures::future::join_all(releases).await;
        let mut freed = 0;
        for result in results {
            freed += usize::from(result?);
        }
        Ok(freed)
    }

    /// Ends a game outside the event stream (curated, cancelled, force-deleted) if `guard`
    /// holds: out of every set, the hash kept as a tombstone whose `end_reason` is `reason`.
    ///
    /// Resent: a second run finds the tombstone the first left and answers
    /// [`RemoveOutcome::AlreadyEnded`] — the record is gone either way, which is what the
    /// curator and force-delete need; the cancel flow, finding its own `cancelled` tombstone,
    /// answers a cancel whose first reply was lost as the success it was.
    pub async fn remove_game(
        &self,
        game: &GameId,
        reason: &str,
        guard: RemoveGuard,
        now_ms: u64,
    ) -> StoreResult<RemoveOutcome> {
        let Some(product) = game.product() else {
            return Ok(RemoveOutcome::NotFound);
        };
        let keys = self.product_keys(&product);
        let (guard_name, guard_set, cutoff) = guard_args(guard);
        let mut invocation = SCRIPTS.remove_game.prepare_invoke();
        Self::game_script_keys(&mut invocation, &keys, game);
        invocation
            .arg(reason)
            .arg(now_ms)
            .arg(self.options.tombstone_ttl.as_secs().max(1))
            .arg(guard_name)
            .arg(guard_set)
            .arg(cutoff)
            .arg(game.as_str())
            .arg(self.options.feed_max_len.max(1));
        let mut conn = self.conn.clone();
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        match reply.first().map(String::as_str) {
            Some("removed") => Ok(RemoveOutcome::Removed {
                previous: reply_state("remove_game", &reply)?,
            }),
            Some("refused") => Ok(RemoveOutcome::Refused {
                state: reply_state("remove_game", &reply)?,
            }),
            Some("not_found") => Ok(RemoveOutcome::NotFound),
            Some("ended") => Ok(RemoveOutcome::AlreadyEnded),
            _ => Err(unexpected("remove_game", &reply)),
        }
    }

    /// Marks `game` as ending if `guard` holds (the end step's first step, taken before its
    /// game server is called): out of the open index, joins refused, in `P:{product}:ending`
    /// scored by `now_ms`, the mark carrying `reason`. `now_ms` is the mark's token for
    /// [`Store::unmark_ending`]. Resent safely: the same mark (same time, same reason) is
    /// set again and the same outcome answered.
    pub async fn mark_ending(
        &self,
        game: &GameId,
        reason: &str,
        guard: RemoveGuard,
        now_ms: u64,
    ) -> StoreResult<MarkOutcome> {
        let Some(product) = game.product() else {
            return Ok(MarkOutcome::NotFound);
        };
        let keys = self.product_keys(&product);
        let (guard_name, guard_set, cutoff) = guard_args(guard);
        let mut invocation = SCRIPTS.mark_ending.prepare_invoke();
        Self::game_script_keys(&mut invocation, &keys, game);
        invocation
            .arg(reason)
            .arg(now_ms)
            .arg(guard_name)
            .arg(guard_set)
            .arg(cutoff)
            .arg(self.options.feed_max_len.max(1));
        let mut conn = self.conn.clone();
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        match reply.first().map(String::as_str) {
            Some("marked") => Ok(MarkOutcome::Marked {
                state: reply_state("mark_ending", &reply)?,
            }),
            Some("refused") => Ok(MarkOutcome::Refused {
                state: reply_state("mark_ending", &reply)?,
            }),
            Some("not_found") => Ok(MarkOutcome::NotFound),
            Some("ended") => Ok(MarkOutcome::AlreadyEnded),
            _ => Err(unexpected("mark_ending", &reply)),
        }
    }

    /// Clears the ending mark `game` got at `since_ms` (its game server did not confirm the
    /// delete): it is listed again if it qualifies. A newer mark stays. Returns whether the
    /// mark was cleared. Resent safely: a second run finds no mark and answers `false`
    /// (the mark is cleared either way; callers only log the answer).
    pub async fn unmark_ending(
        &self,
        game: &GameId,
        since_ms: u64,
        now_ms: u64,
    ) -> StoreResult<bool> {
        let Some(product) = game.product() else {
            return Ok(false);
        };
        let keys = self.product_keys(&product);
        let mut invocation = SCRIPTS.unmark_ending.prepare_invoke();
        Self::game_script_keys(&mut invocation, &keys, game);
        invocation
            .arg(since_ms)
            .arg(now_ms)
            .arg(self.options.feed_max_len.max(1));
        let mut conn = self.conn.clone();
        let cleared: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(cleared == 1)
    }

    /// Up to `limit` games of `product` marked as ending at or before `marked_before_ms`,
    /// oldest mark first, with the mark's time: end steps that did not finish (the curator
    /// finishes them).
    pub async fn stuck_endings(
        &self,
        product: &ProductId,
        marked_before_ms: u64,
        limit: usize,
    ) -> StoreResult<Vec<(String, u64)>> {
        let keys = self.product_keys(product);
        let mut conn = self.conn.clone();
        let rows: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(keys.ending())
            .arg("-inf")
            .arg(marked_before_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, score)| (id, score as u64))
            .collect())
    }
}

/// A guard as the scripts take it: name, set, cutoff.
fn guard_args(guard: RemoveGuard) -> (&'static str, &'static str, u64) {
    match guard {
        RemoveGuard::Any => ("any", "", 0),
        RemoveGuard::Cancellable => ("cancellable", "", 0),
        RemoveGuard::StaleIn { set, cutoff_ms } => ("stale", set.as_str(), cutoff_ms),
    }
}
