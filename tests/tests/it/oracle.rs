//! The pure model is the labelled oracle of the store's Lua scripts.
//!
//! `mm_common::model` is the specification; production runs the scripts. This property test
//! generates random mixes of every store operation — events of every type (from the wrong
//! server, naming a false creator, lacking their player, malformed, for an unknown game, with
//! times in the past and the future), consumers applying delivered entries in batches out of
//! stream order and again, seat reservations, expired and forced releases, the expiry sweep,
//! ending marks set and cleared (the end step's commitment) and removals under each guard — on
//! a clock that moves forward irregularly, rejoins and quick joins (with and without a region,
//! over a full or a one-game scan window). After **every**
//! operation it requires the store's answer to be the one the model predicts, and the record
//! in a real redis-server (the decoded game hash, its set and score, the open index, the
//! reservation index, the ending index, the tombstone TTL, the dead letters and the group's pending entries)
//! to be the model's, and the change feed, folded from its start, to list exactly the open
//! index's games as the model has them. A failure shrinks to a short operation list and prints it.
//!
//! `PROPTEST_CASES` sets the number of cases (256 by default, a few seconds).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use mm_common::keys::{CONSUMER_GROUP, RESERVATION_SEPARATOR};
use mm_common::labels::Labels;
use mm_common::limits::PlayerLimits;
use mm_common::model::EntryId;
use mm_common::model::{
    ApplyOutcome, EventKind, GameSet, GameState, JoinRefusal, QuickJoinPick, Rejoin, Reservation,
    quick_join_pick,
};
use mm_common::store::{
    ApplyResult, FeedChange, MarkOutcome, QuickJoinFilter, QuickJoinOutcome, RejoinOutcome,
    RemoveGuard, RemoveOutcome, ReserveOutcome, SeatGrant, Store, StoreOptions,
};
use mm_common::{Event, Game, GameId, Keys, PlayerId, ProductId, ServerId};
use mm_testkit::{RedisServer, invariants};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

/// The clock's start (Unix ms); games are created at `T0`, `T0 + 1`, ….
const T0: u64 = 1_800_000_000_000;
const PREFIX: &str = "mm";
const SERVER: &str = "gs-1";
const OTHER_SERVER: &str = "gs-2";
/// Players operations name; the first is every game's creator.
const PLAYERS: [&str; 5] = ["creator", "p1", "p2", "p3", "p4"];
/// Someone who is not the creator, for `creator_joined` events that lie.
const IMPOSTOR: &str = "mallory";
/// The second game carries the label `map=dust2`, the first none.
fn game_labels(n: usize) -> Labels {
    let pairs = match n {
        1 => [("map".to_string(), "dust2".to_string())].into(),
        _ => BTreeMap::new(),
    };
    Labels::new(pairs, 8).unwrap()
}

/// Games per case: two, so batches and the expiry sweep span games.
const GAMES: usize = 2;
const GHOST_GAME: &str = "chess.ghost";
/// Upper bound the sweep is given; far above what a case can hold.
const SWEEP_LIMIT: usize = 1_000;

// ---------------------------------------------------------------------------------------
// Operations

/// Which game an event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Game(usize),
    /// A game that was never created.
    Ghost,
}

/// The `player_id` field of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Absent,
    Player(usize),
    Impostor,
}

/// The `ts` field of an event, relative to the clock when it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ts {
    /// No `ts`: the entry id's time counts.
    Absent,
    /// `now + offset` (a negative offset is a late event, a positive one a fast server clock).
    Offset(i64),
    /// Not a number: the entry is dead-lettered.
    Garbage,
}

/// One event a game server writes.
#[derive(Clone, PartialEq, Eq)]
struct Emitted {
    /// `None`: a type no contract version knows.
    kind: Option<EventKind>,
    target: Target,
    who: Who,
    foreign_server: bool,
    ts: Ts,
}

impl fmt::Debug for Emitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.map_or("exploded", EventKind::as_str);
        write!(f, "{kind} ")?;
        match self.target {
            Target::Game(game) => write!(f, "g{game}")?,
            Target::Ghost => f.write_str("ghost")?,
        }
        match self.who {
            Who::Absent => {}
            Who::Player(p) => write!(f, " player={}", PLAYERS[p])?,
            Who::Impostor => write!(f, " player={IMPOSTOR}")?,
        }
        if self.foreign_server {
            write!(f, " server={OTHER_SERVER}")?;
        }
        match self.ts {
            Ts::Absent => f.write_str(" ts=absent"),
            Ts::Offset(offset) => write!(f, " ts=now{offset:+}"),
            Ts::Garbage => f.write_str(" ts=garbage"),
        }
    }
}

/// Which delivered entry a consumer applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// The n-th (modulo) entry still pending for the group; nothing if none is.
    Pending(usize),
    /// The n-th (modulo) entry ever delivered (nothing if none was): usually a re-delivery of
    /// an applied one.
    Any(usize),
}

