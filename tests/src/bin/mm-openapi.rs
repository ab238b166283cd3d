//! `mm-openapi`: prints the lobby API's OpenAPI document (the one `/openapi.json` serves)
//! without Redis or a running daemon, for generating and checking clients
//! (`clients/typescript`, `scripts/check-client.sh`). The create body's `capacity` maximum is
//! `--max-capacity`, its most labels `--max-labels` (defaults: those of `[lobby]`).

use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Print the lobby API's OpenAPI document as JSON")]
struct Args {
    /// `lobby.max_capacity` to state as the create body's `capacity` maximum.
    #[arg(long, default_value_t = mm_config::LobbySettings::default().max_capacity)]
    max_capacity: u32,
    /// `lobby.max_labels` to state as the create body's most `labels`.
    #[arg(long, default_value_t = mm_config::LobbySettings::default().max_labels)]
    max_labels: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let document = matchmakerd::api::ops::document(args.max_capacity, args.max_labels)?;
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}
