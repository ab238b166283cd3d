//! `mm-bench`: measures every hot path beside its ceiling and writes BENCHMARKS.md and
//! bench/results.json (normally run through `scripts/bench.sh`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mm_bench::{BenchOptions, Binaries, Outcome, run};

/// Runs the benchmark scenarios (each with its own Redis, game servers and daemon) and
/// writes the figures.
#[derive(Debug, Parser)]
#[command(name = "mm-bench", version)]
struct Cli {
    /// Short smoke run: small data, 3-second load phases.
    #[arg(long)]
    quick: bool,
    /// Only these scenarios (comma-separated): list, view, create, flow, seats, events,
    /// scale, curation, console, soak.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Length of each load phase in seconds (default: 15, or 3 with --quick).
    #[arg(long)]
    load_secs: Option<u64>,
    /// Length of the soak in seconds (default: 600, or 90 with --quick).
    #[arg(long)]
    soak_secs: Option<u64>,
    /// Directory holding matchmakerd and mm-gameserver (default: this program's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench/results.json")]
    json_out: PathBuf,
    /// Where the Markdown report goes (its hand-written head is kept).
    #[arg(long, default_value = "BENCHMARKS.md")]
    markdown_out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()
            .context("locating mm-bench")?
            .parent()
            .context("mm-bench has no parent directory")?
            .to_path_buf(),
    };
    let options = BenchOptions {
        quick: cli.quick,
        binaries: Binaries { dir: bin_dir },
        only: cli.only,
        load: cli.load_secs.map(Duration::from_secs),
        soak: cli.soak_secs.map(Duration::from_secs),
        json_out: cli.json_out,
        markdown_out: cli.markdown_out,
    };
    let report = run(&options).await?;
    println!("{}", report.markdown());
    eprintln!(
        "mm-bench: wrote {} and {}",
        options.markdown_out.display(),
        options.json_out.display()
    );
    let failed = report
        .scenarios
        .iter()
        .filter(|s| s.outcome == Outcome::Failed)
        .count();
    anyhow::ensure!(failed == 0, "{failed} scenario(s) failed (see the report)");
    Ok(())
}
