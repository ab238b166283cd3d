//! The store against a real redis-server: atomic transitions, no over-filling, exactly-once
//! application, script reloading and listing with a stable cursor. Agreement with the pure
//! model on random mixes of every operation is `oracle.rs`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mm_common::gameserver::JoinTicket;
use mm_common::keys::CONSUMER_GROUP;
use mm_common::limits::{LimitRefusal, PlayerLimits};
use mm_common::model::{EventKind, GameSet, JoinRefusal};
use mm_common::store::{
    ApplyResult, GroupCounts, OpenCursor, QuickJoinFilter, QuickJoinOutcome, RemoveGuard,
    RemoveOutcome, ReserveOutcome, Store, StoreOptions,
};
use mm_common::{Game, GameId, GameState, PlayerId, ProductId, ServerId};
use mm_testkit::{RedisServer, invariants, redis_stats};
use redis::AsyncCommands;

const NOW: u64 = 1_800_000_000_000;

/// A private Redis with a store over it and the consumer group of one product.
struct Fixture {
    redis: RedisServer,
    store: Store,
    product: ProductId,
}

impl Fixture {
    async fn new() -> Fixture {
        let redis = RedisServer::start().expect("redis-server");
        let mut options = StoreOptions::new(redis.url());
        options.tombstone_ttl = Duration::from_secs(600);
        let store = Store::connect(options).await.expect("store");
        let product = ProductId::new("chess").unwrap();
        store
            .register_products(std::slice::from_ref(&product))
            .await
            .unwrap();
        let mut conn = redis.connection().await;
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(store.keys().product(&product).events())
            .arg(CONSUMER_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await
            .unwrap();
        Fixture {
            redis,
            store,
            product,
        }
    }

    fn game(&self, n: u32, capacity: u32) -> Game {
        Game::new(
            GameId::new(format!("chess.g{n:04}")).unwrap(),
            self.product.clone(),
            ServerId::new("gs-1").unwrap(),
            Some(if n.is_multiple_of(2) { "eu" } else { "us" }.into()),
            capacity,
            PlayerId::new(format!("creator{n}")).unwrap(),
            "ws://127.0.0.1:1/ws".into(),
            "{}".into(),
            NOW + u64::from(n),
        )
    }

    /// `count` lobbies of `capacity` seats (games 0..count), each with its creator in.
    async fn open_lobbies(&self, count: u32, capacity: u32) -> Vec<Game> {
        let mut games = Vec::new();
        for n in 0..count {
            let game = self.created(n, capacity).await;
            self.event(EventKind::CreatorJoined, &game, None).await;
            games.push(game);
        }
        games
    }

    /// The end of a test of `requests` grouped seat requests (`what`, sent through `script`),
    /// one of which went to `broken` (its `reservations` garbled): that one failed alone with
    /// an error naming the script, the requests shared script calls, and once `broken` is
    /// mended the invariants hold.
    async fn assert_grouped_with_one_failure(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        (what, script): (&str, &str),
        (requests, before): (u64, GroupCounts),
        broken: &Game,
        failure: impl std::fmt::Display,
    ) {
        assert!(
            failure.to_string().contains(script),
            "the {what} request on the unreadable game fails alone, naming {script}: {failure}"
        );
        let redis_calls = assert_requests_shared_calls(conn, what, requests).await;
        // The store counts its calls and the requests they carried (metrics
        // `mm_store_grouped_*_total`). Redis may count one call more per script: a first
        // `EVALSHA` refused with `NOSCRIPT`, then the `EVAL` that loads the script.
        let after = self.group_counts(script);
        let calls = after.calls - before.calls;
        assert_eq!(
            after.requests - before.requests,
            requests,
            "the store counts every {script} request"
        );
        assert!(
            calls >= 1 && calls < requests && calls <= redis_calls,
            "the store counted {calls} {script} calls; Redis ran {redis_calls}"
        );
        let broken_key = self.store.keys().product(&self.product).game(&broken.id);
        let () = conn.hset(&broken_key, "reservations", "{}").await.unwrap();
        self.check_invariants(NOW).await;
    }

    /// What the store counted of the grouped write `script` so far.
    fn group_counts(&self, script: &str) -> GroupCounts {
        self.store
            .group_counts()
            .into_iter()
            .find(|counts| counts.script == script)
            .unwrap_or_else(|| panic!("the store counts {script}"))
    }

    /// Overwrites `field` of `game`'s hash with text that is not JSON.
    async fn garble(&self, game: &Game, field: &str) {
        let key = self.store.keys().product(&self.product).game(&game.id);
        let mut conn = self.redis.connection().await;
        let () = conn.hset(&key, field, "not json").await.unwrap();
    }

    async fn created(&self, n: u32, capacity: u32) -> Game {
        let game = self.game(n, capacity);
        assert!(self.store.create_game(&game).await.unwrap());
        game
    }

    /// Writes an event to the product stream as a game server would, reads it through the
    /// consumer group as the daemon would, and returns the delivered entry.
    async fn deliver(&self, fields: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        let mut conn = self.redis.connection().await;
        let stream = self.store.keys().product(&self.product).events();
        let _: String = conn.xadd(&stream, "*", fields).await.unwrap();
        let reply: redis::streams::StreamReadReply = conn
            .xread_options(
                &[&stream],
                &[">"],
                &redis::streams::StreamReadOptions::default()
                    .group(CONSUMER_GROUP, "test")
                    .count(1),
            )
            .await
            .unwrap();
        let entry = reply.keys[0].ids[0].clone();
        let fields = entry
            .map
            .iter()
            .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
            .collect();
        (entry.id, fields)
    }

    async fn event(&self, kind: EventKind, game: &Game, player: Option<&str>) -> ApplyResult {
        let mut fields = vec![
            ("type", kind.as_str()),
            ("game_id", game.id.as_str()),
            ("server_id", "gs-1"),
        ];
        if let Some(player) = player {
            fields.push(("player_id", player));
        }
        let (id, fields) = self.deliver(&fields).await;
        self.store
            .apply_entry(&self.product, &id, &fields, NOW + 1_000_000)
            .await
            .unwrap()
    }

    async fn state_of(&self, game: &Game) -> GameState {
        self.store
            .game(&game.id)
            .await
            .unwrap()
            .expect("game exists")
            .state()
    }

    async fn sets_holding(&self, game: &Game) -> Vec<GameSet> {
        let mut conn = self.redis.connection().await;
        let mut found = Vec::new();
        for set in GameSet::ALL {
            let key = self.store.keys().product(&self.product).set(set);
            let score: Option<f64> = conn.zscore(key, game.id.as_str()).await.unwrap();
            if score.is_some() {
                found.push(set);
            }
        }
        found
    }

    async fn is_listed(&self, game: &Game) -> bool {
        let page = self
            .store
            .open_games(&self.product, None, 100, None, NOW)
            .await
            .unwrap();
        page.games.iter().any(|g| g.id == game.id)
    }

    async fn check_invariants(&self, now_ms: u64) -> invariants::Census {
        let mut conn = self.redis.connection().await;
        invariants::check(&mut conn, "mm", std::slice::from_ref(&self.product), now_ms)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn each_transition_moves_the_game_between_exactly_the_right_sets() {
    let fx = Fixture::new().await;
    let game = fx.created(1, 2).await;
    assert_eq!(fx.sets_holding(&game).await, [GameSet::Pending]);
    assert!(!fx.is_listed(&game).await, "pending games are not open");

    // (event, player, state after, set after, listed as open after)
    type Step<'a> = (EventKind, Option<&'a str>, GameState, Option<GameSet>, bool);
    let steps: [Step; 6] = [
        (
            EventKind::CreatorJoined,
            Some("creator1"),
            GameState::CreatorJoined,
            Some(GameSet::Lobby),
            true,
        ),
        (
            EventKind::PlayerJoined,
            Some("p2"),
            GameState::AllPlayersJoined,
            Some(GameSet::Lobby),
            false,
        ),
        (
            EventKind::PlayerLeft,
            Some("p2"),
            GameState::CreatorJoined,
            Some(GameSet::Lobby),
            true,
        ),
        (
            EventKind::PlayerJoined,
            Some("p3"),
            GameState::AllPlayersJoined,
            Some(GameSet::Lobby),
            false,
        ),
        (
            EventKind::GameStarted,
            None,
            GameState::InProgress,
            Some(GameSet::Active),
            false,
        ),
        (EventKind::GameEnded, None, GameState::Ended, None, false),
    ];
    for (kind, player, state, set, listed) in steps {
        let result = fx.event(kind, &game, player).await;
        assert_eq!(result, ApplyResult::Applied(state), "{kind}");
        assert_eq!(fx.state_of(&game).await, state, "{kind}");
        assert_eq!(
            fx.sets_holding(&game).await,
            set.into_iter().collect::<Vec<_>>(),
            "{kind}"
        );
        assert_eq!(fx.is_listed(&game).await, listed, "{kind}");
        fx.check_invariants(NOW).await;
    }
    let mut conn = fx.redis.connection().await;
    let ttl: i64 = conn
        .ttl(fx.store.keys().product(&fx.product).game(&game.id))
        .await
        .unwrap();
    assert!(
        (1..=600).contains(&ttl),
        "ended game is a tombstone with a TTL, got {ttl}"
    );
    let ended = fx.store.game(&game.id).await.unwrap().unwrap();
    assert_eq!(
        ended.players(),
        [
            PlayerId::new("creator1").unwrap(),
            PlayerId::new("p3").unwrap()
        ]
    );
    assert_eq!(ended.end_reason.as_deref(), Some("game_ended"));
}

#[tokio::test]
async fn fifty_concurrent_reservations_for_three_free_seats_give_exactly_three() {
    let fx = Fixture::new().await;
    let game = fx.created(1, 4).await;
    fx.event(EventKind::CreatorJoined, &game, None).await;
    let attempts = (0..50).map(|i| {
        let store = fx.store.clone();
        let id = game.id.clone();
        tokio::spawn(async move {
            let player = PlayerId::new(format!("racer{i}")).unwrap();
            store
                .reserve_seat(&id, &player, NOW, Duration::from_secs(30))
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<ReserveOutcome> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, ReserveOutcome::Reserved { .. }))
        .count();
    let full = outcomes
        .iter()
        .filter(|o| **o == ReserveOutcome::Refused(JoinRefusal::GameFull))
        .count();
    assert_eq!((won, full), (3, 47), "{outcomes:?}");
    let stored = fx.store.game(&game.id).await.unwrap().unwrap();
    assert_eq!(stored.reservations.len(), 3);
    assert!(!fx.is_listed(&game).await, "no free seat left");
    fx.check_invariants(NOW).await;
}

#[tokio::test]
async fn join_rules_are_enforced_in_the_script() {
    let fx = Fixture::new().await;
    let game = fx.created(1, 2).await;
    let p2 = PlayerId::new("p2").unwrap();
    let ttl = Duration::from_secs(30);
    let reserve = |player: PlayerId| {
        let store = fx.store.clone();
        let id = game.id.clone();
        async move { store.reserve_seat(&id, &player, NOW, ttl).await.unwrap() }
    };
    assert_eq!(
        reserve(p2.clone()).await,
        ReserveOutcome::Refused(JoinRefusal::CreatorNotJoined)
    );
    assert_eq!(
        reserve(game.creator_id.clone()).await,
        ReserveOutcome::AlreadyHeld
    );
    fx.event(EventKind::CreatorJoined, &game, None).await;
    assert!(matches!(
        reserve(p2.clone()).await,
        ReserveOutcome::Reserved { .. }
    ));
    assert_eq!(reserve(p2.clone()).await, ReserveOutcome::AlreadyHeld);
    assert_eq!(
        reserve(PlayerId::new("p3").unwrap()).await,
        ReserveOutcome::Refused(JoinRefusal::GameFull)
    );
    fx.event(EventKind::PlayerJoined, &game, Some("p2")).await;
    let stored = fx.store.game(&game.id).await.unwrap().unwrap();
    assert!(
        stored.reservations.is_empty(),
        "joining consumed the reservation"
    );
    fx.event(EventKind::GameStarted, &game, None).await;
    assert_eq!(
        reserve(PlayerId::new("p4").unwrap()).await,
        ReserveOutcome::Refused(JoinRefusal::GameNotOpen)
    );
    assert_eq!(
        fx.store
            .reserve_seat(&GameId::new("chess.nope").unwrap(), &p2, NOW, ttl)
            .await
            .unwrap(),
        ReserveOutcome::NotFound
    );
    fx.check_invariants(NOW).await;
}

#[tokio::test]
async fn a_ticket_is_kept_only_for_a_player_who_holds_a_seat() {
    let fx = Fixture::new().await;
    let game = fx.created(1, 3).await;
    fx.event(EventKind::CreatorJoined, &game, None).await;
    let ttl = Duration::from_secs(30);
    let ticket = |token: &str| JoinTicket {
        socket_url: "ws://127.0.0.1:1/ws".into(),
        token: token.into(),
    };
    let kept = |player: &str, token: &str| {
        let (store, id) = (&fx.store, &game.id);
        let (player, ticket) = (PlayerId::new(player).unwrap(), ticket(token));
        async move { store.keep_ticket(id, &player, &ticket).await.unwrap() }
    };
    let stored_ticket = |player: &str| {
        let key = fx.store.keys().product(&fx.product).game(&game.id);
        let field = format!("ticket:{player}");
        let redis = &fx.redis;
        async move {
            let mut conn = redis.connection().await;
            let value: Option<String> = conn.hget(key, field).await.unwrap();
            value
        }
    };
    // The creator, a player holding a reservation, and a player present (reservation
    // consumed by their `player_joined`) get their ticket kept; a stranger does not.
    assert!(kept(game.creator_id.as_str(), "c").await);
    let p2 = PlayerId::new("p2").unwrap();
    fx.store
        .reserve_seat(&game.id, &p2, NOW, ttl)
        .await
        .unwrap();
    assert!(kept("p2", "r").await);
    fx.event(EventKind::PlayerJoined, &game, Some("p2")).await;
    assert!(kept("p2", "p").await, "present, no reservation left");
    assert!(!kept("stranger", "s").await);
    assert_eq!(stored_ticket("stranger").await, None);
    assert!(stored_ticket("p2").await.unwrap().contains("\"p\""));
    // Nothing is kept for an ended game, nor for a game that does not exist.
    fx.event(EventKind::GameStarted, &game, None).await;
    fx.event(EventKind::GameEnded, &game, None).await;
    assert!(!kept("p2", "late").await);
    let nothing = fx
        .store
        .keep_ticket(&GameId::new("chess.nope").unwrap(), &p2, &ticket("x"))
        .await
        .unwrap();
    assert!(!nothing);
}

/// Asserts that `requests` grouped writes (`what`, counted since the statistics were reset)
/// shared script calls: Redis ran fewer calls than requests. Prints the figure.
async fn assert_requests_shared_calls(
    conn: &mut impl redis::aio::ConnectionLike,
    what: &str,
    requests: u64,
) -> u64 {
    let calls = redis_stats::script_calls(conn).await;
    println!("FIGURES {what} in groups: {requests} {what} in {calls} script calls");
    assert!(
        calls < requests,
        "{what} waiting together share a call: {calls} calls for {requests}"
    );
    calls
}

/// The join tickets of one product kept at the same moment go to Redis in groups, and each is
/// decided as a call of its own would: 12 players holding a reservation get theirs kept, a
/// stranger's never is, and a game whose hash cannot be read fails only the ticket asked for
/// it. Redis sees fewer script calls than tickets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tickets_are_kept_in_groups_each_as_alone() {
    let fx = Fixture::new().await;
    let ttl = Duration::from_secs(30);
    let mut games = fx.open_lobbies(13, 4).await;
    // Game 0's roster is unreadable: a stranger's ticket there needs it decoded.
    let broken = games.remove(0);
    fx.garble(&broken, "roster").await;
    let mut conn = fx.redis.connection().await;
    for (n, game) in games.iter().enumerate() {
        let player = PlayerId::new(format!("p{n}")).unwrap();
        fx.store
            .reserve_seat(&game.id, &player, NOW, ttl)
            .await
            .unwrap();
    }
    redis_stats::reset(&mut conn).await;
    let keep = |game: &Game, player: &str| {
        let (store, id) = (fx.store.clone(), game.id.clone());
        let player = PlayerId::new(player).unwrap();
        let ticket = JoinTicket {
            socket_url: "ws://127.0.0.1:1/ws".into(),
            token: format!("{player}@{id}"),
        };
        tokio::spawn(async move { store.keep_ticket(&id, &player, &ticket).await })
    };
    let mut holders = Vec::new();
    let mut strangers = Vec::new();
    for (n, game) in games.iter().enumerate() {
        holders.push(keep(game, &format!("p{n}")));
        strangers.push(keep(game, "stranger"));
    }
    let unreadable = keep(&broken, "stranger");
    let tickets = (holders.len() + strangers.len() + 1) as u64;
    for holder in holders {
        assert!(holder.await.unwrap().unwrap(), "a reserved player's ticket");
    }
    for stranger in strangers {
        assert!(!stranger.await.unwrap().unwrap(), "a stranger's ticket");
    }
    let err = unreadable.await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("keep_ticket"),
        "the unreadable game's ticket fails alone, naming the script: {err}"
    );
    for (n, game) in games.iter().enumerate() {
        let key = fx.store.keys().product(&fx.product).game(&game.id);
        let kept: Option<String> = conn.hget(&key, format!("ticket:p{n}")).await.unwrap();
        assert!(kept.unwrap().contains(&format!("p{n}@{}", game.id)));
        let stranger: Option<String> = conn.hget(&key, "ticket:stranger").await.unwrap();
        assert_eq!(stranger, None);
    }
    assert_requests_shared_calls(&mut conn, "tickets", tickets).await;
}

/// Joins of one product that wait at the same moment share a script call, each decided as a
/// call of its own would: of four players after a lobby's two free seats, two get them and
/// two are refused `game_full`; creators hold their seats; a missing game is not found; a
/// game whose hash cannot be read fails only the join asked for it. Redis sees fewer script
/// calls than joins.
/// Quick joins of one product waiting at the same moment share a script call, each decided
/// as a call of its own would be: every player gets a seat in the lobby they picked, a
/// creator gets their own lobby back, and the quick join that picked a game whose hash cannot
/// be read fails alone.
#[tokio::test]
async fn concurrent_quick_joins_are_seated_in_groups_each_as_alone() {
    let fx = Fixture::new().await;
    let ttl = Duration::from_secs(30);
    let mut games = fx.open_lobbies(6, 3).await;
    let broken = games.remove(0);
    fx.garble(&broken, "reservations").await;
    let mut conn = fx.redis.connection().await;
    redis_stats::reset(&mut conn).await;
    let before = fx.group_counts("quick_join");
    let quick = |player: String, pick: &GameId| {
        let (store, product, pick) = (fx.store.clone(), fx.product.clone(), pick.clone());
        let player = PlayerId::new(player).unwrap();
        tokio::spawn(async move {
            let filter = QuickJoinFilter::default();
            let limits = PlayerLimits::NONE;
            store
                .quick_join(&product, &player, &filter, &[pick], 10, NOW, ttl, &limits)
                .await
        })
    };
    // Each lobby's two free seats for the two players who pick it, and its creator again.
    let mut seekers = Vec::new();
    for game in &games {
        let players: Vec<_> = (0..2)
            .map(|n| quick(format!("{}-p{n}", game.id), &game.id))
            .collect();
        let creator = quick(game.creator_id.to_string(), &game.id);
        seekers.push((players, creator));
    }
    let unreadable = quick("p".into(), &broken.id);
    let requests = (games.len() * 3 + 1) as u64;
    for (game, (players, creator)) in games.iter().zip(seekers) {
        for seated in players {
            match seated.await.unwrap().unwrap() {
                QuickJoinOutcome::Reserved { game: got, .. } => assert_eq!(got, game.id),
                other => panic!("{}: a free seat was picked: {other:?}", game.id),
            }
        }
        match creator.await.unwrap().unwrap() {
            QuickJoinOutcome::Held { game: got, .. } => assert_eq!(got, game.id),
            other => panic!("{}: its creator gets it back: {other:?}", game.id),
        }
        let stored = fx.store.game(&game.id).await.unwrap().unwrap();
        assert_eq!(stored.reservations.len(), 2, "{}", game.id);
    }
    let failure = unreadable.await.unwrap().unwrap_err();
    fx.assert_grouped_with_one_failure(
        &mut conn,
        ("quick joins", "quick_join"),
        (requests, before),
        &broken,
        failure,
    )
    .await;
}

/// A join adds its reservation to the stored JSON map without encoding the map again, and
/// encodes it whole when it also dropped an expired reservation: whatever spelling the stored
/// map had (spaces, an empty array), the map read back is the one the joins made.
#[tokio::test]
async fn a_join_adds_its_reservation_to_the_stored_map_whatever_its_spelling() {
    let fx = Fixture::new().await;
    let ttl = Duration::from_secs(30);
    let games = fx.open_lobbies(3, 4).await;
    let mut conn = fx.redis.connection().await;
    let player = |name: &str| PlayerId::new(name).unwrap();
    let key = |game: &Game| fx.store.keys().product(&fx.product).game(&game.id);
    let later = NOW + 31_000;
    // Game 0: a reservation still live at `later`, stored with spaces as another JSON writer
    // would. Game 1: no reservation, stored as an empty JSON array. Game 2: a reservation that
    // has expired by `later`.
    let early = NOW + 20_000 + 30_000;
    fx.store
        .reserve_seat(&games[0].id, &player("early"), NOW + 20_000, ttl)
        .await
        .unwrap();
    fx.store
        .reserve_seat(&games[2].id, &player("early"), NOW, ttl)
        .await
        .unwrap();
    let () = conn
        .hset(
            key(&games[0]),
            "reservations",
            format!("{{ \"early\" : {early} }}"),
        )
        .await
        .unwrap();
    let () = conn
        .hset(key(&games[1]), "reservations", "[]")
        .await
        .unwrap();
    for game in &games {
        for name in ["late-a", "late-b"] {
            let outcome = fx
                .store
                .reserve_seat(&game.id, &player(name), later, ttl)
                .await
                .unwrap();
            assert!(
                matches!(outcome, ReserveOutcome::Reserved { .. }),
                "{}: {outcome:?}",
                game.id
            );
        }
    }
    let late = later + 30_000;
    let expected = [
        vec![("early", early), ("late-a", late), ("late-b", late)],
        vec![("late-a", late), ("late-b", late)],
        vec![("late-a", late), ("late-b", late)],
    ];
    for (game, expected) in games.iter().zip(expected) {
        let expected: BTreeMap<String, u64> = expected
            .into_iter()
            .map(|(who, expiry)| (who.to_string(), expiry))
            .collect();
        let raw: String = conn.hget(key(game), "reservations").await.unwrap();
        let stored: BTreeMap<String, u64> = serde_json::from_str(&raw).unwrap_or_else(|err| {
            panic!("{}: {raw:?} is not a JSON map of expiries: {err}", game.id)
        });
        assert_eq!(stored, expected, "{}: stored {raw:?}", game.id);
        let read = fx.store.game(&game.id).await.unwrap().unwrap();
        let read: BTreeMap<String, u64> = read
            .reservations
            .iter()
            .map(|(who, expiry)| (who.to_string(), *expiry))
            .collect();
        assert_eq!(read, expected, "{}", game.id);
    }
    fx.check_invariants(later).await;
}

#[tokio::test]
async fn concurrent_joins_are_reserved_in_groups_each_as_alone() {
    let fx = Fixture::new().await;
    let ttl = Duration::from_secs(30);
    let mut games = fx.open_lobbies(7, 3).await;
    // Game 0's reservations are unreadable: any join there needs them decoded.
    let broken = games.remove(0);
    fx.garble(&broken, "reservations").await;
    let mut conn = fx.redis.connection().await;
    redis_stats::reset(&mut conn).await;
    let before = fx.group_counts("reserve_seat");
    let join = |id: &GameId, player: String| {
        let (store, id) = (fx.store.clone(), id.clone());
        let player = PlayerId::new(player).unwrap();
        tokio::spawn(async move { store.reserve_seat(&id, &player, NOW, ttl).await })
    };
    // Four players for each lobby's two free seats, the creators again, and a missing game.
    let mut seekers = Vec::new();
    for game in &games {
        let joins: Vec<_> = (0..4)
            .map(|n| join(&game.id, format!("{}-p{n}", game.id)))
            .collect();
        seekers.push(joins);
    }
    let creators: Vec<_> = games
        .iter()
        .map(|game| join(&game.id, game.creator_id.to_string()))
        .collect();
    let missing = join(&GameId::new("chess.nope").unwrap(), "p".into());
    let unreadable = join(&broken.id, "p".into());
    let joins = (games.len() * 5 + 2) as u64;
    for (game, joins) in games.iter().zip(seekers) {
        let mut outcomes = Vec::new();
        for joined in joins {
            outcomes.push(joined.await.unwrap().unwrap());
        }
        let won = outcomes
            .iter()
            .filter(|o| matches!(o, ReserveOutcome::Reserved { .. }))
            .count();
        let full = outcomes
            .iter()
            .filter(|o| **o == ReserveOutcome::Refused(JoinRefusal::GameFull))
            .count();
        assert_eq!((won, full), (2, 2), "{}: {outcomes:?}", game.id);
        let stored = fx.store.game(&game.id).await.unwrap().unwrap();
        assert_eq!(stored.reservations.len(), 2, "{}", game.id);
    }
    for creator in creators {
        assert_eq!(creator.await.unwrap().unwrap(), ReserveOutcome::AlreadyHeld);
    }
    assert_eq!(missing.await.unwrap().unwrap(), ReserveOutcome::NotFound);
    let failure = unreadable.await.unwrap().unwrap_err();
    fx.assert_grouped_with_one_failure(
        &mut conn,
        ("joins", "reserve_seat"),
        (joins, before),
        &broken,
        failure,
    )
    .await;
}

/// Everything a store's Redis holds but its streams (the change feed has one entry per game a
/// call changed, however many seats it took there), in a form two stores that hold the same
/// record compare equal in: hashes field by field, with their JSON fields parsed (a map's key
/// order is not its content), sets, sorted sets with their scores, strings.
async fn record_of(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, String> {
    let keys: Vec<String> = conn.keys("*").await.unwrap();
    let mut record = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap();
        let value = match kind.as_str() {
            "stream" => continue,
            "hash" => {
                let fields: BTreeMap<String, String> = conn.hgetall(&key).await.unwrap();
                let fields: BTreeMap<String, serde_json::Value> = fields
                    .into_iter()
                    .map(|(field, value)| {
                        let parsed = match field.as_str() {
                            // Each player's presence, without the id of the event that set
                            // it (the two Redis servers gave the events their own ids).
                            "roster" => {
                                let roster: BTreeMap<String, (String, u8)> =
                                    serde_json::from_str(&value).unwrap();
                                let presence: BTreeMap<String, u8> = roster
                                    .into_iter()
                                    .map(|(player, (_, present))| (player, present))
                                    .collect();
                                serde_json::json!(presence)
                            }
                            "reservations" | "players" => serde_json::from_str(&value).unwrap(),
                            _ => serde_json::Value::String(value),
                        };
                        (field, parsed)
                    })
                    .collect();
                format!("{fields:?}")
            }
            "zset" => {
                let members: Vec<(String, f64)> =
                    conn.zrange_withscores(&key, 0, -1).await.unwrap();
                format!("{members:?}")
            }
            "set" => {
                let members: std::collections::BTreeSet<String> =
                    conn.smembers(&key).await.unwrap();
                format!("{members:?}")
            }
            "string" => conn.get(&key).await.unwrap(),
            other => panic!("{key}: a {other} the comparison does not know"),
        };
        record.insert(key, value);
    }
    record
}

/// A group of seat requests sharing one script call gets the answers, and leaves the record,
/// that one call each would: the call keeps each game it loaded and writes it once at its
/// end, so every read inside the call must see the seats taken before it (the same lobby
/// filling up, the reservation quota counted over games the call changed, a quick join's
/// own earlier seats, the open index a quick join scans after a lobby filled). One store
/// sends the requests together, another identical one by one.
#[tokio::test]
async fn a_group_of_seat_requests_answers_and_leaves_what_one_call_each_would() {
    let ttl = Duration::from_secs(30);
    let limits = PlayerLimits {
        max_reservations: 2,
        ..PlayerLimits::NONE
    };
    let player = |name: &str| PlayerId::new(name).unwrap();
    let game_id = |n: u32| GameId::new(format!("chess.g{n:04}")).unwrap();
    // Lobbies g0..g4 of 3 seats, the creator in each; in g1, a reservation that has expired
    // by NOW (the join there drops it, and writes the map whole); in g3, one that expires
    // 5 ms after NOW.
    let setup = || async {
        let fx = Fixture::new().await;
        fx.open_lobbies(5, 3).await;
        fx.store
            .reserve_seat(&game_id(1), &player("old"), NOW - 40_000, ttl)
            .await
            .unwrap();
        fx.store
            .reserve_seat(&game_id(3), &player("late"), NOW - 30_000 + 5, ttl)
            .await
            .unwrap();
        fx
    };
    // (player, game, ms after NOW): a call counts a game's seats once, and must count again
    // when a later join's time has passed a reservation's expiry (g3: the one from before
    // the call; g4: one the call made itself).
    let joins: Vec<(&str, GameId, u64)> = vec![
        ("a", game_id(0), 0),
        ("b", game_id(0), 0),
        ("c", game_id(0), 0), // full
        ("a", game_id(0), 0), // held
        ("a", game_id(1), 0),
        ("a", game_id(2), 0), // a holds 2 already: quota
        ("creator0", game_id(0), 0),
        ("b", game_id(1), 0),
        ("d", game_id(1), 0), // full
        ("c", game_id(2), 0),
        ("a", GameId::new("chess.nope").unwrap(), 0),
        ("g", game_id(3), 0),
        ("h", game_id(3), 0),  // full: late's seat is still held
        ("i", game_id(3), 10), // late's reservation has expired: its seat is free
        ("j", game_id(4), 0),
        ("k", game_id(4), 30_000), // j's reservation has expired
        ("l", game_id(4), 30_000), // g4 full again
    ];
    // (player, picks): e's pick is full, so e scans and gets g2's last seat; e asks again
    // and gets that seat back (g2 is full now, so only e's reservations lead there); f's pick
    // is g2, and the open index f scans must no longer list it; a and c hold seats.
    let quick_joins: Vec<(&str, Vec<GameId>)> = vec![
        ("e", vec![game_id(0)]),
        ("e", vec![]),
        ("f", vec![game_id(2)]),
        ("a", vec![]),
        ("c", vec![game_id(2)]),
    ];
    let join = |fx: &Fixture, (who, game, after): &(&str, GameId, u64)| {
        let (store, game, who, now) = (fx.store.clone(), game.clone(), player(who), NOW + after);
        async move {
            let grant = store
                .reserve_seat_limited(&game, &who, now, ttl, &limits)
                .await
                .unwrap();
            format!("{who} -> {game}: {:?}", grant.outcome)
        }
    };
    let quick_join = |fx: &Fixture, (who, picks): &(&str, Vec<GameId>)| {
        let (store, product, who) = (fx.store.clone(), fx.product.clone(), player(who));
        let picks = picks.clone();
        async move {
            let filter = QuickJoinFilter::default();
            let outcome = store
                .quick_join(&product, &who, &filter, &picks, 10, NOW, ttl, &limits)
                .await
                .unwrap();
            let summary = match outcome {
                QuickJoinOutcome::Reserved {
                    game,
                    expires_at_ms,
                    ..
                } => format!("reserved in {game} until {expires_at_ms}"),
                QuickJoinOutcome::Held { game, .. } => format!("held in {game}"),
                other => format!("{other:?}"),
            };
            format!("{who} quick joins: {summary}")
        }
    };

    // Together: the futures are polled in order before the lane's task runs (this test's
    // runtime has one thread), so each kind goes as one script call.
    let grouped = setup().await;
    let joins_before = grouped.group_counts("reserve_seat");
    let quick_before = grouped.group_counts("quick_join");
    let mut grouped_answers =
        futures::future::join_all(joins.iter().map(|request| join(&grouped, request))).await;
    grouped_answers.extend(
        futures::future::join_all(
            quick_joins
                .iter()
                .map(|request| quick_join(&grouped, request)),
        )
        .await,
    );
    for (script, before, requests) in [
        ("reserve_seat", joins_before, joins.len()),
        ("quick_join", quick_before, quick_joins.len()),
    ] {
        let after = grouped.group_counts(script);
        assert_eq!(
            (after.calls - before.calls, after.requests - before.requests),
            (1, requests as u64),
            "the {script} requests shared one call"
        );
    }

    // One by one.
    let alone = setup().await;
    let mut alone_answers = Vec::new();
    for request in &joins {
        alone_answers.push(join(&alone, request).await);
    }
    for request in &quick_joins {
        alone_answers.push(quick_join(&alone, request).await);
    }

    assert_eq!(grouped_answers, alone_answers);
    // The scenario reaches what it means to: the quota, both full lobbies, the scan that
    // finds nothing open.
    let answers = alone_answers.join("\n");
    for expected in [
        "a -> chess.g0002: Limited(QuotaExceeded",
        "c -> chess.g0000: Refused(GameFull)",
        "d -> chess.g0001: Refused(GameFull)",
        "h -> chess.g0003: Refused(GameFull)",
        "i -> chess.g0003: Reserved",
        "k -> chess.g0004: Reserved",
        "l -> chess.g0004: Reserved",
        "e quick joins: reserved in chess.g0002 until 1800000030000\ne quick joins: held in chess.g0002",
        "f quick joins: NoMatch",
        "a quick joins: held in chess.g0000",
    ] {
        assert!(answers.contains(expected), "{expected:?} in {answers}");
    }
    let mut grouped_conn = grouped.redis.connection().await;
    let mut alone_conn = alone.redis.connection().await;
    assert_eq!(
        record_of(&mut grouped_conn).await,
        record_of(&mut alone_conn).await
    );
    grouped.check_invariants(NOW).await;
}

/// A player's reservations key (which the quota and quick join read) lives as long as their
/// longest reservation: a new key gets its TTL, also one the quota's pruning emptied, and a
/// later, shorter reservation, by join or by quick join, does not cut it.
#[tokio::test]
async fn a_players_reservations_key_outlives_their_longest_reservation() {
    let fx = Fixture::new().await;
    let games: Vec<GameId> = fx
        .open_lobbies(4, 4)
        .await
        .into_iter()
        .map(|game| game.id)
        .collect();
    let (long, short) = (Duration::from_secs(600), Duration::from_secs(60));
    let conn = fx.redis.connection().await;
    let keys = fx.store.keys().product(&fx.product);
    let pttl = |player: &PlayerId| {
        let (key, mut conn) = (keys.player_reservations(player), conn.clone());
        async move { conn.pttl::<_, i64>(&key).await.unwrap() }
    };
    // A quick join into `pick`, passing over the player's seats in `exclude`.
    let quick_join = |player: &PlayerId, pick: &GameId, exclude: &[GameId], ttl: Duration| {
        let (store, product, player, picks) = (
            fx.store.clone(),
            fx.product.clone(),
            player.clone(),
            vec![pick.clone()],
        );
        let filter = QuickJoinFilter {
            exclude: exclude.to_vec(),
            ..QuickJoinFilter::default()
        };
        async move {
            let outcome = store
                .quick_join(
                    &product,
                    &player,
                    &filter,
                    &picks,
                    0,
                    NOW,
                    ttl,
                    &PlayerLimits::NONE,
                )
                .await
                .unwrap();
            assert!(
                matches!(outcome, QuickJoinOutcome::Reserved { .. }),
                "{outcome:?}"
            );
        }
    };
    let long_ms = long.as_millis() as i64;

    let alice = PlayerId::new("alice").unwrap();
    quick_join(&alice, &games[0], &[], long).await;
    let first = pttl(&alice).await;
    assert!(
        first > long_ms - 60_000 && first <= long_ms + 1000,
        "a new key gets the reservation's TTL: {first} ms"
    );
    fx.store
        .reserve_seat(&games[1], &alice, NOW, short)
        .await
        .unwrap();
    quick_join(&alice, &games[2], &games[..2], short).await;
    let after = pttl(&alice).await;
    assert!(
        after > long_ms - 60_000,
        "shorter reservations leave the longer TTL: {after} ms"
    );

    // bob's only reservation expired by NOW: the quota's pruning empties (deletes) his key
    // before his join adds the new one.
    let bob = PlayerId::new("bob").unwrap();
    fx.store
        .reserve_seat(&games[0], &bob, NOW - 100_000, short)
        .await
        .unwrap();
    let quota = PlayerLimits {
        max_reservations: 2,
        ..PlayerLimits::NONE
    };
    let grant = fx
        .store
        .reserve_seat_limited(&games[3], &bob, NOW, long, &quota)
        .await
        .unwrap();
    assert!(
        matches!(grant.outcome, ReserveOutcome::Reserved { .. }),
        "{:?}",
        grant.outcome
    );
    let members: Vec<String> = conn
        .clone()
        .zrange(keys.player_reservations(&bob), 0, -1)
        .await
        .unwrap();
    assert_eq!(members, vec![games[3].as_str().to_string()]);
    let renewed = pttl(&bob).await;
    assert!(
        renewed > long_ms - 60_000 && renewed <= long_ms + 1000,
        "the key the pruning emptied gets the new reservation's TTL: {renewed} ms"
    );
}

/// A join that fails inside a group's call (its player's reservations key holds a string)
/// leaves no seat behind, though the call writes its game for the joins beside it: the
/// other player gets a seat, and the game holds only that one.
#[tokio::test]
async fn a_join_that_fails_inside_a_group_leaves_no_seat_in_the_game_the_call_writes() {
    let fx = Fixture::new().await;
    let ttl = Duration::from_secs(30);
    let game = fx.open_lobbies(1, 4).await.remove(0);
    let (broken, fine) = (
        PlayerId::new("broken").unwrap(),
        PlayerId::new("fine").unwrap(),
    );
    let mut conn = fx.redis.connection().await;
    let broken_key = fx
        .store
        .keys()
        .product(&fx.product)
        .player_reservations(&broken);
    let () = conn.set(&broken_key, "not a sorted set").await.unwrap();
    let before = fx.group_counts("reserve_seat");
    // Polled in order before the lane's task runs (one thread): one script call.
    let (failed, seated) = futures::join!(
        fx.store.reserve_seat(&game.id, &broken, NOW, ttl),
        fx.store.reserve_seat(&game.id, &fine, NOW, ttl),
    );
    let after = fx.group_counts("reserve_seat");
    assert_eq!(
        after.calls - before.calls,
        1,
        "the two joins shared one call"
    );
    let failure = failed.unwrap_err().to_string();
    assert!(failure.contains("reserve_seat"), "{failure}");
    assert!(
        matches!(seated.unwrap(), ReserveOutcome::Reserved { .. }),
        "the other join is seated"
    );
    let stored = fx.store.game(&game.id).await.unwrap().unwrap();
    let holders: Vec<&str> = stored.reservations.keys().map(|p| p.as_str()).collect();
    assert_eq!(holders, ["fine"]);
    let () = conn.del(&broken_key).await.unwrap();
    fx.check_invariants(NOW).await;
}

#[tokio::test]
async fn expired_reservations_are_released_and_the_game_reopens() {
    let fx = Fixture::new().await;
    let game = fx.created(1, 2).await;
    fx.event(EventKind::CreatorJoined, &game, None).await;
    let p2 = PlayerId::new("p2").unwrap();
    fx.store
        .reserve_seat(&game.id, &p2, NOW, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!fx.is_listed(&game).await);
    let freed = fx
        .store
        .release_expired_reservations(&fx.product, NOW + 29_999, 100)
        .await
        .unwrap();
    assert_eq!(freed, 0, "not expired yet");
    let freed = fx
        .store
        .release_expired_reservations(&fx.product, NOW + 30_000, 100)
        .await
        .unwrap();
    assert_eq!(freed, 1);
    assert!(fx.is_listed(&game).await, "the seat is free again");
    fx.check_invariants(NOW + 30_000).await;

    // A forced release (the game server refused the join) frees the seat at once.
    fx.store
        .reserve_seat(&game.id, &p2, NOW, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        fx.store
            .release_seat(&game.id, &p2, NOW, true)
            .await
            .unwrap()
    );
    assert!(fx.is_listed(&game).await);
    fx.check_invariants(NOW).await;
}

#[tokio::test]
async fn the_same_stream_entry_applied_twice_changes_nothing_the_second_time() {
    let fx = Fixture::new().await;
    let game = fx.created(1, 3).await;
    let (id, fields) = fx
        .deliver(&[
            ("type", "creator_joined"),
            ("game_id", game.id.as_str()),
            ("server_id", "gs-1"),
        ])
        .await;
    let first = fx
        .store
        .apply_entry(&fx.product, &id, &fields, NOW)
        .await
        .unwrap();
    assert_eq!(first, ApplyResult::Applied(GameState::CreatorJoined));
    let mut conn = fx.redis.connection().await;
    let key = fx.store.keys().product(&fx.product).game(&game.id);
    let before: HashMap<String, String> = conn.hgetall(&key).await.unwrap();
    let second = fx
        .store
        .apply_entry(&fx.product, &id, &fields, NOW + 5_000)
        .await
        .unwrap();
    assert_eq!(second, ApplyResult::Duplicate);
    let after: HashMap<String, String> = conn.hgetall(&key).await.unwrap();
    assert_eq!(before, after);
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(
            fx.store.keys().product(&fx.product).events(),
            CONSUMER_GROUP,
        )
        .await
        .unwrap();
    assert_eq!(
        pending.count(),
        0,
        "the entry was acknowledged with its application"
    );
    fx.check_invariants(NOW).await;
}

#[tokio::test]
async fn unknown_games_and_malformed_entries_are_dead_lettered_with_the_reason() {
    let fx = Fixture::new().await;
    let game = fx.created(1, 2).await;
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("type", "heartbeat"),
                ("game_id", "chess.ghost"),
                ("server_id", "gs-1"),
            ],
            "unknown_game",
        ),
        (
            &[
                ("type", "exploded"),
                ("game_id", game.id.as_str()),
                ("server_id", "gs-1"),
            ],
            "unknown_type",
        ),
        (
            &[
                ("type", "player_joined"),
                ("game_id", game.id.as_str()),
                ("server_id", "gs-1"),
            ],
            "missing_field",
        ),
        (
            &[
                ("type", "creator_joined"),
                ("game_id", game.id.as_str()),
                ("server_id", "gs-other"),
            ],
            "server_mismatch",
        ),
    ];
    for (fields, reason) in cases {
        let (id, raw) = fx.deliver(fields).await;
        let result = fx
            .store
            .apply_entry(&fx.product, &id, &raw, NOW)
            .await
            .unwrap();
        match result {
            ApplyResult::DeadLettered(why) => assert!(why.starts_with(reason), "{why} vs {reason}"),
            other => panic!("{fields:?}: expected a dead letter, got {other:?}"),
        }
    }
    let mut conn = fx.redis.connection().await;
    let dead: redis::streams::StreamRangeReply = conn
        .xrange_all(fx.store.keys().product(&fx.product).dead_letters())
        .await
        .unwrap();
    assert_eq!(dead.ids.len(), 4);
    let first: HashMap<String, String> = dead.ids[0]
        .map
        .iter()
        .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
        .collect();
    assert_eq!(first["reason"], "unknown_game");
    assert_eq!(
        first["game_id"], "chess.ghost",
        "the original fields are kept"
    );
    assert!(first.contains_key("source_id"));
    assert_eq!(
        fx.state_of(&game).await,
        GameState::Created,
        "nothing applied"
    );
    fx.check_invariants(NOW).await;
}

