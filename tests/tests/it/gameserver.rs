//! The reference game server (`mm-gameserver`) and the game-server API client, end to end:
//! a real redis-server, the real server in-process (or as its binary), the real client, and
//! players on real WebSockets. The misbehaving fake is used only for the client's timeout,
//! retry and breaker behaviour.

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mm_common::gameserver::{
    BreakerState, CallError, ClientOptions, CreateGameRequest, DeleteOutcome, GameServerClient,
    GameServerEndpoint, JoinTicket, Operation, SecretString, ServerHealth,
};
use mm_common::{GameId, Keys, PlayerId, ProductId, ServerId};
use mm_gameserver::{GameServerConfig, RunningGameServer};
use mm_testkit::RedisServer;
use mm_testkit::fake_gameserver::{Behaviour, FakeGameServer, Route};
use mm_testkit::poll;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(10);
const API_KEY: &str = "gs-test-key";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Setup {
    redis: RedisServer,
    server: RunningGameServer,
    client: GameServerClient,
    product: ProductId,
}

async fn setup(tweak: impl FnOnce(&mut GameServerConfig)) -> Setup {
    let redis = RedisServer::start().expect("redis-server");
    let product = ProductId::new("chess").unwrap();
    let mut config = GameServerConfig::new(
        ServerId::new("gs-1").unwrap(),
        product.clone(),
        API_KEY,
        redis.url(),
    );
    config.heartbeat_interval = Duration::ZERO;
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = mm_gameserver::spawn(config, listener).await.expect("spawn");
    let client = GameServerClient::new(ClientOptions::default()).unwrap();
    Setup {
        redis,
        server,
        client,
        product,
    }
}

fn player(name: &str) -> PlayerId {
    PlayerId::new(name).unwrap()
}

impl Setup {
    fn request(&self, capacity: u32, creator: &str) -> CreateGameRequest {
        CreateGameRequest {
            game_id: GameId::generate(&self.product),
            product: self.product.clone(),
            capacity,
            creator_id: player(creator),
            settings: json!({"map": "classic"}),
        }
    }

    async fn create(&self, capacity: u32, creator: &str) -> (GameId, JoinTicket) {
        let request = self.request(capacity, creator);
        let ticket = self
            .client
            .create_game(&self.server.endpoint(), &request)
            .await
            .expect("create_game");
        (request.game_id, ticket)
    }

    async fn add(&self, game: &GameId, name: &str) -> Result<JoinTicket, CallError> {
        self.client
            .add_player(&self.server.endpoint(), game, &player(name))
            .await
    }

    /// The stream's entries for `game`, as field maps, in stream order.
    async fn events(&self, game: &GameId) -> Vec<HashMap<String, String>> {
        let key = Keys::new("mm").product(&self.product).events();
        let mut conn = self.redis.connection().await;
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        entries
            .into_iter()
            .map(|(_, fields)| fields)
            .filter(|fields| fields.get("game_id").map(String::as_str) == Some(game.as_str()))
            .collect()
    }

    /// Waits until `game`'s event types are exactly `kinds`; returns the entries. On timeout,
    /// the panic shows what the stream held.
    async fn wait_events(&self, game: &GameId, kinds: &[&str]) -> Vec<HashMap<String, String>> {
        let seen = std::sync::Mutex::new(Vec::<String>::new());
        let wait = poll::until("events", WAIT * 2, || async {
            let events = self.events(game).await;
            let types: Vec<String> = events.iter().map(|e| e["type"].clone()).collect();
            let done = types == kinds;
            *seen.lock().unwrap() = types;
            done.then_some(events)
        });
        match tokio::time::timeout(WAIT, wait).await {
            Ok(events) => events,
            Err(_) => panic!(
                "expected events {kinds:?} for {game}, the stream has {:?}",
                seen.lock().unwrap()
            ),
        }
    }
}

async fn connect(ticket: &JoinTicket) -> Ws {
    let url = format!("{}?token={}", ticket.socket_url, ticket.token);
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket connect");
    ws
}

