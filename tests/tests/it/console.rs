//! `mm-console --delete` end to end: the real binary against a private Redis and the
//! reference game server. Deleted on the server, removed from the record, audited; a server
//! that cannot be reached gives exit 4 and keeps the record (or, with `--force`, removes it and
//! the audit says the server was not reached); an unknown game gives 3; bad usage gives 2.
//!
//! Also the shared fixture of `console_tmux`. The console's frame and refresh times at
//! 100,000 games per set are measured by the benchmark (`scripts/bench.sh --only console`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use mm_common::audit::{self, AuditEntry};
use mm_common::gameserver::{
    ClientOptions, CreateGameRequest, GameServerClient, GameServerEndpoint,
};
use mm_common::store::Store;
use mm_common::{Game, GameId, GameState, PlayerId, ProductId, ServerId};
use mm_gameserver::{GameServerConfig, RunningGameServer, spawn};
use mm_testkit::app::{TestConnection, TestRedis};
use mm_testkit::invariants;
use mm_testkit::scenario::Placement;

pub const SERVER_ID: &str = "gs-chess-1";
pub const API_KEY: &str = "console-test-key";

/// The `mm-console` binary, built once per test run if needed (next to this test executable's
/// target directory).
pub fn console_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/it-<hash> → target/<profile>/mm-console
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test executable lives in target/<profile>/deps");
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let target_dir = profile_dir.parent().expect("target dir");
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "mm-console",
                    "--bin",
                    "mm-console",
                    "--manifest-path",
                ])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(target_dir)
                .status()
                .expect("running cargo build for mm-console");
            assert!(status.success(), "cargo build -p mm-console failed");
            let binary = profile_dir.join("mm-console");
            assert!(binary.exists(), "no binary at {}", binary.display());
            binary
        })
        .clone()
}

/// A private Redis, a store, a reference game server of `chess`, and a config file that
/// registers it.
pub struct ConsoleFixture {
    pub redis: TestRedis,
    pub store: Store,
    pub product: ProductId,
    pub server: Option<RunningGameServer>,
    pub endpoint: GameServerEndpoint,
    pub dir: tempfile::TempDir,
    pub config_file: PathBuf,
    /// The creation time given to the last recorded game: each next game is created at least
    /// a millisecond later, so the oldest-first tables list them in the order they were made,
    /// even if the wall clock steps back between two of them.
    last_created_ms: std::sync::atomic::AtomicU64,
}

impl ConsoleFixture {
    /// With a running game server.
    pub async fn new() -> ConsoleFixture {
        Self::build(&Placement::node(), true).await
    }

    /// On the scenario's Redis, with its product and key prefix, the game server running.
    pub async fn on(at: &Placement) -> ConsoleFixture {
        Self::build(at, true).await
    }

    /// With the game server registered at an address where nothing listens.
    pub async fn with_server_down() -> ConsoleFixture {
        Self::build(&Placement::node(), false).await
    }

