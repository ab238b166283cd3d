//! Game state: the server's registry of games and each game's seats, tokens, sessions and
//! timers.
//!
//! Each [`Game`] keeps its state behind a mutex that is never held across an `.await`; every
//! change of a game and the events it causes are made under that lock, so a game's events are
//! queued in the order they happened. Timers are tasks that re-check, under the lock, that
//! the phase they were started for is still current (a generation number), so a cancelled
//! start or a deleted game never fires late.
//!
//! Seats: a player holds a seat while connected or while holding an unexpired, unused token.
//! A player holds at most one token (asking again replaces it). A player who was connected to
//! a game that has started may come back while it is played (a rejoin): `add_player` issues
//! them a fresh token whatever the seats, since their seat is theirs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use mm_common::gameserver::{CreateGameRequest, JoinTicket};
use mm_common::model::EventKind;
use mm_common::{GameId, PlayerId};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::GameServerConfig;
use super::events::EventSink;

/// A refusal, as the HTTP API reports it: status and a JSON `{error}` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// What the server sends down one player's socket.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// A JSON text frame.
    Text(String),
    /// A close frame with this code and reason; the session ends.
    Close(u16, &'static str),
}

/// WebSocket close code: normal closure.
pub(crate) const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code: the server is going away.
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;

/// State shared by every handler, session and timer of one server.
pub(crate) struct Server {
    pub(crate) config: GameServerConfig,
    /// `ws://addr` or the configured public base, without a trailing slash.
    pub(crate) ws_base: String,
    pub(crate) events: EventSink,
    games: Mutex<HashMap<GameId, Arc<Game>>>,
    next_connection: AtomicU64,
}

impl Server {
    pub(crate) fn new(config: GameServerConfig, ws_base: String, events: EventSink) -> Self {
        Self {
            config,
            ws_base: ws_base.trim_end_matches('/').to_string(),
            events,
            games: Mutex::default(),
            next_connection: AtomicU64::new(1),
        }
    }

    fn games(&self) -> MutexGuard<'_, HashMap<GameId, Arc<Game>>> {
        self.games.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of games held.
    pub(crate) fn game_count(&self) -> usize {
        self.games().len()
    }

    /// The game, if held.
    pub(crate) fn game(&self, id: &GameId) -> Option<Arc<Game>> {
        self.games().get(id).cloned()
    }

    /// The ids of every game held, sorted.
    pub(crate) fn game_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.games().keys().map(|id| id.to_string()).collect();
        ids.sort_unstable();
        ids
    }

    /// Every game held.
    pub(crate) fn all_games(&self) -> Vec<Arc<Game>> {
        self.games().values().cloned().collect()
    }

    fn socket_url(&self, game: &GameId) -> String {
        format!("{}/ws/{}", self.ws_base, game)
    }

    /// `POST /games`: registers the game and issues the creator's ticket.
    pub(crate) fn create(&self, request: CreateGameRequest) -> Result<JoinTicket, Refusal> {
        if request.product != self.config.product {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "this server hosts product {:?}, not {:?}",
                    self.config.product.as_str(),
                    request.product.as_str()
                ),
            ));
        }
        if request.capacity == 0 {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "capacity must be at least 1",
            ));
        }
        let mut games = self.games();
        if games.contains_key(&request.game_id) {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                format!("game {} already exists", request.game_id),
            ));
        }
        if games.len() >= self.config.max_games as usize {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("server is full ({} games)", self.config.max_games),
            ));
        }
        let game = Arc::new(Game::new(&request));
        let token = game.issue_token(self, &request.creator_id)?;
        games.insert(request.game_id.clone(), game);
        tracing::info!(
            game = %request.game_id,
            capacity = request.capacity,
            creator = %request.creator_id,
            "game created"
        );
        Ok(JoinTicket {
            socket_url: self.socket_url(&request.game_id),
            token,
        })
    }

    /// `POST /games/{id}/players`.
    pub(crate) fn add_player(
        &self,
        game: &GameId,
        player: &PlayerId,
    ) -> Result<JoinTicket, Refusal> {
        let game = self
            .game(game)
            .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, format!("no game {game}")))?;
        let token = game.issue_token(self, player)?;
        Ok(JoinTicket {
            socket_url: self.socket_url(&game.id),
            token,
        })
    }

    /// `DELETE /games/{id}`: drops the game and closes its sockets; writes no event.
    pub(crate) fn delete(&self, id: &GameId) -> Result<(), Refusal> {
        let game = self
            .games()
            .remove(id)
            .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, format!("no game {id}")))?;
        game.finish(CLOSE_NORMAL, "game deleted");
        tracing::info!(game = %id, "game deleted");
        Ok(())
    }

    /// Closes every socket (going away) and forgets every game; writes no event.
    pub(crate) fn close_all(&self) {
        let games: Vec<Arc<Game>> = self.games().drain().map(|(_, game)| game).collect();
        for game in games {
            game.finish(CLOSE_GOING_AWAY, "server shutting down");
        }
    }

    /// Queues a heartbeat for every game with a player connected.
    pub(crate) fn heartbeat(&self) {
        for game in self.all_games() {
            let inner = game.lock();
            if inner.phase != Phase::Over && inner.live_count() > 0 {
                self.events.emit(EventKind::Heartbeat, &game.id, None);
            }
        }
    }

    fn remove_if_same(&self, game: &Arc<Game>) {
        let mut games = self.games();
        if games
            .get(&game.id)
            .is_some_and(|held| Arc::ptr_eq(held, game))
        {
            games.remove(&game.id);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Gathering players.
    Lobby,
    /// Full; `game_started` is due after the start delay.
    Starting,
    /// Playing; `game_ended` is due after the play time.
    Playing,
    /// Ended or deleted: no more events, no more players.
    Over,
}

#[derive(Debug)]
struct Token {
    player: PlayerId,
    expires: Instant,
}

#[derive(Debug)]
struct Session {
    connection: u64,
    tx: mpsc::UnboundedSender<Outbound>,
    /// False between the token check and the completed WebSocket upgrade.
    live: bool,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Bumped whenever a pending timer must no longer fire.
    generation: u64,
    creator_joined: bool,
    tokens: HashMap<String, Token>,
    sessions: HashMap<PlayerId, Session>,
    /// Live players in the order they connected.
    order: Vec<PlayerId>,
    /// Every player who has been connected at some point: who may rejoin once it started.
    members: std::collections::HashSet<PlayerId>,
}

impl Inner {
    fn live_count(&self) -> usize {
        self.sessions.values().filter(|s| s.live).count()
    }

    fn purge_expired(&mut self) {
        let now = Instant::now();
        self.tokens.retain(|_, token| token.expires > now);
    }

    fn broadcast(&self, message: &serde_json::Value, except: Option<&PlayerId>) {
        let text = message.to_string();
        for (player, session) in &self.sessions {
            if session.live && Some(player) != except {
                let _ = session.tx.send(Outbound::Text(text.clone()));
            }
        }
    }
}

/// A player admitted by token, whose WebSocket upgrade is under way.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) player: PlayerId,
    pub(crate) connection: u64,
    pub(crate) rx: mpsc::UnboundedReceiver<Outbound>,
}

