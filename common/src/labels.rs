//! Game labels: small string key/value pairs a creator attaches to a game (`map=dust2`,
//! `mode=ranked`), which players filter listings and quick joins by (contract sections 3.4
//! and 5.4).
//!
//! Labels are bounded so that one player cannot make every listed game heavy: at most
//! `lobby.max_labels` pairs (a deployment setting, at most [`MAX_LABELS_LIMIT`]), a key of
//! 1–[`MAX_KEY_BYTES`] bytes of `a-z 0-9 _ - .`, a value of 1–[`MAX_VALUE_CHARS`] characters
//! without control characters. Matching is equality only: a game matches a filter when
//! it has every pair the filter names, with the same value.
//!
//! In Redis a game's labels are the hash field `labels`, a canonical JSON object (keys
//! sorted, no spaces), absent when the game has none.

use std::collections::BTreeMap;
use std::fmt;

/// Longest label key, in bytes.
pub const MAX_KEY_BYTES: usize = 32;
/// Longest label value, in characters.
pub const MAX_VALUE_CHARS: usize = 64;
/// Largest value `lobby.max_labels` may take.
pub const MAX_LABELS_LIMIT: u32 = 32;
/// Default of `lobby.max_labels`.
pub const DEFAULT_MAX_LABELS: u32 = 8;

/// Why a set of labels was refused; the message names the offending label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// More pairs than allowed.
    #[error("at most {max} labels are allowed, got {got}")]
    TooMany {
        /// The deployment's `lobby.max_labels`.
        max: u32,
        /// How many were given.
        got: usize,
    },
    /// A key that is empty, too long or has a character outside `a-z 0-9 _ - .`.
    #[error("label key `{key}`: must be 1 to {MAX_KEY_BYTES} bytes of a-z, 0-9, `_`, `-` or `.`")]
    BadKey {
        /// The key as given (cut to a readable length).
        key: String,
    },
    /// A value that is empty, too long or holds a control character.
    #[error(
        "label `{key}`: the value must be 1 to {MAX_VALUE_CHARS} characters, none a control character"
    )]
    BadValue {
        /// The key whose value is wrong.
        key: String,
    },
}

/// A validated set of labels, ordered by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// Validates `pairs` against the rules above, with at most `max` pairs.
    pub fn new(pairs: BTreeMap<String, String>, max: u32) -> Result<Labels, LabelError> {
        if pairs.len() > max as usize {
            return Err(LabelError::TooMany {
                max,
                got: pairs.len(),
            });
        }
        for (key, value) in &pairs {
            if !valid_key(key) {
                return Err(LabelError::BadKey { key: shorten(key) });
            }
            if !valid_value(value) {
                return Err(LabelError::BadValue { key: key.clone() });
            }
        }
        Ok(Labels(pairs))
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The pairs, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether every pair of `wanted` is here with the same value (an empty filter matches
    /// every game).
    pub fn matches(&self, wanted: &Labels) -> bool {
        wanted
            .0
            .iter()
            .all(|(key, value)| self.0.get(key) == Some(value))
    }

    /// The canonical JSON object stored in the game hash (keys sorted, no spaces); empty
    /// when there are no labels, so that the field is left out.
    pub fn to_field(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        serde_json::to_string(&self.0).expect("a map of strings always serialises")
    }

    /// Reads the game hash field back. An absent or empty field is no labels; a field that
    /// is not a JSON object of strings is an error. Stored labels are not re-validated
    /// against today's `lobby.max_labels`: a game keeps what it was created with.
    pub fn from_field(raw: &str) -> Result<Labels, String> {
        if raw.is_empty() {
            return Ok(Labels::default());
        }
        serde_json::from_str::<BTreeMap<String, String>>(raw)
            .map(Labels)
            .map_err(|err| format!("not a JSON object of strings: {err}"))
    }

    /// The pairs as a map (for JSON views).
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (key, value)) in self.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_BYTES).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
}

fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.chars().count() <= MAX_VALUE_CHARS
        && !value.chars().any(char::is_control)
}

fn shorten(key: &str) -> String {
    let mut end = key.len().min(MAX_KEY_BYTES + 8);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    let mut shown: String = key[..end].chars().filter(|c| !c.is_control()).collect();
    if end < key.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn valid_labels_round_trip_through_the_canonical_field() {
        let labels = Labels::new(pairs(&[("mode", "ranked"), ("map", "dust2")]), 8).unwrap();
        assert_eq!(labels.to_field(), r#"{"map":"dust2","mode":"ranked"}"#);
        assert_eq!(Labels::from_field(&labels.to_field()).unwrap(), labels);
        assert_eq!(labels.to_string(), "map=dust2,mode=ranked");
        assert_eq!(Labels::default().to_field(), "");
        assert!(Labels::from_field("").unwrap().is_empty());
        assert!(Labels::from_field("[1]").is_err());
    }

    #[test]
    fn keys_values_and_counts_are_bounded_with_messages_naming_the_label() {
        let too_many: BTreeMap<String, String> =
            (0..9).map(|n| (format!("k{n}"), "v".to_string())).collect();
        assert_eq!(
            Labels::new(too_many, 8).unwrap_err().to_string(),
            "at most 8 labels are allowed, got 9"
        );
        for key in ["", "Map", "ma p", "ключ", &"k".repeat(33)] {
            let err = Labels::new(pairs(&[(key, "v")]), 8).unwrap_err();
            assert!(matches!(err, LabelError::BadKey { .. }), "{key:?}: {err}");
        }
        assert!(Labels::new(pairs(&[(&"k".repeat(32), "v")]), 8).is_ok());
        for value in ["", "a\nb", &"v".repeat(65)] {
            let err = Labels::new(pairs(&[("map", value)]), 8).unwrap_err();
            assert_eq!(
                err.to_string(),
                "label `map`: the value must be 1 to 64 characters, none a control character"
            );
        }
        assert!(Labels::new(pairs(&[("map", "de_dust 2 ✓")]), 8).is_ok());
        assert!(Labels::new(pairs(&[("map", &"é".repeat(64))]), 8).is_ok());
        assert!(Labels::new(pairs(&[("map", "x")]), 0).is_err());
    }

    #[test]
    fn a_game_matches_a_filter_when_it_has_every_pair() {
        let game = Labels::new(pairs(&[("map", "dust2"), ("mode", "ranked")]), 8).unwrap();
        let by_map = Labels::new(pairs(&[("map", "dust2")]), 8).unwrap();
        let other_map = Labels::new(pairs(&[("map", "nuke")]), 8).unwrap();
        let extra = Labels::new(pairs(&[("map", "dust2"), ("team", "red")]), 8).unwrap();
        assert!(game.matches(&Labels::default()));
        assert!(game.matches(&by_map));
        assert!(game.matches(&game));
        assert!(!game.matches(&other_map));
        assert!(!game.matches(&extra));
        assert!(!Labels::default().matches(&by_map));
    }
}