    async fn build(at: &Placement, server_up: bool) -> ConsoleFixture {
        let redis = at.redis().expect("redis");
        let store = Store::connect(at.store_options(&redis))
            .await
            .expect("store");
        let product = ProductId::new(&at.product).unwrap();
        store
            .register_products(std::slice::from_ref(&product))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (server, api_url) = if server_up {
            let mut config = GameServerConfig::new(
                ServerId::new(SERVER_ID).unwrap(),
                product.clone(),
                API_KEY,
                redis.url(),
            );
            config.heartbeat_interval = Duration::ZERO;
            config.key_prefix = at.key_prefix.clone();
            let server = spawn(config, listener)
                .await
                .expect("reference game server");
            let url = server.api_url().to_string();
            (Some(server), url)
        } else {
            // Bind, note the port, close: nothing listens there.
            let addr = listener.local_addr().unwrap();
            drop(listener);
            (None, format!("http://{addr}"))
        };
        let endpoint = GameServerEndpoint {
            id: ServerId::new(SERVER_ID).unwrap(),
            api_url: api_url.parse().unwrap(),
            api_key: API_KEY.to_string().into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("console.toml");
        let log_dir = dir.path().join("logs");
        std::fs::write(
            &config_file,
            format!(
                r#"
[log]
dir = "{log}"

[redis]
key_prefix = "{prefix}"

[console]
refresh_ms = 200

[game_server_client]
connect_timeout_ms = 500
request_timeout_ms = 1000
retries = 1

[[game_servers]]
id = "{SERVER_ID}"
product = "{product}"
api_url = "{api_url}"
max_games = 100
api_key = "{API_KEY}"
"#,
                log = log_dir.display(),
                prefix = at.key_prefix,
            ),
        )
        .unwrap();
        ConsoleFixture {
            redis,
            store,
            product,
            server,
            endpoint,
            dir,
            config_file,
            last_created_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records a game (and, when the server is up, creates it there too).
    pub async fn game(&self, n: u32) -> GameId {
        let id = GameId::new(format!("{}.0193a1b2-0000-7000-8000-{n:012}", self.product)).unwrap();
        let creator = PlayerId::new(format!("player-{n}")).unwrap();
        if self.server.is_some() {
            let client = GameServerClient::new(ClientOptions::default()).unwrap();
            client
                .create_game(
                    &self.endpoint,
                    &CreateGameRequest {
                        game_id: id.clone(),
                        product: self.product.clone(),
                        capacity: 4,
                        creator_id: creator.clone(),
                        settings: serde_json::json!({}),
                    },
                )
                .await
                .expect("create on the game server");
        }
        let game = Game::new(
            id.clone(),
            self.product.clone(),
            ServerId::new(SERVER_ID).unwrap(),
            Some("eu".into()),
            4,
            creator,
            "ws://unused".into(),
            "{}".into(),
            self.next_created_ms(),
        );
        assert!(self.store.create_game(&game).await.unwrap());
        id
    }

    /// Now, or a millisecond after the previous game's creation if the clock has not moved on
    /// (or stepped back).
    fn next_created_ms(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let now = mm_common::time::now_ms();
        let next = |last: u64| now.max(last + 1);
        let last = self
            .last_created_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(next(last)))
            .expect("the update always gives a value");
        next(last)
    }

    /// `mm-console -m test -c <config> <args>` with this Redis.
    pub fn command(&self) -> Command {
        let mut command = Command::new(console_binary());
        match &self.redis {
            TestRedis::Node(_) => command.env("MM_REDIS__URL", self.redis.url()),
            TestRedis::Cluster(_) => command.env("MM_REDIS__CLUSTER_NODES", self.redis.url()),
        };
        command
            .env_remove("RUST_LOG")
            .env("USER", "test-operator")
            .current_dir(self.dir.path())
            .args(["-m", "test", "-c"])
            .arg(&self.config_file);
        command
    }

    /// Runs the console with `args` off the async runtime's threads.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command();
        command.args(args);
        tokio::task::spawn_blocking(move || command.output().expect("running mm-console"))
            .await
            .unwrap()
    }

    pub async fn audit(&self) -> Vec<AuditEntry> {
        audit::recent(&self.store, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, entry)| entry)
            .collect()
    }

    pub fn server_games(&self) -> usize {
        self.server.as_ref().expect("server up").game_count()
    }