#[tokio::test]
async fn scripts_keep_working_after_script_flush_and_a_redis_restart() {
    let mut fx = Fixture::new().await;
    let game = fx.created(1, 3).await;
    let mut conn = fx.redis.connection().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        fx.event(EventKind::CreatorJoined, &game, None).await,
        ApplyResult::Applied(GameState::CreatorJoined)
    );
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let p2 = PlayerId::new("p2").unwrap();
    assert!(matches!(
        fx.store
            .reserve_seat(&game.id, &p2, NOW, Duration::from_secs(30))
            .await
            .unwrap(),
        ReserveOutcome::Reserved { .. }
    ));

    // A restart without persistence empties Redis and drops the connection: the store
    // reconnects by itself and reloads its scripts.
    fx.redis.restart().unwrap();
    let revived =
        mm_testkit::poll::until("the store to reconnect", Duration::from_secs(10), || {
            let store = fx.store.clone();
            let game = fx.game(2, 3);
            async move { store.create_game(&game).await.ok() }
        })
        .await;
    assert!(revived);
    fx.check_invariants(NOW).await;
}

#[tokio::test]
async fn remove_game_guards_protect_live_games() {
    let fx = Fixture::new().await;
    let game = fx.created(1, 2).await;
    fx.event(EventKind::CreatorJoined, &game, None).await;
    fx.event(EventKind::PlayerJoined, &game, Some("p2")).await;
    fx.event(EventKind::GameStarted, &game, None).await;
    let refused = fx
        .store
        .remove_game(&game.id, "cancelled", RemoveGuard::Cancellable, NOW)
        .await
        .unwrap();
    assert_eq!(
        refused,
        RemoveOutcome::Refused {
            state: GameState::InProgress
        }
    );

    // The curator picked it as stale in the lobby, but it has moved on: left alone.
    let stale_guard = RemoveGuard::StaleIn {
        set: GameSet::Lobby,
        cutoff_ms: u64::MAX,
    };
    let refused = fx
        .store
        .remove_game(&game.id, "curated", stale_guard, NOW)
        .await
        .unwrap();
    assert_eq!(
        refused,
        RemoveOutcome::Refused {
            state: GameState::InProgress
        }
    );
    let activity = fx
        .store
        .game(&game.id)
        .await
        .unwrap()
        .unwrap()
        .updated_at_ms;
    let too_recent = RemoveGuard::StaleIn {
        set: GameSet::Active,
        cutoff_ms: activity - 1,
    };
    let refused = fx
        .store
        .remove_game(&game.id, "curated", too_recent, NOW)
        .await
        .unwrap();
    assert!(matches!(refused, RemoveOutcome::Refused { .. }));

    let stale = RemoveGuard::StaleIn {
        set: GameSet::Active,
        cutoff_ms: activity,
    };
    let removed = fx
        .store
        .remove_game(&game.id, "curated_active_idle", stale, NOW)
        .await
        .unwrap();
    assert_eq!(
        removed,
        RemoveOutcome::Removed {
            previous: GameState::InProgress
        }
    );
    assert!(fx.sets_holding(&game).await.is_empty());
    let tombstone = fx.store.game(&game.id).await.unwrap().unwrap();
    assert_eq!(tombstone.end_reason.as_deref(), Some("curated_active_idle"));
    assert_eq!(
        fx.store
            .remove_game(&game.id, "again", RemoveGuard::Any, NOW)
            .await
            .unwrap(),
        RemoveOutcome::AlreadyEnded
    );
    assert_eq!(
        fx.store
            .remove_game(
                &GameId::new("chess.none").unwrap(),
                "x",
                RemoveGuard::Any,
                NOW
            )
            .await
            .unwrap(),
        RemoveOutcome::NotFound
    );

    // Cancelling a lobby with reservations drops them from the index as well.
    let lobby = fx.created(2, 3).await;
    fx.event(EventKind::CreatorJoined, &lobby, None).await;
    fx.store
        .reserve_seat(
            &lobby.id,
            &PlayerId::new("p9").unwrap(),
            NOW,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let removed = fx
        .store
        .remove_game(&lobby.id, "cancelled", RemoveGuard::Cancellable, NOW)
        .await;
    assert_eq!(
        removed.unwrap(),
        RemoveOutcome::Removed {
            previous: GameState::CreatorJoined
        }
    );
    fx.check_invariants(NOW).await;
}

#[tokio::test]
async fn the_listing_cursor_stays_correct_while_games_come_and_go() {
    let fx = Fixture::new().await;
    let mut games = Vec::new();
    for n in 0..25 {
        let game = fx.created(n, 4).await;
        fx.event(EventKind::CreatorJoined, &game, None).await;
        games.push(game);
    }
    let first = fx
        .store
        .open_games(&fx.product, None, 10, None, NOW)
        .await
        .unwrap();
    let ids = |page: &[Game]| page.iter().map(|g| g.id.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&first.games), ids(&games[..10]));
    let cursor = first.next_cursor.clone().expect("more pages");

    // Meanwhile: a listed game and an unlisted one leave, new games open.
    for gone in [&games[3], &games[12]] {
        fx.store
            .remove_game(&gone.id, "cancelled", RemoveGuard::Any, NOW)
            .await
            .unwrap();
    }
    for n in 25..28 {
        let game = fx.created(n, 4).await;
        fx.event(EventKind::CreatorJoined, &game, None).await;
        games.push(game);
    }
    let encoded = OpenCursor::decode(&cursor.encode()).unwrap();
    let second = fx
        .store
        .open_games(&fx.product, None, 10, Some(&encoded), NOW)
        .await
        .unwrap();
    let expected: Vec<String> = games[10..]
        .iter()
        .filter(|g| g.id != games[12].id)
        .take(10)
        .map(|g| g.id.to_string())
        .collect();
    assert_eq!(ids(&second.games), expected, "no duplicates, no skips");
    let third = fx
        .store
        .open_games(&fx.product, None, 10, second.next_cursor.as_ref(), NOW)
        .await
        .unwrap();
    assert_eq!(
        third.games.len(),
        7,
        "27 open games minus the 20 already seen"
    );
    assert_eq!(third.next_cursor, None);

    let eu = fx
        .store
        .open_games(&fx.product, Some("eu"), 100, None, NOW)
        .await
        .unwrap();
    assert!(!eu.games.is_empty());
    assert!(eu.games.iter().all(|g| g.region.as_deref() == Some("eu")));
    assert!(OpenCursor::decode("garbage").is_err());
    fx.check_invariants(NOW).await;
}

