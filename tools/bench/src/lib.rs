//! `mm-bench`, the benchmark driver (run it with `scripts/bench.sh`): every hot path
//! measured side by side with a ceiling measured in the same run, on the same machine.
//!
//! Each scenario starts its own private `redis-server`, its own reference game servers
//! (`mm-gameserver` processes) and its own `matchmakerd` (with only the roles it needs), and
//! reports throughput, latency percentiles, the daemon's CPU (cores) and peak RSS, and
//! whether its target was met:
//!
//! - [`list`]: `GET /v1/games` (a page of 100 of 1,000 open games) with wrk, against a static
//!   response of the same size from the same daemon build.
//! - [`create`]: game creation through the API on reference game servers, and the whole
//!   player flow (create, connect, join, connect).
//! - [`seats`]: join and quick join beside create, each by 64 connections (over open lobbies).
//! - [`events`]: draining a pre-filled stream of events, against Redis draining an identical
//!   stream by itself (`redis-benchmark` running an `EVALSHA` that reads and applies entries
//!   with the store's own script).
//! - [`scale`]: the same event drain with four products on one Redis and spread over the
//!   masters of a local Redis Cluster (the cluster's gain, and where the cores went).
//! - [`curation`]: curating stale pending games that exist on the game servers.
//! - [`console`]: one console refresh and frame with 100,000 games per set.
//! - [`soak`]: the whole daemon under steady mixed load for minutes (10 in the full run),
//!   sampling Redis memory, stream lengths, keys and the daemon's RSS: after warm-up they
//!   must stay flat.
//!
//! A scenario that cannot run (a binary missing from the build) is reported as skipped or
//! failed with the reason; the others still run.
//!
//! Each scenario's private `redis-server` is the test kit's [`mm_testkit::RedisServer`] (the
//! one thing this tool takes from the test harness), and the create and flow scenarios drive
//! `mm-loadgen`'s players.

pub mod console;
pub mod create;
pub mod curation;
pub mod driver;
pub mod events;
pub mod fixtures;
pub mod list;
pub mod paired;
pub mod procs;
pub mod report;
pub mod scale;
pub mod seats;
pub mod soak;
pub mod static_server;
pub mod view;
pub mod wrk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

pub use procs::Binaries;
pub use report::{Outcome, Report, Scenario};

/// Every scenario, in run order.
pub const SCENARIOS: [&str; 10] = [
    "list", "view", "create", "flow", "seats", "events", "scale", "curation", "console", "soak",
];

/// What to run and where to write the results.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Short smoke run (small data, short load phases) instead of the full one.
    pub quick: bool,
    /// Where `matchmakerd` and `mm-gameserver` are.
    pub binaries: Binaries,
    /// Scenarios to run (empty: all).
    pub only: Vec<String>,
    /// Override of the load phase length.
    pub load: Option<Duration>,
    /// Override of the soak's length.
    pub soak: Option<Duration>,
    /// `bench/results.json`.
    pub json_out: PathBuf,
    /// `BENCHMARKS.md`.
    pub markdown_out: PathBuf,
}

/// Data sizes and durations of a run.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Length of each timed load phase (wrk, create, flow).
    pub load: Duration,
    /// Open games behind the listing.
    pub list_games: usize,
    /// Open games (over 20 products) in the view whose memory is measured.
    pub view_games: u64,
    /// Most games created (create and flow scenarios stop at this or at `load`).
    pub create_max: u64,
    /// Events pre-filled for the drain.
    pub events: u64,
    /// Games those events are about.
    pub event_games: u64,
    /// Stale games to curate.
    pub curation_games: u64,
    /// Games per set for the console.
    pub console_games: u64,
    /// Length of the soak.
    pub soak: Duration,
}

impl Sizes {
    /// The full run (the figures in BENCHMARKS.md).
    pub fn full() -> Sizes {
        Sizes {
            load: Duration::from_secs(15),
            list_games: 1_000,
            view_games: 100_000,
            create_max: 200_000,
            events: 1_000_000,
            event_games: 100_000,
            curation_games: 100_000,
            console_games: 100_000,
            soak: Duration::from_secs(600),
        }
    }

