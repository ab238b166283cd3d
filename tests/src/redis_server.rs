//! A private `redis-server` for one test: unix socket in a temp dir, killed when dropped.
//!
//! Tests never share a Redis and never mock one. [`RedisServer::start`] spawns the real binary
//! with persistence off (or AOF on, for crash tests), waits until it answers `PING`, and hands
//! out a `redis+unix://` URL. [`RedisServer::restart`] stops and starts it on the same socket
//! and data directory, for tests of what survives a Redis restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How a test wants its Redis.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Append-only file on (`appendfsync always`), so a restart keeps every acknowledged write.
    pub aof: bool,
}

/// A running private `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    dir: tempfile::TempDir,
    options: RedisOptions,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a Redis with persistence off.
    pub fn start() -> anyhow::Result<RedisServer> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a Redis with the given options.
    pub fn start_with(options: RedisOptions) -> anyhow::Result<RedisServer> {
        let dir = tempfile::Builder::new()
            .prefix("mm-redis-")
            .tempdir()
            .context("creating a temp dir for redis-server")?;
        let mut server = RedisServer {
            dir,
            options,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// The socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The data directory (AOF lives here).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL clients connect with.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket_path().display())
    }

    /// A client for this server.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a unix-socket URL always parses")
    }

    /// A multiplexed async connection.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to the private redis-server")
    }

    /// Stops the server abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket_path());
    }

    /// Kills the server and starts it again on the same socket and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let socket = self.socket_path();
        let mut command = Command::new(redis_server_binary());
        command
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .arg("--loglevel")
            .arg("warning")
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if self.options.aof {
            command
                .arg("--appendonly")
                .arg("yes")
                .arg("--appendfsync")
                .arg("always");
        } else {
            command.arg("--appendonly").arg("no");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
                "redis-server was not found on PATH: the tests need a real Redis. \
                 Install it with `apt-get install redis-server` (Debian/Ubuntu) \
                 or set MM_TEST_REDIS_SERVER to the binary's path"
            ),
            Err(err) => return Err(err).context("starting redis-server"),
        };
        self.child = Some(child);
        self.wait_until_ready(&socket)
    }

    fn wait_until_ready(&mut self, socket: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if socket.exists()
                && let Ok(mut conn) = self.client().get_connection()
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return Ok(());
            }
            if !self.is_running() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                bail!("redis-server exited during start-up; its log says:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING on {socket:?} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `redis-server` binary: `MM_TEST_REDIS_SERVER` or the one on PATH.
pub fn redis_server_binary() -> PathBuf {
    std::env::var_os("MM_TEST_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}
