//! Unit and property tests of the pure game model.

use proptest::prelude::*;

use super::*;
use crate::store::{MarkOutcome, RemoveGuard, RemoveOutcome};

const SERVER: &str = "gs-1";
const CREATOR: &str = "creator";

fn player(name: &str) -> PlayerId {
    PlayerId::new(name).unwrap()
}

fn new_game(capacity: u32) -> Game {
    Game::new(
        GameId::new("g1").unwrap(),
        ProductId::new("chess").unwrap(),
        ServerId::new(SERVER).unwrap(),
        Some("eu".into()),
        capacity,
        player(CREATOR),
        "ws://127.0.0.1:1/ws".into(),
        "{}".into(),
        1_000,
    )
}

fn event(kind: EventKind, who: Option<&str>, ms: u64) -> Event {
    Event {
        entry_id: EntryId::new(ms, 0),
        kind,
        game_id: GameId::new("g1").unwrap(),
        player_id: who.map(player),
        server_id: ServerId::new(SERVER).unwrap(),
        ts_ms: ms,
    }
}

/// A game of capacity 3 brought into `state` by events with entry ids 10..=14.
fn game_in(state: GameState) -> Game {
    let mut game = new_game(3);
    let history: &[Event] = &[
        event(EventKind::CreatorJoined, Some(CREATOR), 10),
        event(EventKind::PlayerJoined, Some("p1"), 11),
        event(EventKind::PlayerJoined, Some("p2"), 12),
        event(EventKind::GameStarted, None, 13),
        event(EventKind::GameEnded, None, 14),
    ];
    let steps = match state {
        GameState::Created => 0,
        GameState::CreatorJoined => 1,
        GameState::AllPlayersJoined => 3,
        GameState::InProgress => 4,
        GameState::Ended => 5,
    };
    for e in &history[..steps] {
        game.apply(e, u64::MAX).unwrap();
    }
    assert_eq!(game.state(), state, "test setup");
    game
}

/// The event under test for each kind, at entry id 20.
fn probe(kind: EventKind) -> Event {
    let who = match kind {
        EventKind::CreatorJoined => Some(CREATOR),
        EventKind::PlayerJoined => Some("p9"),
        EventKind::PlayerLeft => Some("p1"),
        _ => None,
    };
    // Entry id 20 follows the history's; its time is after the game's creation (1 000), so
    // it is news of activity.
    let mut probe = event(kind, who, 20);
    probe.ts_ms = 2_000;
    probe
}