/// The guard of a removal; a stale guard's cutoff is relative to the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    Any,
    Cancellable,
    StaleIn {
        set: GameSet,
        cutoff_before_now: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// A game server appends an event; a consumer reads it (now pending for the group).
    Emit(Emitted),
    /// A consumer applies a batch of delivered entries in one script call.
    Apply(Vec<Pick>),
    Reserve {
        game: usize,
        player: usize,
        ttl_ms: u64,
    },
    /// Releases the reservation of the n-th (modulo) player holding one on the game, or, when
    /// nobody does, of the n-th (modulo) player of `PLAYERS`.
    Release {
        game: usize,
        holder: usize,
        force: bool,
    },
    ReleaseExpired,
    Remove {
        game: usize,
        guard: Guard,
    },
    /// `POST /v1/games/{id}/rejoin`'s script.
    Rejoin {
        game: usize,
        player: usize,
        ttl_ms: u64,
    },
    /// The quick-join script over the product, wanting `region` (every game is in `eu`) and
    /// the label `map` (only the second game has one, `dust2`), scanning the `scan` oldest
    /// open games.
    QuickJoin {
        player: usize,
        ttl_ms: u64,
        region: Option<&'static str>,
        map: Option<&'static str>,
        scan: u32,
        /// A game not to pick (a retry after its server failed), if any.
        exclude: Option<usize>,
        /// The games the caller's view names, best first (any state: a view can be behind).
        picks: Vec<usize>,
    },
    /// The end step's first step: mark the game as ending under `guard`.
    Mark {
        game: usize,
        guard: Guard,
    },
    /// Clear the game's ending mark: with its own token (the mark's time; now when it has
    /// none), or with an older one (another end step's, which must not clear it).
    Unmark {
        game: usize,
        stale_token: bool,
    },
}

#[derive(Clone, PartialEq, Eq)]
struct Step {
    /// How far the clock moves before the operation.
    advance_ms: u64,
    op: Op,
}

#[derive(Clone)]
struct Case {
    capacities: [u32; GAMES],
    /// Games whose creator joins (an applied `creator_joined`) before the steps, so that
    /// joins, rejoins and quick joins often find open lobbies.
    opened: [bool; GAMES],
    steps: Vec<Step>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "capacities {:?}, opened {:?}",
            self.capacities, self.opened
        )?;
        for (n, step) in self.steps.iter().enumerate() {
            writeln!(f, "  #{n:<2} {step:?}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}ms {:?}", self.advance_ms, self.op)
    }
}

/// Which game an operation is about: mostly the first, so it gets far in a case; the second
/// shares batches and sweeps with it.
fn arb_game() -> impl Strategy<Value = usize> + Clone {
    prop_oneof![3 => Just(0), 1 => Just(1)]
}

fn arb_emitted() -> impl Strategy<Value = Emitted> {
    let kind = prop_oneof![
        10 => Just(Some(EventKind::CreatorJoined)),
        8 => Just(Some(EventKind::PlayerJoined)),
        5 => Just(Some(EventKind::PlayerLeft)),
        2 => Just(Some(EventKind::AllPlayersJoined)),
        2 => Just(Some(EventKind::GameStarted)),
        1 => Just(Some(EventKind::GameEnded)),
        3 => Just(Some(EventKind::Heartbeat)),
        1 => Just(None),
    ];
    let target = prop_oneof![
        19 => arb_game().prop_map(Target::Game),
        1 => Just(Target::Ghost),
    ];
    let ts = prop_oneof![
        16 => (-60_000..60_000i64).prop_map(Ts::Offset),
        3 => Just(Ts::Absent),
        1 => Just(Ts::Garbage),
    ];
    (
        kind,
        target,
        0..100u8,
        0..PLAYERS.len(),
        prop::bool::weighted(0.08),
        ts,
    )
        .prop_map(|(kind, target, roll, player, foreign_server, ts)| {
            // Player events mostly name a player, creator_joined the creator or nobody, the
            // others nobody; the rest are the malformed and lying variants.
            let who = match kind {
                Some(kind) if kind.needs_player() => {
                    if roll < 8 {
                        Who::Absent
                    } else {
                        Who::Player(player)
                    }
                }
                Some(EventKind::CreatorJoined) => match roll {
                    0..40 => Who::Absent,
                    40..90 => Who::Player(0),
                    _ => Who::Impostor,
                },
                _ if roll < 90 => Who::Absent,
                _ => Who::Player(player),
            };
            Emitted {
                kind,
                target,
                who,
                foreign_server,
                ts,
            }
        })
}

