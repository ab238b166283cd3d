//! End-to-end tests of the lobby HTTP API: real redis-server, real reference game servers,
//! real WebSocket players, the API over real HTTP (see `mm_testkit::app`).

use std::time::Duration;

use futures::future::join_all;
use mm_common::{GameId, ProductId};
use mm_config::AuthMode;
use mm_testkit::app::{ApiResponse, TestApp, TestAppOptions, redis_keys};
use mm_testkit::poll;
use mm_testkit::scenario::Placement;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::json;

/// Deadline of every wait: generous, because the scenarios also run on a shared cluster beside
/// the rest of the suite on two cores (a poll returns as soon as its condition holds).
const WAIT: Duration = Duration::from_secs(30);
/// The reservation time of the test that lets a reservation lapse.
const RESERVATION_TTL_SECS: u64 = 4;

async fn app() -> TestApp {
    TestApp::spawn(TestAppOptions::default()).await.unwrap()
}

fn id_of(answer: &ApiResponse) -> String {
    answer.str("id").to_string()
}

/// Which of the three sets holds `id` (`None`: none).
async fn set_of(app: &TestApp, id: &str) -> Option<&'static str> {
    let product = GameId::new(id).unwrap().product().unwrap();
    let keys = app.store.keys().product(&product);
    let mut conn = app.redis.connection().await;
    for (name, key) in [
        ("pending", keys.pending()),
        ("lobby", keys.lobby()),
        ("active", keys.active()),
    ] {
        let score: Option<f64> = conn.zscore(&key, id).await.unwrap();
        if score.is_some() {
            return Some(name);
        }
    }
    None
}

async fn wait_state(app: &TestApp, id: &str, state: &str) {
    poll::until(&format!("game {id} to be {state}"), WAIT, || async {
        (app.state_of(id).await.as_deref() == Some(state)).then_some(())
    })
    .await;
}

async fn wait_listed(app: &TestApp, id: &str, listed: bool) {
    poll::until(
        &format!("game {id} to be listed={listed}"),
        WAIT,
        || async {
            let product = GameId::new(id).unwrap().product().unwrap();
            (app.open_ids(product.as_str())
                .await
                .contains(&id.to_string())
                == listed)
                .then_some(())
        },
    )
    .await;
}

/// What a failed wait needs to be understood: the game's record as Redis holds it, the API's
/// answer for it, and the product's curation, view and Redis metrics (the registry is shared
/// by every app of the test binary, so only the product's series and the unlabelled ones).
async fn diagnose(app: &TestApp, id: &str, product: &str) -> String {
    let record = app.store.game(&GameId::new(id).unwrap()).await;
    let answer = app.get_game("observer", id).await;
    let metrics = app
        .send(app.request(Method::GET, "/metrics", None))
        .await
        .text;
    let product_label = format!("product=\"{product}\"");
    let series: Vec<&str> = metrics
        .lines()
        .filter(|line| {
            !line.starts_with('#')
                && (line.contains(&product_label)
                    || line.starts_with("mm_view")
                    || line.starts_with("mm_redis")
                    || line.starts_with("mm_curation_pass"))
        })
        .collect();
    format!(
        "now {} ms; record: {record:?}; GET: {} {}; metrics:\n{}",
        mm_common::time::now_ms(),
        answer.status,
        answer.text,
        series.join("\n")
    )
}

