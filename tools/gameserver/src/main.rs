//! `mm-gameserver`: the reference game server as a program.
//!
//! Prints `mm-gameserver listening on http://ADDR` on stdout once bound (harnesses parse
//! it), logs to stderr (`RUST_LOG` filters, default `info`), and stops gracefully on SIGTERM
//! or SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mm_common::{ProductId, ServerId};
use mm_gameserver::GameServerConfig;

/// The matchmaker's reference game server: implements the game-server HTTP API, accepts
/// players on WebSockets and writes game events to the product's Redis stream.
#[derive(Debug, Parser)]
#[command(name = "mm-gameserver", version)]
struct Args {
    /// This server's id, as registered with the matchmaker; written as `server_id` in events.
    #[arg(long)]
    id: ServerId,

    /// The product this server hosts; game creations for other products are refused.
    #[arg(long)]
    product: ProductId,

    /// Address to listen on for the API and the players' WebSockets (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,

    /// Key the matchmaker must send as `Authorization: Bearer <key>` on every API call.
    #[arg(long, env = "MM_GS_API_KEY", hide_env_values = true)]
    api_key: String,

    /// Redis to write events to: `redis://host:port/db` or `redis+unix:///path/to.sock`; a
    /// Redis Cluster as a comma-separated list of its nodes (`redis://h:7000,redis://h:7001`).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,

    /// Redis key prefix; events go to `<prefix>:{<product>}:events`.
    #[arg(long, default_value = "mm")]
    key_prefix: String,

    /// Public base URL of the players' WebSockets (e.g. `wss://play.example.com`), when
    /// players reach the server through a proxy; default `ws://<bound address>`.
    #[arg(long)]
    public_ws_base: Option<String>,

    /// Most games held at once; creations beyond it answer 503.
    #[arg(long, default_value_t = 100)]
    max_games: u32,

    /// Milliseconds from a game becoming full to `game_started`.
    #[arg(long, default_value_t = 3_000)]
    start_delay_ms: u64,

    /// Milliseconds of play from `game_started` to `game_ended`.
    #[arg(long, default_value_t = 60_000)]
    play_time_ms: u64,

    /// Milliseconds between `heartbeat` events of each game with players connected (0: off).
    #[arg(long, default_value_t = 10_000)]
    heartbeat_ms: u64,

    /// Seconds a join token stays valid.
    #[arg(long, default_value_t = 30)]
    token_ttl_secs: u64,

    /// Milliseconds `POST /games` takes before the game exists (a test knob: a server that
    /// is slow to create, so the matchmaker times out and the game is created afterwards).
    #[arg(long, default_value_t = 0)]
    create_delay_ms: u64,
}

impl Args {
    fn config(self) -> GameServerConfig {
        let mut config = GameServerConfig::new(self.id, self.product, self.api_key, self.redis_url);
        config.key_prefix = self.key_prefix;
        config.public_ws_base = self.public_ws_base;
        config.max_games = self.max_games;
        config.start_delay = Duration::from_millis(self.start_delay_ms);
        config.play_time = Duration::from_millis(self.play_time_ms);
        config.heartbeat_interval = Duration::from_millis(self.heartbeat_ms);
        config.token_ttl = Duration::from_secs(self.token_ttl_secs);
        config.create_delay = Duration::from_millis(self.create_delay_ms);
        config
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let bind = args.bind;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let server = mm_gameserver::spawn(args.config(), listener).await?;

    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "mm-gameserver listening on http://{}",
        server.addr()
    )?;
    stdout.flush()?;
    drop(stdout);

    shutdown_signal().await?;
    server.shutdown().await
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}
