//! The JSON types of the `/v1/games` routes: request bodies, queries and the views of games
//! the handlers answer with (their OpenAPI schemas come from these definitions).

use mm_common::gameserver::JoinTicket;
use mm_common::time::rfc3339;
use mm_common::{Game, GameState, ProductId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/games` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGameRequest {
    /// The product (game) to play; a product some registered game server hosts.
    #[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "chess")]
    pub product: ProductId,
    /// Seats, creator included (1..=`lobby.max_capacity`; `/openapi.json` states this
    /// deployment's maximum).
    #[schema(minimum = 1, example = 2)]
    #[serde(deserialize_with = "integral_u32")]
    pub capacity: u32,
    /// Only place the game on a server of this region.
    #[schema(min_length = 1, max_length = 64, example = "eu")]
    #[serde(default)]
    pub region: Option<String>,
    /// Game settings passed to the game server unchanged (a JSON object, any members).
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    #[serde(default)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// Labels players filter listings and quick joins by (equality): at most
    /// `lobby.max_labels` pairs (default 8), keys of 1–32 bytes of `a-z 0-9 _ - .`, values
    /// of 1–64 characters, none a control character. Kept by the matchmaker, not sent to the
    /// game server.
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>,
        example = json!({"map": "dust2", "mode": "ranked"}))]
    #[serde(default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// A JSON integer for a `u32`, also written as a float with no fraction (`16.0`), which JSON
/// Schema counts as an integer too.
fn integral_u32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    let value = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    value.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
        D::Error::custom(format!(
            "invalid value {number}, expected a whole number from 0 to {}",
            u32::MAX
        ))
    })
}

/// A game's state.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GameStateView {
    /// Created; the creator has not connected yet.
    Created,
    /// The creator is in; others may join while a seat is free.
    CreatorJoined,
    /// Every seat is taken.
    AllPlayersJoined,
    /// Being played.
    InProgress,
    /// Over.
    Ended,
}

impl From<GameState> for GameStateView {
    fn from(state: GameState) -> Self {
        match state {
            GameState::Created => GameStateView::Created,
            GameState::CreatorJoined => GameStateView::CreatorJoined,
            GameState::AllPlayersJoined => GameStateView::AllPlayersJoined,
            GameState::InProgress => GameStateView::InProgress,
            GameState::Ended => GameStateView::Ended,
        }
    }
}

/// A game, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GameView {
    /// The game's id (`<product>.<uuid>`).
    pub id: String,
    /// Its product.
    pub product: String,
    /// Its state.
    pub state: GameStateView,
    /// Seats, creator included.
    pub capacity: u32,
    /// Players connected to the game, in the order they joined.
    pub players: Vec<String>,
    /// Seats neither taken by a connected player nor reserved by a join.
    pub seats_free: u32,
    /// Who created it.
    pub creator_id: String,
    /// The game server hosting it.
    pub server_id: String,
    /// The game server's region, if it has one.
    pub region: Option<String>,
    /// The labels given at create (`{}` when none).
    pub labels: std::collections::BTreeMap<String, String>,
    /// When it was created (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Its last activity (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl GameView {
    /// The view of `game` at `now_ms`.
    pub fn of(game: &Game, now_ms: u64) -> GameView {
        let taken = game.seats_taken(now_ms) as u32;
        GameView {
            id: game.id.to_string(),
            product: game.product.to_string(),
            state: game.state().into(),
            capacity: game.capacity,
            players: game.players().iter().map(ToString::to_string).collect(),
            seats_free: game.capacity.saturating_sub(taken),
            creator_id: game.creator_id.to_string(),
            server_id: game.server_id.to_string(),
            region: game.region.clone(),
            labels: game.labels.as_map().clone(),
            created_at: rfc3339(game.created_at_ms),
            updated_at: rfc3339(game.updated_at_ms),
        }
    }
}

/// Where and with what a player connects to the game.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JoinInfo {
    /// The game's WebSocket URL.
    pub socket_url: String,
    /// The player's token for it.
    pub token: String,
}

impl From<JoinTicket> for JoinInfo {
    fn from(ticket: JoinTicket) -> Self {
        JoinInfo {
            socket_url: ticket.socket_url,
            token: ticket.token,
        }
    }
}

/// A game plus the caller's connection details.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GameWithJoin {
    /// The game.
    #[serde(flatten)]
    pub game: GameView,
    /// How the caller connects.
    pub join: JoinInfo,
}

/// A page of open games.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GamePage {
    /// Open games, in the order asked for: at most `limit`, and fewer, even none, when the
    /// page examined `lobby.list_scan_max` open games before it filled.
    pub games: Vec<GameView>,
    /// Pass as `cursor` to get the next page; absent on the last page (a short page is not
    /// the last one while this is given).
    pub next_cursor: Option<String>,
}

/// The order of a `GET /v1/games` page.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListSort {
    /// Oldest (creation time) first.
    #[default]
    Oldest,
    /// Most players present first, then oldest first.
    Fullest,
}

/// `GET /v1/games` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only open games of this product (absent: every product).
    #[param(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,64}$", example = "chess")]
    #[serde(default)]
    pub product: Option<ProductId>,
    /// Only games on servers of this region.
    #[param(min_length = 1, max_length = 64)]
    #[serde(default)]
    pub region: Option<String>,
    /// Page size (1..=100, default 20).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (absent or empty: the first page). A cursor
    /// continues in the order it was issued for; `sort` is ignored beside it.
    #[param(pattern = "^((f[0-9]{1,10}:)?[0-9]{1,19}:[A-Za-z0-9._-]{1,64})?$")]
    #[serde(default)]
    pub cursor: Option<String>,
    /// Only games with at least this many seats free (1 to 2147483647, default 1; more than
    /// `lobby.max_capacity` matches nothing).
    #[param(minimum = 1, maximum = 2147483647)]
    #[serde(default)]
    pub min_seats_free: Option<u32>,
    /// `oldest` (default): oldest first; `fullest`: most players present first, then oldest.
    #[param(inline)]
    #[serde(default)]
    pub sort: Option<ListSort>,
}

/// `POST /v1/games/quick-join` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuickJoinRequest {
    /// The product (game) to play; a product some registered game server hosts.
    #[schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "chess")]
    pub product: ProductId,
    /// Only games on servers of this region (and a created game is placed there).
    #[schema(min_length = 1, max_length = 64, example = "eu")]
    #[serde(default)]
    pub region: Option<String>,
    /// Only games carrying every one of these labels, equal values (and a created game gets
    /// them); the rules of create's `labels` (at most `lobby.max_labels` pairs).
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    #[serde(default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    /// Create a game (the player its creator) when no open game matches; absent: answer 404
    /// `no_open_game` then.
    #[serde(default)]
    pub create: Option<QuickJoinCreateRequest>,
}

/// The game a quick join creates when none matches.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuickJoinCreateRequest {
    /// Seats, creator included (1..=`lobby.max_capacity`).
    #[schema(minimum = 1, example = 4)]
    #[serde(deserialize_with = "integral_u32")]
    pub capacity: u32,
    /// Game settings passed to the game server unchanged (a JSON object, any members).
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    #[serde(default)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}