#[test]
fn every_state_and_event_pair() {
    use ApplyOutcome::{Applied, Stale};
    use EventKind as E;
    use GameState as S;
    // (state before, event, state after, outcome)
    let table = [
        (S::Created, E::CreatorJoined, S::CreatorJoined, Applied),
        (S::Created, E::PlayerJoined, S::Created, Applied),
        (S::Created, E::PlayerLeft, S::Created, Applied),
        (
            S::Created,
            E::AllPlayersJoined,
            S::AllPlayersJoined,
            Applied,
        ),
        (S::Created, E::GameStarted, S::InProgress, Applied),
        (S::Created, E::GameEnded, S::Ended, Applied),
        (S::Created, E::Heartbeat, S::Created, Applied),
        (
            S::CreatorJoined,
            E::CreatorJoined,
            S::CreatorJoined,
            Applied,
        ),
        (S::CreatorJoined, E::PlayerJoined, S::CreatorJoined, Applied),
        (S::CreatorJoined, E::PlayerLeft, S::CreatorJoined, Applied),
        (
            S::CreatorJoined,
            E::AllPlayersJoined,
            S::AllPlayersJoined,
            Applied,
        ),
        (S::CreatorJoined, E::GameStarted, S::InProgress, Applied),
        (S::CreatorJoined, E::GameEnded, S::Ended, Applied),
        (S::CreatorJoined, E::Heartbeat, S::CreatorJoined, Applied),
        (
            S::AllPlayersJoined,
            E::CreatorJoined,
            S::AllPlayersJoined,
            Applied,
        ),
        (
            S::AllPlayersJoined,
            E::PlayerJoined,
            S::AllPlayersJoined,
            Applied,
        ),
        (
            S::AllPlayersJoined,
            E::PlayerLeft,
            S::CreatorJoined,
            Applied,
        ),
        (
            S::AllPlayersJoined,
            E::AllPlayersJoined,
            S::AllPlayersJoined,
            Applied,
        ),
        (S::AllPlayersJoined, E::GameStarted, S::InProgress, Applied),
        (S::AllPlayersJoined, E::GameEnded, S::Ended, Applied),
        (
            S::AllPlayersJoined,
            E::Heartbeat,
            S::AllPlayersJoined,
            Applied,
        ),
        (S::InProgress, E::CreatorJoined, S::InProgress, Applied),
        (S::InProgress, E::PlayerJoined, S::InProgress, Applied),
        (S::InProgress, E::PlayerLeft, S::InProgress, Applied),
        (S::InProgress, E::AllPlayersJoined, S::InProgress, Applied),
        (S::InProgress, E::GameStarted, S::InProgress, Stale),
        (S::InProgress, E::GameEnded, S::Ended, Applied),
        (S::InProgress, E::Heartbeat, S::InProgress, Applied),
        (S::Ended, E::CreatorJoined, S::Ended, Stale),
        (S::Ended, E::PlayerJoined, S::Ended, Stale),
        (S::Ended, E::PlayerLeft, S::Ended, Stale),
        (S::Ended, E::AllPlayersJoined, S::Ended, Stale),
        (S::Ended, E::GameStarted, S::Ended, Stale),
        (S::Ended, E::GameEnded, S::Ended, Stale),
        (S::Ended, E::Heartbeat, S::Ended, Stale),
    ];
    assert_eq!(table.len(), GameState::ALL.len() * EventKind::ALL.len());
    for state in GameState::ALL {
        for kind in EventKind::ALL {
            let row = table
                .iter()
                .find(|row| row.0 == state && row.1 == kind)
                .unwrap_or_else(|| panic!("table lacks ({state}, {kind})"));
            let mut game = game_in(state);
            let outcome = game.apply(&probe(kind), u64::MAX).unwrap();
            assert_eq!((game.state(), outcome), (row.2, row.3), "{state} + {kind}");
        }
    }
}

#[test]
fn a_heartbeat_is_applied_only_when_it_is_news_of_activity() {
    let mut game = game_in(GameState::CreatorJoined);
    let beat = probe(EventKind::Heartbeat);
    assert_eq!(game.apply(&beat, u64::MAX).unwrap(), ApplyOutcome::Applied);
    assert_eq!(game.updated_at_ms, 2_000);
    // The same entry again (a replay after the consumer group was recreated) and an older
    // heartbeat change nothing: stale, never counted as applied.
    assert_eq!(game.apply(&beat, u64::MAX).unwrap(), ApplyOutcome::Stale);
    let mut older = event(EventKind::Heartbeat, None, 21);
    older.ts_ms = 1_500;
    assert_eq!(game.apply(&older, u64::MAX).unwrap(), ApplyOutcome::Stale);
    assert_eq!(game.updated_at_ms, 2_000);
    // A replayed creator_joined is stale as well.
    let joined = event(EventKind::CreatorJoined, Some(CREATOR), 10);
    assert_eq!(game.apply(&joined, u64::MAX).unwrap(), ApplyOutcome::Stale);
}

#[test]
fn the_player_filling_the_last_seat_makes_the_game_full() {
    let mut game = game_in(GameState::CreatorJoined);
    game.apply(&event(EventKind::PlayerJoined, Some("p1"), 20), u64::MAX)
        .unwrap();
    assert_eq!(game.state(), GameState::CreatorJoined);
    game.apply(&event(EventKind::PlayerJoined, Some("p2"), 21), u64::MAX)
        .unwrap();
    assert_eq!(game.state(), GameState::AllPlayersJoined);
    assert_eq!(
        game.players(),
        vec![player(CREATOR), player("p1"), player("p2")]
    );
}

