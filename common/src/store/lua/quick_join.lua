-- Quick join (contract 5.4, `POST /v1/games/quick-join`): reserves a seat for a player in the
-- best matching open game of a product, atomically, under the same join bucket, reservation
-- quota and reservation rules as a join (`take_seat`).
-- Matching: the game's `region` equals the wanted one (when given) and its `labels` hold
-- every wanted pair. The daemon's view of open games names its picks, best first (the fullest
-- of the `scan` oldest matching games); each is checked here against the record (matching,
-- then the join rules), and the first that seats the player gets the seat. When none does
-- (the view was behind the record) or none was named, the candidates are the quick join's
-- `scan` oldest games of the open index; the best is the fullest (seats taken / capacity), the
-- oldest among equals, so lobbies fill and start. A `scan` of 0 reads no candidate: the
-- daemon's view holds no matching open game, so a query that matches nothing costs no read of
-- the open index.
-- A player who already holds a seat in a matching game gets it back (idempotent, like a
-- re-join): a live reservation of theirs (their reservations ZSET) in a lobby that takes it,
-- or a pick or candidate they created, are present in or reserved.
--
-- Takes a group of quick joins of one product, under the same reservation TTL and limits,
-- and handles each exactly as a call of its own would, one after the other in their
-- order (the daemon sends the quick joins waiting at the same moment together,
-- `store/joins.rs`): a quick join sees the seats the ones before it in its group took.
-- KEYS: 1 pending, 2 lobby, 3 active, 4 open, 5 reservations, 6 ending, 7 feed, then two per
--       quick join: the player's reservations (ZSET game id -> expiry, ms), the player's join
--       bucket
-- ARGV: 1 ttl (ms), 2 max open reservations (0 = no quota), 3 rate (joins/s, 0 = no rate
--       limit), 4 burst, 5 game key prefix (`P:{product}:game:`), 6 feed cap, then seven per
--       quick join: the player, now (ms), the wanted region ('' = any), the wanted labels
--       (JSON object, '' = none), the view's picks (game ids, best first, separated by
--       spaces), the games not to pick (the same), those whose game server failed an earlier
--       attempt of the same request (an attempt with any takes no token from the join bucket:
--       the request's first attempt took it), the scan (how many of the oldest open games are
--       candidates when no pick takes the player; 0: none)
-- Returns, per quick join, one of {'reserved', game id, expiry, record} | {'held', game id,
-- ticket JSON or '', record} | {'none'} | {'rate_limited', retry ms} | {'quota_exceeded',
-- retry ms} | {'failed', why} (a game it read could not be decoded; the other quick joins of
-- the group are not affected); `record` is the game as the call left it (after the whole
-- group: each game is written once, see `seat_games`), as `with_record` appends it.
local ttl, max_reserved, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local prefix = ARGV[5]
local keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[6]}

-- The game ids of a space-separated list, one at a time: a quick join usually stops at its
-- first pick, and splitting all eight the daemon sends was a seventh of its script's work.
local function each_id(list)
  local at, last = 1, #list
  return function()
    while at <= last do
      local space = string.find(list, ' ', at, true) or (last + 1)
      local id = string.sub(list, at, space - 1)
      at = space + 1
      if id ~= '' then return id end
    end
    return nil
  end
end

-- The game ids of a space-separated list, as a set.
local function id_set(list)
  local set = {}
  for id in each_id(list) do set[id] = true end
  return set
end

-- One quick join of the group, as the header describes: `picks_list` and `excluded_list`
-- are its space-separated game ids, `scan` how many of the oldest open games are candidates.
local function quick_join(player_key, bucket_key, player, now, region, wanted_json, picks_list,
                           excluded_list, scan)
  local wanted = nil
  if wanted_json ~= '' then
    wanted = cjson.decode(wanted_json)
    if next(wanted) == nil then wanted = nil end
  end

  local excluded = id_set(excluded_list)

  -- Every quick join request takes one token from the join bucket (its first attempt).
  if excluded_list == '' then
    local wait, tokens = bucket_take(bucket_key, rate, burst, now)
    if wait > 0 then return {'rate_limited', tostring(wait)} end
    commit_bucket(bucket_key, rate, burst, now, tokens)
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
    local reply = {'held', id, redis.call('HGET', key, 'ticket:' .. player) or ''}
    record_later(reply, key)
    return reply
  end

  -- The player's reservations of the product (game id -> expiry), read once for the request.
  local mine = redis.call('ZRANGE', player_key, 0, -1, 'WITHSCORES')

  -- Takes a seat in the game `id` (loaded as `g`): the seat script's reply with the game's id
  -- after the outcome.
  local function seat_in(key, id, g)
    local reply = take_seat(key, g, keys, player, now, ttl, max_reserved, prefix, player_key,
                            mine)
    if reply[1] == 'reserved' or reply[1] == 'held' then table.insert(reply, 2, id) end
    return reply
  end

  -- A seat the player reserved before, in a matching lobby that still takes it.
  for i = 1, #mine, 2 do
    local id, expiry = mine[i], tonumber(mine[i + 1])
    if expiry > now and not excluded[id] then
      local key = prefix .. id
      local g = load_seat_game(key, player)
      if g ~= nil and g.reservations[player] == expiry and g.state == 'creator_joined'
          and g.ending_since == '' and is_present(g, g.creator_id) and matches(key) then
        return held(key, id)
      end
    end
  end

  -- The view's picks, best first: the first whose record matches and takes the player. A pick
  -- the player is not in and that is no longer open (the view was behind) is passed over
  -- without a write.
  for id in each_id(picks_list) do
    if not excluded[id] then
      local key = prefix .. id
      local g = load_seat_game(key, player)
      if g ~= nil and g.state == 'creator_joined' then
        if (holds_seat(g, player, now) or seat_game_open(g, now)) and matches(key) then
          local reply = seat_in(key, id, g)
          if reply[1] ~= 'refused' then return reply end
        end
      end
    end
  end

  -- The fullest matching open game among the oldest `scan` (none when `scan` is 0: ZRANGE
  -- 0 -1 would read them all).
  if scan < 1 then return {'none'} end
  -- The open index and the candidates are read from Redis: what this call changed is saved
  -- first.
  save_seat_games()
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
end

local answers = {}
for first = 8, #KEYS, 2 do
  local at = 6 + (first - 8) / 2 * 7
  local ok, answer = pcall(quick_join, KEYS[first], KEYS[first + 1], ARGV[at + 1],
    tonumber(ARGV[at + 2]), ARGV[at + 3], ARGV[at + 4], ARGV[at + 5], ARGV[at + 6],
    tonumber(ARGV[at + 7]))
  if ok then
    answers[#answers + 1] = answer
  else
    answers[#answers + 1] = {'failed', tostring(answer.err or answer)}
  end
end
finish_seat_replies()
return answers
