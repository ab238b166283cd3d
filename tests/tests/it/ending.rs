//! Fault tests of the end step against a real `matchmakerd` (worker, curator and api roles), a
//! real redis-server and a misbehaving game server (the testkit's fake, whose `DELETE` is
//! slow): the creator's `creator_joined` applied while the curator's delete is in flight, and
//! a lobby reached by events without its creator. Each test prints its measured figures (run
//! with `--nocapture` to see them).

use std::collections::BTreeSet;
use std::time::Duration;

use mm_common::store::{RemoveGuard, RemoveOutcome};
use mm_common::time::now_ms;
use mm_common::{Game, GameId, GameState, PlayerId, ServerId};
use mm_testkit::daemon_process::{DaemonProcess, DaemonSpec};
use mm_testkit::fake_gameserver::{Behaviour, FakeGameServer, Route};
use mm_testkit::{RedisServer, poll};
use redis::AsyncCommands;
use serde_json::Value;

use crate::consumer::Fixture;

/// How long the fake takes to answer a `DELETE`: long enough to write and apply events while
/// every delete of a pass is in flight, even on a loaded machine.
const SLOW_DELETE: Duration = Duration::from_secs(8);

/// A daemon with every role over `fx`'s Redis, the fake registered as `gs-1` of `chess`, its
/// API on a free port (returned). Pending games are stale after `pending_timeout_secs`; one
/// curation pass deletes up to 100 games at once; a delete may take up to 20 s, no retry.
fn start_daemon(
    fx: &Fixture,
    fake: &FakeGameServer,
    pending_timeout_secs: u64,
) -> (DaemonProcess, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut spec = DaemonSpec::worker("ending", &fx.redis.url());
    spec.roles = "api,worker,curator".into();
    spec.extra_toml = format!(
        "[http]\nbind = \"127.0.0.1:{port}\"\n\n\
         [consumer]\nblock_ms = 100\n\n\
         [curation]\ninterval_secs = 1\npending_timeout_secs = {pending_timeout_secs}\nconcurrency = 100\n\
         batch_size = 100\n\n\
         [game_server_client]\nrequest_timeout_ms = 20000\nretries = 0\n\n\
         [[game_servers]]\nid = \"gs-1\"\nproduct = \"chess\"\napi_url = \"{}\"\n\
         max_games = 1000\napi_key = \"fake-api-key\"\n",
        fake.api_url()
    );
    (DaemonProcess::start(spec).unwrap(), port)
}

/// A fixture over a private Redis, its product registered and its consumer group made.
async fn registered_fixture() -> Fixture {
    let fx = Fixture::with_redis(RedisServer::start().expect("redis-server")).await;
    fx.store
        .register_products(std::slice::from_ref(&fx.product))
        .await
        .unwrap();
    fx.store.ensure_group(&fx.product).await.unwrap();
    fx
}

/// A game of `chess` on `gs-1`, created `age_ms` ago, in the record only (the fake answers
/// any call about any game).
async fn recorded_game(fx: &Fixture, name: &str, age_ms: u64) -> Game {
    let game = Game::new(
        GameId::new(format!("chess.{name}")).unwrap(),
        fx.product.clone(),
        ServerId::new("gs-1").unwrap(),
        None,
        2,
        PlayerId::new(format!("creator-{name}")).unwrap(),
        "ws://127.0.0.1:1/ws".into(),
        "{}".into(),
        now_ms() - age_ms,
    );
    assert!(fx.store.create_game(&game).await.unwrap());
    game
}

/// Writes one event about `game` to the product stream, as its game server would.
async fn write_event(fx: &Fixture, game: &Game, kind: &str, player: Option<&str>) {
    let mut conn = fx.redis.connection().await;
    let ts = now_ms().to_string();
    let mut fields = vec![
        ("type", kind),
        ("game_id", game.id.as_str()),
        ("server_id", game.server_id.as_str()),
        ("ts", ts.as_str()),
    ];
    if let Some(player) = player {
        fields.push(("player_id", player));
    }
    let _: String = conn.xadd(&fx.stream, "*", &fields).await.unwrap();
}

