//! The scripted admin modes: `--delete`, `--list`, `--tail`. Results go to stdout (text, or
//! JSON with `--json`), diagnostics to stderr, and the exit code says what happened (see
//! [`crate::cli::exit`]).

use std::io::{self, Write};
use std::time::Duration;

use mm_common::admin::{ForceDeleteOutcome, ForceDeleteReport, ForceDeleteRequest};
use mm_common::model::GameSet;
use mm_common::time::rfc3339;
use mm_common::{GameId, ProductId};
use serde::Serialize;

use crate::cli::exit;
use crate::context::Console;
use crate::data::GameRow;
use crate::fetch;

/// The exit code for a delete report.
pub fn delete_exit_code(report: &ForceDeleteReport) -> u8 {
    match report.outcome {
        ForceDeleteOutcome::Deleted => exit::OK,
        ForceDeleteOutcome::NotFound => exit::NOT_FOUND,
        ForceDeleteOutcome::ServerRefused | ForceDeleteOutcome::ServerUnreachable => {
            exit::SERVER_FAILED
        }
    }
}

/// Options of `--delete`.
#[derive(Debug, Clone)]
pub struct DeleteArgs {
    /// The game id as typed.
    pub game: String,
    /// `--force`.
    pub force: bool,
    /// `--reason`.
    pub reason: String,
    /// `--operator` or the OS user.
    pub operator: String,
    /// `--json`.
    pub json: bool,
}

#[derive(Serialize)]
struct ErrorReport<'a> {
    game_id: &'a str,
    outcome: &'static str,
    error: String,
}

fn print_json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string(value).expect("reports always serialise")
    );
}

/// `--delete`: runs the shared force-delete flow; returns the exit code.
pub async fn delete(console: &Console, args: &DeleteArgs) -> u8 {
    let game = match GameId::new(&args.game) {
        Ok(game) => game,
        Err(err) => {
            if args.json {
                print_json(&ErrorReport {
                    game_id: &args.game,
                    outcome: "usage_error",
                    error: err.to_string(),
                });
            }
            eprintln!("mm-console: --delete {:?}: {err}", args.game);
            return exit::USAGE;
        }
    };
    let request = ForceDeleteRequest {
        game,
        operator: args.operator.clone(),
        reason: args.reason.clone(),
        force: args.force,
    };
    match console.force_delete(&request).await {
        Ok(report) => {
            if args.json {
                print_json(&report);
            } else {
                println!("{}", describe(&report));
            }
            delete_exit_code(&report)
        }
        Err(err) => {
            if args.json {
                print_json(&ErrorReport {
                    game_id: &args.game,
                    outcome: "redis_error",
                    error: console.redis_error(&err),
                });
            }
            eprintln!("mm-console: {}", console.redis_error(&err));
            exit::FAILURE
        }
    }
}

/// One line for a human about a delete.
pub fn describe(report: &ForceDeleteReport) -> String {
    let id = &report.game_id;
    let server = report.server_id.as_deref().unwrap_or("?");
    match report.outcome {
        ForceDeleteOutcome::Deleted if report.server_had_game == Some(false) => {
            format!("deleted {id}: game server {server} no longer had it; record removed")
        }
        ForceDeleteOutcome::Deleted => {
            format!("deleted {id} on game server {server}; record removed")
        }
        ForceDeleteOutcome::NotFound => match report.state {
            Some(state) => format!("no such live game {id} (it is {state})"),
            None => format!("no such game {id}"),
        },
        ForceDeleteOutcome::ServerRefused | ForceDeleteOutcome::ServerUnreachable => {
            let what = if report.outcome == ForceDeleteOutcome::ServerRefused {
                "refused"
            } else {
                "could not be reached"
            };
            let record = if report.record_removed {
                "record removed anyway (--force); the audit entry says so"
            } else {
                "record kept (use --force to remove it anyway)"
            };
            format!(
                "game server {server} {what}: {}; {record}",
                report.error.as_deref().unwrap_or("no detail")
            )
        }
    }
}

#[derive(Serialize)]
struct Listing<'a> {
    set: GameSet,
    product: Option<&'a str>,
    count: usize,
    games: &'a [GameRow],
}

