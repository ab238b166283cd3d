//! Abuse tests of the per-player limits and the per-address failure limit (issue 13): each
//! replays an attack against a real daemon, real reference game servers and a private Redis,
//! and asserts the defended outcome. Each prints a `FIGURES` line with what it measured.

use std::time::{Duration, Instant};

use futures::future::join_all;
use mm_common::GameId;
use mm_config::{LimitsSettings, Settings};
use mm_testkit::app::{ApiResponse, ServerSpec, TestApp, TestAppOptions};
use mm_testkit::poll;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

/// A daemon with `adjust`ed settings and one game server of `product` of its own: metrics
/// are process-wide, so each test counts under a product and server no other test uses.
async fn app_with(product: &str, adjust: fn(&mut Settings)) -> TestApp {
    TestApp::spawn(TestAppOptions {
        servers: vec![ServerSpec::new(&format!("{product}-gs"), product)],
        adjust_settings: Some(adjust),
        ..TestAppOptions::default()
    })
    .await
    .unwrap()
}

/// `POST /v1/games` of two seats of `product` as `player`, whatever the answer.
async fn create(app: &TestApp, player: &str, product: &str) -> ApiResponse {
    app.create_game(player, json!({"product": product, "capacity": 2}))
        .await
}

/// Sends `requests` in waves of `concurrency`.
async fn storm<F, Fut>(total: usize, concurrency: usize, send: F) -> Vec<ApiResponse>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ApiResponse>,
{
    let mut answers = Vec::with_capacity(total);
    let mut next = 0;
    while next < total {
        let wave = (next..total.min(next + concurrency)).map(&send);
        answers.extend(join_all(wave).await);
        next += concurrency;
    }
    answers
}

fn count(answers: &[ApiResponse], status: u16, code: Option<&str>) -> usize {
    answers
        .iter()
        .filter(|a| a.status == status && (code.is_none() || a.code() == code))
        .count()
}