fn arb_op() -> impl Strategy<Value = Op> {
    let game = arb_game();
    let player = 0..PLAYERS.len();
    let pick = prop_oneof![
        5 => any::<usize>().prop_map(Pick::Pending),
        1 => any::<usize>().prop_map(Pick::Any),
    ];
    let set = prop::sample::select(GameSet::ALL.to_vec());
    let guard = prop_oneof![
        Just(Guard::Any),
        Just(Guard::Cancellable),
        (set, prop_oneof![Just(0u64), 0..120_000u64]).prop_map(|(set, cutoff_before_now)| {
            Guard::StaleIn {
                set,
                cutoff_before_now,
            }
        }),
    ];
    prop_oneof![
        8 => arb_emitted().prop_map(Op::Emit),
        7 => prop::collection::vec(pick, 1..6).prop_map(Op::Apply),
        6 => (game.clone(), player.clone(), prop_oneof![Just(1_000u64), Just(30_000u64)])
            .prop_map(|(game, player, ttl_ms)| Op::Reserve { game, player, ttl_ms }),
        2 => (game.clone(), player.clone(), any::<bool>())
            .prop_map(|(game, holder, force)| Op::Release { game, holder, force }),
        3 => (game.clone(), player.clone(), prop_oneof![Just(1_000u64), Just(30_000u64)])
            .prop_map(|(game, player, ttl_ms)| Op::Rejoin { game, player, ttl_ms }),
        4 => (
            player,
            prop_oneof![Just(1_000u64), Just(30_000u64)],
            prop_oneof![Just(None), Just(Some("eu")), Just(Some("us"))],
            prop_oneof![2 => Just(None), 1 => Just(Some("dust2")), 1 => Just(Some("inferno"))],
            // 0: the caller's view holds no matching game, the open index is not read.
            prop_oneof![Just(64u32), Just(1u32), Just(0u32)],
            prop_oneof![3 => Just(None), 1 => game.clone().prop_map(Some)],
            prop::collection::vec(game.clone(), 0..=3),
        )
            .prop_map(
                |(player, ttl_ms, region, map, scan, exclude, picks)| Op::QuickJoin {
                    player,
                    ttl_ms,
                    region,
                    map,
                    scan,
                    exclude,
                    picks,
                },
            ),
        1 => Just(Op::ReleaseExpired),
        1 => (game.clone(), guard.clone()).prop_map(|(game, guard)| Op::Remove { game, guard }),
        2 => (game.clone(), guard).prop_map(|(game, guard)| Op::Mark { game, guard }),
        1 => (game, prop::bool::weighted(0.2))
            .prop_map(|(game, stale_token)| Op::Unmark { game, stale_token }),
    ]
}

fn arb_case() -> impl Strategy<Value = Case> {
    let advance = prop_oneof![
        3 => Just(0u64),
        4 => 1..3_000u64,
        2 => 20_000..40_000u64,
    ];
    let step = (advance, arb_op()).prop_map(|(advance_ms, op)| Step { advance_ms, op });
    (
        prop::array::uniform2(1..=4u32),
        prop::array::uniform2(prop::bool::weighted(0.7)),
        prop::collection::vec(step, 1..40),
    )
        .prop_map(|(capacities, opened, steps)| Case {
            capacities,
            opened,
            steps,
        })
}

// ---------------------------------------------------------------------------------------
// The system under test and the oracle

/// A private Redis and a store over it, shared by every case (flushed between cases).
struct Fixture {
    redis: RedisServer,
    store: Store,
    product: ProductId,
    keys: Keys,
}

impl Fixture {
    async fn new() -> Fixture {
        let redis = RedisServer::start().expect("redis-server");
        let mut options = StoreOptions::new(redis.url());
        options.key_prefix = PREFIX.into();
        options.tombstone_ttl = Duration::from_secs(600);
        let store = Store::connect(options).await.expect("store");
        Fixture {
            redis,
            store,
            product: ProductId::new("chess").unwrap(),
            keys: Keys::new(PREFIX),
        }
    }

    fn stream(&self) -> String {
        self.keys.product(&self.product).events()
    }
}

/// One stream entry as written and delivered.
struct Entry {
    id: String,
    fields: Vec<(String, String)>,
    target: Target,
}

/// What an operation answered, store and model alike.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Delivered,
    NothingToApply,
    Applied(Vec<ApplyResult>),
    Reserve(ReserveOutcome),
    Rejoin(RejoinOutcome),
    QuickJoin(QuickJoinOutcome),
    Release(bool),
    Swept(usize),
    Remove(RemoveOutcome),
    Mark(MarkOutcome),
    Unmark(bool),
}

/// The model's view of one case: the games, and what the scripts' bookkeeping must show.
struct Oracle {
    now: u64,
    games: Vec<Game>,
    /// Whether each game is in the open index: the scripts refresh that entry whenever they
    /// write the game, from the game's openness at that moment; until the next write it may
    /// lag behind a reservation that expired meanwhile.
    open_indexed: Vec<bool>,
    entries: Vec<Entry>,
    /// Entries acknowledged (applied or dead-lettered), by index.
    handled: BTreeSet<usize>,
    dead_letters: usize,
}

impl Oracle {
    fn new(capacities: [u32; GAMES]) -> Oracle {
        let games: Vec<Game> = capacities
            .iter()
            .enumerate()
            .map(|(n, capacity)| {
                Game::new(
                    GameId::new(format!("chess.g{n}")).unwrap(),
                    ProductId::new("chess").unwrap(),
                    ServerId::new(SERVER).unwrap(),
                    Some("eu".into()),
                    *capacity,
                    PlayerId::new(PLAYERS[0]).unwrap(),
                    "ws://127.0.0.1:1/ws".into(),
                    "{}".into(),
                    T0 + n as u64,
                )
                .with_labels(game_labels(n))
            })
            .collect();
        Oracle {
            now: T0 + 1_000,
            open_indexed: vec![false; games.len()],
            games,
            entries: Vec::new(),
            handled: BTreeSet::new(),
            dead_letters: 0,
        }
    }