#[tokio::test]
async fn set_windows_fetch_only_the_rows_asked_for_with_the_total() {
    let fx = Fixture::new().await;
    for n in 0..30 {
        fx.created(n, 2).await;
    }
    let window = fx
        .store
        .set_window(&fx.product, GameSet::Pending, 5, 10, false)
        .await
        .unwrap();
    assert_eq!(window.total, 30);
    assert_eq!(window.rows.len(), 10);
    assert_eq!(window.rows[0].id, "chess.g0005", "stalest first");
    assert!(window.rows.iter().all(|r| r.game.is_some()));
    let newest = fx
        .store
        .set_window(&fx.product, GameSet::Pending, 0, 1, true)
        .await
        .unwrap();
    assert_eq!(newest.rows[0].id, "chess.g0029");
    assert_eq!(newest.rows[0].score, NOW + 29);
    assert_eq!(fx.store.set_counts(&fx.product).await.unwrap(), [30, 0, 0]);
    let census = fx.check_invariants(NOW).await;
    assert_eq!(census.per_set, [30, 0, 0]);
}

/// Contract section 3.7: the dead letters (written by both scripts that bury entries) and the
/// audit stream are capped at about their configured length (`MAXLEN ~` trims whole stream
/// nodes of up to 100 entries, so a capped stream holds between the cap and the cap plus one
/// node), keeping the newest entries.
#[tokio::test]
async fn dead_letters_and_the_audit_stream_are_capped_keeping_the_newest() {
    const CAP: u64 = 50;
    const WRITTEN: usize = 600;
    let fx = Fixture::new().await;
    let mut options = StoreOptions::new(fx.redis.url());
    options.dead_letter_max_len = CAP;
    options.audit_max_len = CAP;
    let store = Store::connect(options).await.unwrap();
    let mut conn = fx.redis.connection().await;
    let stream = store.keys().product(&fx.product).events();
    let mut pipe = redis::pipe();
    for n in 0..WRITTEN {
        // Half for an unknown game (buried by apply_events.lua), half missing a field (buried
        // by dead_letter.lua).
        if n % 2 == 0 {
            pipe.xadd(
                &stream,
                "*",
                &[
                    ("type", "heartbeat"),
                    ("game_id", "chess.ghost"),
                    ("server_id", "gs-1"),
                ],
            );
        } else {
            pipe.xadd(
                &stream,
                "*",
                &[("type", "heartbeat"), ("server_id", "gs-1")],
            );
        }
    }
    let _: Vec<String> = pipe.query_async(&mut conn).await.unwrap();
    let reply: redis::streams::StreamReadReply = conn
        .xread_options(
            &[&stream],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group(CONSUMER_GROUP, "test")
                .count(WRITTEN),
        )
        .await
        .unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> = reply.keys[0]
        .ids
        .iter()
        .map(|entry| {
            let fields = entry
                .map
                .iter()
                .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
                .collect();
            (entry.id.clone(), fields)
        })
        .collect();
    assert_eq!(entries.len(), WRITTEN);
    for chunk in entries.chunks(16) {
        let batch: Vec<(&str, &[(String, String)])> = chunk
            .iter()
            .map(|(id, fields)| (id.as_str(), fields.as_slice()))
            .collect();
        let results = store.apply_entries(&fx.product, &batch, NOW).await.unwrap();
        assert!(
            results
                .iter()
                .all(|r| matches!(r, ApplyResult::DeadLettered(_))),
            "{results:?}"
        );
    }
    let dead = store.dead_letter_count(&fx.product).await.unwrap();
    assert!(
        (CAP..=CAP + 100).contains(&dead),
        "{WRITTEN} dead letters capped at ~{CAP}: {dead} kept"
    );
    let newest: redis::streams::StreamRangeReply = conn
        .xrevrange_count(
            store.keys().product(&fx.product).dead_letters(),
            "+",
            "-",
            1,
        )
        .await
        .unwrap();
    let newest_source: String =
        redis::from_redis_value_ref(&newest.ids[0].map["source_id"]).unwrap();
    // The batch order decides which entry was buried last; it is one of the last batch's.
    assert!(
        entries[WRITTEN - 16..]
            .iter()
            .any(|(id, _)| *id == newest_source),
        "the newest dead letter is kept (from {newest_source})"
    );

    for n in 0..WRITTEN as u64 {
        let entry = mm_common::audit::AuditEntry {
            operator: "ops".into(),
            action: "force_delete".into(),
            game_id: format!("chess.g{n}"),
            product: "chess".into(),
            server_id: "gs-1".into(),
            reason: String::new(),
            outcome: "deleted".into(),
            server_reached: true,
            forced: false,
            detail: String::new(),
            at_ms: NOW + n,
        };
        store.append_audit(&entry).await.unwrap();
    }
    let audit_len: u64 = conn.xlen(store.keys().audit()).await.unwrap();
    assert!(
        (CAP..=CAP + 100).contains(&audit_len),
        "{WRITTEN} audit entries capped at ~{CAP}: {audit_len} kept"
    );
    let recent = store.recent_audit(1).await.unwrap();
    assert_eq!(recent[0].1.game_id, format!("chess.g{}", WRITTEN - 1));
    println!(
        "FIGURES caps: written={WRITTEN} cap={CAP} dead_letters_kept={dead} audit_kept={audit_len}"
    );
}