/// The HTTP status a refused WebSocket connection got.
async fn refused(url: String) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => panic!("the connection was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// The next JSON text frame.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("socket healthy");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame; returns its code.
async fn close_code(ws: &mut Ws) -> CloseCode {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the close frame in time");
        match message {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| f.code).unwrap_or(CloseCode::Status);
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn create_answers_201_ticket_and_creator_connect_writes_creator_joined() {
    let s = setup(|_| {}).await;
    let (game, ticket) = s.create(2, "alice").await;
    assert_eq!(
        ticket.socket_url,
        format!("ws://{}/ws/{}", s.server.addr(), game),
        "players connect to the game's socket on this server"
    );
    assert!(ticket.token.len() >= 32, "token carries at least 128 bits");
    assert_eq!(s.server.game_count(), 1);

    let before = mm_common::time::now_ms();
    let mut alice = connect(&ticket).await;
    let welcome = next_json(&mut alice).await;
    assert_eq!(
        welcome,
        json!({"type": "welcome", "game_id": game, "player_id": "alice", "players": ["alice"]})
    );
    let events = s.wait_events(&game, &["creator_joined"]).await;
    let event = &events[0];
    assert_eq!(event["game_id"], game.as_str());
    assert_eq!(event["server_id"], "gs-1");
    assert_eq!(event["player_id"], "alice");
    let ts: u64 = event["ts"].parse().expect("ts is Unix ms");
    assert!(ts >= before && ts <= mm_common::time::now_ms());
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn wrong_api_key_is_refused_and_the_error_names_server_and_operation() {
    let s = setup(|_| {}).await;
    let mut endpoint = s.server.endpoint();
    endpoint.api_key = SecretString::from("not-the-key".to_string());
    let err = s
        .client
        .create_game(&endpoint, &s.request(2, "alice"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_server_fault(), "a refusal is not a server fault");
    let message = err.to_string();
    assert!(
        message.contains("gs-1") && message.contains("create_game") && message.contains("401"),
        "{message}"
    );
    assert!(!message.contains("not-the-key"), "the key is never shown");
    let err = s.client.health(&endpoint).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.op(), Operation::Health);
    assert_eq!(s.server.game_count(), 0, "nothing was created");
    assert_eq!(
        s.client.breaker_state(&endpoint.id),
        BreakerState::Closed,
        "refusals do not trip the breaker"
    );
}

#[tokio::test]
async fn a_player_who_was_in_a_started_game_gets_a_fresh_token_but_a_stranger_does_not() {
    let s = setup(|c| {
        c.start_delay = Duration::from_millis(20);
        c.play_time = Duration::from_secs(120);
    })
    .await;
    let (game, ticket) = s.create(2, "alice").await;
    let _alice = connect(&ticket).await;
    let bob_ticket = s.add(&game, "bob").await.expect("add_player");
    let bob = connect(&bob_ticket).await;
    let started = [
        "creator_joined",
        "player_joined",
        "all_players_joined",
        "game_started",
    ];
    s.wait_events(&game, &started).await;
    let refused = |result: Result<JoinTicket, CallError>| match result {
        Err(err) => err.status(),
        Ok(ticket) => panic!("a ticket was issued: {ticket:?}"),
    };
    assert_eq!(
        refused(s.add(&game, "bob").await),
        Some(409),
        "bob is still connected"
    );

    drop(bob);
    let left = [&started[..], &["player_left"]].concat();
    s.wait_events(&game, &left).await;
    assert_eq!(
        refused(s.add(&game, "carol").await),
        Some(409),
        "a stranger cannot enter a started game"
    );
    let fresh = s.add(&game, "bob").await.expect("a rejoin ticket");
    assert_ne!(fresh.token, bob_ticket.token);
    let mut bob = connect(&fresh).await;
    assert_eq!(next_json(&mut bob).await["type"], "welcome");
    let back = [&left[..], &["player_joined"]].concat();
    s.wait_events(&game, &back).await;
}

#[tokio::test]
async fn a_full_game_starts_and_ends_with_events_in_order_and_closes_sockets() {
    let s = setup(|c| {
        c.start_delay = Duration::from_millis(50);
        c.play_time = Duration::from_millis(200);
    })
    .await;
    let (game, ticket) = s.create(2, "alice").await;
    let mut alice = connect(&ticket).await;
    next_json(&mut alice).await;
    s.wait_events(&game, &["creator_joined"]).await;

    let bob_ticket = s.add(&game, "bob").await.expect("add_player");
    assert_eq!(bob_ticket.socket_url, ticket.socket_url);
    let mut bob = connect(&bob_ticket).await;
    assert_eq!(
        next_json(&mut bob).await,
        json!({"type": "welcome", "game_id": game, "player_id": "bob", "players": ["alice", "bob"]})
    );
    assert_eq!(
        next_json(&mut alice).await,
        json!({"type": "player_joined", "player_id": "bob"})
    );

    let events = s
        .wait_events(
            &game,
            &[
                "creator_joined",
                "player_joined",
                "all_players_joined",
                "game_started",
                "game_ended",
            ],
        )
        .await;
    assert_eq!(events[1]["player_id"], "bob");
    assert!(events.iter().all(|e| e["server_id"] == "gs-1"));
    let ts: Vec<u64> = events.iter().map(|e| e["ts"].parse().unwrap()).collect();
    assert!(ts.is_sorted(), "timestamps follow the order: {ts:?}");
    assert!(ts[4] - ts[3] >= 200, "play lasted play_time: {ts:?}");

    for ws in [&mut alice, &mut bob] {
        assert_eq!(next_json(ws).await, json!({"type": "started"}));
        assert_eq!(next_json(ws).await, json!({"type": "ended"}));
        assert_eq!(close_code(ws).await, CloseCode::Normal);
    }
    let health = s.client.health(&s.server.endpoint()).await.unwrap();
    assert_eq!(health.games, 0, "an ended game is dropped");
    assert_eq!(
        s.events(&game).await.len(),
        5,
        "closing sockets after the end writes no player_left"
    );
    let err = s.add(&game, "carol").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn a_player_leaving_before_the_start_writes_player_left_and_cancels_the_start() {
    let s = setup(|c| {
        c.start_delay = Duration::from_millis(300);
        c.play_time = Duration::from_millis(50);
    })
    .await;
    let (game, ticket) = s.create(2, "alice").await;
    let mut alice = connect(&ticket).await;
    next_json(&mut alice).await;
    let mut bob = connect(&s.add(&game, "bob").await.unwrap()).await;
    next_json(&mut bob).await;
    next_json(&mut alice).await; // bob joined

    // Bob leaves by message, before the start.
    bob.send(Message::text(r#"{"type":"leave"}"#))
        .await
        .unwrap();
    assert_eq!(close_code(&mut bob).await, CloseCode::Normal);
    assert_eq!(
        next_json(&mut alice).await,
        json!({"type": "player_left", "player_id": "bob"})
    );
    s.wait_events(
        &game,
        &[
            "creator_joined",
            "player_joined",
            "all_players_joined",
            "player_left",
        ],
    )
    .await;

    // The seat is free again: carol fills the game, which then starts once and ends.
    let mut carol = connect(&s.add(&game, "carol").await.unwrap()).await;
    next_json(&mut carol).await;
    let events = s
        .wait_events(
            &game,
            &[
                "creator_joined",
                "player_joined",
                "all_players_joined",
                "player_left",
                "player_joined",
                "all_players_joined",
                "game_started",
                "game_ended",
            ],
        )
        .await;
    assert_eq!(events[3]["player_id"], "bob");
    assert_eq!(events[4]["player_id"], "carol");
}

#[tokio::test]
async fn closing_the_socket_before_the_start_writes_player_left() {
    let s = setup(|_| {}).await;
    let (game, ticket) = s.create(3, "alice").await;
    let mut alice = connect(&ticket).await;
    next_json(&mut alice).await;
    let mut bob = connect(&s.add(&game, "bob").await.unwrap()).await;
    next_json(&mut bob).await;
    bob.close(None).await.unwrap();
    let events = s
        .wait_events(&game, &["creator_joined", "player_joined", "player_left"])
        .await;
    assert_eq!(events[2]["player_id"], "bob");
}

#[tokio::test]
async fn tokens_are_single_use_bound_to_their_game_and_expire() {
    let s = setup(|_| {}).await;
    let (game, ticket) = s.create(3, "alice").await;
    let (_other_game, other_ticket) = s.create(3, "zoe").await;

    let mut alice = connect(&ticket).await;
    next_json(&mut alice).await;
    let reused = format!("{}?token={}", ticket.socket_url, ticket.token);
    assert_eq!(refused(reused).await, 401, "a used token is refused");

    let foreign = format!("{}?token={}", ticket.socket_url, other_ticket.token);
    assert_eq!(
        refused(foreign).await,
        401,
        "another game's token is refused"
    );
    assert_eq!(refused(ticket.socket_url.clone()).await, 401, "no token");
    let wrong = format!("{}?token=deadbeef", ticket.socket_url);
    assert_eq!(refused(wrong).await, 401);

    // The refusals consumed nothing: zoe's own token still works.
    let mut zoe = connect(&other_ticket).await;
    next_json(&mut zoe).await;
    // Events are written asynchronously: wait for alice's own join, then check that it is
    // the game's only event.
    s.wait_events(&game, &["creator_joined"]).await;
    assert_eq!(s.events(&game).await.len(), 1, "refusals write no events");

    let expiring = setup(|c| c.token_ttl = Duration::ZERO).await;
    let (_, ticket) = expiring.create(2, "alice").await;
    let url = format!("{}?token={}", ticket.socket_url, ticket.token);
    assert_eq!(refused(url).await, 401, "an expired token is refused");
}

#[tokio::test]
async fn delete_closes_sockets_writes_no_event_and_a_second_delete_is_already_gone() {
    let s = setup(|_| {}).await;
    let endpoint = s.server.endpoint();
    let (game, ticket) = s.create(2, "alice").await;
    let mut alice = connect(&ticket).await;
    next_json(&mut alice).await;
    s.wait_events(&game, &["creator_joined"]).await;

    let outcome = s.client.delete_game(&endpoint, &game).await.unwrap();
    assert_eq!(outcome, DeleteOutcome::Deleted);
    assert_eq!(close_code(&mut alice).await, CloseCode::Normal);
    assert_eq!(
        s.client.delete_game(&endpoint, &game).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(s.add(&game, "bob").await.unwrap_err().status(), Some(404));
    assert_eq!(
        s.client.health(&endpoint).await.unwrap(),
        ServerHealth {
            games: 0,
            max_games: 100
        }
    );

    // Events are written in order: once a later game's event is in the stream, anything the
    // deleted game could have written would be too.
    let (later, later_ticket) = s.create(2, "carol").await;
    let _carol = connect(&later_ticket).await;
    s.wait_events(&later, &["creator_joined"]).await;
    assert_eq!(s.events(&game).await.len(), 1, "deleting writes no event");
}

#[tokio::test]
async fn health_counts_games_and_the_server_refuses_what_it_cannot_host() {
    let s = setup(|c| c.max_games = 2).await;
    let endpoint = s.server.endpoint();
    let health = |games| ServerHealth {
        games,
        max_games: 2,
    };
    assert_eq!(s.client.health(&endpoint).await.unwrap(), health(0));
    let (game, _) = s.create(2, "alice").await;
    assert_eq!(s.client.health(&endpoint).await.unwrap(), health(1));

    let mut duplicate = s.request(2, "bob");
    duplicate.game_id = game.clone();
    let err = s
        .client
        .create_game(&endpoint, &duplicate)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409), "{err}");

    let mut other_product = s.request(2, "bob");
    other_product.product = ProductId::new("poker").unwrap();
    let err = s
        .client
        .create_game(&endpoint, &other_product)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("poker"), "{err}");

    let err = s
        .client
        .create_game(&endpoint, &s.request(0, "bob"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");

    s.create(2, "bob").await;
    let err = s
        .client
        .create_game(&endpoint, &s.request(2, "carol"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503), "a full server answers 503: {err}");
    assert!(err.is_server_fault());
    assert_eq!(s.client.health(&endpoint).await.unwrap(), health(2));
}

#[tokio::test]
async fn seats_count_connected_players_and_outstanding_tokens() {
    let s = setup(|_| {}).await;
    let (game, creator_ticket) = s.create(2, "alice").await;
    let bob = s.add(&game, "bob").await.expect("the second seat");
    let err = s.add(&game, "carol").await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(409),
        "creator's and bob's tokens hold both seats"
    );
    assert!(!err.is_server_fault());
    assert!(err.to_string().contains("add_player"), "{err}");

    // The creator may ask again: the new token replaces the old one.
    let again = s.add(&game, "alice").await.expect("the creator asks again");
    let old = format!(
        "{}?token={}",
        creator_ticket.socket_url, creator_ticket.token
    );
    assert_eq!(refused(old).await, 401, "the replaced token is void");
    let mut alice = connect(&again).await;
    next_json(&mut alice).await;
    let _bob = connect(&bob).await;
    s.wait_events(
        &game,
        &["creator_joined", "player_joined", "all_players_joined"],
    )
    .await;
    assert_eq!(s.add(&game, "carol").await.unwrap_err().status(), Some(409));
}

#[tokio::test]
async fn heartbeats_are_written_for_games_with_players_connected() {
    let s = setup(|c| c.heartbeat_interval = Duration::from_millis(20)).await;
    let (idle, _) = s.create(2, "bob").await;
    let (game, ticket) = s.create(2, "alice").await;
    let mut alice = connect(&ticket).await;
    next_json(&mut alice).await;
    poll::until("two heartbeats", WAIT, || async {
        let events = s.events(&game).await;
        let beats = events.iter().filter(|e| e["type"] == "heartbeat").count();
        (beats >= 2).then_some(())
    })
    .await;
    assert!(
        s.events(&idle).await.is_empty(),
        "a game nobody is connected to gets no heartbeat"
    );
}

#[tokio::test]
async fn events_written_while_redis_is_down_arrive_once_it_is_back() {
    let mut s = setup(|_| {}).await;
    let (game, ticket) = s.create(2, "alice").await;
    s.redis.kill();
    let mut alice = connect(&ticket).await;
    next_json(&mut alice).await;
    s.redis.restart().unwrap();
    s.wait_events(&game, &["creator_joined"]).await;
    assert_eq!(
        s.client.health(&s.server.endpoint()).await.unwrap().games,
        1,
        "the server kept running"
    );
}

// ---- the client against the misbehaving fake ----

fn client(options: ClientOptions) -> GameServerClient {
    GameServerClient::new(options).unwrap()
}

fn quick() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        retries: 2,
        retry_backoff: Duration::from_millis(5),
        breaker_failures: 0,
        breaker_cooldown: Duration::from_secs(1),
    }
}

fn any_create() -> CreateGameRequest {
    let product = ProductId::new("chess").unwrap();
    CreateGameRequest {
        game_id: GameId::generate(&product),
        product,
        capacity: 2,
        creator_id: player("alice"),
        settings: Value::Null,
    }
}

#[tokio::test]
async fn the_client_retries_delete_on_503_but_never_retries_create() {
    let fake = FakeGameServer::start().await.unwrap();
    let endpoint = fake.endpoint("gs-fake");
    let client = client(quick());
    let game = GameId::new("chess.g1").unwrap();

    fake.push(Route::DeleteGame, Behaviour::Status(503));
    fake.push(Route::DeleteGame, Behaviour::Status(503));
    let outcome = client.delete_game(&endpoint, &game).await.unwrap();
    assert_eq!(outcome, DeleteOutcome::Deleted);
    assert_eq!(
        fake.calls(Route::DeleteGame),
        3,
        "two retries, then success"
    );

    fake.set(Route::DeleteGame, Behaviour::Status(503));
    let err = client.delete_game(&endpoint, &game).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(
        fake.calls(Route::DeleteGame),
        6,
        "1 + retries attempts, then give up"
    );

    fake.set(Route::DeleteGame, Behaviour::Status(409));
    client.delete_game(&endpoint, &game).await.unwrap_err();
    assert_eq!(fake.calls(Route::DeleteGame), 7, "a refusal is not retried");

    fake.set(Route::CreateGame, Behaviour::Status(503));
    let err = client
        .create_game(&endpoint, &any_create())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(fake.calls(Route::CreateGame), 1, "create is never retried");

    fake.set(Route::CreateGame, Behaviour::Drop);
    let err = client
        .create_game(&endpoint, &any_create())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Connect { .. }), "{err:?}");
    assert_eq!(
        fake.calls(Route::CreateGame),
        2,
        "not even after a lost answer"
    );

    fake.set(Route::AddPlayer, Behaviour::Status(500));
    client
        .add_player(&endpoint, &game, &player("bob"))
        .await
        .unwrap_err();
    assert_eq!(
        fake.calls(Route::AddPlayer),
        1,
        "add_player is never retried"
    );
}

#[tokio::test]
async fn the_breaker_opens_after_repeated_failures_fails_fast_and_closes_after_cooldown() {
    let fake = FakeGameServer::start().await.unwrap();
    let endpoint = fake.endpoint("gs-flaky");
    let client = client(ClientOptions {
        retries: 0,
        breaker_failures: 3,
        breaker_cooldown: Duration::from_millis(200),
        ..quick()
    });
    fake.set(Route::Health, Behaviour::Status(500));
    fake.set(Route::CreateGame, Behaviour::Drop);

    client.health(&endpoint).await.unwrap_err();
    client
        .create_game(&endpoint, &any_create())
        .await
        .unwrap_err();
    assert_eq!(client.breaker_state(&endpoint.id), BreakerState::Closed);
    client.health(&endpoint).await.unwrap_err();
    assert_eq!(client.breaker_state(&endpoint.id), BreakerState::Open);
    let seen = (fake.calls(Route::Health), fake.calls(Route::CreateGame));

    let err = client.health(&endpoint).await.unwrap_err();
    assert!(matches!(err, CallError::CircuitOpen { .. }), "{err:?}");
    assert!(err.is_server_fault());
    assert!(err.to_string().contains("gs-flaky"), "{err}");
    let err = client
        .create_game(&endpoint, &any_create())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::CircuitOpen { .. }), "{err:?}");
    assert_eq!(
        (fake.calls(Route::Health), fake.calls(Route::CreateGame)),
        seen,
        "an open breaker sends nothing"
    );
    let clone = client.clone();
    assert_eq!(
        clone.breaker_state(&endpoint.id),
        BreakerState::Open,
        "clones share breakers"
    );
    let healthy = FakeGameServer::start().await.unwrap();
    client
        .health(&healthy.endpoint("gs-healthy"))
        .await
        .expect("other servers are unaffected");

    // The server recovers; after the cooldown one trial call goes through and closes it.
    fake.set(Route::Health, Behaviour::Normal);
    poll::until("the breaker to let a trial through", WAIT, || async {
        client.health(&endpoint).await.ok()
    })
    .await;
    assert_eq!(client.breaker_state(&endpoint.id), BreakerState::Closed);
    assert_eq!(
        fake.calls(Route::Health),
        seen.0 + 1,
        "exactly one trial call"
    );
}