    /// The stream fields of an event written now, and its entry id (ids are chosen here,
    /// increasing, so a case replays identically).
    fn write(&self, event: &Emitted) -> (String, Vec<(String, String)>) {
        let n = self.entries.len() as u64;
        let id = format!("{}-{}", T0 + n / 2, n % 2);
        let mut fields = vec![(
            "type".to_string(),
            event.kind.map_or("exploded", EventKind::as_str).to_string(),
        )];
        let game = match event.target {
            Target::Game(g) => self.games[g].id.to_string(),
            Target::Ghost => GHOST_GAME.to_string(),
        };
        fields.push(("game_id".into(), game));
        let server = if event.foreign_server {
            OTHER_SERVER
        } else {
            SERVER
        };
        fields.push(("server_id".into(), server.into()));
        match event.who {
            Who::Absent => {}
            Who::Player(p) => fields.push(("player_id".into(), PLAYERS[p].into())),
            Who::Impostor => fields.push(("player_id".into(), IMPOSTOR.into())),
        }
        match event.ts {
            Ts::Absent => {}
            Ts::Offset(offset) => {
                let ts = self.now.saturating_add_signed(offset);
                fields.push(("ts".into(), ts.to_string()));
            }
            Ts::Garbage => fields.push(("ts".into(), "soon".into())),
        }
        (id, fields)
    }

    /// The entries a batch holds, chosen before either side runs.
    fn resolve(&self, picks: &[Pick]) -> Vec<usize> {
        let mut chosen = Vec::new();
        let mut handled = self.handled.clone();
        for pick in picks {
            let pending: Vec<usize> = (0..self.entries.len())
                .filter(|i| !handled.contains(i))
                .collect();
            let index = match *pick {
                Pick::Pending(_) if pending.is_empty() => continue,
                Pick::Any(_) if self.entries.is_empty() => continue,
                Pick::Pending(n) => pending[n % pending.len()],
                Pick::Any(n) => n % self.entries.len(),
            };
            handled.insert(index);
            chosen.push(index);
        }
        chosen
    }

    /// What applying the batch does, entry by entry, as the model says.
    fn apply(&mut self, batch: &[usize]) -> Vec<ApplyResult> {
        let mut written = BTreeSet::new();
        let results = batch
            .iter()
            .map(|&index| {
                if !self.handled.insert(index) {
                    return ApplyResult::Duplicate;
                }
                let entry = &self.entries[index];
                let fields = entry.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let event = match Event::from_fields(&entry.id, fields) {
                    Ok(event) => event,
                    Err(err) => {
                        self.dead_letters += 1;
                        return ApplyResult::DeadLettered(format!("{}: {err}", err.code()));
                    }
                };
                let Target::Game(g) = entry.target else {
                    self.dead_letters += 1;
                    return ApplyResult::DeadLettered("unknown_game".into());
                };
                let game = &mut self.games[g];
                match game.apply(&event, self.now) {
                    Err(refusal) => {
                        self.dead_letters += 1;
                        ApplyResult::DeadLettered(refusal.to_string())
                    }
                    Ok(outcome) => {
                        written.insert(g);
                        match outcome {
                            ApplyOutcome::Applied => ApplyResult::Applied(game.state()),
                            ApplyOutcome::Stale => ApplyResult::Stale(game.state()),
                        }
                    }
                }
            })
            .collect();
        for g in written {
            self.written(g);
        }
        results
    }

    /// A script wrote game `g` at the current time.
    fn written(&mut self, g: usize) {
        self.open_indexed[g] = self.games[g].is_open(self.now);
    }

    fn reserve(&mut self, g: usize, player: &PlayerId, ttl_ms: u64) -> ReserveOutcome {
        let outcome = match self.games[g].reserve(player, self.now, ttl_ms) {
            Ok(Reservation::Reserved { expires_at_ms }) => {
                ReserveOutcome::Reserved { expires_at_ms }
            }
            Ok(Reservation::AlreadyHeld) => ReserveOutcome::AlreadyHeld,
            Err(refusal) => ReserveOutcome::Refused(refusal),
        };
        if outcome != ReserveOutcome::Refused(JoinRefusal::GameNotOpen) {
            self.written(g);
        }
        outcome
    }

    fn rejoin(&mut self, g: usize, player: &PlayerId, ttl_ms: u64) -> RejoinOutcome {
        let seat = |outcome, game: Option<&Game>| {
            RejoinOutcome::Seat(SeatGrant {
                outcome,
                kept_ticket: None,
                game: game.map(|game| Box::new(game.clone())),
                feed_entry: None,
            })
        };
        match self.games[g].rejoin(player, self.now, ttl_ms) {
            Ok(Rejoin::InProgress) => RejoinOutcome::InProgress(Box::new(self.games[g].clone())),
            Err(refusal @ (JoinRefusal::GameNotOpen | JoinRefusal::NotInGame)) => {
                seat(ReserveOutcome::Refused(refusal), None)
            }
            Err(refusal) => {
                self.written(g);
                seat(ReserveOutcome::Refused(refusal), None)
            }
            Ok(Rejoin::Seat(reservation)) => {
                self.written(g);
                let outcome = match reservation {
                    Reservation::Reserved { expires_at_ms } => {
                        ReserveOutcome::Reserved { expires_at_ms }
                    }
                    Reservation::AlreadyHeld => ReserveOutcome::AlreadyHeld,
                };
                seat(outcome, Some(&self.games[g]))
            }
        }
    }

