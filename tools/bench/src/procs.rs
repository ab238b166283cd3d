//! The processes a benchmark runs: `matchmakerd` and `mm-gameserver` children (killed on
//! drop), their CPU time and peak memory read from `/proc`, and free loopback ports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the programs under test are (normally `target/release`).
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Directory holding `matchmakerd`, `mm-gameserver`, …
    pub dir: PathBuf,
}

impl Binaries {
    /// The path of program `name`, or an error saying how to build it.
    pub fn path(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        if !path.is_file() {
            bail!(
                "{} is missing: build it with `cargo build --release --bins` \
                 (scripts/bench.sh does)",
                path.display()
            );
        }
        Ok(path)
    }
}

/// A loopback port nobody listens on right now (the kernel's pick; a tiny race with other
/// programs picking ports is accepted).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 if unknown).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |index: usize| -> anyhow::Result<f64> {
        fields
            .get(index)
            .context("short /proc/<pid>/stat")?
            .parse::<f64>()
            .context("non-numeric CPU time in /proc/<pid>/stat")
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

/// CPU seconds the whole machine has spent busy so far, every core together: every state of
/// the `cpu` line of `/proc/stat` but `idle` and `iowait`. Beside the processes' own figures
/// it shows what a run left idle, and what went to processes nobody measured.
pub fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .context("/proc/stat has no `cpu` line")?;
    let ticks = line
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse::<f64>())
        .collect::<Result<Vec<_>, _>>()
        .context("non-numeric time in the `cpu` line of /proc/stat")?;
    if ticks.len() < 5 {
        bail!("short `cpu` line in /proc/stat: {line:?}");
    }
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    // counted in user (and guest_nice in nice), so the sum stops at steal.
    let busy: f64 = ticks.iter().take(8).sum::<f64>() - ticks[3] - ticks[4];
    Ok(busy / clock_ticks_per_second())
}

/// Peak resident set size (`VmHWM`) of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    status_kib(pid, "VmHWM").map(|kib| kib / 1024.0)
}

/// Current resident set size (`VmRSS`) of a process, in MiB.
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    status_kib(pid, "VmRSS").map(|kib| kib / 1024.0)
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| {
            line.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .with_context(|| format!("no {field} in /proc/<pid>/status"))?;
    line.split_whitespace()
        .nth(1)
        .with_context(|| format!("malformed {field} line"))?
        .parse()
        .with_context(|| format!("non-numeric {field}"))
}

/// CPU and memory a process used over a measured interval.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct ResourceUse {
    /// CPU seconds used per wall-clock second (1.0 = one core busy all the time).
    pub cores: f64,
    /// Peak resident memory since the process started, MiB.
    pub peak_rss_mib: f64,
}

/// Whose CPU a mark measures.
#[derive(Debug, Clone, Copy)]
enum CpuSource {
    /// One process.
    Process(u32),
    /// The whole machine ([`machine_busy_seconds`]); it has no peak memory (0).
    Machine,
}

impl CpuSource {
    fn cpu_seconds(self) -> anyhow::Result<f64> {
        match self {
            CpuSource::Process(pid) => cpu_seconds(pid),
            CpuSource::Machine => machine_busy_seconds(),
        }
    }

    fn peak_rss_mib(self) -> anyhow::Result<f64> {
        match self {
            CpuSource::Process(pid) => peak_rss_mib(pid),
            CpuSource::Machine => Ok(0.0),
        }
    }
}

/// The start of a measured interval for one process (or the whole machine).
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    source: CpuSource,
    cpu: f64,
    at: Instant,
}

impl CpuMark {
    /// Marks the start of the interval now, for the process `pid`.
    pub fn start(pid: u32) -> anyhow::Result<CpuMark> {
        CpuMark::of(CpuSource::Process(pid))
    }

    /// Marks the start of the interval now, for the whole machine (every core).
    pub fn machine() -> anyhow::Result<CpuMark> {
        CpuMark::of(CpuSource::Machine)
    }

    fn of(source: CpuSource) -> anyhow::Result<CpuMark> {
        Ok(CpuMark {
            source,
            cpu: source.cpu_seconds()?,
            at: Instant::now(),
        })
    }

