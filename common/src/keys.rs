//! The Redis key schema (contract section 3), in one place.
//!
//! Every per-product key carries the product as a hash tag (`P:{product}:…`), so all keys of
//! one product live in one Redis Cluster slot and the store's multi-key scripts are legal on a
//! cluster. Nothing outside this module formats a key name.

use crate::ids::{GameId, PlayerId, ProductId};
use crate::model::GameSet;

/// Name of the consumer group every `matchmakerd` reads product streams through.
pub const CONSUMER_GROUP: &str = "matchmakerd";

/// Key names under one configured prefix (`P` of the contract, default `mm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The configured prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key names of one product.
    pub fn product(&self, product: &ProductId) -> ProductKeys {
        ProductKeys {
            base: format!("{}:{{{}}}", self.prefix, product.as_str()),
        }
    }

    /// `P:products`: SET of every product the matchmaker knows.
    pub fn products(&self) -> String {
        format!("{}:products", self.prefix)
    }

    /// `P:servers`: HASH server id → JSON description (no secrets).
    pub fn servers(&self) -> String {
        format!("{}:servers", self.prefix)
    }

    /// `P:audit`: STREAM of operator actions.
    pub fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }

    /// `P:{instances}`: ZSET of live daemon instances scored by their last heartbeat (ms).
    /// Hash-tagged with its instance hashes, because a heartbeat writes both in one
    /// transaction (one slot on a cluster; it was `P:instances` before cluster mode).
    pub fn instances(&self) -> String {
        format!("{}:{{instances}}", self.prefix)
    }

    /// `P:{instances}:<name>`: HASH describing one daemon instance (roles, version, start
    /// time), in the slot of [`Keys::instances`] (it was `P:instance:<name>`).
    pub fn instance(&self, name: &str) -> String {
        format!("{}:{{instances}}:{name}", self.prefix)
    }

    /// `P:lease:<name>`: a lease (for example the curator's), holding its owner's name.
    pub fn lease(&self, name: &str) -> String {
        format!("{}:lease:{name}", self.prefix)
    }
}

/// The keys of one product, all in the product's hash-tag slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductKeys {
    base: String,
}

impl ProductKeys {
    /// `P:{product}:pending`: ZSET of games in `created`, scored by creation time (ms).
    pub fn pending(&self) -> String {
        format!("{}:pending", self.base)
    }

    /// `P:{product}:lobby`: ZSET of games in `creator_joined`/`all_players_joined`, by activity.
    pub fn lobby(&self) -> String {
        format!("{}:lobby", self.base)
    }

    /// `P:{product}:active`: ZSET of games in `in_progress`, by activity.
    pub fn active(&self) -> String {
        format!("{}:active", self.base)
    }

    /// The key of one of the three sets.
    pub fn set(&self, set: GameSet) -> String {
        match set {
            GameSet::Pending => self.pending(),
            GameSet::Lobby => self.lobby(),
            GameSet::Active => self.active(),
        }
    }

    /// `P:{product}:open`: ZSET of lobby games with a free seat, scored by creation time (ms).
    /// An index for listing with a stable cursor; maintained by the same scripts as the sets.
    pub fn open(&self) -> String {
        format!("{}:open", self.base)
    }

    /// `P:{product}:reservations`: ZSET of `game_id␟player_id` scored by expiry (ms).
    pub fn reservations(&self) -> String {
        format!("{}:reservations", self.base)
    }

    /// `P:{product}:ending`: ZSET of live games whose end step has begun (marked `ending`),
    /// scored by the mark's time (ms). The curator finishes marks older than a bound (an end
    /// step interrupted by a crash between the mark and the removal).
    pub fn ending(&self) -> String {
        format!("{}:ending", self.base)
    }

    /// `P:{product}:feed`: STREAM, the change feed of the product's listing: one entry per
    /// change of an open game, written by the game scripts in the same call as the change
    /// (`op open` with the listing's fields, `op update` with what changed, or `op gone`), capped by `lobby.feed_maxlen`.
    pub fn feed(&self) -> String {
        format!("{}:feed", self.base)
    }