#[test]
fn duplicates_and_out_of_date_events_change_nothing() {
    let mut game = game_in(GameState::CreatorJoined);
    let join = event(EventKind::PlayerJoined, Some("p1"), 20);
    let leave = event(EventKind::PlayerLeft, Some("p1"), 21);
    assert_eq!(game.apply(&join, u64::MAX), Ok(ApplyOutcome::Applied));
    assert_eq!(game.apply(&leave, u64::MAX), Ok(ApplyOutcome::Applied));
    let before = game.clone();
    assert_eq!(game.apply(&leave, u64::MAX), Ok(ApplyOutcome::Stale));
    assert_eq!(game.apply(&join, u64::MAX), Ok(ApplyOutcome::Stale));
    assert_eq!(game, before, "joined-then-left stays left");
    assert!(!game.players().contains(&player("p1")));
}

#[test]
fn a_leave_takes_a_full_lobby_back_to_creator_joined() {
    let mut game = game_in(GameState::AllPlayersJoined);
    game.apply(&event(EventKind::PlayerLeft, Some("p2"), 20), u64::MAX)
        .unwrap();
    assert_eq!(game.state(), GameState::CreatorJoined);
    assert!(game.is_open(0));
}

#[test]
fn events_from_another_server_or_a_false_creator_are_rejected() {
    let mut game = game_in(GameState::Created);
    let mut foreign = probe(EventKind::CreatorJoined);
    foreign.server_id = ServerId::new("gs-evil").unwrap();
    assert_eq!(
        game.apply(&foreign, u64::MAX).unwrap_err().to_string(),
        "server_mismatch: event from server gs-evil for a game on server gs-1",
        "the dead letter's reason, as the script words it"
    );
    let impostor = event(EventKind::CreatorJoined, Some("mallory"), 20);
    assert_eq!(
        game.apply(&impostor, u64::MAX).unwrap_err().to_string(),
        "creator_mismatch: creator_joined names mallory, the creator is creator"
    );
    assert_eq!(
        game,
        game_in(GameState::Created),
        "rejected events change nothing"
    );
}

#[test]
fn event_time_is_bounded_by_now_and_pending_keeps_creation_score() {
    let mut game = game_in(GameState::Created);
    let mut beat = event(EventKind::Heartbeat, None, 20);
    beat.ts_ms = 9_999_999;
    game.apply(&beat, 5_000).unwrap();
    assert_eq!(
        game.updated_at_ms, 5_000,
        "a fast server clock is capped at now"
    );
    assert_eq!(game.set_and_score(), Some((GameSet::Pending, 1_000)));
}

#[test]
fn reservations_follow_the_join_rules() {
    let ttl = 30_000;
    let mut game = game_in(GameState::Created);
    assert_eq!(
        game.reserve(&player("p1"), 0, ttl),
        Err(JoinRefusal::CreatorNotJoined)
    );
    assert_eq!(
        game.reserve(&player(CREATOR), 0, ttl),
        Ok(Reservation::AlreadyHeld)
    );

    let mut game = game_in(GameState::CreatorJoined); // 1 of 3 seats taken
    assert_eq!(
        game.reserve(&player("p1"), 100, ttl),
        Ok(Reservation::Reserved {
            expires_at_ms: 30_100
        })
    );
    assert_eq!(
        game.reserve(&player("p1"), 200, ttl),
        Ok(Reservation::AlreadyHeld)
    );
    assert_eq!(
        game.reservations.get(&player("p1")),
        Some(&30_100),
        "a re-join does not renew the reservation"
    );
    assert!(game.reserve(&player("p2"), 300, ttl).is_ok());
    assert!(
        !game.is_open(300),
        "two reservations fill the last two seats"
    );
    assert_eq!(
        game.reserve(&player("p3"), 400, ttl),
        Err(JoinRefusal::GameFull)
    );
    // p2's reservation expires at 30_300; after that the seat is free again.
    assert_eq!(
        game.reserve(&player("p3"), 30_300, ttl),
        Ok(Reservation::Reserved {
            expires_at_ms: 60_300
        })
    );
    assert!(
        !game.release(&player("p3"), 30_301, false),
        "not yet expired"
    );
    assert!(game.release(&player("p3"), 30_301, true), "forced");

    for state in [GameState::InProgress, GameState::Ended] {
        assert_eq!(
            game_in(state).reserve(&player("p9"), 0, ttl),
            Err(JoinRefusal::GameNotOpen)
        );
    }
    assert_eq!(
        game_in(GameState::AllPlayersJoined).reserve(&player("p9"), 0, ttl),
        Err(JoinRefusal::GameFull)
    );
}