    /// A quick join: a seat the player's reservations hold, else the first of `picks` (the
    /// caller's view) that matches and takes the player, else the model's pick of the window.
    fn quick_join(
        &mut self,
        player: &PlayerId,
        ttl_ms: u64,
        filter: &QuickJoinFilter,
        picks: &[usize],
        scan: u32,
    ) -> QuickJoinOutcome {
        let record = |game: &Game| Box::new(game.clone());
        let all: Vec<&Game> = self.games.iter().collect();
        if let QuickJoinPick::Held(game) = quick_join_pick(&all, &[], player, filter, self.now) {
            let g = self.games.iter().position(|g| g.id == game).unwrap();
            return QuickJoinOutcome::Held {
                game,
                kept_ticket: None,
                record: record(&self.games[g]),
            };
        }
        for &g in picks {
            let model = &self.games[g];
            if filter.exclude.contains(&model.id)
                || model.state() != GameState::CreatorJoined
                || !(model.holds_seat(player, self.now) || model.is_open(self.now))
                || !model.matches(filter)
            {
                continue;
            }
            let game = model.id.clone();
            match self.reserve(g, player, ttl_ms) {
                ReserveOutcome::Reserved { expires_at_ms } => {
                    return QuickJoinOutcome::Reserved {
                        game,
                        expires_at_ms,
                        record: record(&self.games[g]),
                        feed_entry: None,
                    };
                }
                ReserveOutcome::AlreadyHeld => {
                    return QuickJoinOutcome::Held {
                        game,
                        kept_ticket: None,
                        record: record(&self.games[g]),
                    };
                }
                _ => {}
            }
        }
        // Games are created at T0 + n, so the open index's order is the games' order.
        let window: Vec<&Game> = (0..self.games.len())
            .filter(|g| self.open_indexed[*g])
            .take(scan as usize)
            .map(|g| &self.games[g])
            .collect();
        let all: Vec<&Game> = self.games.iter().collect();
        let index_of = |id: &GameId| self.games.iter().position(|g| g.id == *id).unwrap();
        match quick_join_pick(&all, &window, player, filter, self.now) {
            QuickJoinPick::NoMatch => QuickJoinOutcome::NoMatch,
            QuickJoinPick::Held(game) => {
                let g = index_of(&game);
                QuickJoinOutcome::Held {
                    game,
                    kept_ticket: None,
                    record: record(&self.games[g]),
                }
            }
            QuickJoinPick::Reserve(game) => {
                let g = index_of(&game);
                let reserved = self.games[g].reserve(player, self.now, ttl_ms);
                self.written(g);
                match reserved {
                    Ok(Reservation::Reserved { expires_at_ms }) => QuickJoinOutcome::Reserved {
                        game,
                        expires_at_ms,
                        record: record(&self.games[g]),
                        feed_entry: None,
                    },
                    other => panic!("the model picked {game} for a seat, then answered {other:?}"),
                }
            }
        }
    }

    fn release(&mut self, g: usize, player: &PlayerId, force: bool) -> bool {
        let released = self.games[g].release(player, self.now, force);
        if released {
            self.written(g);
        }
        released
    }

    fn sweep(&mut self) -> usize {
        let mut freed = 0;
        for g in 0..self.games.len() {
            let expired: Vec<PlayerId> = self.games[g]
                .reservations
                .iter()
                .filter(|(_, expiry)| **expiry <= self.now)
                .map(|(player, _)| player.clone())
                .collect();
            for player in expired {
                freed += usize::from(self.release(g, &player, false));
            }
        }
        freed
    }

    fn remove(&mut self, g: usize, reason: &str, guard: RemoveGuard) -> RemoveOutcome {
        let outcome = self.games[g].remove(reason, guard, self.now);
        if matches!(outcome, RemoveOutcome::Removed { .. }) {
            self.written(g);
        }
        outcome
    }
}

impl Oracle {
    fn mark(&mut self, g: usize, reason: &str, guard: RemoveGuard) -> MarkOutcome {
        let outcome = self.games[g].mark_ending(reason, guard, self.now);
        if matches!(outcome, MarkOutcome::Marked { .. }) {
            self.written(g);
        }
        outcome
    }

    fn unmark(&mut self, g: usize, since_ms: u64) -> bool {
        let cleared = self.games[g].unmark_ending(since_ms);
        if cleared {
            self.written(g);
        }
        cleared
    }
}

fn store_guard(guard: Guard, now: u64) -> (RemoveGuard, String) {
    match guard {
        Guard::Any => (RemoveGuard::Any, "deleted".into()),
        Guard::Cancellable => (RemoveGuard::Cancellable, "cancelled".into()),
        Guard::StaleIn {
            set,
            cutoff_before_now,
        } => (
            RemoveGuard::StaleIn {
                set,
                cutoff_ms: now - cutoff_before_now,
            },
            format!("curated_{set}"),
        ),
    }
}

