//! The record's invariants, checked against a real Redis at the end of tests.
//!
//! For every product: each game hash's `state` and `players` agree with its roster and marks;
//! each live game hash is in exactly one of pending, lobby and active — the one its `state`
//! names — with the right score; an ended game is in none; every member of
//! a set has a hash; the open index holds exactly the open games (creator present, not being
//! ended, a free seat); the ending index holds exactly the live games marked as ending, scored
//! by their mark; and every reservation index entry matches a reservation in its game's hash.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, bail};
use mm_common::keys::RESERVATION_SEPARATOR;
use mm_common::model::GameSet;
use mm_common::store::game_from_hash;
use mm_common::{Keys, ProductId};
use redis::AsyncCommands;

/// What the checker saw, for tests that want to assert on counts as well.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Census {
    /// Live games per set: pending, lobby, active.
    pub per_set: [usize; 3],
    /// Tombstones (ended games still within their TTL).
    pub ended: usize,
    /// Games in the open index.
    pub open: usize,
}

/// Checks every invariant for `products` under `prefix`, at time `now_ms` (reservations that
/// expired by then do not count as taken seats). Returns the census, or an error listing
/// every violation found.
pub async fn check(
    conn: &mut impl redis::aio::ConnectionLike,
    prefix: &str,
    products: &[ProductId],
    now_ms: u64,
) -> anyhow::Result<Census> {
    let keys = Keys::new(prefix);
    let mut census = Census::default();
    let mut violations = Vec::new();
    for product in products {
        let pk = keys.product(product);
        let game_keys: Vec<String> = scan(conn, &pk.pending(), &pk.game_pattern()).await?;
        let mut members: HashMap<GameSet, HashMap<String, f64>> = HashMap::new();
        for set in GameSet::ALL {
            let key = pk.set(set);
            let raw: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(conn)
                .await?;
            members.insert(set, raw.into_iter().collect());
        }
        let open: BTreeSet<String> = redis::cmd("ZRANGE")
            .arg(pk.open())
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await?;
        census.open += open.len();
        let ending_index: HashMap<String, f64> = redis::cmd("ZRANGE")
            .arg(pk.ending())
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async::<Vec<(String, f64)>>(conn)
            .await?
            .into_iter()
            .collect();
        let mut ending_expected: HashMap<String, f64> = HashMap::new();
        let mut live_ids = BTreeSet::new();
        let mut reservations_expected = BTreeSet::new();
        for key in &game_keys {
            let hash: HashMap<String, String> =
                redis::cmd("HGETALL").arg(key).query_async(conn).await?;
            let game = game_from_hash(&hash).with_context(|| format!("decoding {key}"))?;
            let id = game.id.to_string();
            let state = game.state();
            if hash.get("state").map(String::as_str) != Some(state.as_str()) {
                violations.push(format!(
                    "{key}: stored state {:?} differs from the state its fields imply ({state})",
                    hash.get("state")
                ));
            }
            let players: Vec<String> = game.players().iter().map(ToString::to_string).collect();
            let players_json = serde_json::to_string(&players)?;
            if hash.get("players") != Some(&players_json) {
                violations.push(format!(
                    "{key}: players {:?} differs from the roster's present players {players_json}",
                    hash.get("players")
                ));
            }
            let found_in: Vec<GameSet> = GameSet::ALL
                .into_iter()
                .filter(|set| members[set].contains_key(&id))
                .collect();
            match game.set_and_score() {
                None => {
                    census.ended += 1;
                    if !found_in.is_empty() {
                        violations.push(format!("{key}: ended but still in {found_in:?}"));
                    }
                }
                Some((set, score)) => {
                    census.per_set[set as usize] += 1;
                    live_ids.insert(id.clone());
                    if found_in != [set] {
                        violations.push(format!(
                            "{key}: state {state} belongs in {set} alone, found in {found_in:?}"
                        ));
                    } else if members[&set][&id] as u64 != score {
                        violations.push(format!(
                            "{key}: score {} in {set}, expected {score}",
                            members[&set][&id]
                        ));
                    }
                }
            }
            if game.is_open(now_ms) != open.contains(&id) && state != mm_common::GameState::Ended {
                // Expired reservations not yet swept make a game look full to the index until
                // the sweep; only a game the index lists although it is not open is wrong.
                let expired_pending = game.reservations.values().any(|e| *e <= now_ms);
                if open.contains(&id) || !expired_pending {
                    violations.push(format!(
                        "{key}: open={} but the open index says {}",
                        game.is_open(now_ms),
                        open.contains(&id)
                    ));
                }
            }
            if let Some(ending) = &game.ending {
                ending_expected.insert(id.clone(), ending.since_ms as f64);
            }
            for player in game.reservations.keys() {
                reservations_expected.insert(format!("{id}{RESERVATION_SEPARATOR}{player}"));
            }
        }
        for set in GameSet::ALL {
            for id in members[&set].keys() {
                if !live_ids.contains(id) {
                    violations.push(format!(
                        "{set} of {product} holds {id}, which has no live hash"
                    ));
                }
            }
        }
        for id in &open {
            if !live_ids.contains(id) {
                violations.push(format!(
                    "open index of {product} holds {id}, which has no live hash"
                ));
            }
        }
        if ending_index != ending_expected {
            violations.push(format!(
                "ending index of {product} is {ending_index:?}, the hashes' marks say {ending_expected:?}"
            ));
        }
        let reservations: BTreeSet<String> = conn_zrange_all(conn, &pk.reservations()).await?;
        if reservations != reservations_expected {
            violations.push(format!(
                "reservation index of {product} is {reservations:?}, the hashes say {reservations_expected:?}"
            ));
        }
    }
    if violations.is_empty() {
        Ok(census)
    } else {
        bail!("record invariants violated:\n  {}", violations.join("\n  "))
    }
}

