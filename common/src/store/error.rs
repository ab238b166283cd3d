//! The store's error type: what can go wrong talking to Redis, and how callers tell an outage
//! (retry later) from a bug or corrupt data.

use super::codec::CodecError;
use super::reply::ReplyError;
use crate::model::GameState;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused, failed or timed out.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A key holds something the store did not write.
    #[error("corrupt record at {key}: {source}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        source: CodecError,
    },
    /// A script answered something it never returns (a bug, or a foreign script).
    #[error("unexpected reply from script {script}: {reply:?}")]
    UnexpectedReply {
        /// The script.
        script: &'static str,
        /// Its reply.
        reply: Vec<String>,
    },
    /// A stream command's reply does not have the shape Redis documents.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// The Redis reached is not what the configuration says (a cluster node named by
    /// `redis.url`, or a single Redis named by `redis.cluster_nodes`).
    #[error("{0}")]
    Misconfigured(String),
}

impl StoreError {
    /// Whether Redis could not be reached or answered too late (worth retrying later), as
    /// opposed to a bug or corrupt data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis(err) => {
                err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_io_error()
                    || err.is_cluster_error()
                    || matches!(
                        err.code(),
                        Some("CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN" | "LOADING" | "READONLY")
                    )
            }
            _ => false,
        }
    }

    /// Whether Redis answered `NOGROUP`: the consumer group (or its stream) is gone.
    pub fn is_no_group(&self) -> bool {
        matches!(self, StoreError::Redis(err) if err.code() == Some("NOGROUP"))
    }
}

/// Result alias of the store.
pub type StoreResult<T> = Result<T, StoreError>;

pub(crate) fn unexpected(script: &'static str, reply: &[String]) -> StoreError {
    StoreError::UnexpectedReply {
        script,
        reply: reply.to_vec(),
    }
}

/// The game state a script named in the second value of its reply (`removed`, `refused`,
/// `marked`, `applied`, `stale`); a reply without one, or with something else there, is
/// unexpected.
pub(crate) fn reply_state(script: &'static str, reply: &[String]) -> StoreResult<GameState> {
    reply
        .get(1)
        .and_then(|state| state.parse().ok())
        .ok_or_else(|| unexpected(script, reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_without_a_readable_state_is_unexpected_not_a_panic() {
        let state = |reply: &[&str]| {
            let reply: Vec<String> = reply.iter().map(|v| v.to_string()).collect();
            reply_state("remove_game", &reply)
        };
        assert_eq!(
            state(&["removed", "in_progress"]).unwrap(),
            GameState::InProgress
        );
        for reply in [&["removed"][..], &["refused", "sideways"][..]] {
            match state(reply) {
                Err(StoreError::UnexpectedReply { script, reply: got }) => {
                    assert_eq!(script, "remove_game");
                    assert_eq!(got, reply);
                }
                other => panic!("{reply:?}: {other:?}"),
            }
        }
    }
}