/// The sum of the samples of `metric` whose labels include every one of `labels`.
async fn metric_sum(app: &TestApp, metric: &str, labels: &[&str]) -> f64 {
    let answer = app.send(app.request(Method::GET, "/metrics", None)).await;
    assert_eq!(answer.status, 200);
    answer
        .text
        .lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_state(app: &TestApp, id: &str, state: &str) {
    poll::until(&format!("{id} to be {state}"), WAIT, || async {
        (app.state_of(id).await.as_deref() == Some(state)).then_some(())
    })
    .await;
}

/// `player`'s reservation expiry (ms) in the game hash, if any.
async fn reservation_of(app: &TestApp, id: &str, player: &str) -> Option<u64> {
    let game = GameId::new(id).unwrap();
    let key = app
        .store
        .keys()
        .product(&game.product().unwrap())
        .game(&game);
    let mut conn = app.redis.connection().await;
    let raw: Option<String> = conn.hget(&key, "reservations").await.unwrap();
    let map: serde_json::Map<String, Value> = serde_json::from_str(&raw?).ok()?;
    map.get(player)?.as_u64()
}

#[tokio::test]
async fn one_players_create_storm_stops_at_the_quota_and_others_still_create() {
    let app = app_with("storm", |s| s.limits = LimitsSettings::default()).await;
    let started = Instant::now();
    let answers = storm(1000, 50, |_| create(&app, "mallory", "storm")).await;
    let elapsed = started.elapsed();
    let created = count(&answers, 201, None);
    let rate_limited = count(&answers, 429, Some("rate_limited"));
    let quota = count(&answers, 429, Some("quota_exceeded"));
    println!(
        "FIGURES create storm: 1000 creates by one player in {:.2} s: {created} created, \
         {rate_limited} rate_limited, {quota} quota_exceeded",
        elapsed.as_secs_f64()
    );
    let max = LimitsSettings::default().max_live_games_per_player as usize;
    assert!(created >= 1 && created <= max, "{created} created");
    assert_eq!(
        created + rate_limited + quota,
        1000,
        "every refusal is a 429"
    );
    let refused = answers.iter().find(|a| a.status == 429).unwrap();
    let retry: u64 = refused
        .headers
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    assert_eq!(
        refused.content_type(),
        "application/problem+json",
        "{}",
        refused.text
    );

    let other = create(&app, "alice", "storm").await;
    assert_eq!(other.status, 201, "{}", other.text);
    let refusals = metric_sum(&app, "mm_limit_refusals_total", &["product=\"storm\""]).await;
    assert_eq!(refusals as usize, rate_limited + quota);
    app.shutdown().await;
}

#[tokio::test]
async fn concurrent_creates_cannot_exceed_the_live_games_quota_and_an_end_frees_a_slot() {
    // No rate limit: only the quota stands between 100 simultaneous creates and the servers.
    let app = app_with("quota", |s| {
        s.limits = LimitsSettings {
            creates_per_minute: 0,
            ..LimitsSettings::default()
        }
    })
    .await;
    let answers = storm(100, 100, |_| create(&app, "mallory", "quota")).await;
    let created: Vec<&ApiResponse> = answers.iter().filter(|a| a.status == 201).collect();
    let quota = count(&answers, 429, Some("quota_exceeded"));
    println!(
        "FIGURES quota: 100 simultaneous creates by one player: {} created, {quota} \
         quota_exceeded",
        created.len()
    );
    let max = LimitsSettings::default().max_live_games_per_player as usize;
    assert_eq!(created.len(), max);
    assert_eq!(quota, 100 - max);

    // Ending one of them (the creator's cancel) gives the slot back.
    let id = created[0].str("id").to_string();
    let cancelled = app.cancel("mallory", &id).await;
    assert_eq!(cancelled.status, 204, "{}", cancelled.text);
    let again = create(&app, "mallory", "quota").await;
    assert_eq!(again.status, 201, "{}", again.text);
    let over = create(&app, "mallory", "quota").await;
    assert_eq!(over.status, 429, "{}", over.text);
    assert_eq!(over.code(), Some("quota_exceeded"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_rejoin_storm_gets_one_ticket_one_server_call_and_no_renewal() {
    // No join rate limit, so every re-join reaches the reservation script.
    let app = app_with("rejoin", |s| {
        s.limits = LimitsSettings {
            joins_per_minute: 0,
            ..LimitsSettings::default()
        }
    })
    .await;
    let created = app
        .create_game("alice", json!({"product": "rejoin", "capacity": 4}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.str("id").to_string();
    let _alice = app.connect(&created).await.unwrap();
    wait_state(&app, &id, "creator_joined").await;

    let calls_before = metric_sum(
        &app,
        "mm_game_server_calls_total",
        &[
            "server=\"rejoin-gs\"",
            "op=\"add_player\"",
            "outcome=\"ok\"",
        ],
    )
    .await;
    let first = app.join("bob", &id).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let token = first.body["join"]["token"].as_str().unwrap().to_string();
    let expiry = reservation_of(&app, &id, "bob")
        .await
        .expect("a reservation");

    let answers = storm(300, 20, |_| app.join("bob", &id)).await;
    let same = answers
        .iter()
        .filter(|a| a.status == 200 && a.body["join"]["token"] == token.as_str())
        .count();
    let calls = metric_sum(
        &app,
        "mm_game_server_calls_total",
        &[
            "server=\"rejoin-gs\"",
            "op=\"add_player\"",
            "outcome=\"ok\"",
        ],
    )
    .await
        - calls_before;
    let expiry_after = reservation_of(&app, &id, "bob").await;
    println!(
        "FIGURES re-join storm: 1 join + 300 re-joins: {same} answered with the first ticket, \
         {calls} add_player calls, reservation expiry unchanged: {}",
        expiry_after == Some(expiry)
    );
    assert_eq!(same, 300);
    assert_eq!(calls, 1.0);
    assert_eq!(
        expiry_after,
        Some(expiry),
        "the reservation was not renewed"
    );

    // The creator gets the create's ticket back too, without a server call.
    let creator = app.join("alice", &id).await;
    assert_eq!(creator.status, 200, "{}", creator.text);
    assert_eq!(creator.body["join"]["token"], created.body["join"]["token"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_join_storm_is_rate_limited_and_reservations_are_capped() {
    let app = app_with("chess", |s| s.limits = LimitsSettings::default()).await;
    let limits = LimitsSettings::default();
    // Open lobbies, one more than a player may hold reservations in.
    let mut lobbies = Vec::new();
    let mut creators = Vec::new();
    for n in 0..=limits.max_reservations_per_player {
        let created = app.create_chess(&format!("host{n}"), 4).await;
        assert_eq!(created.status, 201, "{}", created.text);
        creators.push(app.connect(&created).await.unwrap());
        lobbies.push(created.str("id").to_string());
    }
    for id in &lobbies {
        wait_state(&app, id, "creator_joined").await;
    }
    let mut answers = Vec::new();
    for id in &lobbies {
        answers.push(app.join("mallory", id).await);
    }
    let held = count(&answers, 200, None);
    let last = answers.last().unwrap();
    assert_eq!(held, limits.max_reservations_per_player as usize);
    assert_eq!(last.status, 429, "{}", last.text);
    assert_eq!(last.code(), Some("quota_exceeded"));

    // A storm of joins by one player runs out of its bucket; another player still joins.
    let storm_answers = storm(200, 20, |_| app.join("mallory", &lobbies[0])).await;
    let limited = count(&storm_answers, 429, Some("rate_limited"));
    println!(
        "FIGURES join storm: {held} of {} reservations held, then 200 re-joins: {limited} \
         rate_limited",
        lobbies.len()
    );
    assert!(limited >= 150, "{limited} of 200 rate_limited");
    let other = app.join("carol", &lobbies[0]).await;
    assert_eq!(other.status, 200, "{}", other.text);
    app.shutdown().await;
}

#[tokio::test]
async fn a_401_storm_from_one_address_is_refused_while_others_are_served() {
    // The test's proxy is 127.0.0.1: the client address comes from X-Forwarded-For.
    let app = app_with("flood", |s| {
        s.limits = LimitsSettings::default();
        s.http.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let attacker = "203.0.113.7";
    let started = Instant::now();
    let answers = storm(500, 50, |_| {
        app.send(
            app.request(Method::GET, "/v1/games?product=flood", None)
                .header("x-forwarded-for", attacker),
        )
    })
    .await;
    let elapsed = started.elapsed();
    let unauthenticated = count(&answers, 401, Some("unauthenticated"));
    let limited = count(&answers, 429, Some("rate_limited"));
    let burst = LimitsSettings::default().client_failure_burst as usize;
    assert_eq!(unauthenticated + limited, 500);
    // Requests in flight together are checked before any of them is charged: at most one
    // wave beyond the burst gets through.
    assert!(
        unauthenticated >= burst && unauthenticated <= burst + 50,
        "{unauthenticated} answered 401"
    );
    let refused = answers.iter().find(|a| a.status == 429).unwrap();
    assert!(refused.headers.contains_key("retry-after"));

    // Another address is served at once, a valid player's create and listing included.
    let served = Instant::now();
    let listing = app
        .send(
            app.request(Method::GET, "/v1/games?product=flood", Some("alice"))
                .header("x-forwarded-for", "198.51.100.2"),
        )
        .await;
    let listing_ms = served.elapsed().as_millis();
    assert_eq!(listing.status, 200, "{}", listing.text);
    let created = app
        .send(
            app.request(Method::POST, "/v1/games", Some("alice"))
                .header("x-forwarded-for", "198.51.100.2")
                .json(&json!({"product": "flood", "capacity": 2})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    // The attacker's address stays refused, whatever it sends.
    let again = app
        .send(
            app.request(Method::GET, "/v1/games?product=flood", Some("mallory"))
                .header("x-forwarded-for", attacker),
        )
        .await;
    assert_eq!(again.status, 429, "{}", again.text);
    println!(
        "FIGURES 401 storm: 500 unauthenticated requests from one address in {:.2} s: \
         {unauthenticated} answered 401, {limited} answered 429; another address's listing \
         answered 200 in {listing_ms} ms and its create 201",
        elapsed.as_secs_f64()
    );
    app.shutdown().await;
}

#[tokio::test]
async fn forwarded_addresses_from_an_untrusted_peer_are_ignored() {
    // No trusted proxy: a storm cannot hide behind made-up X-Forwarded-For addresses.
    let app = app_with("spoof", |s| s.limits = LimitsSettings::default()).await;
    let answers = storm(100, 20, |n| {
        app.send(
            app.request(Method::GET, "/v1/games?product=spoof", None)
                .header("x-forwarded-for", format!("192.0.2.{}", n % 250)),
        )
    })
    .await;
    let limited = count(&answers, 429, Some("rate_limited"));
    assert!(limited >= 60, "{limited} of 100 refused");
    app.shutdown().await;
}

#[tokio::test]
async fn a_player_who_left_gets_a_new_ticket_on_rejoin() {
    let app = app_with("comeback", |s| s.limits = LimitsSettings::default()).await;
    let created = app
        .create_game("alice", json!({"product": "comeback", "capacity": 3}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.str("id").to_string();
    let alice = app.connect(&created).await.unwrap();
    wait_state(&app, &id, "creator_joined").await;
    let first = app.join("bob", &id).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let bob = app.connect(&first).await.unwrap();
    let players = |answer: &ApiResponse| answer.body["players"].clone();
    poll::until("bob to be present", WAIT, || async {
        (players(&app.get_game("alice", &id).await) == json!(["alice", "bob"])).then_some(())
    })
    .await;
    // Present: a re-join is answered the kept ticket.
    let again = app.join("bob", &id).await;
    assert_eq!(again.body["join"]["token"], first.body["join"]["token"]);
    bob.leave().await;
    poll::until("bob to have left", WAIT, || async {
        (players(&app.get_game("alice", &id).await) == json!(["alice"])).then_some(())
    })
    .await;
    // Left: the used ticket is gone; the re-join gets a new one that connects.
    let back = app.join("bob", &id).await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_ne!(back.body["join"]["token"], first.body["join"]["token"]);
    let _bob = app.connect(&back).await.unwrap();
    poll::until("bob to be back", WAIT, || async {
        (players(&app.get_game("alice", &id).await) == json!(["alice", "bob"])).then_some(())
    })
    .await;
    // The creator too: after leaving, the create's ticket is used up.
    alice.leave().await;
    poll::until("alice to have left", WAIT, || async {
        (players(&app.get_game("bob", &id).await) == json!(["bob"])).then_some(())
    })
    .await;
    let creator_back = app.join("alice", &id).await;
    assert_eq!(creator_back.status, 200, "{}", creator_back.text);
    assert_ne!(
        creator_back.body["join"]["token"],
        created.body["join"]["token"]
    );
    let _alice = app.connect(&creator_back).await.unwrap();
    poll::until("alice to be back", WAIT, || async {
        (players(&app.get_game("bob", &id).await) == json!(["bob", "alice"])).then_some(())
    })
    .await;
    app.shutdown().await;
}
