-- Quick join (contract 5.4, `POST /v1/games/quick-join`): reserves a seat for a player in the
-- best matching open game of a product, atomically, under the same join bucket, reservation
-- quota and reservation rules as a join (`take_seat`).
-- Matching: the game's `region` equals the wanted one (when given) and its `labels` hold
-- every wanted pair. The daemon's view of open games names its picks, best first (the fullest
-- of the `scan` oldest matching games); each is checked here against the record (matching,
-- then the join rules), and the first that seats the player gets the seat. When none does
-- (the view was behind the record) or none was named, the candidates are the `scan` oldest
-- games of the open index; the best is the fullest (seats taken / capacity), the oldest among
-- equals, so lobbies fill and start.
-- A player who already holds a seat in a matching game gets it back (idempotent, like a
-- re-join): a live reservation of theirs (their reservations ZSET) in a lobby that takes it,
-- or a pick or candidate they created, are present in or reserved.
-- KEYS: 1 pending, 2 lobby, 3 active, 4 open, 5 reservations, 6 ending,
--       7 the player's reservations (ZSET game id -> expiry, ms), 8 the player's join bucket,
--       9 feed
-- ARGV: 1 player, 2 now (ms), 3 ttl (ms), 4 max open reservations (0 = no quota), 5 rate
--       (joins/s, 0 = no rate limit), 6 burst, 7 game key prefix (`P:{product}:game:`),
--       8 scan (games), 9 wanted region ('' = any), 10 wanted labels (JSON object, '' = none),
--       11 feed cap, 12 how many picks follow (n), 13..12+n the view's picks, best first,
--       13+n.. games not to pick: those whose game server failed an earlier attempt of the
--       same request (an attempt with any takes no token from the join bucket: the request's
--       first attempt took it)
-- Returns {'reserved', game id, expiry, record} | {'held', game id, ticket JSON or '',
-- record} | {'none'} | {'rate_limited', retry ms} | {'quota_exceeded', retry ms};
-- `record` is the game after the change, as `with_record` appends it.
local player, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_reserved, rate, burst, prefix = tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), ARGV[7]
local scan, region = tonumber(ARGV[8]), ARGV[9]
local wanted = nil
if ARGV[10] ~= '' then
  wanted = cjson.decode(ARGV[10])
  if next(wanted) == nil then wanted = nil end
end

local picks = tonumber(ARGV[12])
local excluded = {}
for i = 13 + picks, #ARGV do excluded[ARGV[i]] = true end

-- Every quick join request takes one token from the join bucket (its first attempt).
if #ARGV <= 12 + picks then
  local wait, tokens = bucket_take(KEYS[8], rate, burst, now)
  if wait > 0 then return {'rate_limited', tostring(wait)} end
  commit_bucket(KEYS[8], rate, burst, now, tokens)
end

-- Whether a game whose `region` and `labels` fields are these matches the wanted ones.
local function matches_fields(game_region, game_labels)
  if region ~= '' and (game_region or '') ~= region then return false end
  if wanted ~= nil then
    local labels = (game_labels and game_labels ~= '') and cjson.decode(game_labels) or {}
    for k, value in pairs(wanted) do
      if labels[k] ~= value then return false end
    end
  end
  return true
end

-- Whether the game at `key` matches.
local function matches(key)
  if region == '' and wanted == nil then return true end
  local v = redis.call('HMGET', key, 'region', 'labels')
  return matches_fields(v[1], v[2])
end

-- A game of the open index, read lightly (one HMGET, no full load): the index holds only games
-- that were open when last written (creator_joined, no end step, creator present, a seat
-- free), and only time changes a game between writes (expiring reservations free seats), so
-- it is still open and its seats taken are all a pick needs. Returns nil when it does not
-- match, else seats taken, capacity and whether `player` already holds a seat there.
local function candidate(key)
  local v = redis.call('HMGET', key, 'capacity', 'creator_id', 'roster', 'reservations',
                       'region', 'labels')
  if not v[1] or not matches_fields(v[5], v[6]) then return nil end
  local roster = cjson.decode(v[3] or '{}')
  local taken = 0
  for _, entry in pairs(roster) do
    if entry[2] == 1 then taken = taken + 1 end
  end
  local function present(who)
    local entry = roster[who]
    return entry ~= nil and entry[2] == 1
  end
  local mine = false
  if v[4] and v[4] ~= '{}' then
    for who, expiry in pairs(cjson.decode(v[4])) do
      if expiry > now then
        if not present(who) then taken = taken + 1 end
        if who == player then mine = true end
      end
    end
  end
  mine = mine or player == v[2] or present(player)
  return taken, tonumber(v[1]), mine
end

local function held(key, id)
  return with_record({'held', id, redis.call('HGET', key, 'ticket:' .. player) or ''}, key)
end

local keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[9], ARGV[11]}

-- Takes a seat in the game `id` (loaded as `g`): the seat script's reply with the game's id
-- after the outcome.
local function seat_in(key, id, g)
  local reply = take_seat(key, g, keys, player, now, ttl, max_reserved, prefix, KEYS[7])
  if reply[1] == 'reserved' or reply[1] == 'held' then table.insert(reply, 2, id) end
  return reply
end

-- A seat the player reserved before, in a matching lobby that still takes it.
local mine = redis.call('ZRANGE', KEYS[7], 0, -1, 'WITHSCORES')
for i = 1, #mine, 2 do
  local id, expiry = mine[i], tonumber(mine[i + 1])
  if expiry > now and not excluded[id] then
    local key = prefix .. id
    local g = load_game(key)
    if g ~= nil and g.reservations[player] == expiry and g.state == 'creator_joined'
        and g.ending_since == '' and is_present(g, g.creator_id) and matches(key) then
      return held(key, id)
    end
  end
end

-- The view's picks, best first: the first whose record matches and takes the player. A pick
-- the player is not in and that is no longer open (the view was behind) is passed over
-- without a write.
for i = 13, 12 + picks do
  local id = ARGV[i]
  if not excluded[id] then
    local key = prefix .. id
    local g = load_seat_game(key, player)
    if g ~= nil and g.state == 'creator_joined' then
      if (holds_seat(g, player, now) or is_open(g, g.state, now)) and matches(key) then
        local reply = seat_in(key, id, g)
        if reply[1] ~= 'refused' then return reply end
      end
    end
  end
end

-- The fullest matching open game among the oldest `scan`.
local best_key, best_id, best_taken, best_capacity = nil, nil, 0, 1
for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, scan - 1)) do
  local key = prefix .. id
  local taken, capacity, mine = nil, nil, nil
  if not excluded[id] then taken, capacity, mine = candidate(key) end
  if taken ~= nil then
    if mine then return held(key, id) end
    if taken < capacity
        and (best_key == nil or taken * best_capacity > best_taken * capacity) then
      best_key, best_id, best_taken, best_capacity = key, id, taken, capacity
    end
  end
end
if best_key == nil then return {'none'} end

return seat_in(best_key, best_id, load_seat_game(best_key, player))
