//! The event writer: one task that `XADD`s the events of section 4 to `P:{product}:events`.
//!
//! Events are queued (in the order the games produced them, since each game enqueues under
//! its own lock) and written one by one, so the stream shows each game's events in the order
//! they happened. When Redis is unreachable the writer logs an error and retries with
//! backoff, reconnecting as needed; after the last attempt it drops that event with an error
//! log and goes on. It never takes the server down.

use std::time::Duration;

use mm_common::model::{EntryId, Event, EventKind};
use mm_common::{GameId, PlayerId, ServerId};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};

/// Attempts per event before it is dropped.
const ATTEMPTS: u32 = 8;
/// First retry delay; doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The sending side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    server: ServerId,
    tx: mpsc::UnboundedSender<Event>,
}

impl EventSink {
    /// Queues one event, stamped now.
    pub(crate) fn emit(&self, kind: EventKind, game: &GameId, player: Option<&PlayerId>) {
        let event = Event {
            entry_id: EntryId::default(),
            kind,
            game_id: game.clone(),
            player_id: player.cloned(),
            server_id: self.server.clone(),
            ts_ms: mm_common::time::now_ms(),
        };
        tracing::debug!(game = %game, kind = kind.as_str(), player = ?player.map(PlayerId::as_str), "event");
        if self.tx.send(event).is_err() {
            tracing::debug!(game = %game, kind = kind.as_str(), "server stopping: event not written");
        }
    }
}

/// Where events go: one Redis, or a Redis Cluster (a comma-separated list of node URLs), whose
/// client routes the stream's `XADD` to the master of its slot and follows redirections.
enum EventClient {
    Node(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// A connection of an [`EventClient`].
enum EventConnection {
    Node(MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// The writing side, run as one task by [`EventWriter::run`].
pub(crate) struct EventWriter {
    client: EventClient,
    stream: String,
    rx: mpsc::UnboundedReceiver<Event>,
    connection: Option<EventConnection>,
}

impl EventWriter {
    /// A writer to `stream` on the Redis at `redis_url` (connected lazily) and its sink; a
    /// comma-separated list of URLs names the nodes of a Redis Cluster.
    pub(crate) fn new(
        redis_url: &str,
        stream: String,
        server: ServerId,
    ) -> anyhow::Result<(EventWriter, EventSink)> {
        let client = if redis_url.contains(',') {
            let nodes: Vec<&str> = redis_url.split(',').map(str::trim).collect();
            EventClient::Cluster(Box::new(
                redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(Duration::from_secs(2))
                    .build()
                    .map_err(|err| anyhow::anyhow!("invalid cluster nodes {redis_url:?}: {err}"))?,
            ))
        } else {
            EventClient::Node(
                redis::Client::open(redis_url)
                    .map_err(|err| anyhow::anyhow!("invalid Redis URL {redis_url:?}: {err}"))?,
            )
        };
        let (tx, rx) = mpsc::unbounded_channel();
        Ok((
            EventWriter {
                client,
                stream,
                rx,
                connection: None,
            },
            EventSink { server, tx },
        ))
    }

    /// Writes queued events until `stop` turns true, then writes what is already queued and
    /// returns.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let event = tokio::select! {
                event = self.rx.recv() => event,
                _ = stop.wait_for(|stopped| *stopped) => break,
            };
            match event {
                Some(event) => self.write(&event).await,
                None => return,
            }
        }
        while let Ok(event) = self.rx.try_recv() {
            self.write(&event).await;
        }
    }

    async fn write(&mut self, event: &Event) {
        let mut delay = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match self.try_write(event).await {
                Ok(()) => return,
                Err(err) if attempt < ATTEMPTS => {
                    tracing::error!(
                        stream = %self.stream,
                        game = %event.game_id,
                        kind = event.kind.as_str(),
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        error = %err,
                        "writing an event to Redis failed; retrying"
                    );
                    self.connection = None;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
                Err(err) => {
                    tracing::error!(
                        stream = %self.stream,
                        game = %event.game_id,
                        kind = event.kind.as_str(),
                        error = %err,
                        "writing an event to Redis failed {ATTEMPTS} times; event dropped"
                    );
                    self.connection = None;
                }
            }
        }
    }

    async fn try_write(&mut self, event: &Event) -> redis::RedisResult<()> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let connection = match &self.client {
                    EventClient::Node(client) => {
                        let config = AsyncConnectionConfig::new()
                            .set_connection_timeout(Some(Duration::from_secs(2)))
                            .set_response_timeout(Some(Duration::from_secs(2)));
                        EventConnection::Node(
                            client
                                .get_multiplexed_async_connection_with_config(&config)
                                .await?,
                        )
                    }
                    EventClient::Cluster(client) => {
                        EventConnection::Cluster(client.get_async_connection().await?)
                    }
                };
                self.connection.insert(connection)
            }
        };
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&self.stream).arg("*");
        for (field, value) in event.to_fields() {
            xadd.arg(field).arg(value);
        }
        let _id: String = match connection {
            EventConnection::Node(conn) => xadd.query_async(conn).await?,
            EventConnection::Cluster(conn) => xadd.query_async(conn).await?,
        };
        Ok(())
    }
}
