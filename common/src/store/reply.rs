//! Decoding the stream commands' replies (`XREADGROUP`, `XRANGE`, `XAUTOCLAIM`, `XPENDING`,
//! `XINFO GROUPS`) from raw [`redis::Value`]s into the store's typed results.
//!
//! The typed helpers of the `redis` crate cannot represent what the consumer must see: an
//! entry that is still pending but whose body was trimmed away comes back as `[id, nil]`, and
//! such entries must be acknowledged and counted as lost rather than fail the whole reply.
//! Both RESP2 (flat arrays) and RESP3 (maps) shapes are accepted.

use redis::Value;

/// One delivered stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredEntry {
    /// The entry id (`<ms>-<seq>`).
    pub id: String,
    /// Its fields, or `None` when the entry was deleted (trimmed) after it was delivered.
    pub fields: Option<Vec<(String, String)>>,
}

/// What one `XAUTOCLAIM` call returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoClaim {
    /// Where the next call starts (`0-0`: the scan is complete).
    pub next_cursor: String,
    /// Entries now owned by the caller.
    pub entries: Vec<DeliveredEntry>,
    /// Pending entries that no longer exist in the stream (Redis removed them from the
    /// pending list).
    pub deleted: Vec<String>,
}

/// One row of `XPENDING key group [IDLE ms] start end count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    /// The entry id.
    pub id: String,
    /// The consumer that owns it.
    pub consumer: String,
    /// How many times it was delivered.
    pub deliveries: u64,
}

/// The consumer group's figures from `XINFO GROUPS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupInfo {
    /// Entries delivered but not acknowledged.
    pub pending: u64,
    /// Entries not yet delivered (`None` when Redis cannot tell, e.g. after deletions).
    pub lag: Option<u64>,
    /// Consumers in the group.
    pub consumers: u64,
}

/// A reply that does not have the shape the command documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected {command} reply shape: {detail}")]
pub struct ReplyError {
    /// The command.
    pub command: &'static str,
    /// What was wrong.
    pub detail: String,
}

fn shape(command: &'static str, detail: impl Into<String>) -> ReplyError {
    ReplyError {
        command,
        detail: detail.into(),
    }
}

/// Text of a string-like value.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// The items of an array-like value (array, set), or the flattened pairs of a map.
fn items(value: &Value) -> Option<Vec<&Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items.iter().collect()),
        Value::Map(pairs) => Some(pairs.iter().flat_map(|(k, v)| [k, v]).collect()),
        _ => None,
    }
}

fn entry(command: &'static str, value: &Value) -> Result<DeliveredEntry, ReplyError> {
    let parts = items(value).ok_or_else(|| shape(command, "an entry is not an array"))?;
    let id = parts
        .first()
        .and_then(|v| text(v))
        .ok_or_else(|| shape(command, "an entry has no id"))?;
    let fields = match parts.get(1) {
        None | Some(Value::Nil) => None,
        Some(body) => {
            let flat = items(body).ok_or_else(|| shape(command, "entry fields not an array"))?;
            let mut fields = Vec::with_capacity(flat.len() / 2);
            for pair in flat.chunks(2) {
                let [name, value] = pair else {
                    return Err(shape(command, "odd number of field items"));
                };
                let (Some(name), Some(value)) = (text(name), text(value)) else {
                    return Err(shape(command, "a field is not a string"));
                };
                fields.push((name, value));
            }
            Some(fields)
        }
    };
    Ok(DeliveredEntry { id, fields })
}

fn entries(command: &'static str, value: &Value) -> Result<Vec<DeliveredEntry>, ReplyError> {
    match value {
        Value::Nil => Ok(Vec::new()),
        other => items(other)
            .ok_or_else(|| shape(command, "entries not an array"))?
            .into_iter()
            .map(|v| entry(command, v))
            .collect(),
    }
}

/// The entries of an `XRANGE` reply.
pub(crate) fn range(value: &Value) -> Result<Vec<DeliveredEntry>, ReplyError> {
    entries("XRANGE", value)
}

/// The entries of an `XREADGROUP` reply for one stream (nil: nothing arrived in time).
pub(crate) fn read_group(value: &Value) -> Result<Vec<DeliveredEntry>, ReplyError> {
    const CMD: &str = "XREADGROUP";
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Map(pairs) => {
            let mut all = Vec::new();
            for (_, stream_entries) in pairs {
                all.extend(entries(CMD, stream_entries)?);
            }
            Ok(all)
        }
        Value::Array(streams) => {
            let mut all = Vec::new();
            for stream in streams {
                let parts = items(stream).ok_or_else(|| shape(CMD, "stream not an array"))?;
                let body = parts
                    .get(1)
                    .ok_or_else(|| shape(CMD, "stream without entries"))?;
                all.extend(entries(CMD, body)?);
            }
            Ok(all)
        }
        _ => Err(shape(CMD, "neither nil, array nor map")),
    }
}