    /// The smoke run: every path exercised, small enough for CI.
    pub fn quick() -> Sizes {
        Sizes {
            load: Duration::from_secs(3),
            list_games: 1_000,
            view_games: 10_000,
            create_max: 20_000,
            events: 50_000,
            event_games: 5_000,
            curation_games: 2_000,
            console_games: 10_000,
            soak: Duration::from_secs(90),
        }
    }
}

/// A run in progress: options, sizes and a scratch directory for configs and logs.
#[derive(Debug)]
pub struct Bench {
    /// Where the programs are.
    pub binaries: Binaries,
    /// Sizes of this run.
    pub sizes: Sizes,
    /// Key prefix used everywhere.
    pub key_prefix: &'static str,
    work_dir: tempfile::TempDir,
}

impl Bench {
    /// Scratch directory (daemon configs, logs, the wrk script).
    pub fn work_dir(&self) -> &Path {
        self.work_dir.path()
    }
}

/// The head a report file without a hand-written one gets (a pointer to `BENCHMARKS.md`).
pub const DEFAULT_HEAD: &str = include_str!("default_head.md");

/// Runs the selected scenarios one after the other and writes the report.
pub async fn run(options: &BenchOptions) -> anyhow::Result<Report> {
    for name in &options.only {
        anyhow::ensure!(
            SCENARIOS.contains(&name.as_str()),
            "unknown scenario {name:?} (expected one of {})",
            SCENARIOS.join(", ")
        );
    }
    let machine = machine();
    let mut sizes = if options.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(load) = options.load {
        sizes.load = load;
    }
    if let Some(soak) = options.soak {
        sizes.soak = soak;
    }
    let bench = Bench {
        binaries: options.binaries.clone(),
        sizes,
        key_prefix: "mm",
        work_dir: tempfile::Builder::new()
            .prefix("mm-bench-")
            .tempdir()
            .context("creating the scratch directory")?,
    };
    let mut scenarios = Vec::new();
    for name in SCENARIOS {
        if !options.only.is_empty() && !options.only.iter().any(|o| o == name) {
            continue;
        }
        eprintln!("mm-bench: running scenario `{name}`");
        let started = std::time::Instant::now();
        let result = match name {
            "list" => list::run(&bench).await,
            "view" => view::run(&bench).await,
            "create" => create::run_create(&bench).await,
            "flow" => create::run_flow(&bench).await,
            "seats" => seats::run(&bench).await,
            "events" => events::run(&bench).await,
            "scale" => scale::run(&bench).await,
            "curation" => curation::run(&bench).await,
            "console" => console::run(&bench).await,
            "soak" => soak::run(&bench).await,
            _ => unreachable!("names come from SCENARIOS"),
        };
        let scenario = result.unwrap_or_else(|err| {
            let mut failed = Scenario::new(name, name);
            let text = format!("{err:#}");
            failed.outcome = if text.contains("is missing: build it") {
                Outcome::Skipped
            } else {
                Outcome::Failed
            };
            failed.reason = Some(text);
            failed
        });
        eprintln!(
            "mm-bench: `{name}` {:?} in {:.1} s{}",
            scenario.outcome,
            started.elapsed().as_secs_f64(),
            scenario
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        scenarios.push(scenario);
    }
    let mut report = Report {
        generated_at: mm_common::time::rfc3339(mm_common::time::now_ms()),
        mode: if options.quick { "quick" } else { "full" }.to_string(),
        machine,
        scenarios,
    };
    // A run of a few scenarios updates those and keeps the others' figures, marked as such.
    if !options.only.is_empty()
        && let Some(earlier) = Report::read(&options.json_out)
    {
        report.carry_over(earlier, &SCENARIOS);
    }
    report.write(&options.json_out, &options.markdown_out, DEFAULT_HEAD)?;
    Ok(report)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn machine() -> report::Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let redis = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.split_whitespace().nth(2).map(str::to_string))
        .map(|version| format!("Redis {}", version.trim_start_matches("v=")))
        .unwrap_or_else(|| "Redis (unknown version)".into());
    report::Machine {
        cpu,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        redis,
        load_average_at_start: read("/proc/loadavg")
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_string(),
    }
}