#[tokio::test]
async fn a_slow_server_gives_a_timeout_naming_server_and_operation() {
    let fake = FakeGameServer::start().await.unwrap();
    let endpoint = fake.endpoint("gs-slow");
    let client = client(ClientOptions {
        request_timeout: Duration::from_millis(100),
        retries: 1,
        ..quick()
    });
    fake.set(Route::CreateGame, Behaviour::Delay(Duration::from_secs(5)));
    let err = client
        .create_game(&endpoint, &any_create())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Timeout { server, op: Operation::CreateGame } if server.as_str() == "gs-slow"),
        "{err:?}"
    );
    assert!(err.is_server_fault());
    assert!(err.to_string().contains("gs-slow") && err.to_string().contains("create_game"));

    fake.set(Route::Health, Behaviour::Delay(Duration::from_secs(5)));
    let err = client.health(&endpoint).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert_eq!(
        fake.calls(Route::Health),
        2,
        "a timed-out health check is retried"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let fake = FakeGameServer::start().await.unwrap();
    let mut endpoint = fake.endpoint("gs-gone");
    drop(fake);
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    endpoint.api_url = format!("http://127.0.0.1:{port}/api").parse().unwrap();
    let err = client(ClientOptions {
        retries: 0,
        ..quick()
    })
    .delete_game(&endpoint, &GameId::new("chess.g1").unwrap())
    .await
    .unwrap_err();
    assert!(matches!(err, CallError::Connect { .. }), "{err:?}");
    assert!(err.is_server_fault());
    let message = err.to_string();
    assert!(
        message.contains("gs-gone") && message.contains("delete_game"),
        "{message}"
    );
}

