//! `mm-loadgen`, the traffic generator: simulated players driving the lobby API and the game
//! servers' WebSockets, exactly as real clients would (nothing here knows the matchmaker's
//! internals). The demo (`scripts/demo.sh`) runs it as a program; the benchmark driver
//! (`mm-bench`) reuses its players.
//!
//! A *session* is one game's story, chosen from a behaviour mix:
//!
//! - `play`: the creator creates and connects; other players join through the lobby API
//!   (retrying while the creator's arrival is still being processed), connect, and stay until
//!   the game server ends the game.
//! - `leave`: like `play`, but the first joiner walks out before the start and a replacement
//!   takes the seat.
//! - `abandon`: the creator creates the game and never connects (the curator's pending case).
//! - `idle`: the creator connects, waits alone, and leaves (an idle lobby for the curator).
//!
//! Sessions start at a fixed rate, bounded by a number of games or a duration, with at most
//! `max_players` simulated players connected at once. A separate loop lists open games at its
//! own rate. Every request's outcome and latency is recorded; [`stats::Summary`] reports them.

pub mod player;
pub mod stats;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use stats::{Recorder, Summary};

use player::{LobbyClient, Player};

/// How sessions are picked: weights per behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    weights: Vec<(Behaviour, u32)>,
}

/// One game's story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Create, fill, play to the end.
    Play,
    /// A joiner leaves before the start and is replaced.
    Leave,
    /// The creator never connects.
    Abandon,
    /// The creator connects, waits alone, leaves.
    Idle,
}

impl Behaviour {
    const ALL: [Behaviour; 4] = [
        Behaviour::Play,
        Behaviour::Leave,
        Behaviour::Abandon,
        Behaviour::Idle,
    ];

    fn name(self) -> &'static str {
        match self {
            Behaviour::Play => "play",
            Behaviour::Leave => "leave",
            Behaviour::Abandon => "abandon",
            Behaviour::Idle => "idle",
        }
    }
}

impl FromStr for Mix {
    type Err = String;

    /// Parses `play=70,leave=10,abandon=10,idle=10` (weights need not add up to 100).
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut weights = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("mix entry {part:?} is not NAME=WEIGHT"))?;
            let behaviour = Behaviour::ALL
                .into_iter()
                .find(|b| b.name() == name.trim())
                .ok_or_else(|| {
                    format!("unknown behaviour {name:?} (expected play, leave, abandon, idle)")
                })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of {name:?} is not a whole number: {weight:?}"))?;
            weights.push((behaviour, weight));
        }
        if weights.iter().map(|(_, w)| w).sum::<u32>() == 0 {
            return Err("the mix needs at least one behaviour with a weight above 0".into());
        }
        Ok(Mix { weights })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(b, w)| format!("{}={w}", b.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Default for Mix {
    fn default() -> Self {
        "play=70,leave=10,abandon=10,idle=10"
            .parse()
            .expect("the default mix parses")
    }
}

impl Mix {
    fn pick(&self, rng: &mut impl Rng) -> Behaviour {
        let total: u32 = self.weights.iter().map(|(_, w)| w).sum();
        let mut roll = rng.random_range(0..total);
        for (behaviour, weight) in &self.weights {
            if roll < *weight {
                return *behaviour;
            }
            roll -= weight;
        }
        unreachable!("roll is below the total weight")
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The lobby API's base URL.
    pub api_url: String,
    /// Products to create games of (round-robin).
    pub products: Vec<String>,
    /// Game sessions started per second.
    pub rate: f64,
    /// Stop starting sessions after this long (`None`: only `games` or the stop signal).
    pub duration: Option<Duration>,
    /// Stop after starting this many sessions.
    pub games: Option<u64>,
    /// Most simulated players connected at once.
    pub max_players: usize,
    /// Capacity of created games, drawn from this inclusive range.
    pub capacity: (u32, u32),
    /// Behaviour mix.
    pub mix: Mix,
    /// Listing requests per second (0: none).
    pub list_rate: f64,
    /// How long a joiner keeps retrying `creator_not_joined`.
    pub join_timeout: Duration,
    /// How long a connected player waits for the game to end before giving up.
    pub game_timeout: Duration,
    /// How long an `idle` creator sits alone in the lobby.
    pub idle_time: Duration,
    /// Prefix of the simulated players' ids (distinguishes concurrent runs).
    pub player_prefix: String,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            api_url: "http://127.0.0.1:8080".into(),
            products: vec!["chess".into()],
            rate: 5.0,
            duration: Some(Duration::from_secs(30)),
            games: None,
            max_players: 200,
            capacity: (2, 2),
            mix: Mix::default(),
            list_rate: 2.0,
            join_timeout: Duration::from_secs(10),
            game_timeout: Duration::from_secs(120),
            idle_time: Duration::from_secs(2),
            player_prefix: "lg".into(),
        }
    }
}

