//! Validated identifiers: games, products, players and game servers.
//!
//! Ids travel through HTTP paths, Redis key names (products are a Redis Cluster hash tag) and
//! JSON, so each kind has a small, explicit alphabet. A bad id is refused at the boundary with
//! an [`IdError`] that names the kind of id, the value and the rule it broke; past the
//! boundary the type guarantees validity.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string was refused as an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {rule}")]
pub struct IdError {
    /// Which kind of id was being parsed (`"product id"`, …).
    pub kind: &'static str,
    /// The refused value, truncated to 80 characters.
    pub value: String,
    /// The rule it broke, in words.
    pub rule: String,
}

/// Checks `value` against a length limit and an alphabet; shared by every id type.
fn validate(
    kind: &'static str,
    value: &str,
    max_len: usize,
    allowed: fn(char) -> bool,
    alphabet: &str,
) -> Result<(), IdError> {
    let refuse = |rule: String| IdError {
        kind,
        value: value.chars().take(80).collect(),
        rule,
    };
    if value.is_empty() {
        return Err(refuse("must not be empty".into()));
    }
    if value.len() > max_len {
        return Err(refuse(format!("must be at most {max_len} bytes long")));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(refuse(format!(
            "character {bad:?} is not allowed (allowed: {alphabet})"
        )));
    }
    Ok(())
}

macro_rules! id_type {
    (
        $(#[$doc:meta])*
        $name:ident, kind = $kind:literal, max_len = $max:literal,
        allowed = $allowed:expr, alphabet = $alphabet:literal
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted id, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value, $max, $allowed, $alphabet)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn slug_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn player_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '+')
}

id_type!(
    /// A game's id, issued by the matchmaker as `<product>.<uuid v7>`: the product prefix
    /// routes a bare id to its product's keys, the UUIDv7 makes ids sort by creation time.
    GameId, kind = "game id", max_len = 64, allowed = token_char,
    alphabet = "ASCII letters, digits, '-', '_', '.'"
);

id_type!(
    /// A product (a game title or mode); it is the Redis Cluster hash tag of its keys.
    ProductId, kind = "product id", max_len = 64, allowed = slug_char,
    alphabet = "lowercase ASCII letters, digits, '-', '_'"
);

id_type!(
    /// A player, as authenticated by the lobby API (`X-Player-Id` or the JWT `sub`).
    PlayerId, kind = "player id", max_len = 128, allowed = player_char,
    alphabet = "ASCII letters, digits, '-', '_', '.', ':', '@', '+'"
);

id_type!(
    /// A registered game server.
    ServerId, kind = "server id", max_len = 64, allowed = token_char,
    alphabet = "ASCII letters, digits, '-', '_', '.'"
);

impl GameId {
    /// A fresh, time-ordered game id of `product`.
    pub fn generate(product: &ProductId) -> Self {
        Self(format!("{product}.{}", uuid::Uuid::now_v7()))
    }

    /// The product named by the id's prefix, if it has one.
    pub fn product(&self) -> Option<ProductId> {
        let (product, rest) = self.0.split_once('.')?;
        if rest.is_empty() {
            return None;
        }
        ProductId::new(product).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_ids() {
        assert_eq!(
            ProductId::new("chess-blitz").unwrap().as_str(),
            "chess-blitz"
        );
        assert!(PlayerId::new("steam:7656119@eu+1").is_ok());
        assert!(ServerId::new("gs-eu-1.prod").is_ok());
        let chess = ProductId::new("chess").unwrap();
        let game = GameId::generate(&chess);
        assert_eq!(GameId::new(game.as_str()).unwrap(), game);
        assert_eq!(game.product(), Some(chess));
        assert_eq!(GameId::new("no-product").unwrap().product(), None);
        assert_eq!(GameId::new("Bad.x").unwrap().product(), None);
    }

    #[test]
    fn refuses_characters_that_would_break_keys_or_paths() {
        for bad in ["a{b}", "a:b", "A", "a b", "a/b", ""] {
            let err = ProductId::new(bad).unwrap_err();
            assert_eq!(err.kind, "product id");
        }
        let err = GameId::new("../etc").unwrap_err();
        assert!(err.to_string().contains("'/' is not allowed"), "{err}");
    }

    #[test]
    fn error_says_what_and_why() {
        let err = PlayerId::new("x".repeat(200)).unwrap_err();
        assert_eq!(err.kind, "player id");
        assert!(err.rule.contains("at most 128 bytes"), "{}", err.rule);
        assert_eq!(err.value.len(), 80, "value is truncated for logs");
    }

    #[test]
    fn serde_validates() {
        let ok: ProductId = serde_json::from_str("\"poker\"").unwrap();
        assert_eq!(ok.as_str(), "poker");
        let err = serde_json::from_str::<ProductId>("\"Poker!\"").unwrap_err();
        assert!(err.to_string().contains("invalid product id"), "{err}");
    }
}