/// Runs one operation against the store and the model; returns both answers.
async fn step(
    fx: &Fixture,
    conn: &mut MultiplexedConnection,
    oracle: &mut Oracle,
    op: &Op,
) -> anyhow::Result<(Answer, Answer)> {
    let now = oracle.now;
    let player = |p: usize| PlayerId::new(PLAYERS[p]).unwrap();
    Ok(match op {
        Op::Emit(event) => {
            let (id, fields) = oracle.write(event);
            let written: String = conn.xadd(fx.stream(), &id, &fields).await?;
            anyhow::ensure!(written == id, "XADD wrote {written}, expected {id}");
            let read: redis::streams::StreamReadReply = conn
                .xread_options(
                    &[fx.stream()],
                    &[">"],
                    &redis::streams::StreamReadOptions::default()
                        .group(CONSUMER_GROUP, "oracle")
                        .count(1),
                )
                .await?;
            let delivered = read.keys.first().and_then(|key| key.ids.first());
            anyhow::ensure!(
                delivered.map(|entry| entry.id.as_str()) == Some(id.as_str()),
                "the group delivered {delivered:?}, expected {id}"
            );
            oracle.entries.push(Entry {
                id,
                fields,
                target: event.target,
            });
            (Answer::Delivered, Answer::Delivered)
        }
        Op::Apply(picks) => {
            let batch = oracle.resolve(picks);
            if batch.is_empty() {
                return Ok((Answer::NothingToApply, Answer::NothingToApply));
            }
            let entries: Vec<(&str, &[(String, String)])> = batch
                .iter()
                .map(|&i| {
                    let entry = &oracle.entries[i];
                    (entry.id.as_str(), entry.fields.as_slice())
                })
                .collect();
            let actual = fx.store.apply_entries(&fx.product, &entries, now).await?;
            (
                Answer::Applied(actual),
                Answer::Applied(oracle.apply(&batch)),
            )
        }
        Op::Reserve {
            game,
            player: p,
            ttl_ms,
        } => {
            let id = oracle.games[*game].id.clone();
            let ttl = Duration::from_millis(*ttl_ms);
            let actual = fx.store.reserve_seat(&id, &player(*p), now, ttl).await?;
            let expected = oracle.reserve(*game, &player(*p), *ttl_ms);
            (Answer::Reserve(actual), Answer::Reserve(expected))
        }
        Op::Rejoin {
            game,
            player: p,
            ttl_ms,
        } => {
            let id = oracle.games[*game].id.clone();
            let ttl = Duration::from_millis(*ttl_ms);
            let mut actual = fx
                .store
                .rejoin(&id, &player(*p), now, ttl, &PlayerLimits::NONE)
                .await?;
            if let RejoinOutcome::Seat(grant) = &mut actual {
                check_feed_entry(fx, grant.feed_entry.take()).await?;
            }
            let expected = oracle.rejoin(*game, &player(*p), *ttl_ms);
            (Answer::Rejoin(actual), Answer::Rejoin(expected))
        }
        Op::QuickJoin {
            player: p,
            ttl_ms,
            region,
            map,
            scan,
            exclude,
            picks,
        } => {
            let labels = map.map_or_else(BTreeMap::new, |map| {
                [("map".to_string(), map.to_string())].into()
            });
            let filter = QuickJoinFilter {
                region: region.map(str::to_string),
                labels: Labels::new(labels, 8).unwrap(),
                exclude: exclude
                    .map(|g| vec![oracle.games[g].id.clone()])
                    .unwrap_or_default(),
            };
            let ttl = Duration::from_millis(*ttl_ms);
            let mut actual = fx
                .store
                .quick_join(
                    &fx.product,
                    &player(*p),
                    &filter,
                    &picks
                        .iter()
                        .map(|g| oracle.games[*g].id.clone())
                        .collect::<Vec<_>>(),
                    *scan,
                    now,
                    ttl,
                    &PlayerLimits::NONE,
                )
                .await?;
            if let QuickJoinOutcome::Reserved { feed_entry, .. } = &mut actual {
                check_feed_entry(fx, feed_entry.take()).await?;
            }
            let expected = oracle.quick_join(&player(*p), *ttl_ms, &filter, picks, *scan);
            (Answer::QuickJoin(actual), Answer::QuickJoin(expected))
        }
        Op::Release {
            game,
            holder,
            force,
        } => {
            let model = &oracle.games[*game];
            let id = model.id.clone();
            let holder = match model
                .reservations
                .keys()
                .nth(holder % model.reservations.len().max(1))
            {
                Some(holder) => holder.clone(),
                None => player(holder % PLAYERS.len()),
            };
            let actual = fx.store.release_seat(&id, &holder, now, *force).await?;
            let expected = oracle.release(*game, &holder, *force);
            (Answer::Release(actual), Answer::Release(expected))
        }
        Op::ReleaseExpired => {
            let actual = fx
                .store
                .release_expired_reservations(&fx.product, now, SWEEP_LIMIT)
                .await?;
            (Answer::Swept(actual), Answer::Swept(oracle.sweep()))
        }
        Op::Remove { game, guard } => {
            let id = oracle.games[*game].id.clone();
            let (guard, reason) = store_guard(*guard, now);
            let actual = fx.store.remove_game(&id, &reason, guard, now).await?;
            let expected = oracle.remove(*game, &reason, guard);
            (Answer::Remove(actual), Answer::Remove(expected))
        }
        Op::Mark { game, guard } => {
            let id = oracle.games[*game].id.clone();
            let (guard, reason) = store_guard(*guard, now);
            let actual = fx.store.mark_ending(&id, &reason, guard, now).await?;
            let expected = oracle.mark(*game, &reason, guard);
            (Answer::Mark(actual), Answer::Mark(expected))
        }
        Op::Unmark { game, stale_token } => {
            let model = &oracle.games[*game];
            let id = model.id.clone();
            let own = model.ending.as_ref().map_or(now, |ending| ending.since_ms);
            let since_ms = if *stale_token { own - 1 } else { own };
            let actual = fx.store.unmark_ending(&id, since_ms, now).await?;
            let expected = oracle.unmark(*game, since_ms);
            (Answer::Unmark(actual), Answer::Unmark(expected))
        }
    })
}