/// The products to read: every known one, or only `only` if it is known. Prints a warning
/// or the error, and returns the exit code, when there is nothing to read.
async fn products_to_read(
    console: &Console,
    only: Option<&ProductId>,
) -> Result<Vec<ProductId>, u8> {
    let known = match fetch::products(&console.store, &console.configured_products).await {
        Ok(products) => products,
        Err(err) => {
            eprintln!(
                "mm-console: reading products: {}",
                console.redis_error(&err)
            );
            return Err(exit::FAILURE);
        }
    };
    match only {
        None => Ok(known),
        Some(product) if known.contains(product) => Ok(vec![product.clone()]),
        Some(product) => {
            let names: Vec<&str> = known.iter().map(ProductId::as_str).collect();
            eprintln!(
                "mm-console: warning: unknown product \"{product}\": neither Redis (P:products) nor \
                 the configuration knows it (known: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            );
            Err(exit::NOT_FOUND)
        }
    }
}

/// `--list SET [--product P]`: every game of the set; returns the exit code.
pub async fn list(console: &Console, set: GameSet, product: Option<&ProductId>, json: bool) -> u8 {
    let products = match products_to_read(console, product).await {
        Ok(products) => products,
        Err(code) => return code,
    };
    let rows = match fetch::list_games(&console.store, &products, set).await {
        Ok(rows) => rows,
        Err(err) => {
            eprintln!(
                "mm-console: reading {set} games: {}",
                console.redis_error(&err)
            );
            return exit::FAILURE;
        }
    };
    let mut out = io::stdout().lock();
    let result = if json {
        let listing = Listing {
            set,
            product: product.map(ProductId::as_str),
            count: rows.len(),
            games: &rows,
        };
        serde_json::to_writer(&mut out, &listing)
            .map_err(io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        write_table(&mut out, &rows)
    };
    match result {
        Ok(()) => exit::OK,
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(err) => {
            eprintln!("mm-console: writing output: {err}");
            exit::FAILURE
        }
    }
}

fn write_table(out: &mut impl Write, rows: &[GameRow]) -> io::Result<()> {
    writeln!(
        out,
        "{:<48} {:<18} {:>7} {:<16} {:<16} {:<24} {:<24}",
        "ID", "STATE", "PLAYERS", "SERVER", "CREATOR", "CREATED", "LAST_ACTIVITY"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:<48} {:<18} {:>7} {:<16} {:<16} {:<24} {:<24}",
            row.id,
            row.state
                .map_or("(no record)".to_string(), |s| s.to_string()),
            format!("{}/{}", row.players, row.capacity),
            row.server_id,
            row.creator_id,
            rfc3339(row.created_at_ms),
            rfc3339(row.activity_ms)
        )?;
    }
    out.flush()
}

/// `--tail [--product P]`: prints each new event (of every product, or only of `product`) as
/// one line (or one JSON object) until the reader goes away (broken pipe), or Ctrl-C. Returns
/// the exit code: 1 when the first read fails (Redis unreachable at start, as `--list`); a
/// later outage is waited out with one warning, since an operator tailing through a failover
/// wants the events after it.
pub async fn tail(console: &Console, product: Option<&ProductId>, json: bool) -> u8 {
    let only = match product {
        None => None,
        Some(_) => match products_to_read(console, product).await {
            Ok(products) => Some(products),
            Err(code) => return code,
        },
    };
    let mut follower = fetch::TailFollower::new(
        console.store.clone(),
        console.configured_products.clone(),
        0,
        Duration::from_millis(1000),
    );
    if let Some(only) = only {
        follower = follower.only(only);
    }
    let mut warned = false;
    let mut read_once = false;
    loop {
        let batch = tokio::select! {
            batch = follower.next_batch() => batch,
            _ = tokio::signal::ctrl_c() => return exit::OK,
        };
        let events = match batch {
            Ok(events) => {
                warned = false;
                read_once = true;
                events
            }
            Err(err) if !read_once => {
                eprintln!(
                    "mm-console: reading event streams: {}",
                    console.redis_error(&err)
                );
                return exit::FAILURE;
            }
            Err(err) => {
                if !warned {
                    eprintln!(
                        "mm-console: reading event streams: {} (retrying)",
                        console.redis_error(&err)
                    );
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut out = io::stdout().lock();
        let mut result = Ok(());
        for event in &events {
            result = if json {
                serde_json::to_writer(&mut out, event)
                    .map_err(io::Error::other)
                    .and_then(|()| writeln!(out))
            } else {
                writeln!(out, "{}", event.one_line())
            };
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = out.flush();
        }
        match result {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return exit::OK,
            Err(err) => {
                eprintln!("mm-console: writing output: {err}");
                return exit::FAILURE;
            }
        }
    }
}