/// The per-player create admission keeps the create bucket and the live games in one hash per
/// player and product: the bucket refuses past its burst, the live-games quota counts a game
/// until it ends, a failed create gives its slot back, a slot never recorded is pruned after
/// the grace, and the hash expires.
#[tokio::test]
async fn create_admission_keeps_bucket_and_live_games_in_one_expiring_hash() {
    let f = Fixture::new().await;
    let alice = PlayerId::new("alice").unwrap();
    let limits = PlayerLimits {
        max_live_games: 2,
        creates_per_sec: 1.0,
        create_burst: 3,
        ..PlayerLimits::NONE
    };
    let grace = Duration::from_secs(120);
    let admit = |game: GameId, at: u64| {
        let (store, product, alice) = (f.store.clone(), f.product.clone(), alice.clone());
        async move {
            store
                .admit_create(&product, &alice, &game, at, &limits, grace)
                .await
                .unwrap()
        }
    };
    let recorded = f.game(1, 2);
    assert!(f.store.create_game(&recorded).await.unwrap());
    let unrecorded = GameId::new("chess.never-recorded").unwrap();
    assert_eq!(admit(recorded.id.clone(), NOW).await, None);
    assert_eq!(admit(unrecorded.clone(), NOW).await, None);
    let third = GameId::new("chess.third").unwrap();
    assert_eq!(
        admit(third.clone(), NOW).await,
        Some(LimitRefusal::QuotaExceeded { retry_after_ms: 0 }),
        "two live games is the quota"
    );
    f.store
        .forget_create(&f.product, &alice, &unrecorded)
        .await
        .unwrap();
    assert_eq!(
        admit(third.clone(), NOW).await,
        None,
        "a failed create gave its slot back"
    );
    assert_eq!(
        admit(GameId::new("chess.fourth").unwrap(), NOW).await,
        Some(LimitRefusal::RateLimited {
            retry_after_ms: 1000
        }),
        "three creates emptied the bucket of three"
    );
    let later = NOW + grace.as_millis() as u64 + 1;
    assert_eq!(
        admit(GameId::new("chess.fifth").unwrap(), later).await,
        None,
        "`third` was never recorded: pruned after the grace; the recorded game still counts"
    );
    assert_eq!(
        admit(GameId::new("chess.sixth").unwrap(), later + 1000).await,
        Some(LimitRefusal::QuotaExceeded { retry_after_ms: 0 })
    );
    let mut conn = f.redis.connection().await;
    let game_key = f.store.keys().product(&f.product).game(&recorded.id);
    let _: () = conn.hset(&game_key, "state", "ended").await.unwrap();
    assert_eq!(
        admit(GameId::new("chess.seventh").unwrap(), later + 2000).await,
        None,
        "an ended game no longer counts"
    );

    let key = f.store.keys().product(&f.product).player_creates(&alice);
    let fields: HashMap<String, String> = conn.hgetall(&key).await.unwrap();
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec!["at", "game:chess.fifth", "game:chess.seventh", "tokens"],
        "one hash: the bucket and the live games, pruned"
    );
    let ttl: i64 = conn.pttl(&key).await.unwrap();
    assert!(
        ttl > 6 * 24 * 3_600_000 && ttl <= 7 * 24 * 3_600_000,
        "the hash expires in 7 days while the quota is on: {ttl} ms"
    );
    let keys: Vec<String> = conn.keys("mm:{chess}:player:alice:*").await.unwrap();
    assert_eq!(keys, vec![key], "no other per-player key for creates");
}

