//! Quick join: a seat in the best matching open game of a product, or a new game when none
//! matches and the player asked for one (see the module docs of [`crate::flows`]).

use std::time::Duration;

use super::create::{CreateError, NewGame, create_game};
use super::join::{JoinError, JoinedGame, ticket_for_seat};
use super::{ServerCalls, ServerPlacement};
use crate::ids::{GameId, PlayerId, ProductId};
use crate::limits::{LimitRefusal, PlayerLimits};
use crate::model::{EntryId, Game};
use crate::store::{QuickJoinFilter, QuickJoinOutcome, Store, StoreError};
use crate::time::now_ms;

/// What a quick join asks of the caller's view of the open games (the daemon's in-memory
/// view): which games to try, and what the attempt got, at once, so that the next quick
/// join's picks count the seat.
pub trait QuickJoinView {
    /// The games to try for `filter`, best first (the script checks each against the record),
    /// and whether the view knows that no open game matches. The view may count a seat of
    /// the first as being taken until [`Self::answered`].
    fn picks(&self, filter: &QuickJoinFilter) -> ViewPicks;
    /// The script answered the attempt the last picks were for: `seated` is the game a seat
    /// was just reserved in (as the script left it) and the change feed entry it wrote, when
    /// the seat changed the game's listing.
    fn answered(&self, seated: Option<(&Game, EntryId)>);
}

/// What a view names for one quick join attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewPicks {
    /// The games to try, best first.
    pub games: Vec<GameId>,
    /// The view follows the product and holds no open game that matches the filter, seats
    /// other quick joins are taking aside (so `games` is empty): the attempt then reads no
    /// candidate from the product's open index, and a query that matches nothing costs no
    /// scan of the record. When `false` and no pick takes the player (the view was behind,
    /// or every match was being taken), the script reads the `scan` oldest open games.
    pub none_match: bool,
}

/// A quick join request.
#[derive(Debug, Clone)]
pub struct QuickJoin {
    /// The product to play.
    pub product: ProductId,
    /// Which games match (region, labels).
    pub filter: QuickJoinFilter,
    /// How many of the product's oldest open games are considered.
    pub scan: u32,
    /// How many games to try when the server of the one got fails or refuses (at least 1).
    pub attempts: u32,
    /// The game to create when none matches; `None`: answer [`QuickJoinError::NoMatch`].
    pub create: Option<QuickJoinCreate>,
}

