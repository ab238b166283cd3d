//! Smoke test of the real `mm-console` TUI inside tmux: a private Redis with a few games, the
//! console started from a shell in a 120×40 pane, keys sent with `send-keys`, the screen read
//! with `capture-pane -p`; Redis is killed and restarted under it. It walks the detail, the
//! delete dialog with its reason prompt, the filter as you type, `:dead` and `:audit`.

use std::process::Command;
use std::time::Duration;

use mm_testkit::poll;

use crate::console::{ConsoleFixture, console_binary};

/// A tmux server of our own (`-L`), so the test never touches the user's sessions.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux (apt-get install tmux)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "console"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// The screen once it shows every one of `needles` at once. A capture can catch the
    /// console in the middle of drawing a frame (the top of a dialog painted, its buttons not
    /// yet), so everything a step checks is waited for together, never checked on the first
    /// capture that shows one of them.
    async fn wait_for(&self, what: &str, needles: &[&str]) -> String {
        self.wait_for_without(what, needles, &[]).await
    }

    /// The screen once it shows every one of `needles` and none of `absent`, at once.
    async fn wait_for_without(&self, what: &str, needles: &[&str], absent: &[&str]) -> String {
        let last = std::sync::Mutex::new(String::new());
        let found = poll::until(what, Duration::from_secs(20), || {
            let screen = self.screen();
            *last.lock().unwrap() = screen.clone();
            let shown = needles.iter().all(|needle| screen.contains(needle))
                && !absent.iter().any(|gone| screen.contains(gone));
            async move { shown.then_some(screen) }
        });
        // Show the screen when it never appears (this deadline ends first: poll's own panic
        // would not show it).
        match tokio::time::timeout(Duration::from_secs(19), found).await {
            Ok(screen) => screen,
            Err(_) => panic!(
                "{what}: never saw all of {needles:?} without any of {absent:?}; screen:\n{}",
                last.lock().unwrap()
            ),
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_shows_games_help_events_and_quits_back_to_the_shell() {
    let mut fx = ConsoleFixture::new().await;
    let first = fx.game(1).await;
    let second = fx.game(2).await;
    let third = fx.game(3).await;
    // One dead letter, as the daemon's consumer would have written it.
    let dead_key = fx.store.keys().product(&fx.product).dead_letters();
    let mut conn = fx.redis.connection().await;
    let _: String = redis::cmd("XADD")
        .arg(&dead_key)
        .arg("*")
        .arg("reason")
        .arg("unknown_game: no record of chess.ghost")
        .arg("source_id")
        .arg("1-1")
        .arg("dead_at")
        .arg(mm_common::time::now_ms())
        .arg("type")
        .arg("player_joined")
        .arg("game_id")
        .arg("chess.ghost")
        .query_async(&mut conn)
        .await
        .unwrap();
    let binary = console_binary();

    let tmux = Tmux {
        socket: format!("mm-console-test-{}", std::process::id()),
    };
    tmux.run(&[
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        "-s",
        "console",
        "-e",
        &format!("MM_REDIS__URL={}", fx.redis.url()),
        "-e",
        "USER=test-operator",
        "sh",
    ]);
    let launch = format!(
        "PS1='shell$ '; cd {} && {} -m test -c {}; echo console-exited-$?",
        fx.dir.path().display(),
        binary.display(),
        fx.config_file.display()
    );
    tmux.keys(&[&launch, "Enter"]);

    // The lobby is the first screen; the games are pending. ("mm-console" alone would match
    // the command line the shell echoes, before the console has started.)
    tmux.wait_for("the console's header", &["? help"]).await;
    tmux.keys(&["1"]);
    tmux.wait_for(
        "a game id, its server, the title and the refresh time on the pending screen",
        &[first.as_str(), "gs-chess-1", "pending", "updated"],
    )
    .await;

    tmux.keys(&["Enter"]);
    tmux.wait_for(
        "the detail view of the first game, its full id and roster",
        &["timings", "roster", first.as_str()],
    )
    .await;
    tmux.keys(&["C-d"]);
    tmux.wait_for(
        "the confirm dialog with its Cancel button",
        &["Force-delete this game?", "[ Cancel ]"],
    )
    .await;
    tmux.keys(&["Enter"]);
    tmux.wait_for("cancel to be reported", &["cancelled"]).await;
    assert_eq!(
        fx.server_games(),
        3,
        "Enter on the default button deleted nothing"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_for("back on the table", &["pending ·"]).await;

    // Confirmed from the table with a reason typed over the default: deleted on the server,
    // and the status line says so.
    tmux.keys(&["C-d"]);
    tmux.wait_for(
        "the confirm dialog again, with the default reason and the operator",
        &[
            "Force-delete this game?",
            "force-delete from the console",
            "done by test-operator",
        ],
    )
    .await;
    tmux.keys(&["C-u"]);
    tmux.keys(&["-l", "stuck in tmux"]);
    tmux.wait_for("the typed reason", &["stuck in tmux"]).await;
    tmux.keys(&["Tab"]);
    tmux.keys(&["Enter"]);
    let deleted = format!("deleted {first}");
    tmux.wait_for(
        "the delete outcome naming the game",
        &["record removed", deleted.as_str()],
    )
    .await;
    assert_eq!(fx.server_games(), 2, "deleted on the game server");
    let audit = fx.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].game_id, first.as_str());
    assert_eq!(audit[0].operator, "test-operator");
    assert_eq!(audit[0].reason, "stuck in tmux");

    // The filter applies as it is typed and says how many rows it hides.
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "player-3"]);
    tmux.wait_for_without(
        "the filtered table showing the third game and not the second",
        &["1 hidden by filter", third.as_str()],
        &[second.as_str()],
    )
    .await;
    tmux.keys(&["Enter"]);
    tmux.keys(&["Escape"]);
    tmux.wait_for("the filter cleared", &[second.as_str()])
        .await;

    // The dead letters and the audit stream.
    tmux.keys(&[":", "dead", "Enter"]);
    tmux.wait_for(
        "the dead letter and its count",
        &["unknown_game: no record", "1 entry"],
    )
    .await;
    tmux.keys(&[":", "audit", "Enter"]);
    tmux.wait_for(
        "the audit entry with its reason and operator",
        &["stuck in tmux", "test-operator"],
    )
    .await;
    tmux.keys(&["1"]);
    tmux.wait_for("back on the table", &["pending ·"]).await;

    // :product with Tab completion: the command, then the product's name.
    tmux.keys(&[":", "pro"]);
    tmux.keys(&["Tab"]);
    tmux.wait_for("the command completed", &[":product"]).await;
    tmux.keys(&["-l", "ch"]);
    tmux.keys(&["Tab"]);
    tmux.wait_for("the product completed", &[":product chess"])
        .await;
    tmux.keys(&["Enter"]);
    poll::until("the command line to close", Duration::from_secs(20), || {
        let closed = !tmux.screen().contains(":product");
        async move { closed.then_some(()) }
    })
    .await;
    tmux.wait_for("the chess table", &["pending · chess"]).await;

    tmux.keys(&["?"]);
    // It is longer than the terminal ("lines 1-…"): it scrolls to the end and back.
    tmux.wait_for(
        "the help screen from its top",
        &["Games table", "force-delete the selected game", "lines 1-"],
    )
    .await;
    tmux.keys(&["G"]);
    tmux.wait_for_without("the end of the help", &["overdue"], &["lines 1-"])
        .await;
    tmux.keys(&["g"]);
    tmux.wait_for("the top of the help", &["lines 1-"]).await;
    tmux.keys(&["Escape"]);
    poll::until("help to close", Duration::from_secs(20), || {
        let closed = !tmux.screen().contains("Games table");
        async move { closed.then_some(()) }
    })
    .await;

    // Redis goes away: the last data stays under a red banner, keys still work; Redis comes
    // back: the console reconnects by itself.
    fx.redis.kill();
    tmux.wait_for(
        "the Redis-down banner over the last data",
        &["Redis unreachable since", second.as_str()],
    )
    .await;
    tmux.keys(&["2"]);
    tmux.wait_for("keys work while Redis is down", &["lobby ·"])
        .await;
    // A view never read before the outage says so instead of "no games".
    tmux.keys(&["3"]);
    tmux.wait_for_without(
        "the unread active view during the outage",
        &["not loaded yet", "active ·"],
        &["no games"],
    )
    .await;
    fx.redis.restart().unwrap();
    poll::until(
        "the banner to clear after Redis is back",
        Duration::from_secs(20),
        || {
            let gone = !tmux.screen().contains("Redis unreachable");
            async move { gone.then_some(()) }
        },
    )
    .await;

    tmux.keys(&[":", "events", "Enter"]);
    tmux.wait_for("the event tail", &["events ·"]).await;

    tmux.keys(&["q"]);
    let screen = tmux
        .wait_for("the shell back after q", &["console-exited-0"])
        .await;
    assert!(
        !screen.contains("events ·"),
        "alternate screen left: {screen}"
    );
}