/// The ids `GET /v1/games?product=chess` lists (first page of 100).
async fn listed(http: &reqwest::Client, port: u16) -> BTreeSet<String> {
    let page: Value = http
        .get(format!(
            "http://127.0.0.1:{port}/v1/games?product=chess&limit=100"
        ))
        .header("x-player-id", "browser")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["games"]
        .as_array()
        .unwrap_or_else(|| panic!("a listing: {page}"))
        .iter()
        .map(|game| game["id"].as_str().unwrap().to_string())
        .collect()
}

/// `request` sent as `player`: the status and the problem code, if any.
async fn status_and_code(request: reqwest::RequestBuilder, player: &str) -> (u16, String) {
    let answer = request.header("x-player-id", player).send().await.unwrap();
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    (
        status,
        body["code"].as_str().unwrap_or_default().to_string(),
    )
}

/// `POST /v1/games/{id}/join` as `player`: the status and the problem code, if any.
async fn join(http: &reqwest::Client, port: u16, game: &GameId, player: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}/v1/games/{game}/join");
    status_and_code(http.post(url), player).await
}

/// Waits until the daemon's API answers.
async fn wait_ready(port: u16) {
    poll::until("the daemon's API", Duration::from_secs(30), || async move {
        let answer = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
        answer.ok()?.status().is_success().then_some(())
    })
    .await;
}

/// The race of issue 12, found-item 2: the curator deletes stale games on their server (slowly)
/// while each game's creator connects, so their `creator_joined` is applied while the delete is
/// in flight. Every game is marked as ending before its delete, so none is listed or joinable
/// then, and every record ends once its server confirmed; no game stays listed that its server
/// no longer has.
#[tokio::test]
async fn a_creator_joining_while_the_curator_deletes_never_leaves_a_listed_game() {
    const GAMES: usize = 40;
    let fx = registered_fixture().await;
    let fake = FakeGameServer::start().await.unwrap();
    fake.set(Route::DeleteGame, Behaviour::Delay(SLOW_DELETE));
    let mut games = Vec::new();
    for n in 0..GAMES {
        games.push(recorded_game(&fx, &format!("race{n:02}"), 60_000).await);
    }
    let (mut daemon, port) = start_daemon(&fx, &fake, 5);
    wait_ready(port).await;
    let http = reqwest::Client::new();

    // Every game marked and its delete arrived at the server (and is held there).
    let store = fx.store.clone();
    let ids: Vec<GameId> = games.iter().map(|game| game.id.clone()).collect();
    poll::until("every delete in flight", Duration::from_secs(30), || {
        let (store, ids, fake) = (store.clone(), ids.clone(), &fake);
        async move {
            for id in &ids {
                store.game(id).await.ok()??.ending?;
            }
            (fake.calls(Route::DeleteGame) >= GAMES).then_some(())
        }
    })
    .await;
    // The creators connect now: their events are applied while the deletes are held.
    for game in &games {
        write_event(&fx, game, "creator_joined", None).await;
    }
    poll::until(
        "every creator_joined applied",
        Duration::from_secs(30),
        || {
            let (store, ids) = (store.clone(), ids.clone());
            async move {
                for id in &ids {
                    let game = store.game(id).await.ok()??;
                    (game.creator_present() || game.state() == GameState::Ended).then_some(())?;
                }
                Some(())
            }
        },
    )
    .await;
    // Inside the window: applied, record not yet ended (its server has not answered).
    let mut raced = 0;
    for id in &ids {
        let game = fx.store.game(id).await.unwrap().unwrap();
        if game.state() == GameState::CreatorJoined {
            raced += 1;
        }
    }
    let listed_during = listed(&http, port).await.len();
    let mut joinable_during = 0;
    for game in &games {
        let (status, code) = join(&http, port, &game.id, "joiner").await;
        if status != 409 || code != "game_not_open" {
            joinable_during += 1;
            eprintln!("join during the delete: {status} {code}");
        }
    }
    assert_eq!(
        raced, GAMES,
        "every creator_joined was applied while its delete was in flight"
    );
    assert_eq!(listed_during, 0, "no game listed while being deleted");
    assert_eq!(joinable_during, 0, "no game joinable while being deleted");

    // The deletes answer: every record ends.
    let wait = tokio::time::timeout(
        Duration::from_secs(60),
        poll::until("every record ended", Duration::from_secs(60), || {
            let (store, ids) = (store.clone(), ids.clone());
            async move {
                for id in &ids {
                    (store.game(id).await.ok()??.state() == GameState::Ended).then_some(())?;
                }
                Some(())
            }
        }),
    )
    .await;
    if wait.is_err() {
        panic!("records not ended; daemon log:\n{}", daemon.log());
    }
    let mut ended_curated = 0;
    for id in &ids {
        let game = fx.store.game(id).await.unwrap().unwrap();
        if game.end_reason.as_deref() == Some("curated_pending") {
            ended_curated += 1;
        }
    }
    let listed_after = listed(&http, port).await.len();
    let mut joinable_after = 0;
    for game in &games {
        let (status, code) = join(&http, port, &game.id, "joiner").await;
        if status != 409 || code != "game_not_open" {
            joinable_after += 1;
        }
    }
    assert_eq!(ended_curated, GAMES);
    assert_eq!(listed_after, 0);
    assert_eq!(joinable_after, 0);
    let delete_calls = fake.calls(Route::DeleteGame);
    let status = daemon.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
    println!(
        "FIGURES delete-join-race: games={GAMES} delete_delay={SLOW_DELETE:?} \
         creator_joined_applied_during_delete={raced} listed_during={listed_during} \
         joinable_during={joinable_during} records_ended={ended_curated} \
         listed_after={listed_after} joinable_after={joinable_after} delete_calls={delete_calls}"
    );
    fx.check_invariants().await;
}

