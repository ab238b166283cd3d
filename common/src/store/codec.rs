//! The game hash's field layout: [`Game`] to and from `P:{product}:game:<id>`.
//!
//! Contract fields (contract section 3): `id`, `product`, `server_id`, `state`, `capacity`,
//! `creator_id`, `players` (JSON array), `socket_url`, `created_at`, `updated_at` (Unix ms).
//! The store adds `region`, `settings`, `labels` (absent when none), `roster`, `full_mark`, `last_leave`, `reservations`
//! `end_reason`, `ending_since` and `ending_reason`, which the scripts need to apply events order-independently.

use std::collections::{BTreeMap, HashMap};

use crate::ids::PlayerId;
use crate::labels::Labels;
use crate::model::{Ending, EntryId, Game, GameState, Phase, RosterEntry};

/// Why a game hash could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("game hash field `{field}`: {reason}")]
pub struct CodecError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(field: &'static str, reason: impl ToString) -> CodecError {
    CodecError {
        field,
        reason: reason.to_string(),
    }
}

/// The fields written when a game is created (the scripts maintain the rest).
pub fn game_to_fields(game: &Game) -> Vec<(&'static str, String)> {
    let roster: BTreeMap<&str, (String, u8)> = game
        .roster
        .iter()
        .map(|(player, entry)| {
            (
                player.as_str(),
                (entry.entry_id.to_string(), u8::from(entry.present)),
            )
        })
        .collect();
    let reservations: BTreeMap<&str, u64> = game
        .reservations
        .iter()
        .map(|(player, expiry)| (player.as_str(), *expiry))
        .collect();
    let players: Vec<String> = game.players().iter().map(ToString::to_string).collect();
    vec![
        ("id", game.id.to_string()),
        ("product", game.product.to_string()),
        ("server_id", game.server_id.to_string()),
        ("region", game.region.clone().unwrap_or_default()),
        ("capacity", game.capacity.to_string()),
        ("creator_id", game.creator_id.to_string()),
        ("socket_url", game.socket_url.clone()),
        ("settings", game.settings.clone()),
        ("labels", game.labels.to_field()),
        ("created_at", game.created_at_ms.to_string()),
        ("updated_at", game.updated_at_ms.to_string()),
        ("state", game.state().as_str().to_string()),
        ("players", json(&players)),
        ("roster", json(&roster)),
        (
            "full_mark",
            game.full_mark.map(|id| id.to_string()).unwrap_or_default(),
        ),
        (
            "last_leave",
            game.last_leave.map(|id| id.to_string()).unwrap_or_default(),
        ),
        ("reservations", json(&reservations)),
        ("end_reason", game.end_reason.clone().unwrap_or_default()),
        (
            "ending_since",
            game.ending
                .as_ref()
                .map(|ending| ending.since_ms.to_string())
                .unwrap_or_default(),
        ),
        (
            "ending_reason",
            game.ending
                .as_ref()
                .map(|ending| ending.reason.clone())
                .unwrap_or_default(),
        ),
    ]
}

/// The game as the fields of its record, sorted by name: what an operator inspecting the
/// record sees (the console's detail view), without having to know the hash's layout.
pub fn record_fields(game: &Game) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = game_to_fields(game)
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    fields.sort();
    fields
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps and lists of strings always serialise")
}

/// Decodes a game hash (`HGETALL`). An empty map is not a game: callers check that first.
pub fn game_from_hash(hash: &HashMap<String, String>) -> Result<Game, CodecError> {
    game_from_fields(|name| hash.get(name).map(String::as_str))
}