#[tokio::test]
async fn the_binary_prints_its_address_serves_and_stops_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let redis = RedisServer::start().unwrap();
    let bin = mm_testkit::daemon_process::gameserver_binary().unwrap();

    let help = std::process::Command::new(&bin)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--id",
        "--product",
        "--bind",
        "--api-key",
        "MM_GS_API_KEY",
        "--redis-url",
        "--key-prefix",
        "--max-games",
        "--start-delay-ms",
        "--play-time-ms",
        "--heartbeat-ms",
        "--token-ttl-secs",
    ] {
        assert!(help.contains(flag), "--help describes {flag}:\n{help}");
    }

    let mut child = tokio::process::Command::new(&bin)
        .args(["--id", "gs-bin", "--product", "chess", "--max-games", "7"])
        .args(["--redis-url", &redis.url()])
        .env("MM_GS_API_KEY", API_KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the listening line in time")
        .unwrap()
        .expect("a line");
    let url = line
        .strip_prefix("mm-gameserver listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let endpoint = GameServerEndpoint {
        id: ServerId::new("gs-bin").unwrap(),
        api_url: url.parse().unwrap(),
        api_key: SecretString::from(API_KEY.to_string()),
    };
    let health = client(quick()).health(&endpoint).await.unwrap();
    assert_eq!(
        health,
        ServerHealth {
            games: 0,
            max_games: 7
        }
    );

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "clean exit: {exit:?}");
}
