//! `mm-loadgen`: simulated players against a running matchmaker (lobby API + game servers).

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mm_loadgen::{LoadConfig, Mix, run};

/// Drives simulated players through the lobby API and the game servers' WebSockets, then
/// prints a summary: requests and errors by operation and code, latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "mm-loadgen", version)]
struct Cli {
    /// Base URL of the lobby API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api_url: String,
    /// Products to create games of, round-robin (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "chess")]
    products: Vec<String>,
    /// Game sessions started per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Seconds to keep starting sessions (0: until --games or Ctrl-C).
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// Stop after this many sessions.
    #[arg(long)]
    games: Option<u64>,
    /// Most simulated players connected at once.
    #[arg(long, default_value_t = 200)]
    players: usize,
    /// Smallest capacity of created games.
    #[arg(long, default_value_t = 2)]
    min_capacity: u32,
    /// Largest capacity of created games.
    #[arg(long, default_value_t = 2)]
    max_capacity: u32,
    /// Behaviour mix as NAME=WEIGHT pairs: play, leave, abandon, idle.
    #[arg(long, default_value_t = Mix::default())]
    mix: Mix,
    /// Listing requests per second (0: none).
    #[arg(long, default_value_t = 2.0)]
    list_rate: f64,
    /// Seconds an `idle` creator waits alone before leaving.
    #[arg(long, default_value_t = 2)]
    idle_secs: u64,
    /// Seconds a connected player waits for the game to end.
    #[arg(long, default_value_t = 120)]
    game_timeout_secs: u64,
    /// Prefix of simulated player ids.
    #[arg(long, default_value = "lg")]
    player_prefix: String,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = LoadConfig {
        api_url: cli.api_url,
        products: cli.products,
        rate: cli.rate,
        duration: (cli.duration_secs > 0).then(|| Duration::from_secs(cli.duration_secs)),
        games: cli.games,
        max_players: cli.players,
        capacity: (cli.min_capacity, cli.max_capacity),
        mix: cli.mix,
        list_rate: cli.list_rate,
        join_timeout: Duration::from_secs(10),
        game_timeout: Duration::from_secs(cli.game_timeout_secs),
        idle_time: Duration::from_secs(cli.idle_secs),
        player_prefix: cli.player_prefix,
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let summary = run(config, stop).await.context("load run")?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}
