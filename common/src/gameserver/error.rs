//! What can go wrong calling a game server, in terms a caller can act on.

use std::fmt;

use crate::ids::ServerId;

/// The game-server API operation a call performed (named in logs, spans and errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST /games`.
    CreateGame,
    /// `POST /games/{id}/players`.
    AddPlayer,
    /// `DELETE /games/{id}`.
    DeleteGame,
    /// `GET /health`.
    Health,
    /// `GET /games` (optional for a server; contract section 6.1).
    ListGames,
}

impl Operation {
    /// A short, stable name (`create_game`, `add_player`, `delete_game`, `health`,
    /// `list_games`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateGame => "create_game",
            Operation::AddPlayer => "add_player",
            Operation::DeleteGame => "delete_game",
            Operation::Health => "health",
            Operation::ListGames => "list_games",
        }
    }

    /// Whether repeating the call cannot do harm, so it may be retried.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Operation::DeleteGame | Operation::Health | Operation::ListGames
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest response body kept in [`CallError::Status`], in bytes.
pub const MAX_ERROR_BODY: usize = 512;

/// A failed game-server call. Every variant names the server and the operation.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server's circuit breaker is open: it failed repeatedly and the call was not sent.
    #[error(
        "game server {server}: {op} not attempted: circuit breaker open after repeated failures"
    )]
    CircuitOpen {
        /// The server.
        server: ServerId,
        /// The operation.
        op: Operation,
    },
    /// No answer within the request timeout (or the connect timeout).
    #[error("game server {server}: {op} timed out")]
    Timeout {
        /// The server.
        server: ServerId,
        /// The operation.
        op: Operation,
    },
    /// The server could not be reached, or the connection broke before a full answer.
    #[error("game server {server}: {op} failed: could not reach the server: {source}")]
    Connect {
        /// The server.
        server: ServerId,
        /// The operation.
        op: Operation,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an unexpected HTTP status.
    #[error("game server {server}: {op} answered HTTP {status}: {body}")]
    Status {
        /// The server.
        server: ServerId,
        /// The operation.
        op: Operation,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (at most [`MAX_ERROR_BODY`] bytes).
        body: String,
    },
    /// The server answered success but the body was not what the API promises.
    #[error("game server {server}: {op} answered an unreadable body: {source}")]
    Decode {
        /// The server.
        server: ServerId,
        /// The operation.
        op: Operation,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl CallError {
    /// The server the call went to.
    pub fn server(&self) -> &ServerId {
        match self {
            CallError::CircuitOpen { server, .. }
            | CallError::Timeout { server, .. }
            | CallError::Connect { server, .. }
            | CallError::Status { server, .. }
            | CallError::Decode { server, .. } => server,
        }
    }

    /// The operation that failed.
    pub fn op(&self) -> Operation {
        match self {
            CallError::CircuitOpen { op, .. }
            | CallError::Timeout { op, .. }
            | CallError::Connect { op, .. }
            | CallError::Status { op, .. }
            | CallError::Decode { op, .. } => *op,
        }
    }

    /// The HTTP status, if the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the fault lies with the server (unreachable, timed out, 5xx, open breaker, a
    /// success answer that does not parse), as opposed to a refusal of this request (4xx),
    /// which says the server is healthy and the request was wrong or is no longer possible.
    pub fn is_server_fault(&self) -> bool {
        match self {
            CallError::Status { status, .. } => !(400..500).contains(status),
            CallError::CircuitOpen { .. }
            | CallError::Timeout { .. }
            | CallError::Connect { .. }
            | CallError::Decode { .. } => true,
        }
    }

    /// Whether this failure counts towards opening the server's circuit breaker (and may be
    /// retried for idempotent calls): connect errors, timeouts and 5xx answers.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Timeout { .. } | CallError::Connect { .. } => true,
            CallError::Status { status, .. } => *status >= 500,
            CallError::CircuitOpen { .. } | CallError::Decode { .. } => false,
        }
    }

    /// A short label for metrics and logs (`circuit_open`, `timeout`, `connect`, `status`,
    /// `decode`).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::CircuitOpen { .. } => "circuit_open",
            CallError::Timeout { .. } => "timeout",
            CallError::Connect { .. } => "connect",
            CallError::Status { .. } => "status",
            CallError::Decode { .. } => "decode",
        }
    }
}

/// Cuts `body` to at most [`MAX_ERROR_BODY`] bytes on a character boundary.
pub(crate) fn truncate_body(body: &str) -> String {
    if body.len() <= MAX_ERROR_BODY {
        return body.to_string();
    }
    let mut end = MAX_ERROR_BODY;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}