#[test]
fn a_player_who_connects_gives_up_the_reservation() {
    let mut game = game_in(GameState::CreatorJoined);
    game.reserve(&player("p1"), 0, 30_000).unwrap();
    game.apply(&event(EventKind::PlayerJoined, Some("p1"), 20), u64::MAX)
        .unwrap();
    assert!(game.reservations.is_empty());
    assert_eq!(game.seats_taken(0), 2);
}

#[test]
fn a_refused_join_leaves_a_started_game_untouched() {
    let mut game = game_in(GameState::CreatorJoined);
    game.reserve(&player("p1"), 0, 30_000).unwrap();
    game.apply(&event(EventKind::GameStarted, None, 20), u64::MAX)
        .unwrap();
    let before = game.clone();
    assert_eq!(
        game.reserve(&player("p2"), 60_000, 30_000),
        Err(JoinRefusal::GameNotOpen)
    );
    assert_eq!(game, before, "the expired reservation waits for the sweep");
}

#[test]
fn ending_a_game_drops_every_reservation() {
    let mut ended = game_in(GameState::CreatorJoined);
    ended.reserve(&player("p1"), 0, 30_000).unwrap();
    ended
        .apply(&event(EventKind::GameEnded, None, 20), u64::MAX)
        .unwrap();
    assert!(ended.reservations.is_empty());
    assert_eq!(ended.end_reason.as_deref(), Some("game_ended"));

    let mut removed = game_in(GameState::CreatorJoined);
    removed.reserve(&player("p1"), 0, 30_000).unwrap();
    assert_eq!(
        removed.remove("cancelled", RemoveGuard::Any, 50_000),
        RemoveOutcome::Removed {
            previous: GameState::CreatorJoined
        }
    );
    assert!(removed.reservations.is_empty());
}

#[test]
fn remove_honours_its_guard_and_records_the_time() {
    let cancel = |state| game_in(state).remove("cancelled", RemoveGuard::Cancellable, 2_000);
    assert_eq!(
        cancel(GameState::AllPlayersJoined),
        RemoveOutcome::Removed {
            previous: GameState::AllPlayersJoined
        }
    );
    assert_eq!(
        cancel(GameState::InProgress),
        RemoveOutcome::Refused {
            state: GameState::InProgress
        }
    );
    assert_eq!(cancel(GameState::Ended), RemoveOutcome::AlreadyEnded);

    // Pending is scored by creation time (1_000): stale at a cutoff of 1_000, not at 999, and
    // never when the curator looked in the wrong set.
    let stale = |set, cutoff_ms| RemoveGuard::StaleIn { set, cutoff_ms };
    let mut pending = game_in(GameState::Created);
    for guard in [stale(GameSet::Pending, 999), stale(GameSet::Lobby, 5_000)] {
        assert_eq!(
            pending.remove("curated_pending", guard, 9_000),
            RemoveOutcome::Refused {
                state: GameState::Created
            }
        );
    }
    assert_eq!(
        pending,
        game_in(GameState::Created),
        "a refusal changes nothing"
    );
    assert_eq!(
        pending.remove("curated_pending", stale(GameSet::Pending, 1_000), 9_000),
        RemoveOutcome::Removed {
            previous: GameState::Created
        }
    );
    assert_eq!(pending.state(), GameState::Ended);
    assert_eq!(pending.end_reason.as_deref(), Some("curated_pending"));
    assert_eq!(pending.updated_at_ms, 9_000, "removal is activity at now");
    assert_eq!(pending.set_and_score(), None);

    // The activity time never moves back.
    let mut lobby = game_in(GameState::CreatorJoined);
    lobby.updated_at_ms = 50_000;
    lobby.remove("deleted", RemoveGuard::Any, 20_000);
    assert_eq!(lobby.updated_at_ms, 50_000);
}