    pub async fn check_invariants(&self) {
        let mut conn = self.redis.connection().await;
        invariants::check(
            &mut conn,
            self.store.keys().prefix(),
            std::slice::from_ref(&self.product),
            mm_common::time::now_ms(),
        )
        .await
        .expect("invariants hold");
    }
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(output)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_deletes_on_the_server_removes_the_record_and_audits() {
    delete_deletes_on_the_server_removes_the_record_and_audits_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn delete_deletes_on_the_server_removes_the_record_and_audits_on(at: Placement) {
    let fx = ConsoleFixture::on(&at).await;
    let id = fx.game(1).await;
    let other = fx.game(2).await;
    assert_eq!(fx.server_games(), 2);

    let output = fx
        .run(&[
            "--delete",
            id.as_str(),
            "--reason",
            "stuck lobby",
            "--operator",
            "alice",
            "--json",
        ])
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = json(&output);
    assert_eq!(report["outcome"], "deleted");
    assert_eq!(report["server_reached"], true);
    assert_eq!(report["record_removed"], true);

    assert_eq!(
        fx.server_games(),
        1,
        "deleted on the game server, the other game kept"
    );
    let record = fx.store.game(&id).await.unwrap().expect("tombstone kept");
    assert_eq!(record.state(), GameState::Ended);
    assert_eq!(record.end_reason.as_deref(), Some("force_deleted"));
    assert_eq!(
        fx.store.game(&other).await.unwrap().unwrap().state(),
        GameState::Created
    );
    let audit = fx.audit().await;
    assert_eq!(audit.len(), 1);
    let entry = &audit[0];
    assert_eq!(entry.action, "force_delete");
    assert_eq!(entry.operator, "alice");
    assert_eq!(entry.game_id, id.as_str());
    assert_eq!(entry.product, at.product);
    assert_eq!(entry.server_id, SERVER_ID);
    assert_eq!(entry.reason, "stuck lobby");
    assert_eq!(entry.outcome, "deleted");
    assert!(entry.server_reached);
    assert!(entry.at_ms > 0);
    fx.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_defaults_the_operator_to_the_os_user() {
    let fx = ConsoleFixture::new().await;
    let id = fx.game(1).await;
    let output = fx.run(&["--delete", id.as_str()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("deleted"));
    assert_eq!(fx.audit().await[0].operator, "test-operator");
    fx.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_exits_4_and_keeps_the_record() {
    let fx = ConsoleFixture::with_server_down().await;
    let id = fx.game(1).await;
    let output = fx.run(&["--delete", id.as_str(), "--json"]).await;
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    let report = json(&output);
    assert_eq!(report["outcome"], "server_unreachable");
    assert_eq!(report["record_removed"], false);
    assert_eq!(
        fx.store.game(&id).await.unwrap().unwrap().state(),
        GameState::Created,
        "record kept"
    );
    let audit = fx.audit().await;
    assert_eq!(audit.len(), 1);
    assert!(!audit[0].server_reached);
    assert_eq!(audit[0].outcome, "server_unreachable_record_kept");
    fx.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_removes_the_record_and_the_audit_says_the_server_was_not_reached() {
    let fx = ConsoleFixture::with_server_down().await;
    let id = fx.game(1).await;
    let output = fx
        .run(&[
            "--delete",
            id.as_str(),
            "--force",
            "--reason",
            "server gone",
        ])
        .await;
    // Section 8: the server could not be reached → 4, even though --force removed the record.
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("record removed anyway"));
    let record = fx.store.game(&id).await.unwrap().unwrap();
    assert_eq!(record.state(), GameState::Ended, "removed from every set");
    let audit = fx.audit().await;
    assert_eq!(audit.len(), 1);
    let entry = &audit[0];
    assert!(
        !entry.server_reached,
        "the audit says the server was not reached"
    );
    assert!(entry.forced);
    assert_eq!(entry.outcome, "server_unreachable_record_removed");
    assert_eq!(entry.reason, "server gone");
    assert!(!entry.detail.is_empty(), "the audit carries the error");
    fx.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_game_exits_3_and_changes_nothing() {
    unknown_game_exits_3_and_changes_nothing_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn unknown_game_exits_3_and_changes_nothing_on(at: Placement) {
    let fx = ConsoleFixture::on(&at).await;
    fx.game(1).await;
    for id in [
        &format!("{}.0193a1b2-0000-7000-8000-999999999999", at.product),
        "no-product-prefix",
    ] {
        let output = fx.run(&["--delete", id, "--json"]).await;
        assert_eq!(output.status.code(), Some(3), "{id}: {}", describe(&output));
        assert_eq!(json(&output)["outcome"], "not_found");
    }
    assert!(fx.audit().await.is_empty());
    assert_eq!(fx.server_games(), 1);
    fx.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_already_deleted_game_exits_3() {
    an_already_deleted_game_exits_3_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn an_already_deleted_game_exits_3_on(at: Placement) {
    let fx = ConsoleFixture::on(&at).await;
    let id = fx.game(1).await;
    assert_eq!(
        fx.run(&["--delete", id.as_str()]).await.status.code(),
        Some(0)
    );
    let again = fx.run(&["--delete", id.as_str()]).await;
    assert_eq!(again.status.code(), Some(3), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("ended"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_and_bad_configuration_exit_2() {
    let fx = ConsoleFixture::new().await;
    let id = fx.game(1).await;
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--force"], "--delete"),
        (vec!["--delete"], "GAME_ID"),
        (vec!["--delete", "bad/id"], "not allowed"),
        (vec!["--list", "everything"], "pending"),
        (vec!["--tail", "--list", "lobby"], "cannot be used"),
    ];
    for (args, says) in cases {
        let output = fx.run(&args).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(says),
            "{args:?}: stderr does not mention {says:?}: {stderr}"
        );
    }
    let missing = Command::new(console_binary())
        .env("MM_REDIS__URL", fx.redis.url())
        .args([
            "-m",
            "test",
            "-c",
            "/nonexistent/console.toml",
            "--delete",
            id.as_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", describe(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/console.toml"));
    let mut bad_value = fx.command();
    bad_value
        .env("MM_CONSOLE__REFRESH_MS", "abc")
        .args(["--delete", id.as_str()]);
    let output = tokio::task::spawn_blocking(move || bad_value.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert_eq!(fx.server_games(), 1, "nothing was deleted");
    assert_eq!(
        fx.store.game(&id).await.unwrap().unwrap().state(),
        GameState::Created
    );
    let help = fx.run(&["--help"]).await;
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Exit codes of --delete"));
    // `--delete notanid` exits 3 (`unknown_game_exits_3_and_changes_nothing`), and the help
    // says so: an id without a product prefix names no game; 2 is for malformed ids.
    assert!(help.contains("without a product"), "{help}");
    assert!(help.contains("(`notanid`)"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_takes_the_operator_from_the_setting_then_the_os_user() {
    let fx = ConsoleFixture::new().await;
    let first = fx.game(1).await;
    let second = fx.game(2).await;
    let mut configured = fx.command();
    configured
        .env("MM_CONSOLE__OPERATOR", "ops-bot")
        .args(["--delete", first.as_str()]);
    let output = tokio::task::spawn_blocking(move || configured.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(fx.audit().await[0].operator, "ops-bot");
    // No USER, LOGNAME or USERNAME: the OS user database still names the user.
    let whoami = Command::new("id").arg("-un").output().unwrap();
    let login = String::from_utf8_lossy(&whoami.stdout).trim().to_string();
    assert!(!login.is_empty());
    let mut bare = fx.command();
    bare.env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("USERNAME")
        .args(["--delete", second.as_str()]);
    let output = tokio::task::spawn_blocking(move || bare.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let audit = fx.audit().await;
    assert_eq!(audit[0].game_id, second.as_str());
    assert_eq!(
        audit[0].operator, login,
        "never `unknown` when a name is findable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_product_warns_and_exits_3() {
    let fx = ConsoleFixture::new().await;
    fx.game(1).await;
    for args in [
        &["--list", "lobby", "--product", "golf"][..],
        &["--list", "pending", "--product", "golf", "--json"],
        &["--tail", "--product", "golf"],
    ] {
        let output = fx.run(args).await;
        assert_eq!(
            output.status.code(),
            Some(3),
            "{args:?}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("unknown product \"golf\""), "{stderr}");
        assert!(stderr.contains("known: chess"), "{stderr}");
        assert!(output.stdout.is_empty(), "{}", describe(&output));
    }
    let known = fx
        .run(&["--list", "pending", "--product", "chess", "--json"])
        .await;
    assert_eq!(known.status.code(), Some(0), "{}", describe(&known));
    assert_eq!(json(&known)["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_errors_name_the_url_without_credentials() {
    let fx = ConsoleFixture::new().await;
    // Bind, note the port, close: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    for args in [
        &["--list", "lobby"][..],
        &["--delete", "chess.0193a1b2-0000-7000-8000-000000000001"],
    ] {
        let mut command = fx.command();
        command
            .env(
                "MM_REDIS__URL",
                format!("redis://operator:s3cret@127.0.0.1:{port}/0"),
            )
            .args(args);
        let started = std::time::Instant::now();
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            describe(&output)
        );
        // A read is not resent for `redis.retry_budget_ms` (5 s here, at its default): the
        // operator learns of the outage after one connection attempt (it took about 10 s
        // while reads were resent).
        if args[0] == "--list" {
            assert!(took < Duration::from_secs(6), "--list took {took:?}");
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("Redis at redis://127.0.0.1:{port}/0")),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("s3cret") && !stderr.contains("operator:"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_errors_name_the_cluster_nodes_not_the_unused_url() {
    let fx = ConsoleFixture::new().await;
    // Two ports nobody listens on (bound together, noted, closed).
    let listeners: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect();
    drop(listeners);
    let nodes: Vec<String> = ports
        .iter()
        .map(|port| format!("redis://operator:s3cret@127.0.0.1:{port}"))
        .collect();
    let mut command = fx.command();
    command
        .env("MM_REDIS__CLUSTER_NODES", nodes.join(","))
        .env("MM_REDIS__RETRY_BUDGET_MS", "0")
        .args(["--list", "lobby"]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let named = format!(
        "Redis at the cluster nodes redis://127.0.0.1:{}, redis://127.0.0.1:{} \
         (redis.cluster_nodes)",
        ports[0], ports[1]
    );
    assert!(stderr.contains(&named), "{stderr}");
    assert!(
        !stderr.contains("s3cret") && !stderr.contains("operator:"),
        "{stderr}"
    );
    assert!(!stderr.contains("redis.url"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_prints_a_set_as_text_and_json() {
    list_prints_a_set_as_text_and_json_on(Placement::node()).await;
}

/// Scenario (single Redis and cluster: `mm_testkit::scenario`).
pub(crate) async fn list_prints_a_set_as_text_and_json_on(at: Placement) {
    let fx = ConsoleFixture::on(&at).await;
    let a = fx.game(1).await;
    let b = fx.game(2).await;
    let output = fx
        .run(&["--list", "pending", "--product", &at.product, "--json"])
        .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let listing = json(&output);
    assert_eq!(listing["count"], 2);
    let ids: Vec<&str> = listing["games"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), b.as_str()], "stalest first");
    let text = fx.run(&["--list", "pending"]).await;
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains(a.as_str()) && stdout.contains("created"),
        "{stdout}"
    );
    let empty = fx.run(&["--list", "active", "--json"]).await;
    assert_eq!(json(&empty)["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_new_events_without_touching_the_consumer_group() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let fx = ConsoleFixture::new().await;
    let events_key = fx.store.keys().product(&fx.product).events();
    let mut conn = fx.redis.connection().await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&events_key)
        .arg("matchmakerd")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut command = fx.command();
    command
        .args(["--tail", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Keep writing until the tail (which starts at the stream's end) prints one.
    let line = mm_testkit::poll::until("a tailed event", Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let key = events_key.clone();
        let line = line_rx.try_recv().ok();
        async move {
            if line.is_none() {
                write_tail_heartbeat(&mut conn, &key).await;
            }
            line
        }
    })
    .await;
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["product"], "chess");
    assert_eq!(event["fields"]["game_id"], "chess.tail-test");
    // The test writes only to chess; `tail_with_a_product_prints_only_that_product` covers
    // `--product` with two.
    // Closing our end of the pipe ends the tail cleanly (broken pipe → exit 0).
    drop(line_rx);
    let status = mm_testkit::poll::until(
        "the tail to exit on a closed pipe",
        Duration::from_secs(20),
        || {
            let mut conn = conn.clone();
            let key = events_key.clone();
            let status = child.try_wait().unwrap();
            async move {
                if status.is_none() {
                    write_tail_heartbeat(&mut conn, &key).await;
                }
                status
            }
        },
    )
    .await;
    assert_eq!(status.code(), Some(0), "a closed pipe is a clean end");
    // The console never read through the daemon's group: nothing delivered, nothing pending.
    let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&events_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["pending"], redis::Value::Int(0));
    assert_eq!(groups[0]["consumers"], redis::Value::Int(0));
}

/// Lines of a child's pipe, read on a thread.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    line_rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_exits_1_when_redis_is_down_at_start_and_waits_out_a_later_outage() {
    use std::process::Stdio;

    let mut fx = ConsoleFixture::new().await;
    // Down at start: exit 1 naming the URL, as --list does (not a retry loop).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut command = fx.command();
    command
        .env("MM_REDIS__URL", format!("redis://127.0.0.1:{port}/0"))
        .args(["--tail"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    let status = mm_testkit::poll::until(
        "the tail to give up on a Redis down at start",
        Duration::from_secs(30),
        || {
            let status = child.try_wait().unwrap();
            async move { status }
        },
    )
    .await;
    let said: Vec<String> = stderr.try_iter().collect();
    assert_eq!(status.code(), Some(1), "{said:?}");
    assert!(
        said.iter()
            .any(|line| line.contains(&format!("Redis at redis://127.0.0.1:{port}/0"))),
        "{said:?}"
    );

    // Down after it has read: one warning, then the events after the outage.
    let events_key = fx.store.keys().product(&fx.product).events();
    let mut command = fx.command();
    command
        .args(["--tail", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    let conn = fx.redis.connection().await;
    let tailed = |conn: &TestConnection| {
        let conn = conn.clone();
        let key = events_key.clone();
        let stdout = &stdout;
        move || {
            let mut conn = conn.clone();
            let key = key.clone();
            let line = stdout.try_recv().ok();
            async move {
                if line.is_none() {
                    write_tail_heartbeat(&mut conn, &key).await;
                }
                line
            }
        }
    };
    mm_testkit::poll::until(
        "an event before the outage",
        Duration::from_secs(20),
        tailed(&conn),
    )
    .await;
    fx.redis.server().kill();
    let warning = mm_testkit::poll::until(
        "the tail's warning about the outage",
        Duration::from_secs(20),
        || {
            let line = stderr.try_recv().ok();
            async move { line }
        },
    )
    .await;
    assert!(warning.contains("(retrying)"), "{warning}");
    assert!(child.try_wait().unwrap().is_none(), "the tail goes on");
    fx.redis.server().restart().unwrap();
    let conn = fx.redis.connection().await;
    mm_testkit::poll::until(
        "an event after the outage",
        Duration::from_secs(30),
        tailed(&conn),
    )
    .await;
    assert!(child.try_wait().unwrap().is_none(), "the tail goes on");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_server_exits_4_and_keeps_the_record() {
    let fx = ConsoleFixture::new().await;
    let id = fx.game(1).await;
    // The same server, registered with the wrong key: it answers 401.
    let wrong_key = fx.dir.path().join("wrong-key.toml");
    let config = std::fs::read_to_string(&fx.config_file)
        .unwrap()
        .replace(API_KEY, "not-the-key");
    std::fs::write(&wrong_key, config).unwrap();
    let output = Command::new(console_binary())
        .env("MM_REDIS__URL", fx.redis.url())
        .args(["-m", "test", "-c"])
        .arg(&wrong_key)
        .args(["--delete", id.as_str(), "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    let report = json(&output);
    assert_eq!(report["outcome"], "server_refused");
    assert_eq!(report["server_reached"], true);
    assert!(
        report["error"].as_str().unwrap().contains("401"),
        "{report}"
    );
    assert_eq!(fx.server_games(), 1, "still on the server");
    assert_eq!(
        fx.store.game(&id).await.unwrap().unwrap().state(),
        GameState::Created
    );
    assert_eq!(fx.audit().await[0].outcome, "server_refused_record_kept");
    fx.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_with_a_product_prints_only_that_product() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let fx = ConsoleFixture::new().await;
    let poker = ProductId::new("poker").unwrap();
    fx.store
        .register_products(std::slice::from_ref(&poker))
        .await
        .unwrap();
    let chess_key = fx.store.keys().product(&fx.product).events();
    let poker_key = fx.store.keys().product(&poker).events();
    let conn = fx.redis.connection().await;
    let mut command = fx.command();
    command
        .args(["--tail", "--json", "--product", "chess"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Each round writes to poker first, then chess: a tail that followed poker would print
    // the poker event before (or with) the chess one.
    let lines = std::sync::Mutex::new(Vec::new());
    mm_testkit::poll::until("three tailed chess events", Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let (chess_key, poker_key) = (chess_key.clone(), poker_key.clone());
        let mut lines = lines.lock().unwrap();
        lines.extend(line_rx.try_iter());
        let enough = lines.len() >= 3;
        async move {
            if !enough {
                write_tail_heartbeat(&mut conn, &poker_key).await;
                write_tail_heartbeat(&mut conn, &chess_key).await;
            }
            enough.then_some(())
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    for line in lines.lock().unwrap().iter() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["product"], "chess", "{line}");
    }
}

/// Appends a heartbeat for `chess.tail-test` to `key`, for the tail tests to print.
async fn write_tail_heartbeat(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    key: &str,
) {
    let _: String = redis::cmd("XADD")
        .arg(key)
        .arg("*")
        .arg("type")
        .arg("heartbeat")
        .arg("game_id")
        .arg("chess.tail-test")
        .arg("server_id")
        .arg(SERVER_ID)
        .query_async(conn)
        .await
        .unwrap();
}