/// Admissions of one product that wait at the same time go to Redis in groups, and a group
/// decides exactly what separate calls would: 20 players each send 6 creates at once under a
/// quota of 3 live games and a bucket of 5 → each player gets exactly 3 admitted and 3
/// refused; a player under a stricter bucket in the same burst (other limits: never grouped
/// with the rest) gets exactly its burst. Redis sees fewer script calls than admissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admissions_are_grouped_and_decided_as_one_by_one() {
    let f = Fixture::new().await;
    let limits = PlayerLimits {
        max_live_games: 3,
        creates_per_sec: 0.1,
        create_burst: 5,
        ..PlayerLimits::NONE
    };
    let strict = PlayerLimits {
        creates_per_sec: 0.1,
        create_burst: 2,
        ..PlayerLimits::NONE
    };
    let grace = Duration::from_secs(120);
    let mut conn = f.redis.connection().await;
    redis_stats::reset(&mut conn).await;
    let mut tasks = Vec::new();
    for n in 0..6 {
        for p in 0..20 {
            let (store, product) = (f.store.clone(), f.product.clone());
            tasks.push(tokio::spawn(async move {
                let player = PlayerId::new(format!("p{p}")).unwrap();
                let game = GameId::new(format!("chess.p{p}-{n}")).unwrap();
                let answer = store
                    .admit_create(&product, &player, &game, NOW, &limits, grace)
                    .await
                    .unwrap();
                (format!("p{p}"), answer)
            }));
        }
        let (store, product) = (f.store.clone(), f.product.clone());
        tasks.push(tokio::spawn(async move {
            let player = PlayerId::new("strict").unwrap();
            let game = GameId::new(format!("chess.strict-{n}")).unwrap();
            let answer = store
                .admit_create(&product, &player, &game, NOW, &strict, grace)
                .await
                .unwrap();
            ("strict".to_string(), answer)
        }));
    }
    let admissions = tasks.len() as u64;
    let mut admitted: HashMap<String, usize> = HashMap::new();
    let mut refused: HashMap<String, Vec<LimitRefusal>> = HashMap::new();
    for task in tasks {
        let (player, answer) = task.await.unwrap();
        match answer {
            None => *admitted.entry(player).or_default() += 1,
            Some(refusal) => refused.entry(player).or_default().push(refusal),
        }
    }
    for p in 0..20 {
        let player = format!("p{p}");
        assert_eq!(admitted.get(&player), Some(&3), "{player}: the quota of 3");
        assert!(
            refused[&player]
                .iter()
                .all(|r| matches!(r, LimitRefusal::QuotaExceeded { .. })),
            "{player}: the quota refuses before the bucket of 5 is empty: {:?}",
            refused[&player]
        );
    }
    assert_eq!(admitted.get("strict"), Some(&2), "the strict bucket of 2");
    assert!(
        refused["strict"]
            .iter()
            .all(|r| matches!(r, LimitRefusal::RateLimited { .. }))
    );
    assert_requests_shared_calls(&mut conn, "admissions", admissions).await;
}