/// One game.
#[derive(Debug)]
pub(crate) struct Game {
    pub(crate) id: GameId,
    capacity: u32,
    creator: PlayerId,
    inner: Mutex<Inner>,
}

impl Game {
    fn new(request: &CreateGameRequest) -> Self {
        Self {
            id: request.game_id.clone(),
            capacity: request.capacity,
            creator: request.creator_id.clone(),
            inner: Mutex::new(Inner {
                phase: Phase::Lobby,
                generation: 0,
                creator_joined: false,
                tokens: HashMap::new(),
                sessions: HashMap::new(),
                order: Vec::new(),
                members: std::collections::HashSet::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues `player` a token for a seat (replacing any token they hold).
    fn issue_token(&self, server: &Server, player: &PlayerId) -> Result<String, Refusal> {
        let mut inner = self.lock();
        let rejoining = inner.phase == Phase::Playing && inner.members.contains(player);
        if !matches!(inner.phase, Phase::Lobby | Phase::Starting) && !rejoining {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                format!("game {} has started or ended", self.id),
            ));
        }
        if inner.sessions.contains_key(player) {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                format!("player {player} is already connected to game {}", self.id),
            ));
        }
        inner.purge_expired();
        let holds_token = inner.tokens.values().any(|t| &t.player == player);
        let seats_taken = inner.sessions.len()
            + inner
                .tokens
                .values()
                .filter(|t| !inner.sessions.contains_key(&t.player))
                .map(|t| &t.player)
                .collect::<std::collections::HashSet<_>>()
                .len();
        if !holds_token && !rejoining && seats_taken >= self.capacity as usize {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                format!(
                    "game {} is full ({} of {} seats taken)",
                    self.id, seats_taken, self.capacity
                ),
            ));
        }
        inner.tokens.retain(|_, t| &t.player != player);
        let token = new_token();
        inner.tokens.insert(
            token.clone(),
            Token {
                player: player.clone(),
                expires: Instant::now() + server.config.token_ttl,
            },
        );
        Ok(token)
    }

    /// Checks and consumes `token` before the WebSocket upgrade: the player's seat becomes a
    /// (not yet live) session.
    pub(crate) fn admit(&self, server: &Server, token: &str) -> Result<Admission, Refusal> {
        let mut inner = self.lock();
        inner.purge_expired();
        let Some(token) = inner.tokens.remove(token) else {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "invalid, expired or already used token",
            ));
        };
        if inner.phase == Phase::Over {
            return Err(Refusal::new(StatusCode::CONFLICT, "game is over"));
        }
        if inner.sessions.contains_key(&token.player) {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                format!("player {} is already connected", token.player),
            ));
        }
        let connection = server.next_connection.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        inner.sessions.insert(
            token.player.clone(),
            Session {
                connection,
                tx,
                live: false,
            },
        );
        Ok(Admission {
            player: token.player,
            connection,
            rx,
        })
    }

    /// The upgrade completed: the player is in. Writes the join events, welcomes the player,
    /// tells the others and, if this filled the game, schedules the start. Returns false if
    /// the game was deleted meanwhile.
    pub(crate) fn connected(self: &Arc<Self>, server: &Arc<Server>, admission: &Admission) -> bool {
        let player = &admission.player;
        let mut inner = self.lock();
        let Some(session) = inner
            .sessions
            .get_mut(player)
            .filter(|s| s.connection == admission.connection)
        else {
            return false;
        };
        session.live = true;
        inner.order.push(player.clone());
        inner.members.insert(player.clone());
        if player == &self.creator && !inner.creator_joined {
            inner.creator_joined = true;
            server
                .events
                .emit(EventKind::CreatorJoined, &self.id, Some(player));
        } else {
            server
                .events
                .emit(EventKind::PlayerJoined, &self.id, Some(player));
        }
        tracing::info!(game = %self.id, player = %player, "player connected");
        let welcome = json!({
            "type": "welcome",
            "game_id": self.id,
            "player_id": player,
            "players": inner.order,
        });
        if let Some(session) = inner.sessions.get(player) {
            let _ = session.tx.send(Outbound::Text(welcome.to_string()));
        }
        inner.broadcast(
            &json!({"type": "player_joined", "player_id": player}),
            Some(player),
        );
        if inner.phase == Phase::Lobby && inner.live_count() >= self.capacity as usize {
            server
                .events
                .emit(EventKind::AllPlayersJoined, &self.id, None);
            inner.phase = Phase::Starting;
            inner.generation += 1;
            self.schedule(
                server,
                inner.generation,
                server.config.start_delay,
                Game::start,
            );
        }
        true
    }

    /// The player's socket closed (or the upgrade failed). Before the end, a live player's
    /// departure writes `player_left` and cancels a pending start.
    pub(crate) fn disconnected(&self, server: &Server, player: &PlayerId, connection: u64) {
        let mut inner = self.lock();
        let Some(session) = inner
            .sessions
            .get(player)
            .filter(|s| s.connection == connection)
        else {
            return;
        };
        let was_live = session.live;
        inner.sessions.remove(player);
        inner.order.retain(|p| p != player);
        if !was_live || inner.phase == Phase::Over {
            return;
        }
        server
            .events
            .emit(EventKind::PlayerLeft, &self.id, Some(player));
        tracing::info!(game = %self.id, player = %player, "player left");
        inner.broadcast(&json!({"type": "player_left", "player_id": player}), None);
        if inner.phase == Phase::Starting {
            inner.phase = Phase::Lobby;
            inner.generation += 1;
            tracing::info!(game = %self.id, "start cancelled: a player left");
        }
    }

    fn schedule(
        self: &Arc<Self>,
        server: &Arc<Server>,
        generation: u64,
        delay: Duration,
        fire: fn(&Arc<Game>, &Arc<Server>, u64),
    ) {
        let game = Arc::clone(self);
        let server = Arc::clone(server);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            fire(&game, &server, generation);
        });
    }

    fn start(self: &Arc<Self>, server: &Arc<Server>, generation: u64) {
        let mut inner = self.lock();
        if inner.phase != Phase::Starting || inner.generation != generation {
            return;
        }
        inner.phase = Phase::Playing;
        inner.generation += 1;
        server.events.emit(EventKind::GameStarted, &self.id, None);
        tracing::info!(game = %self.id, "game started");
        inner.broadcast(&json!({"type": "started"}), None);
        self.schedule(server, inner.generation, server.config.play_time, Game::end);
    }

    fn end(self: &Arc<Self>, server: &Arc<Server>, generation: u64) {
        {
            let inner = self.lock();
            if inner.phase != Phase::Playing || inner.generation != generation {
                return;
            }
            server.events.emit(EventKind::GameEnded, &self.id, None);
            tracing::info!(game = %self.id, "game ended");
            inner.broadcast(&json!({"type": "ended"}), None);
        }
        self.finish(CLOSE_NORMAL, "game ended");
        server.remove_if_same(self);
    }

    /// Marks the game over, closes every socket with `code` and forgets tokens and sessions.
    fn finish(&self, code: u16, reason: &'static str) {
        let mut inner = self.lock();
        inner.phase = Phase::Over;
        inner.generation += 1;
        inner.tokens.clear();
        inner.order.clear();
        for (_, session) in inner.sessions.drain() {
            let _ = session.tx.send(Outbound::Close(code, reason));
        }
    }
}

/// A fresh random token: 256 bits, hex.
fn new_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
