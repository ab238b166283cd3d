-- Shared helpers, prepended to every store script. They mirror `mm_common::model` (the
-- readable specification); the differential tests replay random histories through both.

-- A stream entry id "ms-seq" as {ms, seq}; nil for "" or nil.
local function eid(s)
  if s == nil or s == false or s == '' then return nil end
  local dash = string.find(s, '-', 1, true)
  return {tonumber(string.sub(s, 1, dash - 1)), tonumber(string.sub(s, dash + 1))}
end

-- a < b for parsed entry ids, nil being the oldest.
local function eid_lt(a, b)
  if a == nil then return b ~= nil end
  if b == nil then return false end
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end

local PHASE = {created = 0, creator_joined = 1, all_players_joined = 1, in_progress = 2, ended = 3}

-- Loads a game hash into a table (nil when absent), decoding its JSON fields.
local function load_game(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local g = {}
  for i = 1, #flat, 2 do g[flat[i]] = flat[i + 1] end
  g.capacity = tonumber(g.capacity)
  g.created_at = tonumber(g.created_at)
  g.updated_at = tonumber(g.updated_at)
  g.phase = PHASE[g.state]
  g.roster = cjson.decode(g.roster or '{}')
  g.reservations = cjson.decode(g.reservations or '{}')
  return g
end

local function present_count(g)
  local n = 0
  for _, entry in pairs(g.roster) do
    if entry[2] == 1 then n = n + 1 end
  end
  return n
end

local function is_present(g, player)
  local entry = g.roster[player]
  return entry ~= nil and entry[2] == 1
end

local function is_full(g)
  return present_count(g) >= g.capacity or eid_lt(eid(g.last_leave), eid(g.full_mark))
end

local function derive_state(g)
  if g.phase == 0 then return 'created' end
  if g.phase == 1 then
    if is_full(g) then return 'all_players_joined' end
    return 'creator_joined'
  end
  if g.phase == 2 then return 'in_progress' end
  return 'ended'
end

local function seats_taken(g, now)
  local n = present_count(g)
  for player, expiry in pairs(g.reservations) do
    if expiry > now and not is_present(g, player) then n = n + 1 end
  end
  return n
end

-- Present players in the order of the events that let them in, as a JSON array.
local function players_json(g)
  local list = {}
  for player, entry in pairs(g.roster) do
    if entry[2] == 1 then table.insert(list, {eid(entry[1]), player}) end
  end
  if #list == 0 then return '[]' end
  table.sort(list, function(a, b)
    if eid_lt(a[1], b[1]) then return true end
    if eid_lt(b[1], a[1]) then return false end
    return a[2] < b[2]
  end)
  local names = {}
  for i, pair in ipairs(list) do names[i] = pair[2] end
  return cjson.encode(names)
end

local function reservation_member(game_id, player)
  return game_id .. '\31' .. player
end

-- Writes the game's derived fields and puts it in exactly the set its state names (and in
-- the open index while a seat is free). keys = {pending, lobby, active, open, reservations}.
-- Ending a game also drops its reservations and gives the hash its tombstone TTL.
local function save_game(key, g, keys, now, tombstone_ttl)
  local state = derive_state(g)
  local was_ended = g.state == 'ended'
  g.state = state
  redis.call('HSET', key,
    'state', state,
    'updated_at', g.updated_at,
    'players', players_json(g),
    'roster', cjson.encode(g.roster),
    'reservations', cjson.encode(g.reservations),
    'full_mark', g.full_mark or '',
    'last_leave', g.last_leave or '',
    'end_reason', g.end_reason or '')
  local sets = {created = keys[1], creator_joined = keys[2], all_players_joined = keys[2],
                in_progress = keys[3]}
  local target = sets[state]
  for _, set in ipairs({keys[1], keys[2], keys[3]}) do
    if set ~= target then redis.call('ZREM', set, g.id) end
  end
  if target ~= nil then
    local score = g.updated_at
    if state == 'created' then score = g.created_at end
    redis.call('ZADD', target, score, g.id)
  end
  if state == 'creator_joined' and seats_taken(g, now) < g.capacity then
    redis.call('ZADD', keys[4], g.created_at, g.id)
  else
    redis.call('ZREM', keys[4], g.id)
  end
  if state == 'ended' and not was_ended then
    for player, _ in pairs(g.reservations) do
      redis.call('ZREM', keys[5], reservation_member(g.id, player))
    end
    g.reservations = {}
    redis.call('HSET', key, 'reservations', '{}')
    redis.call('EXPIRE', key, tombstone_ttl)
  end
  return state
end