    /// What the process used since the mark.
    pub fn finish(&self) -> anyhow::Result<ResourceUse> {
        let cpu = self.source.cpu_seconds()? - self.cpu;
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        Ok(ResourceUse {
            cores: cpu / wall,
            peak_rss_mib: self.source.peak_rss_mib()?,
        })
    }
}

/// What one process used over several measured intervals (the rounds of a paired
/// comparison), as if they were one.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuTally {
    cpu: f64,
    wall: f64,
    peak_rss_mib: f64,
}

impl CpuTally {
    /// Adds the interval from `mark` to now.
    pub fn add(&mut self, mark: &CpuMark) -> anyhow::Result<()> {
        self.cpu += mark.source.cpu_seconds()? - mark.cpu;
        self.wall += mark.at.elapsed().as_secs_f64();
        self.peak_rss_mib = self.peak_rss_mib.max(mark.source.peak_rss_mib()?);
        Ok(())
    }

    /// The intervals' CPU per wall-clock second, and the peak RSS.
    pub fn usage(&self) -> ResourceUse {
        ResourceUse {
            cores: self.cpu / self.wall.max(1e-9),
            peak_rss_mib: self.peak_rss_mib,
        }
    }
}

/// A child process killed (SIGKILL) when dropped, with its output in a log file.
#[derive(Debug)]
pub struct Managed {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Managed {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// The program's name as given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last `lines` lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails with the log's tail if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "{} exited ({status}); last log lines:\n{}",
                self.name,
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// Stops the process gracefully-ish: SIGKILL (the benchmarks never need its shutdown).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A reference game server started as `mm-gameserver`.
#[derive(Debug)]
pub struct GameServerProcess {
    /// The process.
    pub process: Managed,
    /// Its id (`server_id` of its events).
    pub id: String,
    /// `http://ADDR` of its API.
    pub api_url: String,
    /// The API key it requires.
    pub api_key: String,
}

/// How to start a reference game server.
#[derive(Debug, Clone)]
pub struct GameServerSpec {
    /// Server id.
    pub id: String,
    /// Product it hosts.
    pub product: String,
    /// Redis its events go to.
    pub redis_url: String,
    /// Key prefix.
    pub key_prefix: String,
    /// Most games at once.
    pub max_games: u32,
    /// Full game → `game_started`, ms.
    pub start_delay_ms: u64,
    /// `game_started` → `game_ended`, ms.
    pub play_time_ms: u64,
    /// Heartbeat period of games with players connected, ms (0: none).
    pub heartbeat_ms: u64,
}

impl GameServerProcess {
    /// Starts `mm-gameserver` on a kernel-chosen loopback port and waits for its
    /// `listening on` line.
    pub async fn start(
        binaries: &Binaries,
        work_dir: &Path,
        spec: &GameServerSpec,
    ) -> anyhow::Result<GameServerProcess> {
        let program = binaries.path("mm-gameserver")?;
        let api_key = format!("bench-key-{}", spec.id);
        let log = work_dir.join(format!("{}.log", spec.id));
        let mut command = Command::new(&program);
        command
            .arg("--id")
            .arg(&spec.id)
            .arg("--product")
            .arg(&spec.product)
            .arg("--bind")
            .arg("127.0.0.1:0")
            .arg("--api-key")
            .arg(&api_key)
            .arg("--redis-url")
            .arg(&spec.redis_url)
            .arg("--key-prefix")
            .arg(&spec.key_prefix)
            .arg("--max-games")
            .arg(spec.max_games.to_string())
            .arg("--start-delay-ms")
            .arg(spec.start_delay_ms.to_string())
            .arg("--play-time-ms")
            .arg(spec.play_time_ms.to_string())
            .arg("--heartbeat-ms")
            .arg(spec.heartbeat_ms.to_string())
            .arg("--token-ttl-secs")
            .arg("60")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(&log).context("creating a game-server log file")?,
            ))
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().context("game server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return Ok::<_, std::io::Error>(Some(rest.trim().to_string()));
                }
            }
            Ok(None)
        })
        .await;
        let process = Managed {
            name: format!("mm-gameserver {}", spec.id),
            child,
            log,
        };
        let api_url = match address {
            Ok(Ok(Some(url))) => url,
            Ok(Ok(None)) | Ok(Err(_)) => bail!(
                "mm-gameserver {} stopped before saying where it listens; log:\n{}",
                spec.id,
                process.log_tail(20)
            ),
            Err(_) => bail!("mm-gameserver {} did not start within 15 s", spec.id),
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(GameServerProcess {
            process,
            id: spec.id.clone(),
            api_url,
            api_key,
        })
    }
}