/// One game's scores in pending, lobby, active and the open index, its TTL, and its score in
/// the ending index.
type IndexScores = (
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    i64,
    Option<f64>,
);

/// Compares everything Redis holds about the case with the model; returns the differences.
async fn compare_record(
    fx: &Fixture,
    conn: &mut MultiplexedConnection,
    oracle: &Oracle,
) -> anyhow::Result<Vec<String>> {
    let keys = fx.keys.product(&fx.product);
    let mut differences = Vec::new();
    let reservation_index: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(keys.reservations())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    for (g, model) in oracle.games.iter().enumerate() {
        let stored = fx.store.game(&model.id).await?;
        if stored.as_ref() != Some(model) {
            differences.push(format!(
                "g{g}: the stored game is\n{stored:#?}\nthe model's is\n{model:#?}"
            ));
        }
        let id = model.id.as_str();
        let mut pipe = redis::pipe();
        for set in GameSet::ALL {
            pipe.zscore(keys.set(set), id);
        }
        pipe.zscore(keys.open(), id)
            .ttl(keys.game(&model.id))
            .zscore(keys.ending(), id);
        let (pending, lobby, active, open, ttl, ending): IndexScores =
            pipe.query_async(conn).await?;
        let ending = ending.map(|score| score as u64);
        let expected_ending = model.ending.as_ref().map(|ending| ending.since_ms);
        if ending != expected_ending {
            differences.push(format!(
                "g{g}: ending index score {ending:?}, the model's mark {expected_ending:?}"
            ));
        }
        let sets: Vec<(GameSet, u64)> = GameSet::ALL
            .into_iter()
            .zip([pending, lobby, active])
            .filter_map(|(set, score)| Some((set, score? as u64)))
            .collect();
        let expected_sets: Vec<(GameSet, u64)> = model.set_and_score().into_iter().collect();
        if sets != expected_sets {
            differences.push(format!(
                "g{g}: in sets {sets:?}, the model says {expected_sets:?}"
            ));
        }
        let expected_open = oracle.open_indexed[g].then_some(model.created_at_ms);
        let open = open.map(|score| score as u64);
        if open != expected_open {
            differences.push(format!(
                "g{g}: open index score {open:?}, the model says {expected_open:?}"
            ));
        }
        let prefix = format!("{id}{RESERVATION_SEPARATOR}");
        let indexed: BTreeMap<String, u64> = reservation_index
            .iter()
            .filter_map(|(member, score)| {
                let player = member.strip_prefix(&prefix)?;
                Some((player.to_string(), *score as u64))
            })
            .collect();
        let expected_reservations: BTreeMap<String, u64> = model
            .reservations
            .iter()
            .map(|(player, expiry)| (player.to_string(), *expiry))
            .collect();
        if indexed != expected_reservations {
            differences.push(format!(
                "g{g}: reservation index {indexed:?}, the model holds {expected_reservations:?}"
            ));
        }
        let ended = model.set_and_score().is_none();
        if ended != (ttl > 0) {
            differences.push(format!(
                "g{g}: TTL {ttl}, but the model's game {} ended",
                if ended { "has" } else { "has not" }
            ));
        }
    }
    let dead_letters: usize = conn.xlen(keys.dead_letters()).await?;
    if dead_letters != oracle.dead_letters {
        differences.push(format!(
            "{dead_letters} dead letters, the model counts {}",
            oracle.dead_letters
        ));
    }
    let pending: redis::streams::StreamPendingReply =
        conn.xpending(fx.stream(), CONSUMER_GROUP).await?;
    let expected_pending = oracle.entries.len() - oracle.handled.len();
    if pending.count() != expected_pending {
        differences.push(format!(
            "{} entries pending for the group, the model expects {expected_pending}",
            pending.count()
        ));
    }
    differences.extend(compare_feed(fx, oracle).await?);
    if let Err(err) =
        invariants::check(conn, PREFIX, std::slice::from_ref(&fx.product), oracle.now).await
    {
        differences.push(format!("{err:#}"));
    }
    Ok(differences)
}