/// Checks that no seat is sold twice: in every live game of `products`, the seats taken at
/// `now_ms` (present players plus live reservations of absent ones) are at most its capacity.
/// Kept apart from [`check`] because tests that write events by hand may connect more players
/// than a game has seats.
pub async fn check_seats(
    conn: &mut impl redis::aio::ConnectionLike,
    prefix: &str,
    products: &[ProductId],
    now_ms: u64,
) -> anyhow::Result<()> {
    let keys = Keys::new(prefix);
    let mut violations = Vec::new();
    for product in products {
        let pk = keys.product(product);
        for key in scan(conn, &pk.pending(), &pk.game_pattern()).await? {
            let hash: HashMap<String, String> =
                redis::cmd("HGETALL").arg(&key).query_async(conn).await?;
            let game = game_from_hash(&hash).with_context(|| format!("decoding {key}"))?;
            if game.state() == mm_common::GameState::Ended {
                continue;
            }
            let taken = game.seats_taken(now_ms);
            if taken > game.capacity as usize {
                violations.push(format!(
                    "{key}: {taken} seats taken of {} (players {:?}, reservations {:?})",
                    game.capacity,
                    game.players(),
                    game.reservations
                ));
            }
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        bail!("seats sold twice:\n  {}", violations.join("\n  "))
    }
}

/// [`check`] for every product in `P:products` plus `extra` ones.
pub async fn check_all(
    conn: &mut impl AsyncCommands,
    prefix: &str,
    extra: &[ProductId],
    now_ms: u64,
) -> anyhow::Result<Census> {
    let keys = Keys::new(prefix);
    let names: Vec<String> = conn.smembers(keys.products()).await?;
    let mut products: BTreeSet<ProductId> = names
        .into_iter()
        .map(ProductId::new)
        .collect::<Result<_, _>>()?;
    products.extend(extra.iter().cloned());
    let products: Vec<ProductId> = products.into_iter().collect();
    check(conn, prefix, &products, now_ms).await
}

async fn conn_zrange_all(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
) -> anyhow::Result<BTreeSet<String>> {
    Ok(redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?)
}

/// Every key matching `pattern`, which must carry a hash tag (`P:{product}:game:*`): the
/// scan runs inside a script declared on `slot_key` (a key of the same tag), so on a cluster it
/// runs on the node serving that slot (a plain `SCAN` would go to any node).
async fn scan(
    conn: &mut impl redis::aio::ConnectionLike,
    slot_key: &str,
    pattern: &str,
) -> anyhow::Result<Vec<String>> {
    const SCAN_ALL: &str = r"
local cursor, keys = '0', {}
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do keys[#keys + 1] = key end
until cursor == '0'
return keys
";
    Ok(redis::Script::new(SCAN_ALL)
        .key(slot_key)
        .arg(pattern)
        .invoke_async(conn)
        .await?)
}