fn assert_problem(answer: &ApiResponse, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.code(), Some(code), "{}", answer.text);
    assert!(
        answer
            .content_type()
            .starts_with("application/problem+json"),
        "content type {:?}",
        answer.content_type()
    );
    assert!(!answer.str("request_id").is_empty(), "{}", answer.text);
    assert_eq!(
        answer.headers["x-request-id"].to_str().unwrap(),
        answer.str("request_id"),
        "the header and the body carry the same request id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_goes_from_creation_to_its_end() {
    a_game_goes_from_creation_to_its_end_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn a_game_goes_from_creation_to_its_end_on(at: Placement) {
    let app = TestApp::spawn(at.options()).await.unwrap();
    let created = app.create_of("alice", &at.product, 2).await;
    let id = id_of(&created);
    assert_eq!(created.str("state"), "created");
    assert_eq!(created.str("creator_id"), "alice");
    assert_eq!(created.body["capacity"], 2);
    assert!(
        created.str("created_at").ends_with('Z'),
        "RFC 3339: {}",
        created.text
    );
    assert!(created.body["join"]["token"].is_string());
    assert_eq!(set_of(&app, &id).await, Some("pending"));
    assert!(
        !app.open_ids(&at.product).await.contains(&id),
        "pending games are not listed"
    );

    let alice = app.connect(&created).await.unwrap();
    wait_state(&app, &id, "creator_joined").await;
    wait_listed(&app, &id, true).await;
    assert_eq!(set_of(&app, &id).await, Some("lobby"));

    let joined = app.join("bob", &id).await;
    assert_eq!(joined.status, 200, "{}", joined.text);
    assert_eq!(joined.str("id"), id);
    let bob = app.connect(&joined).await.unwrap();
    wait_listed(&app, &id, false).await;
    // The game fills, starts (start_delay) and ends (play_time) by itself.
    poll::until("the game to start or end", WAIT, || async {
        let state = app.state_of(&id).await?;
        matches!(
            state.as_str(),
            "all_players_joined" | "in_progress" | "ended"
        )
        .then_some(())
    })
    .await;
    poll::until("the game to be active", WAIT, || async {
        let state = app.state_of(&id).await?;
        (state == "in_progress" || state == "ended").then_some(())
    })
    .await;
    wait_state(&app, &id, "ended").await;
    assert_eq!(set_of(&app, &id).await, None, "an ended game is in no set");
    assert!(!app.open_ids(&at.product).await.contains(&id));
    let game = app.get_game("alice", &id).await;
    assert_eq!(game.str("state"), "ended");
    drop((alice, bob));
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_game_is_active_once_started() {
    a_full_game_is_active_once_started_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn a_full_game_is_active_once_started_on(at: Placement) {
    let app = TestApp::spawn(TestAppOptions {
        play_time: Duration::from_secs(30),
        ..at.options()
    })
    .await
    .unwrap();
    let created = app.create_of("alice", &at.product, 2).await;
    let id = id_of(&created);
    let _alice = app.connect(&created).await.unwrap();
    wait_state(&app, &id, "creator_joined").await;
    let joined = app.join("bob", &id).await;
    let _bob = app.connect(&joined).await.unwrap();
    wait_state(&app, &id, "in_progress").await;
    assert_eq!(set_of(&app, &id).await, Some("active"));
    let late = app.join("carol", &id).await;
    assert_problem(&late, 409, "game_not_open");
    let cancel = app.cancel("alice", &id).await;
    assert_problem(&cancel, 409, "game_not_open");
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_joins_before_the_creator_and_nobody_joins_a_full_game() {
    nobody_joins_before_the_creator_and_nobody_joins_a_full_game_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn nobody_joins_before_the_creator_and_nobody_joins_a_full_game_on(at: Placement) {
    let app = TestApp::spawn(at.options()).await.unwrap();
    let created = app.create_of("alice", &at.product, 2).await;
    let id = id_of(&created);
    assert_problem(&app.join("bob", &id).await, 409, "creator_not_joined");
    let _alice = app.connect(&created).await.unwrap();
    wait_state(&app, &id, "creator_joined").await;
    assert_eq!(app.join("bob", &id).await.status, 200);
    // Bob's reserved seat counts even before he connects.
    assert_problem(&app.join("carol", &id).await, 409, "game_full");
    assert_problem(
        &app.join("dave", &at.unknown_game()).await,
        404,
        "game_not_found",
    );
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_creator_cancels_and_the_game_server_forgets_the_game() {
    only_the_creator_cancels_and_the_game_server_forgets_the_game_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn only_the_creator_cancels_and_the_game_server_forgets_the_game_on(
    at: Placement,
) {
    let app = TestApp::spawn(at.options()).await.unwrap();
    let created = app.create_of("alice", &at.product, 2).await;
    let id = id_of(&created);
    let server_index = if created.str("server_id") == "gs-1" {
        0
    } else {
        1
    };
    assert_eq!(app.game_server(server_index).unwrap().game_count(), 1);
    assert_problem(&app.cancel("mallory", &id).await, 403, "not_creator");
    assert_eq!(
        set_of(&app, &id).await,
        Some("pending"),
        "a refused cancel changes nothing"
    );
    let cancelled = app.cancel("alice", &id).await;
    assert_eq!(cancelled.status, 204, "{}", cancelled.text);
    assert_eq!(set_of(&app, &id).await, None);
    assert_eq!(app.game_server(server_index).unwrap().game_count(), 0);
    assert_eq!(app.state_of(&id).await.as_deref(), Some("ended"));
    // The same cancel resent (its answer lost on the way): the same answer, nothing changes;
    // anyone else is still refused.
    let again = app.cancel("alice", &id).await;
    assert_eq!(again.status, 204, "a resent cancel: {}", again.text);
    assert_problem(&app.cancel("mallory", &id).await, 403, "not_creator");
    assert_eq!(app.state_of(&id).await.as_deref(), Some("ended"));
    assert_problem(
        &app.cancel("alice", &at.unknown_game()).await,
        404,
        "game_not_found",
    );
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_products_are_404() {
    let app = app().await;
    let answer = app
        .create_game("alice", json!({"product": "go", "capacity": 2}))
        .await;
    assert_problem(&answer, 404, "unknown_product");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_game_server_means_503_and_nothing_recorded() {
    no_game_server_means_503_and_nothing_recorded_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn no_game_server_means_503_and_nothing_recorded_on(at: Placement) {
    let mut app = TestApp::spawn(TestAppOptions {
        servers: at.servers(&["gs-1"]),
        // Long interval: the registry still believes the server is healthy, so the API
        // really calls a stopped server.
        health_interval: Duration::from_secs(3600),
        ..at.options()
    })
    .await
    .unwrap();
    app.stop_game_server(0).await.unwrap();
    let answer = app
        .create_game("alice", json!({"product": at.product, "capacity": 2}))
        .await;
    assert_problem(&answer, 503, "no_game_server");
    // Now the registry knows it is down: refused without a call.
    let again = app
        .create_game("alice", json!({"product": at.product, "capacity": 2}))
        .await;
    assert_problem(&again, 503, "no_game_server");
    assert!(
        redis_keys(
            &app,
            &format!("{}:{{{}}}:game:*", at.key_prefix, at.product)
        )
        .await
        .is_empty()
    );
    let counts = app
        .store
        .set_counts(&ProductId::new(&at.product).unwrap())
        .await
        .unwrap();
    assert_eq!(counts, [0, 0, 0]);
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_twenty_concurrent_joins_gets_the_last_seat() {
    one_of_twenty_concurrent_joins_gets_the_last_seat_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn one_of_twenty_concurrent_joins_gets_the_last_seat_on(at: Placement) {
    let app = TestApp::spawn(at.options()).await.unwrap();
    let created = app.create_of("alice", &at.product, 2).await;
    let id = id_of(&created);
    let _alice = app.connect(&created).await.unwrap();
    wait_listed(&app, &id, true).await;
    let players: Vec<String> = (0..20).map(|i| format!("player-{i}")).collect();
    let answers = join_all(players.iter().map(|p| app.join(p, &id))).await;
    let winners = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(winners, 1, "exactly one join wins the last seat");
    for loser in answers.iter().filter(|a| a.status != 200) {
        assert_problem(loser, 409, "game_full");
    }
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_seat_nobody_takes_is_released() {
    a_reserved_seat_nobody_takes_is_released_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn a_reserved_seat_nobody_takes_is_released_on(at: Placement) {
    // Long enough that the checks below run while bob's reservation holds, even on a slow,
    // loaded CI machine (a 1 s reservation can lapse before `game_full` is asked for);
    // short enough that waiting for its release costs little.
    let app = TestApp::spawn(TestAppOptions {
        reservation_ttl_secs: RESERVATION_TTL_SECS,
        ..at.options()
    })
    .await
    .unwrap();
    let created = app.create_of("alice", &at.product, 2).await;
    let id = id_of(&created);
    let _alice = app.connect(&created).await.unwrap();
    wait_listed(&app, &id, true).await;
    assert_eq!(app.join("bob", &id).await.status, 200);
    assert!(
        !app.open_ids(&at.product).await.contains(&id),
        "the reserved seat is taken"
    );
    assert_problem(&app.join("carol", &id).await, 409, "game_full");
    // The curator releases bob's seat once it expired, and the game is listed again.
    let listed_again = poll::within(WAIT, || async {
        app.open_ids(&at.product).await.contains(&id).then_some(())
    })
    .await;
    if listed_again.is_none() {
        panic!(
            "game {id} not listed again within {WAIT:?}; {}",
            diagnose(&app, &id, &at.product).await
        );
    }
    let game = app.get_game("alice", &id).await;
    assert_eq!(game.body["seats_free"], 1, "{}", game.text);
    let carol = app.join("carol", &id).await;
    assert_eq!(carol.status, 200, "{}", carol.text);
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_with_a_cursor() {
    listing_pages_with_a_cursor_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn listing_pages_with_a_cursor_on(at: Placement) {
    let app = TestApp::spawn(at.options()).await.unwrap();
    let mut ids = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..3 {
        let created = app.create_of(&format!("creator-{i}"), &at.product, 4).await;
        sockets.push(app.connect(&created).await.unwrap());
        ids.push(id_of(&created));
    }
    for id in &ids {
        wait_listed(&app, id, true).await;
    }
    let first = app
        .list("p", &format!("product={}&limit=2", at.product))
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["games"].as_array().unwrap().len(), 2);
    let cursor = first.str("next_cursor").to_string();
    assert!(!cursor.is_empty());
    let second = app
        .list(
            "p",
            &format!("product={}&limit=2&cursor={cursor}", at.product),
        )
        .await;
    // A cursor continues in the order it was issued for, whatever `sort` says beside it.
    let other_sort = app
        .list(
            "p",
            &format!(
                "product={}&limit=2&sort=fullest&cursor={cursor}",
                at.product
            ),
        )
        .await;
    assert_eq!(other_sort.status, 200, "{}", other_sort.text);
    assert_eq!(other_sort.body["games"], second.body["games"]);
    let mut seen: Vec<String> = first.body["games"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["games"].as_array().unwrap())
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    assert!(second.body["next_cursor"].is_null(), "{}", second.text);
    let empty_cursor = app
        .list("p", &format!("product={}&limit=2&cursor=", at.product))
        .await;
    assert_eq!(
        empty_cursor.status, 200,
        "an empty cursor means the first page"
    );
    assert_eq!(empty_cursor.body["games"], first.body["games"]);
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400_problems_never_500() {
    let app = TestApp::spawn(TestAppOptions {
        body_limit_bytes: 4096,
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let post = |body: &'static str| {
        app.request(Method::POST, "/v1/games", Some("alice"))
            .header("content-type", "application/json")
            .body(body)
    };
    let big = format!(
        r#"{{"product":"chess","capacity":2,"settings":{{"x":"{}"}}}}"#,
        "a".repeat(8192)
    );
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("bad JSON", post("{"), 400, "invalid_request"),
        (
            "wrong type",
            post(r#"{"product":5,"capacity":2}"#),
            400,
            "invalid_request",
        ),
        (
            "capacity text",
            post(r#"{"product":"chess","capacity":"two"}"#),
            400,
            "invalid_request",
        ),
        (
            "capacity negative",
            post(r#"{"product":"chess","capacity":-1}"#),
            400,
            "invalid_request",
        ),
        (
            "capacity 0",
            post(r#"{"product":"chess","capacity":0}"#),
            400,
            "invalid_request",
        ),
        (
            "capacity 17",
            post(r#"{"product":"chess","capacity":17}"#),
            400,
            "invalid_request",
        ),
        (
            "unknown field",
            post(r#"{"product":"chess","capacity":2,"colour":1}"#),
            400,
            "invalid_request",
        ),
        (
            "settings array",
            post(r#"{"product":"chess","capacity":2,"settings":[1]}"#),
            400,
            "invalid_request",
        ),
        (
            "bad product id",
            post(r#"{"product":"Chess!","capacity":2}"#),
            400,
            "invalid_request",
        ),
        (
            "empty region",
            post(r#"{"product":"chess","capacity":2,"region":""}"#),
            400,
            "invalid_request",
        ),
        (
            "missing product",
            post(r#"{"capacity":2}"#),
            400,
            "invalid_request",
        ),
        (
            "no JSON content type",
            app.request(Method::POST, "/v1/games", Some("alice"))
                .body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            "oversized body",
            app.request(Method::POST, "/v1/games", Some("alice"))
                .header("content-type", "application/json")
                .body(big),
            413,
            "payload_too_large",
        ),
        (
            "no identity",
            app.request(Method::GET, "/v1/games?product=chess", None),
            401,
            "unauthenticated",
        ),
        (
            "bad identity",
            app.request(Method::GET, "/v1/games?product=chess", Some("bad id")),
            400,
            "invalid_request",
        ),
        (
            "bad game id",
            app.request(Method::GET, "/v1/games/bad%20id", Some("alice")),
            400,
            "invalid_request",
        ),
        (
            "bad join id",
            app.request(Method::POST, "/v1/games/a%7Bb%7D/join", Some("alice")),
            400,
            "invalid_request",
        ),
        (
            "bad cancel id",
            app.request(Method::DELETE, "/v1/games/%2E%2E%2Fx", Some("alice")),
            400,
            "invalid_request",
        ),
        (
            "limit 0",
            app.request(Method::GET, "/v1/games?product=chess&limit=0", Some("a")),
            400,
            "invalid_request",
        ),
        (
            "limit 101",
            app.request(Method::GET, "/v1/games?product=chess&limit=101", Some("a")),
            400,
            "invalid_request",
        ),
        (
            "limit text",
            app.request(Method::GET, "/v1/games?product=chess&limit=ten", Some("a")),
            400,
            "invalid_request",
        ),
        (
            "bad cursor",
            app.request(Method::GET, "/v1/games?product=chess&cursor=zzz", Some("a")),
            400,
            "invalid_request",
        ),
        (
            "unknown sort",
            app.request(Method::GET, "/v1/games?sort=newest", Some("a")),
            400,
            "invalid_request",
        ),
        (
            "no seat free asked",
            app.request(Method::GET, "/v1/games?min_seats_free=0", Some("a")),
            400,
            "invalid_request",
        ),
        (
            "more seats free than the document's int32 bound (Schemathesis ST201)",
            app.request(
                Method::GET,
                "/v1/games?min_seats_free=4143960468",
                Some("a"),
            ),
            400,
            "invalid_request",
        ),
        (
            "a label filter with a bad key",
            app.request(Method::GET, "/v1/games?labels.Map=dust2", Some("a")),
            400,
            "invalid_request",
        ),
        (
            "a label filter given twice",
            app.request(
                Method::GET,
                "/v1/games?labels.map=a&labels.map=b",
                Some("a"),
            ),
            400,
            "invalid_request",
        ),
        (
            "bad product",
            app.request(Method::GET, "/v1/games?product=CHESS", Some("a")),
            400,
            "invalid_request",
        ),
        (
            "unknown param",
            app.request(Method::GET, "/v1/games?product=chess&page=2", Some("a")),
            400,
            "invalid_request",
        ),
        (
            "unknown route",
            app.request(Method::GET, "/v2/nothing", Some("a")),
            404,
            "not_found",
        ),
        (
            "wrong method",
            app.request(Method::PUT, "/v1/games", Some("a")),
            405,
            "method_not_allowed",
        ),
        (
            "unknown game",
            app.request(Method::GET, "/v1/games/chess.missing", Some("a")),
            404,
            "game_not_found",
        ),
    ];
    for (name, request, status, code) in cases {
        let answer = app.send(request).await;
        assert!(
            answer.status < 500,
            "{name}: got {}: {}",
            answer.status,
            answer.text
        );
        assert_eq!(answer.status, status, "{name}: {}", answer.text);
        assert_eq!(answer.code(), Some(code), "{name}: {}", answer.text);
        assert!(
            answer
                .content_type()
                .starts_with("application/problem+json"),
            "{name}: content type {:?}",
            answer.content_type()
        );
        assert!(!answer.str("detail").is_empty(), "{name}: no detail");
    }
    // The detail says what and where.
    let answer = app
        .send(post(r#"{"product":"chess","capacity":"two"}"#))
        .await;
    assert!(answer.str("detail").contains("capacity"), "{}", answer.text);
    let answer = app
        .send(app.request(Method::GET, "/v1/games?product=chess&limit=0", Some("a")))
        .await;
    assert!(answer.str("detail").contains("limit"), "{}", answer.text);
    // A client request id is echoed.
    let answer = app
        .send(
            app.request(Method::GET, "/v1/games/chess.missing", Some("a"))
                .header("x-request-id", "trace-42"),
        )
        .await;
    assert_eq!(answer.str("request_id"), "trace-42");
    assert!(
        redis_keys(&app, "mm:{chess}:game:*").await.is_empty(),
        "bad requests change nothing"
    );
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_mode_accepts_only_valid_tokens() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    const SECRET: &str = "a-test-secret-that-is-long-enough-0123";
    let app = TestApp::spawn(TestAppOptions {
        auth_mode: AuthMode::Jwt,
        jwt_secret: Some(SECRET.into()),
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let now = mm_common::time::now_ms() / 1000;
    let token = |claims: serde_json::Value, secret: &str| {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let create = |bearer: Option<String>| {
        let mut request = app
            .request(Method::POST, "/v1/games", None)
            .json(&json!({"product": "chess", "capacity": 2}));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        app.send(request)
    };
    let valid = create(Some(token(
        json!({"sub": "alice", "exp": now + 3600}),
        SECRET,
    )))
    .await;
    assert_eq!(valid.status, 201, "{}", valid.text);
    assert_eq!(valid.str("creator_id"), "alice");
    let refused = [
        (
            "expired",
            Some(token(json!({"sub": "alice", "exp": now - 3600}), SECRET)),
        ),
        (
            "wrong secret",
            Some(token(
                json!({"sub": "alice", "exp": now + 3600}),
                "another-secret-another-secret-0000",
            )),
        ),
        ("no sub", Some(token(json!({"exp": now + 3600}), SECRET))),
        ("no exp", Some(token(json!({"sub": "alice"}), SECRET))),
        ("garbage", Some("not.a.jwt".to_string())),
        ("missing", None),
    ];
    for (name, bearer) in refused {
        let answer = create(bearer).await;
        assert_eq!(answer.status, 401, "{name}: {}", answer.text);
        assert_eq!(answer.code(), Some("unauthenticated"), "{name}");
    }
    let header_only = app
        .send(
            app.request(Method::POST, "/v1/games", Some("alice"))
                .json(&json!({"product": "chess", "capacity": 2})),
        )
        .await;
    assert_eq!(
        header_only.status, 401,
        "X-Player-Id is not accepted in jwt mode"
    );
    app.check_invariants().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_redis_is_down() {
    let mut app = app().await;
    let ready = app.send(app.request(Method::GET, "/readyz", None)).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(
        app.send(app.request(Method::GET, "/healthz", None))
            .await
            .status,
        200
    );
    app.redis.kill();
    let down = poll::until("readyz to fail", WAIT, || async {
        let answer = app.send(app.request(Method::GET, "/readyz", None)).await;
        (answer.status == 503).then_some(answer)
    })
    .await;
    assert_problem(&down, 503, "not_ready");
    assert_eq!(
        app.send(app.request(Method::GET, "/healthz", None))
            .await
            .status,
        200,
        "liveness does not depend on Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_route() {
    let app = app().await;
    let doc = app
        .send(app.request(Method::GET, "/openapi.json", None))
        .await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = &doc.body["paths"];
    for (path, method) in [
        ("/v1/games", "post"),
        ("/v1/games", "get"),
        ("/v1/games/{id}", "get"),
        ("/v1/games/{id}", "delete"),
        ("/v1/games/{id}/join", "post"),
        ("/v1/games/quick-join", "post"),
        ("/v1/games/{id}/rejoin", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} missing from the document"
        );
    }
    let schemas = &doc.body["components"]["schemas"];
    for schema in [
        "CreateGameRequest",
        "GameView",
        "GameWithJoin",
        "GamePage",
        "Problem",
    ] {
        assert!(schemas[schema].is_object(), "schema {schema} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route() {
    let app = app().await;
    app.create_chess("alice", 2).await;
    app.get_game("alice", "chess.missing").await;
    let metrics = app.send(app.request(Method::GET, "/metrics", None)).await;
    assert_eq!(metrics.status, 200);
    let text = &metrics.text;
    assert!(text.contains("mm_http_requests_total"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("mm_http_requests_total")
            && l.contains(r#"route="/v1/games/{id}""#)
            && l.contains(r#"status="404""#)),
        "requests are labelled by route template: {text}"
    );
    assert!(
        text.contains("mm_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"mm_games_created_total{product="chess"}"#),
        "{text}"
    );
    assert!(text.contains("mm_game_server_calls_total"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_given_at_create_are_kept_shown_and_bounded() {
    let app = app().await;
    let labels = json!({"map": "dust2", "mode": "ranked"});
    let created = app
        .create_game(
            "alice",
            json!({"product": "chess", "capacity": 2, "labels": labels}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["labels"], labels);
    let id = id_of(&created);
    let alice = app.connect(&created).await.unwrap();
    wait_listed(&app, &id, true).await;
    assert_eq!(app.get_game("bob", &id).await.body["labels"], labels);
    let listing = app.list("bob", "product=chess").await;
    let listed = listing.body["games"]
        .as_array()
        .unwrap()
        .iter()
        .find(|game| game["id"] == id.as_str())
        .expect("the labelled game is listed");
    assert_eq!(listed["labels"], labels);
    // A game without labels shows an empty object.
    let plain = app.create_chess("carol", 2).await;
    assert_eq!(plain.body["labels"], json!({}));

    // Refused labels name the label; nothing is recorded.
    let before = app
        .store
        .set_counts(&ProductId::new("chess").unwrap())
        .await
        .unwrap();
    let nine: serde_json::Map<String, serde_json::Value> =
        (0..9).map(|n| (format!("k{n}"), json!("v"))).collect();
    for (bad, says) in [
        (json!({"Map": "dust2"}), "label key `Map`"),
        (json!({"map": ""}), "label `map`"),
        (json!({"map": "x".repeat(65)}), "label `map`"),
        (json!({"map": "a\u{7}b"}), "label `map`"),
        (json!(nine), "at most 8 labels"),
        (json!({"map": 3}), "labels"),
        (json!(["map"]), "labels"),
    ] {
        let refused = app
            .create_game(
                "dave",
                json!({"product": "chess", "capacity": 2, "labels": bad}),
            )
            .await;
        assert_problem(&refused, 400, "invalid_request");
        assert!(
            refused.str("detail").contains(says),
            "{bad}: {}",
            refused.text
        );
    }
    assert_eq!(
        app.store
            .set_counts(&ProductId::new("chess").unwrap())
            .await
            .unwrap(),
        before,
        "a refused create records nothing"
    );
    drop(alice);
    app.check_invariants().await.unwrap();
}
