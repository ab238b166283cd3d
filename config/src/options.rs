//! The settings → options conversions for the types of `mm-common`, in one place, so that
//! `matchmakerd`, `mm-console` and the tests build their store and game-server client alike;
//! and how both name the store's target in messages (without credentials).
//!
//! The daemon's own role options (`ConsumerOptions`, `CuratorOptions`) stay in the daemon,
//! each built by its one `from_settings`: this crate does not depend on the daemon.

use mm_common::gameserver::ClientOptions;
use mm_common::store::StoreOptions;

use crate::settings::{GameServerClientSettings, RedisSettings, Settings};

impl RedisSettings {
    /// The setting that names where the store connects: `redis.cluster_nodes` when it is set,
    /// else `redis.url` (error messages name it).
    pub fn target_key(&self) -> &'static str {
        if self.cluster_nodes.is_empty() {
            "redis.url"
        } else {
            "redis.cluster_nodes"
        }
    }

    /// Where the store connects, as logs and error messages may show it, without user names
    /// or passwords: `redis://10.0.0.5:6379/2`, or for a cluster `the cluster nodes
    /// redis://a:7000, redis://b:7000 (redis.cluster_nodes)`.
    pub fn target_for_messages(&self) -> String {
        if self.cluster_nodes.is_empty() {
            return url_without_credentials(&self.url, "redis.url");
        }
        let nodes: Vec<String> = self
            .cluster_nodes
            .iter()
            .map(|node| url_without_credentials(node, "a redis.cluster_nodes entry"))
            .collect();
        format!(
            "the cluster nodes {} (redis.cluster_nodes)",
            nodes.join(", ")
        )
    }
}

/// `url` without its user name and password; an unparsable URL is not repeated at all (it may
/// hold credentials): `instead` names it.
fn url_without_credentials(url: &str, instead: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                // Both only fail for URLs that cannot have credentials in the first place.
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            parsed.into()
        }
        Err(_) => format!("the configured {instead}"),
    }
}

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
    fn the_redis_target_never_shows_credentials() {
        let mut redis = RedisSettings {
            url: "redis://default:s3cret@10.0.0.5:6379/2".into(),
            ..RedisSettings::default()
        };
        assert_eq!(redis.target_key(), "redis.url");
        assert_eq!(redis.target_for_messages(), "redis://10.0.0.5:6379/2");
        redis.url = "redis+unix:///run/redis.sock".into();
        assert_eq!(redis.target_for_messages(), "redis+unix:///run/redis.sock");
        redis.url = "::".into();
        assert_eq!(redis.target_for_messages(), "the configured redis.url");

        redis.cluster_nodes = vec![
            "redis://u:pw1@10.0.0.5:7000".into(),
            "redis://:pw2@10.0.0.6:7000".into(),
        ];
        assert_eq!(redis.target_key(), "redis.cluster_nodes");
        assert_eq!(
            redis.target_for_messages(),
            "the cluster nodes redis://10.0.0.5:7000, redis://10.0.0.6:7000 (redis.cluster_nodes)"
        );
    }

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