#[test]
fn parses_contract_fields() {
    let parsed = Event::from_fields(
        "1700000000000-3",
        [
            ("type", "player_joined"),
            ("game_id", "g1"),
            ("player_id", "p1"),
            ("server_id", "gs-1"),
            ("extra", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(parsed.kind, EventKind::PlayerJoined);
    assert_eq!(
        parsed.ts_ms, 1_700_000_000_000,
        "ts defaults to the entry time"
    );
    assert_eq!(parsed.entry_id, EntryId::new(1_700_000_000_000, 3));
    let back = Event::from_fields(
        "1-0",
        parsed
            .to_fields()
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!((back.kind, back.player_id), (parsed.kind, parsed.player_id));
}

#[test]
fn malformed_events_say_what_is_wrong() {
    // (fields, expected error code, what the message must mention)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("game_id", "g"), ("server_id", "s")],
            "missing_field",
            "`type`",
        ),
        (
            &[("type", "exploded"), ("game_id", "g"), ("server_id", "s")],
            "unknown_type",
            "exploded",
        ),
        (
            &[("type", "heartbeat"), ("server_id", "s")],
            "missing_field",
            "game_id",
        ),
        (
            &[
                ("type", "player_left"),
                ("game_id", "g"),
                ("server_id", "s"),
            ],
            "missing_field",
            "player_id",
        ),
        (
            &[
                ("type", "heartbeat"),
                ("game_id", "g/../x"),
                ("server_id", "s"),
            ],
            "bad_id",
            "game_id",
        ),
        (
            &[
                ("type", "heartbeat"),
                ("game_id", "g"),
                ("server_id", "s"),
                ("ts", "soon"),
            ],
            "bad_timestamp",
            "soon",
        ),
    ];
    for (fields, code, mentions) in cases {
        let err = Event::from_fields("5-0", fields.iter().copied()).unwrap_err();
        assert_eq!(err.code(), *code, "{fields:?}");
        assert!(
            err.to_string().contains(mentions),
            "{err} should mention {mentions}"
        );
    }
    assert_eq!(
        Event::from_fields("nope", [("type", "heartbeat")])
            .unwrap_err()
            .code(),
        "bad_entry_id"
    );
}

fn arb_kind() -> impl Strategy<Value = EventKind> {
    prop::sample::select(EventKind::ALL.to_vec())
}

/// Event histories over a small pool of players, with increasing entry ids.
fn arb_history() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((arb_kind(), 0..4usize, 0..5_000u64), 0..40).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (kind, who, ts))| {
                let name = ["creator", "p1", "p2", "p3"][who];
                let who = match kind {
                    EventKind::PlayerJoined | EventKind::PlayerLeft => Some(name),
                    EventKind::CreatorJoined => Some(CREATOR),
                    _ => None,
                };
                let mut e = event(kind, who, 100 + i as u64);
                e.ts_ms = ts;
                e
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn any_history_leaves_exactly_one_valid_state(history in arb_history(), capacity in 1..5u32) {
        let mut game = new_game(capacity);
        for e in &history {
            game.apply(e, u64::MAX).unwrap();
            let state = game.state();
            // Exactly one set, the one the state names (none once ended).
            let memberships: Vec<GameSet> = GameSet::ALL
                .into_iter()
                .filter(|set| game.set_and_score().map(|(s, _)| s) == Some(*set))
                .collect();
            prop_assert_eq!(memberships.len(), usize::from(state != GameState::Ended));
            prop_assert_eq!(game.set_and_score().map(|(s, _)| s), state.set());
            prop_assert!(!game.is_open(0) || state == GameState::CreatorJoined);
            let players = game.players();
            let mut unique = players.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), players.len(), "no player twice");
        }
    }

    #[test]
    fn open_seats_taken_is_seats_taken_of_an_open_game(
        history in arb_history(),
        capacity in 1..5u32,
        reservations in prop::collection::vec((0..6usize, 0..200u64), 0..6),
        now in 0..200u64,
    ) {
        let mut game = new_game(capacity);
        for e in &history {
            game.apply(e, u64::MAX).unwrap();
        }
        for (who, expiry) in reservations {
            let name = ["creator", "p1", "p2", "p3", "p4", "p5"][who];
            game.reservations.insert(PlayerId::new(name).unwrap(), expiry);
        }
        // The definition `is_open` had before it was computed in one pass.
        let open = game.state() == GameState::CreatorJoined
            && game.ending.is_none()
            && game.creator_present()
            && game.seats_taken(now) < capacity as usize;
        prop_assert_eq!(game.open_seats_taken(now), open.then(|| game.seats_taken(now)));
        prop_assert_eq!(game.is_open(now), open);
    }

    #[test]
    fn applying_in_any_order_reaches_the_sequential_result(
        history in arb_history(),
        capacity in 1..5u32,
        seed in any::<u64>(),
    ) {
        let mut sequential = new_game(capacity);
        for e in &history {
            sequential.apply(e, u64::MAX).unwrap();
        }
        // A deterministic shuffle from the seed, plus a duplicate of every third event.
        let mut shuffled: Vec<&Event> = history.iter().chain(history.iter().step_by(3)).collect();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut interleaved = new_game(capacity);
        for e in shuffled {
            interleaved.apply(e, u64::MAX).unwrap();
        }
        prop_assert_eq!(interleaved, sequential);
    }
}