/// An `XAUTOCLAIM` reply.
pub(crate) fn auto_claim(value: &Value) -> Result<AutoClaim, ReplyError> {
    const CMD: &str = "XAUTOCLAIM";
    let parts = items(value).ok_or_else(|| shape(CMD, "not an array"))?;
    let next_cursor = parts
        .first()
        .and_then(|v| text(v))
        .ok_or_else(|| shape(CMD, "no cursor"))?;
    let entries = match parts.get(1) {
        Some(v) => entries(CMD, v)?,
        None => Vec::new(),
    };
    let deleted = match parts.get(2) {
        Some(v) => items(v)
            .ok_or_else(|| shape(CMD, "deleted ids not an array"))?
            .into_iter()
            .filter_map(text)
            .collect(),
        None => Vec::new(),
    };
    Ok(AutoClaim {
        next_cursor,
        entries,
        deleted,
    })
}

/// An extended-form `XPENDING` reply.
pub(crate) fn pending_rows(value: &Value) -> Result<Vec<PendingRow>, ReplyError> {
    const CMD: &str = "XPENDING";
    let rows = items(value).ok_or_else(|| shape(CMD, "not an array"))?;
    rows.into_iter()
        .map(|row| {
            let parts = items(row).ok_or_else(|| shape(CMD, "row not an array"))?;
            match parts.as_slice() {
                [id, consumer, _idle, deliveries] => Ok(PendingRow {
                    id: text(id).ok_or_else(|| shape(CMD, "id"))?,
                    consumer: text(consumer).ok_or_else(|| shape(CMD, "consumer"))?,
                    deliveries: integer(deliveries).ok_or_else(|| shape(CMD, "count"))?,
                }),
                _ => Err(shape(CMD, "row does not have 4 items")),
            }
        })
        .collect()
}

/// The figures of `group` in an `XINFO GROUPS` reply; `None` if the group is not listed.
pub(crate) fn group_info(value: &Value, group: &str) -> Result<Option<GroupInfo>, ReplyError> {
    const CMD: &str = "XINFO GROUPS";
    let groups = items(value).ok_or_else(|| shape(CMD, "not an array"))?;
    for description in groups {
        let flat = items(description).ok_or_else(|| shape(CMD, "group not an array"))?;
        let mut name = None;
        let mut info = GroupInfo::default();
        for pair in flat.chunks(2) {
            let [key, value] = pair else { continue };
            match text(key).as_deref() {
                Some("name") => name = text(value),
                Some("pending") => info.pending = integer(value).unwrap_or(0),
                Some("lag") => info.lag = integer(value),
                Some("consumers") => info.consumers = integer(value).unwrap_or(0),
                _ => {}
            }
        }
        if name.as_deref() == Some(group) {
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// One stream entry as `XREAD` and `XRANGE` answer it: its id and its field/value pairs.
pub(super) type RawEntry = (String, Vec<(String, String)>);

/// An `XREAD` reply: per stream read, its key and the entries after the given id (nil:
/// nothing arrived within the block time).
pub(super) type XreadReply = Option<Vec<(String, Vec<RawEntry>)>>;

/// `XREAD COUNT <count> [BLOCK <block_ms>] STREAMS <keys…> <ids…>` (the ids in the keys'
/// order): the blocking read of the view's feed reader and the console's tail, or without
/// `block_ms` a read that answers at once (the console's tail on a cluster).
pub(super) fn xread(
    count: usize,
    block_ms: Option<u64>,
    keys: &[String],
    ids: &[String],
) -> redis::Cmd {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(count);
    if let Some(block_ms) = block_ms {
        cmd.arg("BLOCK").arg(block_ms);
    }
    cmd.arg("STREAMS").arg(keys).arg(ids);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn read_group_keeps_deleted_entries_as_bodiless() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("mm:{chess}:events"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("type"), bulk("heartbeat")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let entries = read_group(&reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].fields,
            Some(vec![("type".into(), "heartbeat".into())])
        );
        assert_eq!(entries[1].id, "2-0");
        assert_eq!(entries[1].fields, None);
        assert!(read_group(&Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn auto_claim_reads_cursor_entries_and_deleted_ids() {
        let reply = Value::Array(vec![
            bulk("5-0"),
            Value::Array(vec![Value::Array(vec![
                bulk("3-0"),
                Value::Array(vec![bulk("a"), bulk("b")]),
            ])]),
            Value::Array(vec![bulk("4-0")]),
        ]);
        let claim = auto_claim(&reply).unwrap();
        assert_eq!(claim.next_cursor, "5-0");
        assert_eq!(claim.entries[0].id, "3-0");
        assert_eq!(claim.deleted, vec!["4-0".to_string()]);
    }

    #[test]
    fn group_info_finds_the_named_group() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("name"),
            bulk("matchmakerd"),
            bulk("pending"),
            Value::Int(3),
            bulk("lag"),
            Value::Nil,
            bulk("consumers"),
            Value::Int(2),
        ])]);
        let info = group_info(&reply, "matchmakerd").unwrap().unwrap();
        assert_eq!(info.pending, 3);
        assert_eq!(info.lag, None);
        assert_eq!(info.consumers, 2);
        assert!(group_info(&reply, "other").unwrap().is_none());
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        assert!(read_group(&Value::Int(1)).is_err());
        assert!(auto_claim(&Value::Nil).is_err());
        assert!(pending_rows(&Value::Array(vec![Value::Array(vec![bulk("x")])])).is_err());
    }
}