/// Settings of a benchmark daemon (everything else: the `test` mode's values).
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// Redis URL.
    pub redis_url: String,
    /// Key prefix.
    pub key_prefix: String,
    /// `--roles` (comma-separated), e.g. `api,worker`.
    pub roles: String,
    /// Registered game servers.
    pub game_servers: Vec<RegisteredServer>,
    /// Extra TOML keys: section → key → value (already TOML-encoded).
    pub overrides: BTreeMap<String, BTreeMap<String, String>>,
}

/// One `[[game_servers]]` table.
#[derive(Debug, Clone)]
pub struct RegisteredServer {
    /// Server id.
    pub id: String,
    /// Product.
    pub product: String,
    /// API base URL.
    pub api_url: String,
    /// API key.
    pub api_key: String,
    /// Most games.
    pub max_games: u32,
}

impl RegisteredServer {
    /// The registration of a running reference game server.
    pub fn of(server: &GameServerProcess, product: &str, max_games: u32) -> RegisteredServer {
        RegisteredServer {
            id: server.id.clone(),
            product: product.to_string(),
            api_url: server.api_url.clone(),
            api_key: server.api_key.clone(),
            max_games,
        }
    }
}

impl DaemonSpec {
    /// A daemon with `roles` on `redis_url`, no game servers, test-mode settings.
    pub fn new(redis_url: &str, key_prefix: &str, roles: &str) -> DaemonSpec {
        DaemonSpec {
            redis_url: redis_url.to_string(),
            key_prefix: key_prefix.to_string(),
            roles: roles.to_string(),
            game_servers: Vec::new(),
            overrides: BTreeMap::new(),
        }
    }

    /// Sets `[section] key = value` (value TOML-encoded, e.g. `"10"` or `"\"text\""`).
    pub fn set(mut self, section: &str, key: &str, value: impl ToString) -> DaemonSpec {
        self.overrides
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
        self
    }

    /// The same daemon with other `--roles`.
    pub fn set_roles(mut self, roles: &str) -> DaemonSpec {
        self.roles = roles.to_string();
        self
    }

    /// Turns on the per-player and per-address limits (`[limits]`) at their defaults, which
    /// the `test` mode turns off: for the runs that measure what the limits cost.
    pub fn with_default_limits(self) -> DaemonSpec {
        let limits = mm_config::LimitsSettings::default();
        self.set(
            "limits",
            "max_live_games_per_player",
            limits.max_live_games_per_player,
        )
        .set(
            "limits",
            "max_reservations_per_player",
            limits.max_reservations_per_player,
        )
        .set("limits", "creates_per_minute", limits.creates_per_minute)
        .set("limits", "create_burst", limits.create_burst)
        .set("limits", "joins_per_minute", limits.joins_per_minute)
        .set("limits", "join_burst", limits.join_burst)
        .set(
            "limits",
            "client_failures_per_minute",
            limits.client_failures_per_minute,
        )
        .set(
            "limits",
            "client_failure_burst",
            limits.client_failure_burst,
        )
        .set("limits", "max_tracked_clients", limits.max_tracked_clients)
    }

