//! Script calls committed in groups, one *lane* per product.
//!
//! Some writes sit on every request's path (a create's admission, keeping a join's ticket).
//! Under load many requests of one product wait for such a write at the same moment; sending
//! each as its own script call makes Redis and this process pay a command's fixed cost
//! (parsing, dispatch, a reply, a task wake-up) per request.
//!
//! So each kind of grouped write ([`GroupedCall`]) has, per product, a lane: one task that
//! takes every request waiting for that product, sends them as one script call (the script
//! handles them one after the other, in arrival order, exactly as separate calls would), and
//! answers each caller. While a call is in flight the next group gathers; nothing ever waits
//! for a timer, so a lone request costs one channel hop more than a direct call, and a busy
//! product pays one round trip per group instead of per request. A group holds at most
//! [`MAX_GROUP`] requests, all of one product (one Redis Cluster slot).
//!
//! A lane's task holds only a connection and key names, never the [`Store`](super::Store), so
//! it ends when the last store clone (which holds the lane's sender) is dropped.
//!
//! Every kind counts its script calls and the requests they carried ([`GroupCounts`];
//! metrics `mm_store_grouped_calls_total` and `mm_store_grouped_requests_total`): their ratio
//! is the mean group size, which says how much of a call's fixed cost each request pays.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::connection::RedisConn;
use super::error::{StoreError, StoreResult, unexpected};
use crate::ids::ProductId;
use crate::keys::ProductKeys;

/// Most requests sent in one script call.
pub const MAX_GROUP: usize = 64;

/// A kind of write sent in groups: what one request carries, what it is answered, and the
/// script call that handles a group.
pub(super) trait GroupedCall: Send + Sync + 'static {
    /// One request.
    type Request: Send + 'static;
    /// Its answer.
    type Answer: Send + 'static;
    /// The script's name, for errors.
    const SCRIPT: &'static str;

    /// Whether `next` may share a script call with the group `first` started (a request that
    /// may not waits for the next group).
    fn groups_with(_first: &Self::Request, _next: &Self::Request) -> bool {
        true
    }

    /// One script call handling every request of `group`, in order: an answer per request,
    /// or the failure of the whole call.
    fn call(
        conn: RedisConn,
        keys: ProductKeys,
        group: &[Self::Request],
    ) -> impl Future<Output = StoreResult<Vec<StoreResult<Self::Answer>>>> + Send;
}

/// One request waiting for its group's call.
struct Waiting<C: GroupedCall> {
    request: C::Request,
    answer: oneshot::Sender<StoreResult<C::Answer>>,
}

/// The script calls one kind of grouped write made since the store was opened, and the
/// requests they carried (every product's lane together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCounts {
    /// The script (`reserve_seat`, `quick_join`, `keep_ticket`, `admit_create`).
    pub script: &'static str,
    /// Script calls sent.
    pub calls: u64,
    /// Requests those calls carried.
    pub requests: u64,
}

/// What the lanes of one kind count, shared with their tasks.
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    requests: AtomicU64,
}

/// The lanes of one kind of grouped write, for every product it was sent for.
pub(super) struct Lanes<C: GroupedCall> {
    lanes: Mutex<HashMap<ProductId, mpsc::UnboundedSender<Waiting<C>>>>,
    counters: Arc<Counters>,
}

impl<C: GroupedCall> Default for Lanes<C> {
    fn default() -> Self {
        Lanes {
            lanes: Mutex::new(HashMap::new()),
            counters: Arc::default(),
        }
    }
}

impl<C: GroupedCall> Lanes<C> {
    /// The calls and requests of this kind so far.
    pub(super) fn counts(&self) -> GroupCounts {
        GroupCounts {
            script: C::SCRIPT,
            calls: self.counters.calls.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
        }
    }

    /// Sends `request` through `product`'s lane (started on first use, on `conn`) and waits
    /// for its answer.
    pub(super) async fn send(
        &self,
        conn: &RedisConn,
        keys: ProductKeys,
        product: &ProductId,
        request: C::Request,
    ) -> StoreResult<C::Answer> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting { request, answer };
        {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            let lane = lanes
                .entry(product.clone())
                .or_insert_with(|| start_lane::<C>(conn, keys.clone(), &self.counters));
            if let Err(mpsc::error::SendError(waiting)) = lane.send(waiting) {
                // The lane's task is gone (the runtime it ran on shut down): start another.
                *lane = start_lane::<C>(conn, keys, &self.counters);
                let _ = lane.send(waiting);
            }
        }
        answered
            .await
            .unwrap_or_else(|_| Err(unexpected(C::SCRIPT, &["lane stopped".into()])))
    }
}

fn start_lane<C: GroupedCall>(
    conn: &RedisConn,
    keys: ProductKeys,
    counters: &Arc<Counters>,
) -> mpsc::UnboundedSender<Waiting<C>> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(run_lane::<C>(
        conn.clone(),
        keys,
        Arc::clone(counters),
        receiver,
    ));
    sender
}

/// Takes the waiting requests of one product in groups until every sender is gone.
async fn run_lane<C: GroupedCall>(
    conn: RedisConn,
    keys: ProductKeys,
    counters: Arc<Counters>,
    mut receiver: mpsc::UnboundedReceiver<Waiting<C>>,
) {
    let mut carried: VecDeque<Waiting<C>> = VecDeque::new();
    loop {
        let first = match carried.pop_front() {
            Some(waiting) => waiting,
            None => match receiver.recv().await {
                Some(waiting) => waiting,
                None => return,
            },
        };
        let mut group = vec![first];
        // Everything already waiting joins the group, up to its size; a request that may not
        // share the call waits for the next group.
        while group.len() < MAX_GROUP {
            let next = match carried.pop_front() {
                Some(waiting) => waiting,
                None => match receiver.try_recv() {
                    Ok(waiting) => waiting,
                    Err(_) => break,
                },
            };
            if C::groups_with(&group[0].request, &next.request) {
                group.push(next);
            } else {
                carried.push_back(next);
                break;
            }
        }
        let (requests, answers): (Vec<C::Request>, Vec<_>) = group
            .into_iter()
            .map(|waiting| (waiting.request, waiting.answer))
            .unzip();
        counters.calls.fetch_add(1, Ordering::Relaxed);
        counters
            .requests
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        match C::call(conn.clone(), keys.clone(), &requests).await {
            Ok(results) if results.len() == answers.len() => {
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(result);
                }
            }
            Ok(_) => {
                for answer in answers {
                    let _ = answer.send(Err(unexpected(
                        C::SCRIPT,
                        &["an answer count unlike the group's size".into()],
                    )));
                }
            }
            Err(err) => {
                for answer in answers {
                    let _ = answer.send(Err(duplicate(C::SCRIPT, &err)));
                }
            }
        }
    }
}

/// The same failure for every request of a failed group.
fn duplicate(script: &'static str, err: &StoreError) -> StoreError {
    match err {
        StoreError::Redis(err) => StoreError::Redis(err.clone()),
        StoreError::UnexpectedReply { script, reply } => StoreError::UnexpectedReply {
            script,
            reply: reply.clone(),
        },
        other => unexpected(script, &[other.to_string()]),
    }
}
