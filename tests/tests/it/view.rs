//! The in-memory view of open games (contract 5.4) and the change feed that keeps it
//! (contract 3.2): cursors while games come and go, a second instance seeing another's writes,
//! resyncs after a trimmed feed and after Redis lost its data, filters and sorts against a
//! model computed from Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mm_common::time::now_ms;
use mm_common::{Game, ProductId};
use mm_testkit::app::{ServerSpec, TestApp, TestAppOptions};
use mm_testkit::poll;
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Which games a query keeps, in the test's model.
type GameFilter = Box<dyn Fn(&Game) -> bool>;

fn chess() -> ProductId {
    ProductId::new("chess").unwrap()
}

/// Appends a game-server event for `id` (on `server`) to its product's stream.
async fn event(app: &TestApp, id: &str, server: &str, kind: &str, player: Option<&str>) {
    let product = mm_common::GameId::new(id).unwrap().product().unwrap();
    let stream = app.store.keys().product(&product).events();
    let mut conn = app.redis.connection().await;
    let ts = now_ms().to_string();
    let mut fields = vec![
        ("type", kind),
        ("game_id", id),
        ("server_id", server),
        ("ts", ts.as_str()),
    ];
    if let Some(player) = player {
        fields.push(("player_id", player));
    }
    let _: String = conn.xadd(&stream, "*", &fields).await.unwrap();
}

/// Creates a game and lets its creator connect (by event); its id, server and creator.
async fn open_game(app: &TestApp, body: Value) -> (String, String, String) {
    static CREATORS: AtomicU64 = AtomicU64::new(0);
    let creator = format!("creator-{}", CREATORS.fetch_add(1, Ordering::Relaxed));
    let created = app.create_game(&creator, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let (id, server) = (
        created.str("id").to_string(),
        created.str("server_id").to_string(),
    );
    event(app, &id, &server, "creator_joined", None).await;
    (id, server, creator)
}

/// Every page of `query` (which must not carry `cursor`) from `base`, `limit` per page.
async fn all_pages(app: &TestApp, base: &str, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let answer = app
            .send(
                app.http
                    .get(format!("{base}/v1/games?{query}&cursor={cursor}"))
                    .header("x-player-id", "browser"),
            )
            .await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.text);
        for game in answer.body["games"].as_array().unwrap() {
            ids.push(game["id"].as_str().unwrap().to_string());
        }
        match answer.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return ids,
        }
    }
}

/// The open games Redis holds for `product` (the store's own listing, read from Redis).
async fn redis_open(app: &TestApp, product: &ProductId) -> Vec<Game> {
    app.store
        .open_games(product, None, 10_000, None, now_ms())
        .await
        .unwrap()
        .games
}