/// Issue 12, found-item 7: created → `all_players_joined` → `player_left` reaches the lobby
/// without the creator. It is not listed and joins answer `creator_not_joined` until the
/// creator connects. And an end step a crash interrupted (simulated: marked, never deleted) is
/// finished by the running daemon's curator.
#[tokio::test]
async fn a_lobby_without_its_creator_is_not_listed_and_an_interrupted_end_is_finished() {
    let fx = registered_fixture().await;
    let fake = FakeGameServer::start().await.unwrap();
    let creatorless = recorded_game(&fx, "creatorless", 0).await;
    // A fresh lobby whose end step was interrupted long ago (older than the daemon's bound:
    // 4 × 20 s).
    let interrupted = recorded_game(&fx, "interrupted", 0).await;
    write_event(&fx, &interrupted, "creator_joined", None).await;
    // Written before the daemon starts, so the game leaves pending long before its timeout.
    write_event(&fx, &creatorless, "all_players_joined", None).await;
    write_event(&fx, &creatorless, "player_left", Some("p1")).await;
    // Nothing here is stale: only the interrupted end step is the curator's business.
    let (mut daemon, port) = start_daemon(&fx, &fake, 600);
    wait_ready(port).await;
    let http = reqwest::Client::new();
    let store = fx.store.clone();
    let id = creatorless.id.clone();
    poll::until(
        "the out-of-order history applied",
        Duration::from_secs(30),
        || {
            let (store, id) = (store.clone(), id.clone());
            async move {
                let game = store.game(&id).await.ok()??;
                game.last_leave?;
                (game.state() == GameState::CreatorJoined).then_some(())
            }
        },
    )
    .await;
    let listed_without_creator = listed(&http, port).await.contains(creatorless.id.as_str());
    let (status, code) = join(&http, port, &creatorless.id, "p2").await;
    assert!(!listed_without_creator, "a creatorless lobby is not listed");
    assert_eq!((status, code.as_str()), (409, "creator_not_joined"));
    // The creator connects: listed (once the view has read the feed).
    write_event(&fx, &creatorless, "creator_joined", None).await;
    poll::until("listed with its creator", Duration::from_secs(30), || {
        let http = http.clone();
        let id = creatorless.id.to_string();
        async move { listed(&http, port).await.contains(&id).then_some(()) }
    })
    .await;

    // The interrupted end step.
    let id = interrupted.id.clone();
    poll::until("the lobby applied", Duration::from_secs(30), || {
        let (store, id) = (store.clone(), id.clone());
        async move { store.game(&id).await.ok()??.creator_present().then_some(()) }
    })
    .await;
    let marked = fx
        .store
        .mark_ending(
            &interrupted.id,
            "cancelled",
            mm_common::store::RemoveGuard::Any,
            now_ms() - 120_000,
        )
        .await
        .unwrap();
    assert!(
        matches!(marked, mm_common::store::MarkOutcome::Marked { .. }),
        "{marked:?}"
    );
    let wait = tokio::time::timeout(
        Duration::from_secs(30),
        poll::until(
            "the interrupted end step finished",
            Duration::from_secs(30),
            || {
                let (store, id) = (store.clone(), id.clone());
                async move {
                    let game = store.game(&id).await.ok()??;
                    (game.state() == GameState::Ended).then_some(game)
                }
            },
        ),
    )
    .await;
    let Ok(finished) = wait else {
        panic!("not finished; daemon log:\n{}", daemon.log());
    };
    assert_eq!(
        finished.end_reason.as_deref(),
        Some("cancelled"),
        "ended with the mark's reason; daemon log:\n{}",
        daemon.log()
    );
    assert!(fake.calls(Route::DeleteGame) >= 1, "deleted on its server");
    assert!(
        daemon
            .log()
            .contains("finishing an end step that was interrupted"),
        "the curator says what it finished"
    );
    let status = daemon.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
    println!(
        "FIGURES out-of-order-and-interrupted: creatorless_listed={listed_without_creator} \
         creatorless_join={status_code} interrupted_end_finished=1",
        status_code = 409
    );
    fx.check_invariants().await;
}

