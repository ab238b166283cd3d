//! The settings → options conversions for the types of `mm-common`, in one place, so that
//! `matchmakerd`, `mm-console` and the tests build their store and game-server client alike.
//!
//! The daemon's own role options (`ConsumerOptions`, `CuratorOptions`) stay in the daemon,
//! each built by its one `from_settings`: this crate does not depend on the daemon.

use mm_common::gameserver::ClientOptions;
use mm_common::store::StoreOptions;

use crate::settings::{GameServerClientSettings, Settings};

impl Settings {
    /// The store options: `[redis]` (URL, key prefix, timeouts), the tombstone TTL of
    /// `[lobby]` and the stream caps of `[consumer]` and `[audit]` (which is why this is a
    /// method of the whole settings, not of `[redis]`).
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            url: self.redis.url.clone(),
            cluster_nodes: self.redis.cluster_nodes.clone(),
            wait_replicas: self.redis.wait_replicas,
            wait_timeout: self.redis.wait_timeout(),
            retry_budget: self.redis.retry_budget(),
            wait_connections: self.redis.wait_connections,
            key_prefix: self.redis.key_prefix.clone(),
            connect_timeout: self.redis.connect_timeout(),
            command_timeout: self.redis.command_timeout(),
            tombstone_ttl: self.lobby.tombstone_ttl(),
            dead_letter_max_len: self.consumer.dead_letter_max_len,
            audit_max_len: self.audit.max_len,
            feed_max_len: self.lobby.feed_maxlen,
        }
    }
}

impl GameServerClientSettings {
    /// The game-server client options: timeouts, retries and the circuit breaker; the first
    /// retry delay keeps the client's default.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            connect_timeout: self.connect_timeout(),
            request_timeout: self.request_timeout(),
            retries: self.retries,
            breaker_failures: self.breaker_failures,
            breaker_cooldown: self.breaker_cooldown(),
            ..ClientOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn options_carry_every_setting_they_are_built_from() {
        let mut settings = Settings::default();
        settings.redis.url = "redis://example:7000/2".into();
        settings.redis.key_prefix = "mmx".into();
        settings.redis.connect_timeout_ms = 1234;
        settings.redis.command_timeout_ms = 567;
        settings.lobby.tombstone_ttl_secs = 89;
        settings.consumer.dead_letter_max_len = 77;
        settings.audit.max_len = 66;
        let store = settings.store_options();
        assert_eq!(store.url, "redis://example:7000/2");
        assert_eq!(store.key_prefix, "mmx");
        assert_eq!(store.connect_timeout, Duration::from_millis(1234));
        assert_eq!(store.command_timeout, Duration::from_millis(567));
        assert_eq!(store.tombstone_ttl, Duration::from_secs(89));
        assert_eq!(store.dead_letter_max_len, 77);
        assert_eq!(store.audit_max_len, 66);

        let client_settings = GameServerClientSettings {
            connect_timeout_ms: 111,
            request_timeout_ms: 222,
            retries: 7,
            breaker_failures: 3,
            breaker_cooldown_secs: 44,
            ..GameServerClientSettings::default()
        };
        let client = client_settings.client_options();
        assert_eq!(client.connect_timeout, Duration::from_millis(111));
        assert_eq!(client.request_timeout, Duration::from_millis(222));
        assert_eq!(client.retries, 7);
        assert_eq!(client.breaker_failures, 3);
        assert_eq!(client.breaker_cooldown, Duration::from_secs(44));
        assert_eq!(client.retry_backoff, ClientOptions::default().retry_backoff);
    }
}
