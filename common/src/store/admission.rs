//! Create admissions, committed in groups.
//!
//! Every create is admitted under the per-player limits (`admit_create.lua`) before any game
//! server is called, so the admission is a Redis round trip on every create's path. Under load
//! many creates of one product wait for their admission at the same moment; sending each as
//! its own script call makes Redis and this process pay a command's fixed cost (parsing,
//! dispatch, a reply, a task wake-up) per create.
//!
//! So each product has a *lane*: one task that takes every admission waiting for that product,
//! sends them as one script call (the script decides them one after the other, in arrival
//! order, exactly as separate calls would), and answers each caller. While a call is in
//! flight the next group gathers; nothing ever waits for a timer, so a lone create costs one
//! channel hop more than a direct call, and a busy product pays one round trip per group
//! instead of per create. A group holds at most [`MAX_GROUP`] admissions, all of one product
//! (one Redis Cluster slot) and under the same limits.
//!
//! A lane's task holds only a connection and key names, never the [`Store`](super::Store),
//! so it ends when the last store clone (which holds the lane's sender) is dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::connection::RedisConn;
use super::error::{StoreError, StoreResult, unexpected};
use super::scripts::SCRIPTS;
use crate::ids::{GameId, PlayerId, ProductId};
use crate::keys::ProductKeys;
use crate::limits::{LimitRefusal, PlayerLimits};

/// Most admissions sent in one script call.
pub const MAX_GROUP: usize = 64;

/// How long a player's creates hash (with its live games) outlives its last admission: a game
/// live longer than this is no longer counted against its creator's quota (a lenient failure).
const PLAYER_CREATES_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// One create waiting for its admission.
struct Waiting {
    player: PlayerId,
    game: GameId,
    now_ms: u64,
    limits: PlayerLimits,
    grace: Duration,
    answer: oneshot::Sender<StoreResult<Option<LimitRefusal>>>,
}

/// The lanes of every product this store has admitted creates for.
#[derive(Default)]
pub(super) struct Admissions {
    lanes: Mutex<HashMap<ProductId, mpsc::UnboundedSender<Waiting>>>,
}

impl Admissions {
    /// Admits `game` of `player` through `product`'s lane (started on first use, on `conn`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn admit(
        &self,
        conn: &RedisConn,
        keys: ProductKeys,
        product: &ProductId,
        player: &PlayerId,
        game: &GameId,
        now_ms: u64,
        limits: &PlayerLimits,
        grace: Duration,
    ) -> StoreResult<Option<LimitRefusal>> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            player: player.clone(),
            game: game.clone(),
            now_ms,
            limits: *limits,
            grace,
            answer,
        };
        {
            let mut lanes = self.lanes.lock().expect("admission lanes poisoned");
            let lane = lanes
                .entry(product.clone())
                .or_insert_with(|| start_lane(conn, keys.clone()));
            if let Err(mpsc::error::SendError(waiting)) = lane.send(waiting) {
                // The lane's task is gone (the runtime it ran on shut down): start another.
                *lane = start_lane(conn, keys);
                let _ = lane.send(waiting);
            }
        }
        answered
            .await
            .unwrap_or_else(|_| Err(unexpected("admit_create", &["lane stopped".into()])))
    }
}

fn start_lane(conn: &RedisConn, keys: ProductKeys) -> mpsc::UnboundedSender<Waiting> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(run_lane(conn.clone(), keys, receiver));
    sender
}

/// Takes the waiting admissions of one product in groups until every sender is gone.
async fn run_lane(
    conn: RedisConn,
    keys: ProductKeys,
    mut receiver: mpsc::UnboundedReceiver<Waiting>,
) {
    let mut carried: VecDeque<Waiting> = VecDeque::new();
    loop {
        let first = match carried.pop_front() {
            Some(waiting) => waiting,
            None => match receiver.recv().await {
                Some(waiting) => waiting,
                None => return,
            },
        };
        let mut group = vec![first];
        // Everything already waiting joins the group, up to its size; an admission under
        // other limits (only tests mix them) waits for the next group.
        while group.len() < MAX_GROUP {
            let next = match carried.pop_front() {
                Some(waiting) => waiting,
                None => match receiver.try_recv() {
                    Ok(waiting) => waiting,
                    Err(_) => break,
                },
            };
            if next.limits == group[0].limits && next.grace == group[0].grace {
                group.push(next);
            } else {
                carried.push_back(next);
                break;
            }
        }
        let answers = admit_group(&conn, &keys, &group).await;
        match answers {
            Ok(answers) => {
                for (waiting, answer) in group.into_iter().zip(answers) {
                    let _ = waiting.answer.send(Ok(answer));
                }
            }
            Err(err) => {
                for waiting in group {
                    let _ = waiting.answer.send(Err(duplicate(&err)));
                }
            }
        }
    }
}

/// One script call deciding every admission of `group`, in order.
async fn admit_group(
    conn: &RedisConn,
    keys: &ProductKeys,
    group: &[Waiting],
) -> StoreResult<Vec<Option<LimitRefusal>>> {
    let (limits, grace) = (&group[0].limits, group[0].grace);
    let mut invocation = SCRIPTS.admit_create.prepare_invoke();
    invocation
        .arg(limits.max_live_games)
        .arg(limits.creates_per_sec)
        .arg(limits.create_burst)
        .arg(keys.game_prefix())
        .arg(grace.as_millis() as u64)
        .arg(PLAYER_CREATES_TTL.as_millis() as u64);
    for waiting in group {
        invocation
            .key(keys.player_creates(&waiting.player))
            .arg(waiting.game.as_str())
            .arg(waiting.now_ms);
    }
    let mut conn = conn.clone();
    let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
    if reply.len() != group.len() * 2 {
        return Err(unexpected("admit_create", &reply));
    }
    reply
        .chunks(2)
        .map(|answer| match (answer[0].as_str(), answer[1].as_str()) {
            ("admitted", _) => Ok(None),
            (kind, millis) => LimitRefusal::from_reply(kind, millis)
                .map(Some)
                .ok_or_else(|| unexpected("admit_create", &reply)),
        })
        .collect()
}

/// The same failure for every admission of a failed group.
fn duplicate(err: &StoreError) -> StoreError {
    match err {
        StoreError::Redis(err) => StoreError::Redis(err.clone()),
        StoreError::UnexpectedReply { script, reply } => StoreError::UnexpectedReply {
            script,
            reply: reply.clone(),
        },
        other => unexpected("admit_create", &[other.to_string()]),
    }
}