/// `DELETE /v1/games/{id}` as `player`: the status and the problem code, if any.
async fn cancel(http: &reqwest::Client, port: u16, game: &GameId, player: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}/v1/games/{game}");
    status_and_code(http.delete(url), player).await
}

/// A cancel whose game ends while its server deletes it (slowly) answers by how the game
/// ended: ended as cancelled — this very cancel's removal, run once already and resent after
/// its answer was lost, or the creator's other cancel — is a success (204); ended any other
/// way (here an operator's force-delete) is `409 game_not_open`. A cancel resent once the
/// game is a cancelled tombstone answers 204 and calls no server.
#[tokio::test]
async fn a_cancel_whose_game_ended_meanwhile_answers_by_how_it_ended() {
    let fx = registered_fixture().await;
    let fake = FakeGameServer::start().await.unwrap();
    fake.set(Route::DeleteGame, Behaviour::Delay(SLOW_DELETE));
    let (mut daemon, port) = start_daemon(&fx, &fake, 600);
    wait_ready(port).await;
    let by_cancel = recorded_game(&fx, "cancelled-meanwhile", 0).await;
    let by_operator = recorded_game(&fx, "deleted-meanwhile", 0).await;
    let http = reqwest::Client::new();
    let cancels: Vec<_> = [&by_cancel, &by_operator]
        .into_iter()
        .map(|game| {
            let (http, id, creator) = (http.clone(), game.id.clone(), game.creator_id.clone());
            tokio::spawn(async move { cancel(&http, port, &id, creator.as_str()).await })
        })
        .collect();
    poll::until(
        "both deletes on the game server",
        Duration::from_secs(30),
        || {
            let fake = &fake;
            async move { (fake.calls(Route::DeleteGame) >= 2).then_some(()) }
        },
    )
    .await;
    let now = now_ms();
    for (game, reason) in [(&by_cancel, "cancelled"), (&by_operator, "force_deleted")] {
        let removed = fx
            .store
            .remove_game(&game.id, reason, RemoveGuard::Any, now)
            .await
            .unwrap();
        assert!(
            matches!(removed, RemoveOutcome::Removed { .. }),
            "{}: {removed:?}",
            game.id
        );
    }
    let mut answers = Vec::new();
    for answered in cancels {
        answers.push(answered.await.unwrap());
    }
    assert_eq!(
        answers,
        [(204, String::new()), (409, "game_not_open".to_string())],
        "ended as cancelled, then by an operator"
    );
    let deletes = fake.calls(Route::DeleteGame);
    let again = cancel(&http, port, &by_cancel.id, by_cancel.creator_id.as_str()).await;
    assert_eq!(again, (204, String::new()), "a cancel resent after the end");
    assert_eq!(fake.calls(Route::DeleteGame), deletes, "and no server call");
    for game in [&by_cancel, &by_operator] {
        let stored = fx.store.game(&game.id).await.unwrap().unwrap();
        assert_eq!(stored.state(), GameState::Ended, "{}", game.id);
    }
    let status = daemon.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
}
