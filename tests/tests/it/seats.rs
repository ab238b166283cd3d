//! Quick join and rejoin end to end (contract 5.4): a real redis-server, the real reference
//! game servers over HTTP, players on real WebSockets, the lobby API over real HTTP. The storm
//! test prints a `FIGURES` line with the fill ratio it measured.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use mm_testkit::app::{ApiResponse, ServerSpec, TestApp, TestAppOptions, WsPlayer};
use mm_testkit::{invariants, poll, redis_stats};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn id_of(answer: &ApiResponse) -> String {
    answer.str("id").to_string()
}

fn assert_problem(answer: &ApiResponse, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.code(), Some(code), "{}", answer.text);
}

/// Waits until `GET /v1/games/{id}` satisfies `check`; returns that answer's body.
async fn wait_game(app: &TestApp, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    poll::until(&format!("game {id}: {what}"), WAIT, || async {
        let game = app.get_game("observer", id).await;
        (game.status == 200 && check(&game.body)).then_some(game.body)
    })
    .await
}

fn players_of(game: &Value) -> Vec<String> {
    game["players"]
        .as_array()
        .map(|players| {
            players
                .iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates a chess lobby of `capacity` for `host`, connects the host and waits until the
/// lobby is open (the creator's `creator_joined` applied).
async fn open_lobby(app: &TestApp, host: &str, capacity: u32, body: Value) -> (String, WsPlayer) {
    let mut body = body;
    body["product"] = json!("chess");
    body["capacity"] = json!(capacity);
    let created = app.create_game(host, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = id_of(&created);
    let socket = app.connect(&created).await.unwrap();
    wait_game(app, &id, "open", |game| {
        game["state"] == "creator_joined" && players_of(game).contains(&host.to_string())
    })
    .await;
    (id, socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_who_dropped_their_socket_mid_game_rejoins_with_a_fresh_ticket() {
    let app = TestApp::spawn(TestAppOptions {
        play_time: Duration::from_secs(120),
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let (id, _alice) = open_lobby(&app, "alice", 2, json!({})).await;
    let joined = app.join("bob", &id).await;
    assert_eq!(joined.status, 200, "{}", joined.text);
    let bob = app.connect(&joined).await.unwrap();
    wait_game(&app, &id, "in progress", |game| {
        game["state"] == "in_progress"
    })
    .await;

    // Bob's connection drops (no leave message): the server writes `player_left`.
    drop(bob);
    wait_game(&app, &id, "bob gone", |game| {
        !players_of(game).contains(&"bob".to_string())
    })
    .await;
    assert_problem(&app.join("bob", &id).await, 409, "game_not_open");

    let back = app.rejoin("bob", &id).await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(back.str("id"), id);
    assert_eq!(back.str("state"), "in_progress");
    assert_ne!(
        back.body["join"]["token"], joined.body["join"]["token"],
        "a fresh ticket"
    );
    let mut bob = app.connect(&back).await.unwrap();
    let welcome = bob.next_message().await.expect("a welcome message");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["player_id"], "bob", "{welcome}");
    wait_game(&app, &id, "bob back", |game| {
        game["state"] == "in_progress" && players_of(game).contains(&"bob".to_string())
    })
    .await;
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_ended_and_unknown_games_are_refused_a_rejoin() {
    let app = TestApp::spawn(TestAppOptions {
        play_time: Duration::from_millis(300),
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let (id, _alice) = open_lobby(&app, "alice", 2, json!({})).await;
    assert_problem(&app.rejoin("mallory", &id).await, 409, "not_in_game");
    let joined = app.join("bob", &id).await;
    let _bob = app.connect(&joined).await.unwrap();
    wait_game(&app, &id, "in progress or over", |game| {
        game["state"] == "in_progress" || game["state"] == "ended"
    })
    .await;
    wait_game(&app, &id, "ended", |game| game["state"] == "ended").await;
    assert_problem(&app.rejoin("bob", &id).await, 409, "game_not_open");
    assert_problem(&app.rejoin("mallory", &id).await, 409, "game_not_open");
    assert_problem(
        &app.rejoin("bob", "chess.00000000-0000-7000-8000-000000000000")
            .await,
        404,
        "game_not_found",
    );
    assert_problem(&app.rejoin("bob", "no$such").await, 400, "invalid_request");
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_who_left_a_lobby_rejoins_while_a_seat_is_free() {
    let app = TestApp::spawn(TestAppOptions::default()).await.unwrap();
    let (id, _alice) = open_lobby(&app, "alice", 3, json!({})).await;
    let joined = app.join("bob", &id).await;
    let bob = app.connect(&joined).await.unwrap();
    wait_game(&app, &id, "bob in", |game| {
        players_of(game).contains(&"bob".to_string())
    })
    .await;
    bob.leave().await;
    wait_game(&app, &id, "bob gone", |game| {
        !players_of(game).contains(&"bob".to_string())
    })
    .await;
    let back = app.rejoin("bob", &id).await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(
        back.body["seats_free"], 1,
        "bob holds a seat again: {}",
        back.text
    );
    let _bob = app.connect(&back).await.unwrap();
    wait_game(&app, &id, "bob back", |game| {
        players_of(game).contains(&"bob".to_string())
    })
    .await;
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_join_takes_the_fullest_matching_lobby_and_is_idempotent() {
    let app = TestApp::spawn(TestAppOptions {
        servers: vec![
            ServerSpec {
                region: Some("eu".into()),
                ..ServerSpec::new("gs-eu", "chess")
            },
            ServerSpec {
                region: Some("us".into()),
                ..ServerSpec::new("gs-us", "chess")
            },
            ServerSpec {
                region: Some("ap".into()),
                ..ServerSpec::new("gs-ap", "chess")
            },
        ],
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let (emptier, _a) = open_lobby(&app, "host-a", 4, json!({"region": "eu"})).await;
    let (fuller, _b) = open_lobby(&app, "host-b", 4, json!({"region": "eu"})).await;
    let (american, _c) = open_lobby(&app, "host-c", 4, json!({"region": "us"})).await;
    let seat = app.join("bob", &fuller).await;
    let _bob = app.connect(&seat).await.unwrap();

    let carol = app.quick_join("carol", json!({"product": "chess"})).await;
    assert_eq!(carol.status, 200, "{}", carol.text);
    assert_eq!(
        id_of(&carol),
        fuller,
        "the fullest lobby, though not the oldest"
    );
    let again = app.quick_join("carol", json!({"product": "chess"})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(id_of(&again), fuller, "a quick join again keeps the seat");
    assert_eq!(again.body["join"], carol.body["join"], "the same ticket");
    assert_eq!(
        again.body["seats_free"], 1,
        "one seat taken by carol: {}",
        again.text
    );

    let dave = app
        .quick_join("dave", json!({"product": "chess", "region": "us"}))
        .await;
    assert_eq!(id_of(&dave), american, "{}", dave.text);
    let erin = app
        .quick_join("erin", json!({"product": "chess", "region": "eu"}))
        .await;
    assert_eq!(id_of(&erin), fuller, "{}", erin.text);
    let frank = app
        .quick_join("frank", json!({"product": "chess", "region": "eu"}))
        .await;
    assert_eq!(
        id_of(&frank),
        emptier,
        "the fuller one is full: {}",
        frank.text
    );

    assert_problem(
        &app.quick_join("gina", json!({"product": "chess", "region": "mars"}))
            .await,
        404,
        "no_open_game",
    );
    assert_problem(
        &app.quick_join(
            "gina",
            json!({"product": "chess", "labels": {"map": "dust2"}}),
        )
        .await,
        404,
        "no_open_game",
    );
    let with_create = app
        .quick_join(
            "gina",
            json!({"product": "chess", "region": "eu", "create": {"capacity": 3}}),
        )
        .await;
    assert_eq!(
        with_create.status, 200,
        "a seat is free: {}",
        with_create.text
    );
    assert_eq!(id_of(&with_create), emptier);
    let created = app
        .quick_join(
            "hugo",
            json!({"product": "chess", "region": "ap", "create": {"capacity": 3}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.str("state"), "created");
    assert_eq!(created.str("creator_id"), "hugo");
    assert_eq!(created.str("region"), "ap");
    assert_eq!(created.body["capacity"], 3);

    let (dusty, _d) = open_lobby(
        &app,
        "host-d",
        4,
        json!({"region": "eu", "labels": {"map": "dust2", "mode": "ranked"}}),
    )
    .await;
    let ivan = app
        .quick_join(
            "ivan",
            json!({"product": "chess", "labels": {"map": "dust2"}}),
        )
        .await;
    assert_eq!(
        id_of(&ivan),
        dusty,
        "the one lobby with that label: {}",
        ivan.text
    );
    let judy = app
        .quick_join(
            "judy",
            json!({"product": "chess", "region": "ap", "labels": {"map": "inferno"},
                   "create": {"capacity": 2}}),
        )
        .await;
    assert_eq!(judy.status, 201, "{}", judy.text);
    assert_eq!(
        judy.body["labels"],
        json!({"map": "inferno"}),
        "{}",
        judy.text
    );

    assert_problem(
        &app.quick_join("gina", json!({"product": "golf"})).await,
        404,
        "unknown_product",
    );
    for bad in [
        json!({}),
        json!({"product": "chess", "create": {"capacity": 0}}),
        json!({"product": "chess", "create": {"capacity": 17}}),
        json!({"product": "chess", "region": ""}),
        json!({"product": "chess", "labels": {"Map": "x"}}),
        json!({"product": "chess", "labels": {"map": ""}}),
        json!({"product": "chess", "seats": 2}),
    ] {
        assert_problem(
            &app.quick_join("gina", bad.clone()).await,
            400,
            "invalid_request",
        );
    }
    app.check_invariants().await.unwrap();
}

/// Contract 5.4: a quick join that matches nothing is answered from the instance's view of
/// the open games, without reading the product's games from Redis, however many are open —
/// a query that matches nothing never takes a slow path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_join_that_matches_nothing_reads_no_game_from_redis() {
    const LOBBIES: usize = 12;
    let app = TestApp::spawn(TestAppOptions::default()).await.unwrap();
    let hosts = join_all((0..LOBBIES).map(|i| {
        let app = &app;
        async move { open_lobby(app, &format!("host-{i}"), 4, json!({})).await }
    }))
    .await;
    poll::until("every lobby in the view", WAIT, || async {
        (app.open_ids("chess").await.len() == LOBBIES).then_some(())
    })
    .await;

    let mut conn = app.redis.connection().await;
    redis_stats::reset(&mut conn).await;
    for body in [
        json!({"product": "chess", "region": "mars"}),
        json!({"product": "chess", "labels": {"mode": "ranked"}}),
    ] {
        assert_problem(&app.quick_join("gina", body).await, 404, "no_open_game");
    }
    // Reading the candidates would have read each open lobby's record once a quick join.
    let reads = redis_stats::calls(&mut conn, "hmget").await;
    assert!(
        reads < LOBBIES as u64,
        "{reads} HMGETs for two quick joins that match none of {LOBBIES} open lobbies"
    );
    assert!(
        redis_stats::script_calls(&mut conn).await >= 2,
        "each quick join still ran its script (join bucket, seats the player already holds)"
    );

    // A quick join that matches still finds its seat.
    let seated = app.quick_join("hal", json!({"product": "chess"})).await;
    assert_eq!(seated.status, 200, "{}", seated.text);
    app.check_invariants().await.unwrap();
    drop(hosts);
}

/// Quantile `q` of sorted `samples`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_quick_joins_fills_lobbies_and_never_sells_a_seat_twice() {
    const LOBBIES: usize = 100;
    const CAPACITY: u32 = 4;
    const PLAYERS: usize = 200;
    let app = TestApp::spawn(TestAppOptions {
        play_time: Duration::from_secs(300),
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let hosts = join_all((0..LOBBIES).map(|i| {
        let app = &app;
        async move { open_lobby(app, &format!("host-{i}"), CAPACITY, json!({})).await }
    }))
    .await;
    let lobbies: BTreeSet<String> = hosts.iter().map(|(id, _)| id.clone()).collect();

    // Every player at once; each asks to create a game should none match.
    let started = Instant::now();
    let answers = join_all((0..PLAYERS).map(|i| {
        let app = &app;
        async move {
            let begun = Instant::now();
            let answer = app
                .quick_join(
                    &format!("player-{i}"),
                    json!({"product": "chess", "create": {"capacity": CAPACITY}}),
                )
                .await;
            (format!("player-{i}"), answer, begun.elapsed())
        }
    }))
    .await;
    let storm = started.elapsed();
    let mut latencies: Vec<Duration> = answers.iter().map(|(_, _, took)| *took).collect();
    latencies.sort();

    let mut seats: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (player, answer, _) in &answers {
        assert_eq!(answer.status, 200, "{player}: {}", answer.text);
        seats.entry(id_of(answer)).or_default().push(player.clone());
    }
    for (game, players) in &seats {
        assert!(lobbies.contains(game), "{game} is one of the open lobbies");
        assert!(
            players.len() < CAPACITY as usize,
            "{game} sold {} seats besides its host's",
            players.len()
        );
    }
    let full = seats
        .values()
        .filter(|players| players.len() == CAPACITY as usize - 1)
        .count();
    let ideal = PLAYERS / (CAPACITY as usize - 1);
    let fill_ratio = full as f64 / ideal as f64;
    let touched = seats.len();
    let seats_per_touched = PLAYERS as f64 / touched as f64;
    eprintln!(
        "FIGURES quick_join_storm players={PLAYERS} open_lobbies={LOBBIES} capacity={CAPACITY} \
         full_lobbies={full} ideal_full_lobbies={ideal} fill_ratio={fill_ratio:.2} \
         lobbies_touched={touched} joiners_per_touched_lobby={seats_per_touched:.2} \
         storm_ms={} p50_ms={} p99_ms={}",
        storm.as_millis(),
        quantile(&latencies, 0.5).as_millis(),
        quantile(&latencies, 0.99).as_millis(),
    );
    assert!(
        fill_ratio >= 0.9,
        "lobbies fill rather than spread: {full} full of an ideal {ideal}"
    );

    // Everyone connects: the full lobbies start, and the record agrees seat by seat.
    let mut sockets = Vec::new();
    for (player, answer, _) in &answers {
        sockets.push(
            app.connect(answer)
                .await
                .unwrap_or_else(|err| panic!("{player}: {err:#}")),
        );
    }
    for (game, players) in seats
        .iter()
        .filter(|(_, players)| players.len() == CAPACITY as usize - 1)
    {
        let record = wait_game(&app, game, "full and started", |g| {
            g["state"] == "in_progress"
        })
        .await;
        let present: BTreeSet<String> = players_of(&record).into_iter().collect();
        for player in players {
            assert!(present.contains(player), "{player} is in {game}: {record}");
        }
    }
    let mut conn = app.redis.connection().await;
    invariants::check_seats(
        &mut conn,
        mm_testkit::app::TEST_PREFIX,
        &[mm_common::ProductId::new("chess").unwrap()],
        mm_common::time::now_ms(),
    )
    .await
    .unwrap();
    app.check_invariants().await.unwrap();
    drop((sockets, hosts));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_join_whose_game_server_is_gone_releases_its_seat() {
    let mut app = TestApp::spawn(TestAppOptions {
        servers: vec![ServerSpec::new("gs-1", "chess")],
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let (id, host) = open_lobby(&app, "alice", 3, json!({})).await;
    app.stop_game_server(0).await.unwrap();
    drop(host);
    let answer = app.quick_join("bob", json!({"product": "chess"})).await;
    assert_problem(&answer, 503, "game_server_unavailable");
    let game = app.get_game("observer", &id).await;
    assert_eq!(
        game.body["seats_free"], 2,
        "bob's seat was released: {}",
        game.text
    );
    let again = app.quick_join("bob", json!({"product": "chess"})).await;
    assert_problem(&again, 503, "game_server_unavailable");
    app.check_invariants().await.unwrap();
}

/// Two matching lobbies on two servers: the fuller one's server is gone, so the quick join's
/// first pick fails; the seat it reserved there is released and the request lands in the
/// other lobby instead of answering 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_join_whose_first_pick_fails_lands_in_another_matching_game() {
    let mut eu = ServerSpec::new("gs-eu", "chess");
    eu.region = Some("eu".into());
    let mut us = ServerSpec::new("gs-us", "chess");
    us.region = Some("us".into());
    let mut app = TestApp::spawn(TestAppOptions {
        servers: vec![eu, us],
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let (fuller, eu_host) = open_lobby(&app, "alice", 3, json!({"region": "eu"})).await;
    let (other, _us_host) = open_lobby(&app, "dave", 3, json!({"region": "us"})).await;
    // carol's reservation makes the eu lobby the fuller one: 2 of 3 seats against 1 of 3.
    assert_eq!(app.join("carol", &fuller).await.status, 200);
    app.stop_game_server(0).await.unwrap();
    drop(eu_host);

    let answer = app.quick_join("bob", json!({"product": "chess"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.str("id"), other, "bob lands in the us lobby");
    let fuller_now = app.get_game("observer", &fuller).await;
    assert_eq!(
        fuller_now.body["seats_free"], 1,
        "only carol's seat is held in the eu lobby, bob's was released: {}",
        fuller_now.text
    );
    assert!(!fuller_now.text.contains("\"bob\""), "{}", fuller_now.text);
    let again = app.quick_join("bob", json!({"product": "chess"})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        again.str("id"),
        other,
        "a second quick join gets bob's seat back"
    );
    app.check_invariants().await.unwrap();
}