/// Decodes a game from its hash fields, `lookup` giving a field's value by name (`None`
/// when absent), so a reply that carries the fields as a list is decoded without building a
/// map of copies first.
pub(crate) fn game_from_fields<'a>(
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<Game, CodecError> {
    let field = |name: &'static str| -> Result<&str, CodecError> {
        lookup(name).ok_or_else(|| bad(name, "missing"))
    };
    let optional = |name: &'static str| lookup(name).unwrap_or("");
    let number = |name: &'static str| -> Result<u64, CodecError> {
        field(name)?
            .parse::<u64>()
            .map_err(|err| bad(name, format!("{err}")))
    };
    let entry_id = |name: &'static str| -> Result<Option<EntryId>, CodecError> {
        match optional(name) {
            "" => Ok(None),
            raw => raw.parse().map(Some).map_err(|err| bad(name, err)),
        }
    };
    let state: GameState = field("state")?.parse().map_err(|err| bad("state", err))?;
    let phase = match state {
        GameState::Created => Phase::Created,
        GameState::CreatorJoined | GameState::AllPlayersJoined => Phase::Lobby,
        GameState::InProgress => Phase::InProgress,
        GameState::Ended => Phase::Ended,
    };
    let roster = roster_from_field(optional("roster"))?;
    let reservations = reservations_from_field(optional("reservations"))?;
    let capacity = number("capacity")?;
    let ending = match optional("ending_since") {
        "" => None,
        raw => Some(Ending {
            since_ms: raw
                .parse()
                .map_err(|err| bad("ending_since", format!("{err}")))?,
            reason: optional("ending_reason").to_string(),
        }),
    };
    Ok(Game {
        id: field("id")?.parse().map_err(|err| bad("id", err))?,
        product: field("product")?
            .parse()
            .map_err(|err| bad("product", err))?,
        server_id: field("server_id")?
            .parse()
            .map_err(|err| bad("server_id", err))?,
        region: Some(optional("region").to_string()).filter(|r| !r.is_empty()),
        capacity: u32::try_from(capacity).map_err(|err| bad("capacity", err))?,
        creator_id: field("creator_id")?
            .parse()
            .map_err(|err| bad("creator_id", err))?,
        socket_url: optional("socket_url").to_string(),
        settings: non_empty(optional("settings"), "{}").to_string(),
        labels: Labels::from_field(optional("labels")).map_err(|err| bad("labels", err))?,
        created_at_ms: number("created_at")?,
        updated_at_ms: number("updated_at")?,
        phase,
        roster,
        full_mark: entry_id("full_mark")?,
        last_leave: entry_id("last_leave")?,
        reservations,
        end_reason: Some(optional("end_reason").to_string()).filter(|r| !r.is_empty()),
        ending,
    })
}

/// Decodes a game's `roster` field (`{player: [entry id, 1 present | 0 left]}`; empty = none).
pub fn roster_from_field(raw: &str) -> Result<BTreeMap<PlayerId, RosterEntry>, CodecError> {
    let raw_roster: BTreeMap<String, (String, u8)> =
        serde_json::from_str(non_empty(raw, "{}")).map_err(|err| bad("roster", err))?;
    let mut roster = BTreeMap::new();
    for (player, (entry, present)) in raw_roster {
        let player = PlayerId::new(player).map_err(|err| bad("roster", err))?;
        let entry_id = entry.parse().map_err(|err| bad("roster", err))?;
        roster.insert(
            player,
            RosterEntry {
                entry_id,
                present: present == 1,
            },
        );
    }
    Ok(roster)
}

/// Decodes a game's `reservations` field (`{player: expiry ms}`; empty = none).
pub fn reservations_from_field(raw: &str) -> Result<BTreeMap<PlayerId, u64>, CodecError> {
    let raw_reservations: BTreeMap<String, u64> =
        serde_json::from_str(non_empty(raw, "{}")).map_err(|err| bad("reservations", err))?;
    let mut reservations = BTreeMap::new();
    for (player, expiry) in raw_reservations {
        let player = PlayerId::new(player).map_err(|err| bad("reservations", err))?;
        reservations.insert(player, expiry);
    }
    Ok(reservations)
}

fn non_empty<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}