/// The store resends a script whose reply may have been lost (contract 9.1,
/// `redis.retry_budget_ms`): the second run must answer what the first did. Each write of the
/// create and join paths, run twice with the same arguments.
#[tokio::test]
async fn write_scripts_run_twice_answer_as_the_first_run() {
    let f = Fixture::new().await;
    // Create: the second run finds its own record and answers "created" again; a different
    // record under the same id is still refused.
    let game = f.game(1, 3);
    assert!(f.store.create_game(&game).await.unwrap());
    assert!(
        f.store.create_game(&game).await.unwrap(),
        "a create run again over its own record is a success"
    );
    let mut other = game.clone();
    other.creator_id = PlayerId::new("mallory").unwrap();
    assert!(
        !f.store.create_game(&other).await.unwrap(),
        "another record under a taken id is refused"
    );
    assert_eq!(f.store.set_counts(&f.product).await.unwrap()[0], 1);

    // Admission at the quota: run again, the game already admitted is admitted again without
    // taking a second slot.
    let alice = PlayerId::new("alice").unwrap();
    let limits = PlayerLimits {
        max_live_games: 1,
        creates_per_sec: 1.0,
        create_burst: 1,
        ..PlayerLimits::NONE
    };
    let grace = Duration::from_secs(120);
    let admitted = GameId::new("chess.admitted").unwrap();
    for run in ["first", "second"] {
        assert_eq!(
            f.store
                .admit_create(&f.product, &alice, &admitted, NOW, &limits, grace)
                .await
                .unwrap(),
            None,
            "{run} run"
        );
    }
    assert_eq!(
        f.store
            .admit_create(
                &f.product,
                &alice,
                &GameId::new("chess.another").unwrap(),
                NOW + 5_000,
                &limits,
                grace
            )
            .await
            .unwrap(),
        Some(LimitRefusal::QuotaExceeded { retry_after_ms: 0 }),
        "the repeat took no second slot: one live game is the quota"
    );

    // Reservation: the second run finds the seat the first reserved (held, no second seat).
    assert_eq!(
        f.event(EventKind::CreatorJoined, &game, None).await,
        ApplyResult::Applied(GameState::CreatorJoined)
    );
    let bob = PlayerId::new("bob").unwrap();
    let ttl = Duration::from_secs(30);
    assert!(matches!(
        f.store
            .reserve_seat(&game.id, &bob, NOW, ttl)
            .await
            .unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    assert_eq!(
        f.store
            .reserve_seat(&game.id, &bob, NOW, ttl)
            .await
            .unwrap(),
        ReserveOutcome::AlreadyHeld
    );
    let record = f.store.game(&game.id).await.unwrap().unwrap();
    assert_eq!(record.reservations.len(), 1, "{record:?}");
    f.check_invariants(NOW).await;
}

/// On a single Redis (contract 9.1, `redis.retry_budget_ms`): a write sent while Redis is down
/// is resent until Redis is back and then applied, so a restart within the budget costs the
/// caller a wait, not an error; with a zero budget the same write fails at once. The resend is
/// counted (`Store::resends`, metric `mm_redis_resends_total`), and Redis is restarted only
/// after the first one, so the write provably failed first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_sent_while_a_single_redis_restarts_is_resent_within_the_budget() {
    let mut f = Fixture::new().await;
    let connect = |budget: Duration| {
        let mut options = StoreOptions::new(f.redis.url());
        options.retry_budget = budget;
        Store::connect(options)
    };
    let patient = connect(Duration::from_secs(60)).await.unwrap();
    let impatient = connect(Duration::ZERO).await.unwrap();
    f.redis.kill();

    let refused = impatient.create_game(&f.game(1, 3)).await;
    assert!(refused.is_err(), "Redis is down: {refused:?}");
    assert_eq!(impatient.resends(), 0, "a zero budget never resends");

    let game = f.game(2, 3);
    let write = tokio::spawn({
        let patient = patient.clone();
        let game = game.clone();
        async move { patient.create_game(&game).await }
    });
    mm_testkit::poll::until(
        "the store to resend the create",
        Duration::from_secs(20),
        || std::future::ready((patient.resends() > 0).then_some(())),
    )
    .await;
    assert!(!write.is_finished(), "the create waits for Redis");
    f.redis.restart().unwrap();
    let created = tokio::time::timeout(Duration::from_secs(60), write)
        .await
        .expect("the create finishes once Redis is back")
        .unwrap();
    assert!(created.unwrap(), "the resent create is applied");
    let stored = patient.game(&game.id).await.unwrap();
    assert_eq!(stored.map(|g| g.creator_id), Some(game.creator_id));
}