#[test]
fn a_lobby_is_listed_open_only_while_its_creator_is_in_it() {
    // Found-item 7: created → all_players_joined → player_left reaches the lobby without the
    // creator ever joining; it must not be listed or let anyone in.
    let mut out_of_order = new_game(2);
    for e in [
        event(EventKind::AllPlayersJoined, None, 10),
        event(EventKind::PlayerLeft, Some("p1"), 11),
    ] {
        out_of_order.apply(&e, u64::MAX).unwrap();
    }
    assert_eq!(out_of_order.state(), GameState::CreatorJoined);
    assert!(!out_of_order.is_open(0), "no creator, not open");
    assert_eq!(
        out_of_order.reserve(&player("p2"), 0, 30_000),
        Err(JoinRefusal::CreatorNotJoined)
    );
    // The creator arriving opens it.
    out_of_order
        .apply(
            &event(EventKind::CreatorJoined, Some(CREATOR), 12),
            u64::MAX,
        )
        .unwrap();
    assert!(out_of_order.is_open(0));

    // A creator who leaves a lobby unlists it until they are back.
    let mut lobby = game_in(GameState::CreatorJoined);
    assert!(lobby.is_open(0));
    lobby
        .apply(&event(EventKind::PlayerLeft, Some(CREATOR), 20), u64::MAX)
        .unwrap();
    assert_eq!(lobby.state(), GameState::CreatorJoined);
    assert!(!lobby.is_open(0));
    assert_eq!(
        lobby.reserve(&player("p1"), 0, 30_000),
        Err(JoinRefusal::CreatorNotJoined)
    );
    assert_eq!(
        lobby.reserve(&player(CREATOR), 0, 30_000),
        Ok(Reservation::AlreadyHeld),
        "the creator may always come back"
    );
    lobby
        .apply(&event(EventKind::PlayerJoined, Some(CREATOR), 21), u64::MAX)
        .unwrap();
    assert!(lobby.is_open(0));
}