/// Runs the load until the configured bound or `stop`, waits for the sessions in flight
/// (bounded by their own timeouts), and returns the figures.
pub async fn run(config: LoadConfig, stop: impl Future<Output = ()>) -> anyhow::Result<Summary> {
    anyhow::ensure!(config.rate > 0.0, "rate must be above 0");
    anyhow::ensure!(
        !config.products.is_empty(),
        "at least one product is needed"
    );
    anyhow::ensure!(
        config.capacity.0 >= 1 && config.capacity.0 <= config.capacity.1,
        "capacity range {:?} is empty",
        config.capacity
    );
    let config = Arc::new(config);
    let recorder = Arc::new(Recorder::default());
    let lobby = LobbyClient::new(&config.api_url, recorder.clone())?;
    let seats = Arc::new(Semaphore::new(config.max_players.max(1)));
    let player_numbers = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut sessions = JoinSet::new();
    let lister = tokio::spawn(list_loop(lobby.clone(), config.clone()));

    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    let mut launched: u64 = 0;
    loop {
        if config.games.is_some_and(|n| launched >= n)
            || config.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => {}
        }
        let (behaviour, capacity) = {
            let mut rng = rand::rng();
            let behaviour = config.mix.pick(&mut rng);
            (
                behaviour,
                rng.random_range(config.capacity.0..=config.capacity.1),
            )
        };
        let product = config.products[launched as usize % config.products.len()].clone();
        let session = Session {
            lobby: lobby.clone(),
            config: config.clone(),
            seats: seats.clone(),
            numbers: player_numbers.clone(),
            product,
            capacity,
        };
        sessions.spawn(session.run(behaviour));
        launched += 1;
        // Reap finished sessions so the set does not grow without bound.
        while sessions.try_join_next().is_some() {}
    }
    lister.abort();
    while sessions.join_next().await.is_some() {}
    Ok(recorder.summary(started.elapsed()))
}

async fn list_loop(lobby: LobbyClient, config: Arc<LoadConfig>) {
    if config.list_rate <= 0.0 {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / config.list_rate));
    let mut i = 0usize;
    loop {
        ticker.tick().await;
        let product = &config.products[i % config.products.len()];
        i += 1;
        let _ = lobby.list(product).await;
    }
}

/// One game's story.
struct Session {
    lobby: LobbyClient,
    config: Arc<LoadConfig>,
    seats: Arc<Semaphore>,
    numbers: Arc<AtomicU64>,
    product: String,
    capacity: u32,
}

impl Session {
    fn next_player(&self) -> String {
        let n = self.numbers.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.config.player_prefix)
    }

    async fn run(self, behaviour: Behaviour) {
        let creator = self.next_player();
        let Ok(created) = self
            .lobby
            .create(&creator, &self.product, self.capacity)
            .await
        else {
            return;
        };
        if behaviour == Behaviour::Abandon {
            return;
        }
        let Ok(_seat) = self.seats.clone().acquire_owned().await else {
            return;
        };
        let Ok(mut host) = Player::connect(&self.lobby, &created.join).await else {
            return;
        };
        if behaviour == Behaviour::Idle {
            tokio::time::sleep(self.config.idle_time).await;
            host.leave().await;
            return;
        }
        let mut players = vec![host];
        let mut to_seat = self.capacity.saturating_sub(1);
        let mut walkout_pending = behaviour == Behaviour::Leave && to_seat > 0;
        while to_seat > 0 {
            let Ok(seat) = self.seats.clone().acquire_owned().await else {
                return;
            };
            let name = self.next_player();
            let Ok(ticket) = self
                .lobby
                .join_when_open(&name, &created.id, self.config.join_timeout)
                .await
            else {
                break;
            };
            let Ok(mut player) = Player::connect(&self.lobby, &ticket).await else {
                break;
            };
            player.hold_seat(seat);
            if walkout_pending {
                // Walk out before the start; the seat is offered to someone else.
                walkout_pending = false;
                player.leave().await;
                continue;
            }
            players.push(player);
            to_seat -= 1;
        }
        let deadline = self.config.game_timeout;
        let plays = players
            .into_iter()
            .map(|mut player| async move { player.play_until_end(deadline).await });
        futures::future::join_all(plays).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_refuses_with_a_reason() {
        let mix: Mix = "play=3, abandon=1".parse().unwrap();
        assert_eq!(mix.to_string(), "play=3,abandon=1");
        let err = "dance=1".parse::<Mix>().unwrap_err();
        assert!(err.contains("unknown behaviour \"dance\""), "{err}");
        let err = "play=x".parse::<Mix>().unwrap_err();
        assert!(err.contains("not a whole number"), "{err}");
        assert!("play=0".parse::<Mix>().is_err());
    }

    #[test]
    fn mix_picks_only_weighted_behaviours() {
        let mix: Mix = "idle=1,play=0".parse().unwrap();
        let mut rng = rand::rng();
        assert!((0..100).all(|_| mix.pick(&mut rng) == Behaviour::Idle));
    }
}
