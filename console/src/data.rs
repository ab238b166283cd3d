//! What the console shows, as plain data: game rows, per-product statistics, events, one
//! game's detail. Built by [`crate::fetch`] from Redis, read by [`crate::app`] and
//! [`crate::view`]; nothing here does I/O.

use mm_common::audit::AuditEntry;
use mm_common::model::{Game, GameSet};
use mm_common::store::WindowRow;
use mm_common::{GameState, ProductId};
use serde::Serialize;

/// One game as a table row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GameRow {
    /// The game id (the set member).
    pub id: String,
    /// Its product.
    pub product: String,
    /// Its state; `None` if the hash is missing or unreadable.
    pub state: Option<GameState>,
    /// Players in the game.
    pub players: usize,
    /// Seats.
    pub capacity: u32,
    /// Its game server.
    pub server_id: String,
    /// Who created it.
    pub creator_id: String,
    /// Creation time (Unix ms); 0 if unknown.
    pub created_at_ms: u64,
    /// Last activity (Unix ms): the set's score, what curation judges.
    pub activity_ms: u64,
}

impl GameRow {
    /// A row from a set window row of `product`.
    pub fn from_window(product: &ProductId, row: &WindowRow) -> GameRow {
        match &row.game {
            Some(game) => GameRow {
                id: row.id.clone(),
                product: game.product.to_string(),
                state: Some(game.state()),
                players: game.players().len(),
                capacity: game.capacity,
                server_id: game.server_id.to_string(),
                creator_id: game.creator_id.to_string(),
                created_at_ms: game.created_at_ms,
                activity_ms: row.score,
            },
            None => GameRow {
                id: row.id.clone(),
                product: product.to_string(),
                state: None,
                players: 0,
                capacity: 0,
                server_id: String::new(),
                creator_id: String::new(),
                created_at_ms: 0,
                activity_ms: row.score,
            },
        }
    }

    /// Whether `needle` (already lower-case) is a substring of id, product, creator or server.
    pub fn matches(&self, needle: &str) -> bool {
        needle.is_empty()
            || [&self.id, &self.product, &self.creator_id, &self.server_id]
                .iter()
                .any(|field| field.to_lowercase().contains(needle))
    }
}

/// Consumer-group state of one product stream (`XINFO GROUPS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Entries not yet delivered to the group (`lag`); `None` when Redis cannot tell.
    pub lag: Option<u64>,
    /// Entries delivered but not acknowledged.
    pub pending: u64,
    /// Consumers in the group.
    pub consumers: u64,
}

/// Everything the header shows about one product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductStats {
    /// The product.
    pub product: String,
    /// Members of pending, lobby, active.
    pub counts: [u64; 3],
    /// The daemon's consumer group, if it exists.
    pub group: Option<GroupStats>,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// The applied watermark: the time (Unix ms, on the console's clock) of the oldest stream
    /// entry the daemon's group has not acknowledged; `None` when every entry is applied. The
    /// curator judges this product's games at this time, not now.
    pub watermark_ms: Option<u64>,
    /// On a Redis Cluster, the node serving the product's slot and its role
    /// (`127.0.0.1:7000 master`); `None` on a single Redis.
    pub node: Option<String>,
}

/// The header's data: every product, and the live daemon instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    /// Per product, sorted by name.
    pub products: Vec<ProductStats>,
    /// Daemon instances with a heartbeat in the last 15 s.
    pub instances: Vec<String>,
}

/// What the games table asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// The product (the table shows one product at a time).
    pub product: ProductId,
    /// The set.
    pub set: GameSet,
    /// First row.
    pub offset: u64,
    /// Rows wanted (what fits on screen).
    pub count: u64,
    /// Newest activity first instead of stalest first.
    pub newest_first: bool,
    /// Lower-case substring filter; empty: none.
    pub filter: String,
}

/// How far a filtered view looked (filters run over the set's rows in the console, so a huge
/// set is scanned only up to a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterScan {
    /// Rows examined.
    pub scanned: u64,
    /// Rows of the whole (unfiltered) set.
    pub set_size: u64,
    /// Whether the set has more rows than were examined.
    pub truncated: bool,
}