/// The change feed folded from its start (what a view that loaded an empty product and read
/// every entry holds) must list exactly the games of the open index, each with the model's
/// roster, reservations and fixed fields.
/// A feed entry a script answered as the one it wrote must be the feed's newest (the script
/// was the last write); the model cannot name the id, so the answers compare without it.
async fn check_feed_entry(fx: &Fixture, feed_entry: Option<EntryId>) -> anyhow::Result<()> {
    if let Some(entry) = feed_entry {
        let newest = fx.store.feed_state(&fx.product).await?.last_id;
        anyhow::ensure!(
            entry == newest,
            "the script answered feed entry {entry}, the feed's newest is {newest}"
        );
    }
    Ok(())
}

async fn compare_feed(fx: &Fixture, oracle: &Oracle) -> anyhow::Result<Vec<String>> {
    let mut differences = Vec::new();
    let mut folded: BTreeMap<String, Game> = BTreeMap::new();
    if fx.store.feed_state(&fx.product).await?.exists {
        let mut reader = fx.store.feed_reader(&fx.product, Duration::from_millis(10));
        for entry in reader.read_after(EntryId::default(), 100_000).await? {
            match entry.change {
                FeedChange::Open(game) => {
                    folded.insert(game.id.to_string(), *game);
                }
                FeedChange::Update(update) => match folded.get_mut(&update.id) {
                    Some(game) => update.apply_to(game),
                    None => differences.push(format!(
                        "the feed updates {} before any `op open` of it",
                        update.id
                    )),
                },
                FeedChange::Gone(id) => {
                    folded.remove(&id);
                }
            }
        }
    }
    for (g, model) in oracle.games.iter().enumerate() {
        let listed = folded.remove(model.id.as_str());
        match (oracle.open_indexed[g], listed) {
            (false, None) => {}
            (true, None) => differences.push(format!("g{g}: open, but the feed does not list it")),
            (false, Some(_)) => differences.push(format!("g{g}: not open, but the feed lists it")),
            (true, Some(listed)) => {
                let fixed = |game: &Game| {
                    (
                        game.capacity,
                        game.created_at_ms,
                        game.creator_id.clone(),
                        game.server_id.clone(),
                        game.region.clone(),
                    )
                };
                if listed.roster != model.roster
                    || listed.reservations != model.reservations
                    || fixed(&listed) != fixed(model)
                {
                    differences.push(format!(
                        "g{g}: the feed lists\n{listed:#?}\nthe model's game is\n{model:#?}"
                    ));
                }
            }
        }
    }
    if !folded.is_empty() {
        differences.push(format!("the feed lists unknown games {:?}", folded.keys()));
    }
    Ok(differences)
}

/// Runs one case from an empty Redis; the error names the first step where store and model
/// part.
async fn run_case(fx: &Fixture, case: &Case) -> anyhow::Result<()> {
    let mut conn = fx.redis.connection().await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(fx.stream())
        .arg(CONSUMER_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await?;
    let mut oracle = Oracle::new(case.capacities);
    for game in &oracle.games {
        anyhow::ensure!(fx.store.create_game(game).await?, "{} exists", game.id);
    }
    for (g, _) in case
        .opened
        .iter()
        .enumerate()
        .filter(|(_, opened)| **opened)
    {
        let creator_joined = Emitted {
            kind: Some(EventKind::CreatorJoined),
            target: Target::Game(g),
            who: Who::Absent,
            foreign_server: false,
            ts: Ts::Absent,
        };
        for op in [Op::Emit(creator_joined), Op::Apply(vec![Pick::Pending(0)])] {
            let (actual, expected) = step(fx, &mut conn, &mut oracle, &op).await?;
            anyhow::ensure!(
                actual == expected,
                "opening g{g} with {op:?}: the store answered\n{actual:?}\nthe model predicts\n{expected:?}"
            );
        }
    }
    for (n, Step { advance_ms, op }) in case.steps.iter().enumerate() {
        oracle.now += advance_ms;
        let (actual, expected) = step(fx, &mut conn, &mut oracle, op).await?;
        anyhow::ensure!(
            actual == expected,
            "step #{n} {op:?} at now={}: the store answered\n{actual:?}\nthe model predicts\n{expected:?}",
            oracle.now
        );
        let differences = compare_record(fx, &mut conn, &oracle).await?;
        anyhow::ensure!(
            differences.is_empty(),
            "after step #{n} {op:?} at now={}, the record differs from the model:\n{}",
            oracle.now,
            differences.join("\n")
        );
    }
    Ok(())
}

#[test]
fn the_scripts_answer_and_record_what_the_model_says_after_every_operation() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let fx = runtime.block_on(Fixture::new());
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4_096,
        ..Config::default()
    });
    let result = runner.run(&arb_case(), |case| {
        runtime
            .block_on(run_case(&fx, &case))
            .map_err(|err| TestCaseError::fail(format!("{err:#}")))
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => panic!(
            "the store and the model disagree: {reason}\n\nminimal failing case ({} operations):\n{case:?}",
            case.steps.len()
        ),
        Err(TestError::Abort(reason)) => panic!("property test aborted: {reason}"),
    }
}