#[test]
fn an_ending_mark_unlists_the_game_until_it_ends_or_is_cleared() {
    let mut lobby = game_in(GameState::CreatorJoined);
    assert_eq!(
        lobby.mark_ending("curated_lobby_idle", RemoveGuard::Any, 5_000),
        MarkOutcome::Marked {
            state: GameState::CreatorJoined
        }
    );
    assert!(!lobby.is_open(0), "marked: not listed");
    assert_eq!(
        lobby.reserve(&player("p1"), 0, 30_000),
        Err(JoinRefusal::GameNotOpen)
    );
    // Events keep being applied but never list it again.
    lobby
        .apply(
            &event(EventKind::CreatorJoined, Some(CREATOR), 20),
            u64::MAX,
        )
        .unwrap();
    assert!(!lobby.is_open(0));
    // Only the mark's own step clears it.
    assert!(!lobby.unmark_ending(4_999));
    assert!(lobby.unmark_ending(5_000));
    assert!(lobby.is_open(0), "cleared: listed again");

    // A guard refuses exactly as removal does, and changes nothing.
    let mut started = game_in(GameState::InProgress);
    assert_eq!(
        started.mark_ending("cancelled", RemoveGuard::Cancellable, 5_000),
        MarkOutcome::Refused {
            state: GameState::InProgress
        }
    );
    assert_eq!(started, game_in(GameState::InProgress));
    let mut over = game_in(GameState::Ended);
    assert_eq!(
        over.mark_ending("cancelled", RemoveGuard::Any, 5_000),
        MarkOutcome::AlreadyEnded
    );

    // Ending, by removal or by event, drops the mark.
    let mut marked = game_in(GameState::CreatorJoined);
    marked.mark_ending("cancelled", RemoveGuard::Any, 5_000);
    marked.remove("cancelled", RemoveGuard::Any, 6_000);
    assert_eq!(marked.ending, None);
    let mut marked = game_in(GameState::CreatorJoined);
    marked.mark_ending("cancelled", RemoveGuard::Any, 5_000);
    marked
        .apply(&event(EventKind::GameEnded, None, 20), u64::MAX)
        .unwrap();
    assert_eq!(marked.ending, None);
}

/// A lobby (creator present) of `capacity` with id `id`, created at `created_ms`, holding
/// `reserved` live reservations (players `<id>-r<n>`, until 60,000 ms).
fn lobby(id: &str, capacity: u32, reserved: usize) -> Game {
    let mut game = new_game(capacity);
    game.id = GameId::new(id).unwrap();
    game.apply(
        &event(EventKind::CreatorJoined, Some(CREATOR), 10),
        u64::MAX,
    )
    .unwrap();
    for n in 0..reserved {
        game.reserve(&player(&format!("{id}-r{n}")), 0, 60_000)
            .unwrap();
    }
    game
}

#[test]
fn a_quick_join_window_ranks_fullest_first_and_counts_claimed_seats() {
    let nobody = |_: &GameId| 0;
    let filter = QuickJoinFilter::default();
    let ids = |ranking: WindowRanking<'_>| match ranking {
        WindowRanking::Ranked { games, .. } => games.iter().map(|g| g.id.to_string()).collect(),
        WindowRanking::Held(game) => vec![format!("held {}", game.id)],
    };
    // a: 1 of 4 taken (the creator), b: 3 of 4, c: 2 of 4, d: 2 of 4 — fullest first, the
    // window's order among equals.
    let window = [
        lobby("a", 4, 0),
        lobby("b", 4, 2),
        lobby("c", 4, 1),
        lobby("d", 4, 1),
    ];
    assert_eq!(
        ids(rank_window(&window, &player("p"), &filter, 1, nobody)),
        ["b", "c", "d", "a"]
    );
    // One seat of b being taken elsewhere fills it: b is left out; two of d make it fullest.
    let claimed = |id: &GameId| match id.as_str() {
        "b" => 1,
        "d" => 1,
        _ => 0,
    };
    assert_eq!(
        ids(rank_window(&window, &player("p"), &filter, 1, claimed)),
        ["d", "c", "a"]
    );
    // A game the player already holds a seat in wins, whatever its fullness.
    assert_eq!(
        ids(rank_window(&window, &player("c-r0"), &filter, 1, nobody)),
        ["held c"]
    );
    // Excluded and non-matching games are left out; expired reservations free their seats.
    let picky = QuickJoinFilter {
        region: Some("us".into()),
        ..QuickJoinFilter::default()
    };
    assert_eq!(
        ids(rank_window(&window, &player("p"), &picky, 1, nobody)),
        Vec::<String>::new()
    );
    let skip_b = QuickJoinFilter {
        exclude: vec![GameId::new("b").unwrap()],
        ..QuickJoinFilter::default()
    };
    assert_eq!(
        ids(rank_window(&window, &player("p"), &skip_b, 60_001, nobody)),
        ["a", "c", "d"]
    );
}
