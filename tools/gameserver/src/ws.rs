//! One player's WebSocket session.
//!
//! The session task forwards what the game sends ([`Outbound`]) to the socket and reads the
//! player's frames: a text frame `{"type":"leave"}`, a close frame or a broken connection ends
//! the session, and the game is told the player left.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};

use super::game::{Admission, CLOSE_NORMAL, Game, Outbound, Server};

/// How long a closing session waits for the player's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Runs the session of an admitted player until it ends.
pub(crate) async fn run(
    server: Arc<Server>,
    game: Arc<Game>,
    mut admission: Admission,
    socket: WebSocket,
) {
    let (mut sink, mut stream) = socket.split();
    if !game.connected(&server, &admission) {
        let _ = sink.send(close(CLOSE_NORMAL, "game is gone")).await;
        return;
    }
    let closing = loop {
        tokio::select! {
            outbound = admission.rx.recv() => match outbound {
                Some(Outbound::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break false;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    let _ = sink.send(close(code, reason)).await;
                    break true;
                }
                None => break false,
            },
            inbound = stream.next() => match inbound {
                Some(Ok(Message::Text(text))) if is_leave(&text) => {
                    // Leave first, so the player's `player_left` precedes the close.
                    game.disconnected(&server, &admission.player, admission.connection);
                    let _ = sink.send(close(CLOSE_NORMAL, "left")).await;
                    break true;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break false,
                Some(Ok(_)) => {}
            },
        }
    };
    game.disconnected(&server, &admission.player, admission.connection);
    if closing {
        // Give the player a moment to answer the close frame before the TCP connection goes.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn is_leave(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .is_some_and(|value| value.get("type").and_then(|t| t.as_str()) == Some("leave"))
}
