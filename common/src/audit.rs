//! The operator audit trail: one entry per operator action, appended to `P:audit`
//! (contract section 3) through the store.
//!
//! An entry says who acted (the OS user, or `--operator`), what they did, to which game of
//! which product on which server, why, what came of it, whether the game server was reached,
//! and when. Fields are flat strings so `XRANGE P:audit - +` is readable in `redis-cli`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// One operator action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who acted: the OS user or the `--operator` name.
    pub operator: String,
    /// What was done (`force_delete`).
    pub action: String,
    /// The game acted on.
    pub game_id: String,
    /// Its product (empty if unknown).
    pub product: String,
    /// The game server hosting it (empty if unknown).
    pub server_id: String,
    /// Why, as the operator said (`--reason`); may be empty.
    pub reason: String,
    /// What came of it (`deleted`, `server_refused`, `server_unreachable`,
    /// `removed_without_server`, …).
    pub outcome: String,
    /// Whether the game server answered the delete (2xx or 404).
    pub server_reached: bool,
    /// Whether the operator forced removal of the record whatever the server said.
    pub forced: bool,
    /// Details: the game server's error, if any.
    pub detail: String,
    /// When (Unix ms).
    pub at_ms: u64,
}

/// The audit action of a force-delete.
pub const ACTION_FORCE_DELETE: &str = "force_delete";

impl AuditEntry {
    /// The stream fields, in a stable order.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("operator", self.operator.clone()),
            ("action", self.action.clone()),
            ("game_id", self.game_id.clone()),
            ("product", self.product.clone()),
            ("server_id", self.server_id.clone()),
            ("reason", self.reason.clone()),
            ("outcome", self.outcome.clone()),
            (
                "server_reached",
                if self.server_reached { "true" } else { "false" }.to_string(),
            ),
            (
                "forced",
                if self.forced { "true" } else { "false" }.to_string(),
            ),
            ("detail", self.detail.clone()),
            ("at", self.at_ms.to_string()),
        ]
    }

    /// Reads an entry back from its stream fields; missing fields are empty, so entries
    /// written by older versions still read.
    pub fn from_fields(fields: &HashMap<String, String>) -> AuditEntry {
        let text = |name: &str| fields.get(name).cloned().unwrap_or_default();
        AuditEntry {
            operator: text("operator"),
            action: text("action"),
            game_id: text("game_id"),
            product: text("product"),
            server_id: text("server_id"),
            reason: text("reason"),
            outcome: text("outcome"),
            server_reached: fields.get("server_reached").map(String::as_str) == Some("true"),
            forced: fields.get("forced").map(String::as_str) == Some("true"),
            detail: text("detail"),
            at_ms: fields.get("at").and_then(|v| v.parse().ok()).unwrap_or(0),
        }
    }
}

/// Appends `entry` to `P:audit`; returns the stream entry id ([`Store::append_audit`]).
pub async fn append(store: &Store, entry: &AuditEntry) -> Result<String, StoreError> {
    store.append_audit(entry).await
}

/// The newest `count` audit entries, newest first, with their stream ids
/// ([`Store::recent_audit`]).
pub async fn recent(store: &Store, count: usize) -> Result<Vec<(String, AuditEntry)>, StoreError> {
    store.recent_audit(count).await
}

/// The OS user running this process (`USER`, then `LOGNAME`, then `USERNAME`), or `unknown`.
pub fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let entry = AuditEntry {
            operator: "alice".into(),
            action: ACTION_FORCE_DELETE.into(),
            game_id: "chess.1".into(),
            product: "chess".into(),
            server_id: "gs-1".into(),
            reason: "stuck".into(),
            outcome: "deleted".into(),
            server_reached: true,
            forced: false,
            detail: String::new(),
            at_ms: 42,
        };
        let fields: HashMap<String, String> = entry
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(AuditEntry::from_fields(&fields), entry);
    }
}