/// The game a quick join creates when no open game matches (on a server of the filter's
/// region, carrying the filter's labels).
#[derive(Debug, Clone)]
pub struct QuickJoinCreate {
    /// Seats, creator included (validated by the caller).
    pub capacity: u32,
    /// Settings passed to the game server unchanged.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// A successful quick join.
#[derive(Debug, Clone)]
pub struct QuickJoined {
    /// The game, the player's ticket, and whether a new seat was taken.
    pub joined: JoinedGame,
    /// Whether the game was created for this request (the player is its creator).
    pub created: bool,
}

/// Why a quick join failed. A seat it reserved is released before it answers.
#[derive(Debug, thiserror::Error)]
pub enum QuickJoinError {
    /// The quick join script failed: nothing changed.
    #[error("quick join: {0}")]
    Store(#[source] StoreError),
    /// A per-player limit (join rate, reservations) refused it: nothing changed.
    #[error("a per-player limit refused the quick join: {0:?}")]
    Limited(LimitRefusal),
    /// No open game matches, and no create was asked for.
    #[error("no open game matches")]
    NoMatch,
    /// A seat was found, but handing out its ticket failed (the seat was released).
    #[error("joining {game}: {source}")]
    Join {
        /// The game the seat was in.
        game: GameId,
        /// What failed.
        #[source]
        source: JoinError,
    },
    /// No game matched and creating one failed.
    #[error("creating a game: {0}")]
    Create(#[source] CreateError),
}

/// Quick-joins `player` (see the module docs): one atomic attempt reserves a seat for
/// `reservation_ttl` under the player's `limits` in the first of the games `view` picks for
/// the attempt's filter (best first) that takes the player, else in the fullest matching
/// open game among the `scan` oldest (or gives back a seat the player already holds in a
/// matching game); then the game's server is asked for the ticket as a join asks it (the
/// seat released on failure). When that server fails or refuses, the next attempt skips the
/// games whose server failed, up to `request.attempts` attempts; only the first takes a join
/// token. When no game matches, the game of `create` is created through the create flow (its
/// quota included), with the player as its creator.
pub async fn quick_join<D: ServerPlacement + Clone + 'static>(
    store: &Store,
    servers: &ServerCalls<D>,
    player: &PlayerId,
    mut request: QuickJoin,
    view: &impl QuickJoinView,
    reservation_ttl: Duration,
    limits: &PlayerLimits,
) -> Result<QuickJoined, QuickJoinError> {
    let mut last_failure = None;
    for _ in 0..request.attempts.max(1) {
        let picks = view.picks(&request.filter);
        let scan = if picks.none_match { 0 } else { request.scan };
        let outcome = store
            .quick_join(
                &request.product,
                player,
                &request.filter,
                &picks.games,
                scan,
                now_ms(),
                reservation_ttl,
                limits,
            )
            .await;
        view.answered(match &outcome {
            Ok(QuickJoinOutcome::Reserved {
                record,
                feed_entry: Some(entry),
                ..
            }) => Some((record, *entry)),
            _ => None,
        });
        let (game, record, feed_entry, new_seat, kept_ticket) = match outcome
            .map_err(QuickJoinError::Store)?
        {
            QuickJoinOutcome::Limited(refusal) => return Err(QuickJoinError::Limited(refusal)),
            QuickJoinOutcome::NoMatch => match (request.create.take(), last_failure) {
                (Some(create), _) => {
                    return create_instead(store, servers, player, request, create, limits).await;
                }
                (None, Some(failure)) => return Err(failure),
                (None, None) => return Err(QuickJoinError::NoMatch),
            },
            QuickJoinOutcome::Held {
                game,
                kept_ticket,
                record,
            } => (game, record, None, false, kept_ticket),
            QuickJoinOutcome::Reserved {
                game,
                record,
                feed_entry,
                ..
            } => (game, record, feed_entry, true, None),
        };
        let join_failed = |source| QuickJoinError::Join {
            game: game.clone(),
            source,
        };
        if let Some(ticket) = kept_ticket {
            return Ok(QuickJoined {
                joined: JoinedGame {
                    game: *record,
                    ticket,
                    new_seat,
                    feed_entry,
                },
                created: false,
            });
        }
        match ticket_for_seat(store, servers, *record, feed_entry, player, new_seat).await {
            Ok(joined) => {
                return Ok(QuickJoined {
                    joined,
                    created: false,
                });
            }
            Err(
                source @ (JoinError::ServerUnavailable(_)
                | JoinError::ServerRefused(_)
                | JoinError::UnknownServer(_)),
            ) => {
                tracing::info!(%game, %player, error = %source, "quick join: the game's server failed; trying another game");
                request.filter.exclude.push(game.clone());
                last_failure = Some(join_failed(source));
            }
            Err(source) => return Err(join_failed(source)),
        }
    }
    Err(last_failure.expect("every attempt that does not return records its failure"))
}

/// No game matched: the game of `create` is created for the player, as its creator.
async fn create_instead<D: ServerPlacement + Clone + 'static>(
    store: &Store,
    servers: &ServerCalls<D>,
    player: &PlayerId,
    request: QuickJoin,
    create: QuickJoinCreate,
    limits: &PlayerLimits,
) -> Result<QuickJoined, QuickJoinError> {
    let new_game = NewGame {
        product: request.product,
        region: request.filter.region,
        labels: request.filter.labels,
        capacity: create.capacity,
        creator: player.clone(),
        settings: create.settings,
    };
    let created = create_game(store, servers, new_game, limits)
        .await
        .map_err(QuickJoinError::Create)?;
    Ok(QuickJoined {
        joined: JoinedGame {
            game: created.game,
            ticket: created.ticket,
            new_seat: true,
            feed_entry: None,
        },
        created: true,
    })
}
