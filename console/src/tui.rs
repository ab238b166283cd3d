//! The TUI runtime: owns the terminal and [`App`], turns terminal events, ticks and task
//! results into [`Msg`]s, and runs [`Command`]s as background tasks. The loop itself never
//! waits on Redis or a game server, so the screen stays responsive when they are slow or down.

use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use mm_common::GameId;
use mm_common::admin::ForceDeleteRequest;
use mm_common::time::now_ms;
use tokio::sync::mpsc;

use crate::app::{App, Command, Msg, update};
use crate::context::Console;
use crate::fetch;
use crate::view::view;

/// How often the clock ticks (drives "updated Ns ago" and the refresh schedule).
const TICK: Duration = Duration::from_millis(250);

/// Options of one TUI run.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// Refresh interval (`console.refresh_ms`).
    pub refresh_ms: u64,
    /// Events kept by the tail (`console.tail_len`).
    pub tail_len: usize,
    /// Force-delete disabled.
    pub read_only: bool,
    /// Who is acting, for the audit entries.
    pub operator: String,
}

/// Restores the terminal when dropped (normal exit and errors; panics are covered by the hook
/// `ratatui::try_init` installs).
struct RestoreTerminal;

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the console until the operator quits.
pub async fn run(console: Console, options: TuiOptions) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let _restore = RestoreTerminal;
    let size = terminal.size()?;
    let mut app = App::new(
        now_ms(),
        console.thresholds,
        options.refresh_ms,
        options.tail_len,
        options.read_only,
    );
    app.shared.size = (size.width, size.height);
    app.operator = options.operator.clone();
    let (tx, mut rx) = mpsc::channel::<Msg>(256);
    let tail_task = tokio::spawn(tail_loop(console.clone(), options.tail_len, tx.clone()));
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut pending = update(&mut app, Msg::Tick { now_ms: now_ms() });
    loop {
        for command in pending.drain(..) {
            execute(&console, &options, command, &tx);
        }
        if app.quit {
            break;
        }
        terminal.draw(|frame| view(&app, frame))?;
        let msg = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => Msg::Key(key),
                Some(Ok(Event::Resize(width, height))) => Msg::Resize { width, height },
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err(err),
                None => break,
            },
            Some(msg) = rx.recv() => msg,
            _ = tick.tick() => Msg::Tick { now_ms: now_ms() },
        };
        pending = update(&mut app, msg);
    }
    tail_task.abort();
    Ok(())
}

/// Starts the work a command asks for; results come back as messages.
fn execute(console: &Console, options: &TuiOptions, command: Command, tx: &mpsc::Sender<Msg>) {
    let console = console.clone();
    let tx = tx.clone();
    match command {
        Command::Quit => {}
        Command::Refresh { generation, query } => {
            tokio::spawn(async move {
                let result = fetch::snapshot(
                    &console.store,
                    &console.configured_products,
                    query.as_ref(),
                    now_ms(),
                )
                .await;
                let at_ms = now_ms();
                let msg = match result {
                    Ok(snapshot) => Msg::Refreshed {
                        generation,
                        snapshot: Box::new(snapshot),
                        at_ms,
                    },
                    Err(err) => Msg::RefreshFailed {
                        generation,
                        error: console.redis_error(&err),
                        at_ms,
                    },
                };
                let _ = tx.send(msg).await;
            });
        }
        Command::LoadDetail { id } => {
            tokio::spawn(async move {
                let msg = match fetch::detail(&console.store, &id).await {
                    Ok(detail) => Msg::DetailLoaded(Box::new(detail)),
                    Err(err) => Msg::DetailFailed {
                        id,
                        error: console.redis_error(&err),
                    },
                };
                let _ = tx.send(msg).await;
            });
        }
        Command::LoadDead => {
            tokio::spawn(async move {
                let msg =
                    match fetch::dead_letters(&console.store, &console.configured_products).await {
                        Ok(letters) => Msg::DeadLoaded(letters),
                        Err(err) => Msg::DeadFailed {
                            error: console.redis_error(&err),
                        },
                    };
                let _ = tx.send(msg).await;
            });
        }
        Command::LoadAudit => {
            tokio::spawn(async move {
                let msg = match fetch::audit(&console.store).await {
                    Ok(rows) => Msg::AuditLoaded(rows),
                    Err(err) => Msg::AuditFailed {
                        error: console.redis_error(&err),
                    },
                };
                let _ = tx.send(msg).await;
            });
        }
        Command::ForceDelete { id, reason } => {
            let operator = options.operator.clone();
            tokio::spawn(async move {
                let result = match GameId::new(&id) {
                    Err(err) => Err(err.to_string()),
                    Ok(game) => {
                        let request = ForceDeleteRequest {
                            game,
                            operator,
                            reason,
                            force: false,
                        };
                        console
                            .force_delete(&request)
                            .await
                            .map_err(|e| e.to_string())
                    }
                };
                let _ = tx
                    .send(Msg::DeleteFinished {
                        game_id: id,
                        result,
                    })
                    .await;
            });
        }
    }
}

/// Follows the product streams for the event tail until aborted.
async fn tail_loop(console: Console, tail_len: usize, tx: mpsc::Sender<Msg>) {
    let mut follower = fetch::TailFollower::new(
        console.store.clone(),
        console.configured_products.clone(),
        tail_len,
        Duration::from_millis(1000),
    );
    loop {
        let msg = match follower.next_batch().await {
            Ok(events) if events.is_empty() => continue,
            Ok(events) => Msg::TailEvents(events),
            Err(err) => {
                let msg = Msg::TailFailed {
                    error: console.redis_error(&err),
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}