/// One window of the games table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GamesPage {
    /// The query it answers.
    pub query: PageQuery,
    /// The rows.
    pub rows: Vec<GameRow>,
    /// Rows in the whole (filtered) set.
    pub total: u64,
    /// For filtered queries: how far the scan went.
    pub scan: Option<FilterScan>,
}

/// One refresh: header data plus the table's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Header data.
    pub overview: Overview,
    /// Products known (sorted); the table cycles through these.
    pub products: Vec<ProductId>,
    /// The table window, when a product exists.
    pub page: Option<GamesPage>,
}

/// One stream entry of a product's event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TailEvent {
    /// The product whose stream it is in.
    pub product: String,
    /// The stream entry id.
    pub entry_id: String,
    /// Its fields, in stream order (a JSON object when serialised).
    #[serde(serialize_with = "fields_as_object")]
    pub fields: Vec<(String, String)>,
}

fn fields_as_object<S: serde::Serializer>(
    fields: &[(String, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(fields.len()))?;
    for (name, value) in fields {
        map.serialize_entry(name, value)?;
    }
    map.end()
}

impl TailEvent {
    /// A field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The entry's time (Unix ms), from its id.
    pub fn entry_ms(&self) -> u64 {
        self.entry_id
            .split('-')
            .next()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0)
    }

    /// Whether `needle` (already lower-case) occurs in the product, the id or any field.
    pub fn matches(&self, needle: &str) -> bool {
        needle.is_empty()
            || self.product.contains(needle)
            || self.entry_id.contains(needle)
            || self.fields.iter().any(|(k, v)| {
                k.to_lowercase().contains(needle) || v.to_lowercase().contains(needle)
            })
    }

    /// One line for humans: `<entry id> <product> <type> game=<id> player=<id> server=<id> …`.
    pub fn one_line(&self) -> String {
        let mut line = format!(
            "{} {} {}",
            self.entry_id,
            self.product,
            self.field("type").unwrap_or("?")
        );
        for (name, value) in &self.fields {
            if name != "type" {
                line.push_str(&format!(" {name}={value}"));
            }
        }
        line
    }
}

/// One game's detail screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameDetail {
    /// The game id.
    pub id: String,
    /// Its record (`None`: no such hash, or it could not be decoded).
    pub game: Option<Game>,
    /// Its most recent events from the product stream, newest first.
    pub events: Vec<TailEvent>,
    /// How many stream entries were searched for them.
    pub searched: usize,
}

/// One entry of a product's dead letters (contract section 3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The product whose stream it came from.
    pub product: String,
    /// Its entry id in the dead-letter stream (its time is when it was dead-lettered).
    pub entry_id: String,
    /// Every field, in stream order (`reason`, `source_id`, `dead_at`, then the event's).
    pub fields: Vec<(String, String)>,
}

impl DeadLetter {
    /// A field's value, empty when absent.
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// When it was dead-lettered (Unix ms): `dead_at`, else the entry id's time.
    pub fn dead_at_ms(&self) -> u64 {
        self.field("dead_at")
            .parse()
            .ok()
            .unwrap_or_else(|| entry_time(&self.entry_id))
    }

    /// Whether `needle` (already lower-case) occurs in the product or any field.
    pub fn matches(&self, needle: &str) -> bool {
        needle.is_empty()
            || self.product.to_lowercase().contains(needle)
            || self.fields.iter().any(|(k, v)| {
                k.to_lowercase().contains(needle) || v.to_lowercase().contains(needle)
            })
    }
}

/// One operator action of the audit stream (contract section 3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Its entry id in `P:audit`.
    pub entry_id: String,
    /// The action.
    pub entry: AuditEntry,
}

impl AuditRow {
    /// Whether `needle` (already lower-case) occurs in a text field of the action.
    pub fn matches(&self, needle: &str) -> bool {
        let e = &self.entry;
        needle.is_empty()
            || [
                &e.operator,
                &e.action,
                &e.game_id,
                &e.product,
                &e.server_id,
                &e.reason,
                &e.outcome,
                &e.detail,
            ]
            .iter()
            .any(|field| field.to_lowercase().contains(needle))
    }
}

/// The time (Unix ms) of a stream entry id `<ms>-<seq>`; 0 if it is not one.
pub fn entry_time(entry_id: &str) -> u64 {
    entry_id
        .split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}
