//! Real `matchmakerd` processes for fault tests: start with a config file in a temp dir, kill
//! with SIGKILL, stop with SIGTERM, read their logs, scrape their admin listener.
//!
//! # The admin listener
//!
//! Test mode sets `http.admin_bind = "127.0.0.1:0"`, so every daemon (many run in parallel)
//! takes a free port for `/metrics`, `/healthz` and `/readyz` and logs it ("admin listener
//! listening", field `addr`); [`DaemonProcess::admin_addr`] reads that line of the current run
//! from the log, so there is no port to pick and no race for it.
//!
//! # Finding the binary
//!
//! `env!("CARGO_BIN_EXE_…")` only names binaries of the package under test, and `matchmakerd`
//! is another package. The harness therefore runs `cargo build -p matchmakerd --bin
//! matchmakerd` once per test process (a no-op when it is up to date, so the binary is never
//! stale) into the *same* target directory and profile as the running test executable
//! (`target/<profile>/deps/it-…` → `target/<profile>/matchmakerd`), using the `CARGO` that
//! runs the tests. `MM_TEST_MATCHMAKERD` overrides this with a prebuilt binary (for CI that
//! builds everything first). The reference game server's binary (package `mm-gameserver`) is
//! found the same way by [`gameserver_binary`] (`MM_TEST_GAMESERVER` overrides it).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The `matchmakerd` binary, built on first use (see the module docs).
pub fn matchmakerd_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            locate_or_build("matchmakerd", "MM_TEST_MATCHMAKERD").map_err(|err| format!("{err:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The reference game server's `mm-gameserver` binary, built on first use like `matchmakerd`
/// (see the module docs).
pub fn gameserver_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            locate_or_build("mm-gameserver", "MM_TEST_GAMESERVER").map_err(|err| format!("{err:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The binary `name` of the workspace package of the same name: `override_var` when set, else
/// built into the running test's target directory and profile.
fn locate_or_build(name: &str, override_var: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(override_var) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test-exe>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable is not inside target/<profile>/deps")?;
    let target_dir = profile_dir
        .parent()
        .context("the profile directory has no parent target directory")?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the testkit lives inside the workspace")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("-p")
        .arg(name)
        .arg("--bin")
        .arg(name)
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.arg("--profile").arg(other);
        }
    }
    let status = command
        .status()
        .with_context(|| format!("running `cargo build -p {name}`"))?;
    if !status.success() {
        bail!("`cargo build -p {name}` failed ({status})");
    }
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!("built {name}, but {binary:?} does not exist");
    }
    Ok(binary)
}

/// How to start one daemon.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// `--instance`: the stable part of its consumer name.
    pub instance: String,
    /// `--roles`.
    pub roles: String,
    /// The Redis it uses.
    pub redis_url: String,
    /// TOML appended to the generated config file (sections `[consumer]`, `[curation]`,
    /// `[[game_servers]]`, …). The generated part sets only `[redis] url` and `[log]`.
    pub extra_toml: String,
    /// `-m`: the run mode (default `test`).
    pub mode: String,
}

impl DaemonSpec {
    /// A worker-only daemon (`--roles worker`) on `redis_url`.
    pub fn worker(instance: &str, redis_url: &str) -> Self {
        Self {
            instance: instance.into(),
            roles: "worker".into(),
            redis_url: redis_url.into(),
            extra_toml: String::new(),
            mode: "test".into(),
        }
    }
}

/// A running `matchmakerd` child process; killed when dropped.
#[derive(Debug)]
pub struct DaemonProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    spec: DaemonSpec,
    started: Instant,
    /// Length of the log when the current run started: its lines come after.
    run_log_offset: usize,
}

impl DaemonProcess {
    /// Writes the config file and starts `matchmakerd -m <mode> -c <file> --roles …
    /// --instance …`, stdout and stderr going to `daemon.log` in a temp dir.
    pub fn start(spec: DaemonSpec) -> anyhow::Result<DaemonProcess> {
        let binary = matchmakerd_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("mm-daemon-")
            .tempdir()
            .context("creating the daemon's temp dir")?;
        let config = dir.path().join("daemon.toml");
        let mut file = std::fs::File::create(&config).context("writing the daemon config")?;
        writeln!(
            file,
            "[redis]\nurl = {url:?}\n\n[log]\nformat = \"json\"\nlevel = \"info\"\n\n{extra}",
            url = spec.redis_url,
            extra = spec.extra_toml
        )?;
        let mut process = DaemonProcess {
            child: None,
            dir,
            spec,
            started: Instant::now(),
            run_log_offset: 0,
        };
        process.spawn(&binary)?;
        Ok(process)
    }

    fn spawn(&mut self, binary: &Path) -> anyhow::Result<()> {
        self.run_log_offset = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the daemon log")?;
        let child = Command::new(binary)
            .arg("-m")
            .arg(&self.spec.mode)
            .arg("-c")
            .arg(self.dir.path().join("daemon.toml"))
            .arg("--roles")
            .arg(&self.spec.roles)
            .arg("--instance")
            .arg(&self.spec.instance)
            .env_remove("RUST_LOG")
            .env("MM_REDIS__URL", &self.spec.redis_url)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {binary:?}"))?;
        self.child = Some(child);
        self.started = Instant::now();
        Ok(())
    }

    /// Starts the same daemon again (same instance name and config) after a kill or stop.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let binary = matchmakerd_binary()?;
        self.spawn(&binary)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("the daemon is not running")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("sending SIGTERM")?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "matchmakerd did not exit within {timeout:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Where stdout and stderr go.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// Everything the daemon logged so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The address of the current run's admin listener (`/metrics`, `/healthz`, `/readyz`),
    /// once it has logged it; panics with the log if the daemon exits first or takes longer
    /// than 30 s.
    pub async fn admin_addr(&mut self) -> SocketAddr {
        self.logged_addr("admin listener listening").await
    }

    /// The address of the current run's lobby API (the `api` role), once it has logged it
    /// (`http.bind` may be port 0); panics like [`DaemonProcess::admin_addr`].
    pub async fn api_addr(&mut self) -> SocketAddr {
        self.logged_addr("lobby API listening").await
    }

    /// The `addr` field of the current run's log line `message`, waiting for it.
    async fn logged_addr(&mut self, message: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut interval = Duration::from_millis(2);
        loop {
            if let Some(addr) = self.logged_field_addr(message) {
                return addr;
            }
            assert!(
                self.is_running(),
                "matchmakerd exited before logging {message:?}; log:\n{}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "matchmakerd did not log {message:?} within 30 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_millis(50));
        }
    }

    /// The `addr` of the current run's log line `message`, if it was logged yet.
    fn logged_field_addr(&self, message: &str) -> Option<SocketAddr> {
        let log = self.log();
        log.get(self.run_log_offset..)?.lines().find_map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = line.get("fields")?;
            if fields.get("message")?.as_str()? != message {
                return None;
            }
            fields.get("addr")?.as_str()?.parse().ok()
        })
    }

    /// `GET <path>` on the admin listener: the status and the body.
    pub async fn admin_get(&mut self, path: &str) -> anyhow::Result<(u16, String)> {
        let addr = self.admin_addr().await;
        let response = reqwest::get(format!("http://{addr}{path}"))
            .await
            .with_context(|| format!("GET {path} on the admin listener {addr}"))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// Time since the last (re)start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