    fn toml(&self, bind: &str) -> String {
        let mut sections = self.overrides.clone();
        let mut put = |section: &str, key: &str, value: String| {
            sections
                .entry(section.to_string())
                .or_default()
                .entry(key.to_string())
                .or_insert(value);
        };
        put("redis", "url", toml_string(&self.redis_url));
        put("redis", "key_prefix", toml_string(&self.key_prefix));
        put("http", "bind", toml_string(bind));
        put("log", "level", toml_string("warn"));
        let mut out = String::from("# Written by mm-bench for one benchmark scenario.\n");
        for (section, keys) in &sections {
            let _ = writeln!(out, "\n[{section}]");
            for (key, value) in keys {
                let _ = writeln!(out, "{key} = {value}");
            }
        }
        for server in &self.game_servers {
            let _ = writeln!(out, "\n[[game_servers]]");
            let _ = writeln!(out, "id = {}", toml_string(&server.id));
            let _ = writeln!(out, "product = {}", toml_string(&server.product));
            let _ = writeln!(out, "api_url = {}", toml_string(&server.api_url));
            let _ = writeln!(out, "socket_url = \"\"");
            let _ = writeln!(out, "region = \"local\"");
            let _ = writeln!(out, "max_games = {}", server.max_games);
            let _ = writeln!(out, "api_key = {}", toml_string(&server.api_key));
        }
        out
    }
}

/// A TOML basic string.
pub fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serialises")
}

/// A running `matchmakerd`.
#[derive(Debug)]
pub struct DaemonProcess {
    /// The process.
    pub process: Managed,
    /// `http://127.0.0.1:PORT` of its lobby API (meaningful with the `api` role).
    pub base_url: String,
}

impl DaemonProcess {
    /// Writes the spec's config file and starts `matchmakerd -m test -c FILE --roles …` (built
    /// with the `bench-routes` feature by `scripts/bench.sh`). With the `api` role, waits until
    /// `/readyz` answers 200.
    pub async fn start(
        binaries: &Binaries,
        work_dir: &Path,
        name: &str,
        spec: &DaemonSpec,
    ) -> anyhow::Result<DaemonProcess> {
        let program = binaries.path("matchmakerd")?;
        let port = free_port()?;
        let bind = format!("127.0.0.1:{port}");
        let config = work_dir.join(format!("{name}.toml"));
        std::fs::write(&config, spec.toml(&bind))
            .with_context(|| format!("writing {}", config.display()))?;
        let log = work_dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).context("creating the daemon log file")?;
        let child = Command::new(&program)
            .arg("-m")
            .arg("test")
            .arg("-c")
            .arg(&config)
            .arg("--roles")
            .arg(&spec.roles)
            .arg("--instance")
            .arg(name)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut daemon = DaemonProcess {
            process: Managed {
                name: format!("matchmakerd ({name})"),
                child,
                log,
            },
            base_url: format!("http://{bind}"),
        };
        if spec.roles.split(',').any(|role| role.trim() == "api") {
            daemon.wait_ready().await?;
        } else {
            // Give a crash at start-up (bad config) the chance to show.
            tokio::time::sleep(Duration::from_millis(200)).await;
            daemon.process.check_running()?;
        }
        Ok(daemon)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()?;
        // Generous: an API instance is ready once its view of the open games is loaded, which
        // takes seconds with 100,000 of them.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.process.check_running()?;
            if let Ok(response) = client.get(format!("{}/readyz", self.base_url)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "matchmakerd did not become ready within 60 s; last log lines:\n{}",
                    self.process.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_busy_time_is_read_and_never_goes_back() {
        let first = machine_busy_seconds().expect("/proc/stat is readable");
        // Some busy time of our own, so the second read has something to count.
        let mut spin = 0u64;
        for i in 0..2_000_000u64 {
            spin = spin.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(spin);
        let second = machine_busy_seconds().expect("/proc/stat is readable");
        assert!(first > 0.0, "the machine has been busy since boot: {first}");
        assert!(second >= first, "{second} < {first}");
    }

    #[test]
    fn a_machine_mark_measures_at_most_every_core() {
        let mark = CpuMark::machine().expect("/proc/stat is readable");
        let mut spin = 0u64;
        for i in 0..5_000_000u64 {
            spin = spin.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(spin);
        let used = mark.finish().expect("/proc/stat is readable");
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        assert!(
            (0.0..=cores * 1.05).contains(&used.cores),
            "{} cores busy on a machine of {cores}",
            used.cores
        );
        assert_eq!(
            used.peak_rss_mib, 0.0,
            "the machine has no peak memory of its own"
        );
    }
}