async fn wait_listed_count(app: &TestApp, base: &str, query: &str, count: usize) {
    poll::until(
        &format!("{count} games listed by {query}"),
        WAIT,
        || async { (all_pages(app, base, query).await.len() == count).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_by_cursor_never_skip_or_repeat_while_games_come_and_go() {
    let app = TestApp::spawn(TestAppOptions::default()).await.unwrap();
    let base = app.base_url.clone();
    let mut stable = BTreeSet::new();
    for _ in 0..24 {
        let (id, _, _) = open_game(&app, json!({"product": "chess", "capacity": 4})).await;
        stable.insert(id);
    }
    let mut volatile = Vec::new();
    for _ in 0..8 {
        volatile.push(open_game(&app, json!({"product": "chess", "capacity": 4})).await);
    }
    wait_listed_count(&app, &base, "product=chess&limit=100", 32).await;

    for sort in ["oldest", "fullest"] {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let answer = app
                .list(
                    "browser",
                    &format!("product=chess&limit=3&sort={sort}&cursor={cursor}"),
                )
                .await;
            assert_eq!(answer.status, 200, "{}", answer.text);
            for game in answer.body["games"].as_array().unwrap() {
                *seen
                    .entry(game["id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
            pages += 1;
            // Between pages one game goes (cancelled by its creator) and one comes.
            if let Some((id, _, creator)) = volatile.pop() {
                assert_eq!(app.cancel(&creator, &id).await.status, 204);
            }
            volatile.insert(
                0,
                open_game(&app, json!({"product": "chess", "capacity": 4})).await,
            );
            match answer.body["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => break,
            }
        }
        let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "{sort}: repeated {repeated:?}");
        let missed: Vec<_> = stable.iter().filter(|id| !seen.contains_key(*id)).collect();
        assert!(
            missed.is_empty(),
            "{sort}: skipped games present throughout: {missed:?}"
        );
        println!("{sort}: {pages} pages, {} games seen", seen.len());
    }
    app.check_invariants().await.unwrap();
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_sees_another_instances_creates_and_joins() {
    let mut app = TestApp::spawn(TestAppOptions::default()).await.unwrap();
    let other = app.spawn_api_instance("second").await.unwrap();
    let listed_there = |id: String| {
        let (app, other) = (&app, other.clone());
        async move {
            let answer = app
                .send(
                    app.http
                        .get(format!("{other}/v1/games?product=chess&limit=100"))
                        .header("x-player-id", "browser"),
                )
                .await;
            answer.body["games"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|game| game["id"] == id.as_str())
                .cloned()
        }
    };
    let mut seen_after = Vec::new();
    for _ in 0..5 {
        let (id, _, _) = open_game(&app, json!({"product": "chess", "capacity": 3})).await;
        poll::until("the creator's lobby open", WAIT, || async {
            app.open_ids("chess").await.contains(&id).then_some(())
        })
        .await;
        let joined = app.join("joiner", &id).await;
        assert_eq!(joined.status, 200, "{}", joined.text);
        let answered = Instant::now();
        // This instance sees its own join at once.
        let here = app.list("browser", "product=chess&limit=100").await;
        let mine = here.body["games"]
            .as_array()
            .unwrap()
            .iter()
            .find(|game| game["id"] == id.as_str())
            .cloned()
            .expect("the joined game is still open");
        assert_eq!(mine["seats_free"], 1, "{mine}");
        // The other within a deadline.
        poll::until("the other instance sees the join", WAIT, || {
            let listed = listed_there(id.clone());
            async move {
                listed
                    .await
                    .filter(|game| game["seats_free"] == 1)
                    .map(|_| ())
            }
        })
        .await;
        seen_after.push(answered.elapsed());
    }
    seen_after.sort();
    println!(
        "FIGURES view staleness across two daemons (join answered → seen by the other, \
         including the poll's interval): {seen_after:?}"
    );
    app.shutdown().await;
}

/// Feeds the view a listing Redis does not have, then hides an entry it never reads behind
/// a trim: the view must load the product again and equal Redis afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_trimmed_past_the_view_forces_a_resync_and_the_view_equals_redis() {
    let app = TestApp::spawn(TestAppOptions::default()).await.unwrap();
    let base = app.base_url.clone();
    for _ in 0..5 {
        open_game(&app, json!({"product": "chess", "capacity": 2})).await;
    }
    wait_listed_count(&app, &base, "product=chess&limit=2", 5).await;
    let feed = app.store.keys().product(&chess()).feed();
    let mut conn = app.redis.connection().await;
    let phantom = "chess.0000phantom";
    let now = now_ms().to_string();
    let _: String = conn
        .xadd(
            &feed,
            "*",
            &[
                ("op", "open"),
                ("id", phantom),
                ("server_id", "gs-1"),
                ("region", ""),
                ("capacity", "2"),
                ("creator_id", "ghost"),
                ("created_at", now.as_str()),
                ("updated_at", now.as_str()),
                ("roster", "{}"),
                ("reservations", "{}"),
            ],
        )
        .await
        .unwrap();
    wait_listed_count(&app, &base, "product=chess&limit=2", 6).await;
    // An entry the view cannot have read, trimmed in the same call that added it.
    let _: i64 = redis::Script::new(
        "redis.call('XADD', KEYS[1], '*', 'op', 'gone', 'id', 'chess.0000nothing')
         return redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)",
    )
    .key(&feed)
    .invoke_async(&mut conn)
    .await
    .unwrap();
    wait_listed_count(&app, &base, "product=chess&limit=2", 5).await;
    let mut expected: Vec<String> = redis_open(&app, &chess())
        .await
        .iter()
        .map(|game| game.id.to_string())
        .collect();
    let mut listed = all_pages(&app, &base, "product=chess&limit=2").await;
    expected.sort();
    listed.sort();
    assert_eq!(listed, expected);
    assert!(!listed.iter().any(|id| id == phantom));
    let metrics = app
        .send(app.request(Method::GET, "/metrics", None))
        .await
        .text;
    assert!(
        metrics.lines().any(
            |line| line.starts_with(r#"mm_view_resyncs_total{reason="gap"}"#)
                && !line.ends_with(" 0")
        ),
        "no gap resync counted"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_losing_its_data_empties_the_view_and_it_follows_again() {
    let mut app = TestApp::spawn(TestAppOptions::default()).await.unwrap();
    let base = app.base_url.clone();
    for _ in 0..3 {
        open_game(&app, json!({"product": "chess", "capacity": 2})).await;
    }
    wait_listed_count(&app, &base, "product=chess", 3).await;
    app.redis.restart().unwrap();
    // Redis came back empty: the view reloads and lists nothing.
    wait_listed_count(&app, &base, "product=chess", 0).await;
    // And follows the new feed: a game opened now is listed.
    let (id, server) = poll::until("a create succeeds again", WAIT, || async {
        let created = app
            .create_game("again", json!({"product": "chess", "capacity": 2}))
            .await;
        (created.status == 201).then(|| {
            (
                created.str("id").to_string(),
                created.str("server_id").to_string(),
            )
        })
    })
    .await;
    event(&app, &id, &server, "creator_joined", None).await;
    wait_listed_count(&app, &base, "product=chess", 1).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_sorts_agree_with_a_model_of_redis() {
    let mut eu = ServerSpec::new("gs-eu", "chess");
    eu.region = Some("eu".into());
    let mut us = ServerSpec::new("gs-us", "chess");
    us.region = Some("us".into());
    let mut go = ServerSpec::new("gs-go", "go");
    go.region = Some("eu".into());
    let app = TestApp::spawn(TestAppOptions {
        servers: vec![eu, us, go],
        // Each page examines at most 5 games for its filters (below the configured minimum
        // of 101, which the kit's settings skip, so that a handful of games exercise the
        // bound): every query below is paged through short pages and must still list
        // exactly what the model says.
        adjust_settings: Some(|settings| settings.lobby.list_scan_max = 5),
        ..TestAppOptions::default()
    })
    .await
    .unwrap();
    let base = app.base_url.clone();
    let mut total = 0;
    for n in 0..18u32 {
        let product = if n % 3 == 2 { "go" } else { "chess" };
        let region = if n % 2 == 0 { "eu" } else { "us" };
        let region = if product == "go" { "eu" } else { region };
        let capacity = 2 + n % 5;
        let mode = if n % 2 == 0 { "ranked" } else { "casual" };
        let map = ["dust2", "inferno", "nuke"][n as usize % 3];
        let (id, server, _) = open_game(
            &app,
            json!({"product": product, "capacity": capacity, "region": region,
                   "labels": {"mode": mode, "map": map}}),
        )
        .await;
        // Some players connect (never filling the game).
        for p in 0..(n % capacity.saturating_sub(1).max(1)) {
            event(&app, &id, &server, "player_joined", Some(&format!("p{p}"))).await;
        }
        total += 1;
    }
    wait_listed_count(&app, &base, "limit=100", total).await;
    // Let every event be applied and read by the view: Redis's open games, twice equal.
    let model: Vec<Game> = poll::until("the view settled", WAIT, || async {
        let mut games = redis_open(&app, &chess()).await;
        games.extend(redis_open(&app, &ProductId::new("go").unwrap()).await);
        let mut ids: Vec<String> = games.iter().map(|g| g.id.to_string()).collect();
        ids.sort();
        let mut listed = all_pages(&app, &base, "limit=100").await;
        listed.sort();
        let players_agree = {
            let page = app.list("b", "limit=100").await;
            page.body["games"].as_array().unwrap().iter().all(|shown| {
                games.iter().any(|g| {
                    g.id.as_str() == shown["id"].as_str().unwrap()
                        && shown["players"].as_array().unwrap().len() == g.players().len()
                })
            })
        };
        (ids == listed && players_agree).then_some(games)
    })
    .await;
    let now = now_ms();
    let queries: Vec<(String, GameFilter)> = vec![
        ("".into(), Box::new(|_| true)),
        (
            "product=chess".into(),
            Box::new(|g| g.product.as_str() == "chess"),
        ),
        (
            "region=eu".into(),
            Box::new(|g| g.region.as_deref() == Some("eu")),
        ),
        (
            "product=chess&region=us".into(),
            Box::new(|g| g.product.as_str() == "chess" && g.region.as_deref() == Some("us")),
        ),
        (
            "labels.mode=ranked".into(),
            Box::new(|g| g.labels.get("mode") == Some("ranked")),
        ),
        (
            "product=chess&labels.mode=casual&labels.map=dust2".into(),
            Box::new(|g| {
                g.product.as_str() == "chess"
                    && g.labels.get("mode") == Some("casual")
                    && g.labels.get("map") == Some("dust2")
            }),
        ),
        ("labels.map=nowhere".into(), Box::new(|_| false)),
        ("min_seats_free=100000".into(), Box::new(|_| false)),
        (
            "min_seats_free=3".into(),
            Box::new(move |g| g.capacity as usize - g.seats_taken(now) >= 3),
        ),
    ];
    for (filter, keep) in &queries {
        for sort in ["oldest", "fullest"] {
            let mut expected: Vec<&Game> = model.iter().filter(|g| keep(g)).collect();
            match sort {
                "oldest" => expected.sort_by_key(|g| (g.created_at_ms, g.id.to_string())),
                _ => expected.sort_by_key(|g| {
                    (
                        std::cmp::Reverse(g.players().len()),
                        g.created_at_ms,
                        g.id.to_string(),
                    )
                }),
            }
            let expected: Vec<String> = expected.iter().map(|g| g.id.to_string()).collect();
            let listed = all_pages(&app, &base, &format!("{filter}&sort={sort}&limit=4")).await;
            assert_eq!(listed, expected, "{filter} sort={sort}");
        }
    }
    // A query that matches nothing walks no more than 5 games a request: it is answered in
    // as many pages as 5 go into the games, each empty, all but the last with a cursor.
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .list("b", &format!("labels.map=nowhere&limit=4&cursor={cursor}"))
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.body["games"], json!([]), "{}", page.text);
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(
        pages,
        total.div_ceil(5),
        "{total} open games, 5 examined a page"
    );
    app.shutdown().await;
}