    /// `P:{product}:game:<id>`: HASH, the game record.
    pub fn game(&self, game: &GameId) -> String {
        format!("{}:game:{}", self.base, game.as_str())
    }

    /// The game hash of a member read back from a set or index (not re-validated: a member
    /// that no longer parses as a game id still names the key to clean up).
    pub fn game_by_raw_id(&self, id: &str) -> String {
        format!("{}:game:{id}", self.base)
    }

    /// The `SCAN MATCH` pattern for every game hash of the product.
    pub fn game_pattern(&self) -> String {
        format!("{}:game:*", self.base)
    }

    /// `P:{product}:events`: STREAM written by game servers.
    pub fn events(&self) -> String {
        format!("{}:events", self.base)
    }

    /// `P:{product}:events:dead`: STREAM of events that could not be applied.
    pub fn dead_letters(&self) -> String {
        format!("{}:events:dead", self.base)
    }

    /// `P:{product}:game:`: the prefix of every game hash (the limit scripts read the games a
    /// player's sets name).
    pub fn game_prefix(&self) -> String {
        format!("{}:game:", self.base)
    }

    /// `P:{product}:player:<player>:creates`: HASH of the player's creates of the product:
    /// `tokens` and `at`, the `limits.creates_per_minute` token bucket, and one
    /// `game:<id>` field per live game (→ admitted at, ms), the
    /// `limits.max_live_games_per_player` quota. One key, so an admission is one read and
    /// one write.
    pub fn player_creates(&self, player: &PlayerId) -> String {
        format!("{}:player:{}:creates", self.base, player.as_str())
    }

    /// `P:{product}:player:<player>:reservations`: ZSET of the player's open seat
    /// reservations (game id → expiry, ms), the `limits.max_reservations_per_player` quota.
    pub fn player_reservations(&self, player: &PlayerId) -> String {
        format!("{}:player:{}:reservations", self.base, player.as_str())
    }

    /// `P:{product}:player:<player>:bucket:join`: HASH `tokens`, `at`, the player's join
    /// token bucket (`limits.joins_per_minute`; the create bucket lives in
    /// [`ProductKeys::player_creates`]).
    pub fn player_join_bucket(&self, player: &PlayerId) -> String {
        format!("{}:player:{}:bucket:join", self.base, player.as_str())
    }
}

/// Separator between game id and player id in a reservation member (ASCII unit separator,
/// which no id alphabet allows).
pub const RESERVATION_SEPARATOR: char = '\u{1f}';

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract() {
        let keys = Keys::new("mm");
        let product = ProductId::new("chess").unwrap();
        let pk = keys.product(&product);
        let game = GameId::new("g1").unwrap();
        assert_eq!(pk.pending(), "mm:{chess}:pending");
        assert_eq!(pk.lobby(), "mm:{chess}:lobby");
        assert_eq!(pk.active(), "mm:{chess}:active");
        assert_eq!(pk.ending(), "mm:{chess}:ending");
        assert_eq!(pk.game(&game), "mm:{chess}:game:g1");
        assert_eq!(pk.events(), "mm:{chess}:events");
        assert_eq!(pk.dead_letters(), "mm:{chess}:events:dead");
        let alice = PlayerId::new("alice").unwrap();
        assert_eq!(pk.player_creates(&alice), "mm:{chess}:player:alice:creates");
        assert_eq!(
            pk.player_reservations(&alice),
            "mm:{chess}:player:alice:reservations"
        );
        assert_eq!(
            pk.player_join_bucket(&alice),
            "mm:{chess}:player:alice:bucket:join"
        );
        assert_eq!(keys.products(), "mm:products");
        assert_eq!(keys.servers(), "mm:servers");
        assert_eq!(keys.audit(), "mm:audit");
    }
}
