-- Shared helpers, prepended to every store script. They mirror `mm_common::model` (the
-- specification and test oracle); the differential property test (tests/tests/it/oracle.rs)
-- runs every operation through both.

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

-- A time in ms (or any whole number) as Redis and JSON take it: integer digits, without the
-- float formatting (`%.14g`) a Lua number gets when it is turned into a string, which was a
-- tenth of a join's cost in Redis.
local function ms(n)
  return string.format('%d', n)
end

local PHASE = {created = 0, creator_joined = 1, all_players_joined = 1, in_progress = 2, ended = 3}

-- The hash fields the scripts read, in `HMGET` order (the others are written at creation and
-- never change: product, region, socket_url, settings; players is derived from roster).
local GAME_FIELDS = {'id', 'server_id', 'creator_id', 'capacity', 'created_at', 'updated_at',
                     'state', 'roster', 'reservations', 'full_mark', 'last_leave', 'end_reason',
                     'ending_since', 'ending_reason'}

-- Loads a game hash into a table (nil when absent), decoding its JSON fields (the values as
-- read stay in `g.raw`, in `GAME_FIELDS` order, then the `extra` fields, if asked for, in
-- their order: a script that needs more of the hash reads it in the same call). Nothing is
-- written until `save_game`: `g.saved` keeps the scalar fields as stored, so it writes only
-- what changed; code that changes `g.roster` sets `g.roster_dirty`, and reservations change
-- only through `hold_reservation` / `drop_reservation`, which queue their index writes.
local function load_game(key, extra)
  local v
  if extra then
    local fields = {unpack(GAME_FIELDS)}
    for i, field in ipairs(extra) do fields[#GAME_FIELDS + i] = field end
    v = redis.call('HMGET', key, unpack(fields))
  else
    v = redis.call('HMGET', key, unpack(GAME_FIELDS))
  end
  if not v[1] then return nil end
  local g = {id = v[1], server_id = v[2], creator_id = v[3], capacity = tonumber(v[4]),
             created_at = tonumber(v[5]), updated_at = tonumber(v[6]), state = v[7],
             full_mark = v[10] or '', last_leave = v[11] or '', end_reason = v[12] or '',
             ending_since = v[13] or '', ending_reason = v[14] or ''}
  g.phase = PHASE[g.state]
  g.roster = cjson.decode(v[8] or '{}')
  g.reservations = cjson.decode(v[9] or '{}')
  g.saved = {state = g.state, updated_at = g.updated_at, full_mark = g.full_mark,
             last_leave = g.last_leave, end_reason = g.end_reason,
             ending_since = g.ending_since, ending_reason = g.ending_reason}
  g.reservation_writes = {}
  -- Reservations held since the load for players the map did not have, while nothing was
  -- dropped: `save_game` then appends them to the stored JSON instead of encoding it whole.
  g.reservations_added = {}
  g.raw = v
  return g
end

local function reservation_member(game_id, player)
  return game_id .. '\31' .. player
end

-- Holds a seat for `player` until `expiry` (ms).
local function hold_reservation(g, player, expiry)
  if g.reservations_added and g.reservations[player] == nil then
    g.reservations_added[#g.reservations_added + 1] = {player, expiry}
  else
    g.reservations_added = nil
  end
  g.reservations[player] = expiry
  g.reservations_dirty = true
  g.reservation_writes[#g.reservation_writes + 1] = {player, expiry}
end

-- Gives up `player`'s seat reservation, if any.
local function drop_reservation(g, player)
  if g.reservations[player] == nil then return end
  g.reservations_added = nil
  g.reservations[player] = nil
  g.reservations_dirty = true
  g.reservation_writes[#g.reservation_writes + 1] = {player, false}
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

-- Whether `player` holds a seat in `g` at `now`: its creator, present, or a live reservation
-- (mirrors `Game::holds_seat`).
local function holds_seat(g, player, now)
  local reserved = g.reservations[player]
  return player == g.creator_id or is_present(g, player) or (reserved ~= nil and reserved > now)
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

-- Whether a game in `state` is listed open: creator_joined, its creator present, no end step
-- under way (`ending_since`), a seat free.
local function is_open(g, state, now)
  return state == 'creator_joined' and g.ending_since == '' and is_present(g, g.creator_id)
    and seats_taken(g, now) < g.capacity
end

-- The product's change feed (contract 3.2, `P:{product}:feed`), `feed` its stream key, `cap`
-- its `MAXLEN ~`. `op open` when the game enters the open index: every field a listing shows
-- (as in the game hash). `op update` while it stays listed: only what can change there —
-- `updated_at`, and `roster` and/or `reservations` when they changed (absolute values, so an
-- entry applied twice changes nothing). `op gone` when it leaves the index. `roster_json` and
-- `reservations_json` are the encodings `save_game` already wrote, or nil when unchanged.
local function feed_open(key, g, feed, cap, roster_json, reservations_json)
  local extra = redis.call('HMGET', key, 'region', 'labels')
  local fields = {'op', 'open', 'id', g.id, 'server_id', g.server_id, 'region', extra[1] or '',
                  'capacity', ms(g.capacity), 'creator_id', g.creator_id,
                  'created_at', ms(g.created_at), 'updated_at', ms(g.updated_at),
                  'roster', roster_json or cjson.encode(g.roster),
                  'reservations', reservations_json
                    or (next(g.reservations) == nil and '{}' or cjson.encode(g.reservations))}
  if extra[2] then
    fields[#fields + 1] = 'labels'
    fields[#fields + 1] = extra[2]
  end
  return redis.call('XADD', feed, 'MAXLEN', '~', cap, '*', unpack(fields))
end

local function feed_update(feed, cap, g, roster_json, reservations_json)
  local fields = {'op', 'update', 'id', g.id, 'updated_at', ms(g.updated_at)}
  if roster_json then
    fields[#fields + 1] = 'roster'
    fields[#fields + 1] = roster_json
  end
  if reservations_json then
    fields[#fields + 1] = 'reservations'
    fields[#fields + 1] = reservations_json
  end
  return redis.call('XADD', feed, 'MAXLEN', '~', cap, '*', unpack(fields))
end

local function feed_gone(feed, cap, id)
  return redis.call('XADD', feed, 'MAXLEN', '~', cap, '*', 'op', 'gone', 'id', id)
end

-- The reservations map as JSON. When the script only added players to the map it loaded, the
-- stored JSON gets them appended (same content, another key order), so a join does not
-- encode every expiry of the map again; otherwise it is encoded whole.
local function reservations_encoded(g)
  if next(g.reservations) == nil then return '{}' end
  local added, stored = g.reservations_added, g.raw and g.raw[9]
  if added and #added > 0 and stored and string.sub(stored, -1) == '}' then
    local parts = {}
    for i, pair in ipairs(added) do parts[i] = cjson.encode(pair[1]) .. ':' .. ms(pair[2]) end
    local before = string.sub(stored, 1, -2)
    -- An object without a quote is empty (`{}`, `{ }`): nothing to separate from.
    if string.find(before, '"', 1, true) == nil then
      return '{' .. table.concat(parts, ',') .. '}'
    end
    return before .. ',' .. table.concat(parts, ',') .. '}'
  end
  return cjson.encode(g.reservations)
end

-- Writes what changed of the game (its queued reservation index writes first) and its derived
-- fields, and keeps it in exactly the set its state names (and in the open index while it is
-- open, in the ending index while it is marked). keys = {pending, lobby, active, open,
-- reservations, ending, feed, feed cap}: whenever the game enters or leaves the open index, or
-- its roster or reservations change while it is listed, one feed entry says so (a heartbeat
-- alone writes none). Without keys[7] no feed entry is written. Set membership follows the
-- stored state (every script keeps the two in step). Ending a game also drops its
-- reservations and its ending mark and gives the hash its tombstone TTL. The id of the feed
-- entry written, if any, is left in `g.feed_entry`.
local function save_game(key, g, keys, now, tombstone_ttl)
  local state = derive_state(g)
  local before = g.saved
  local ending = state == 'ended' and before.state ~= 'ended'
  if ending then
    for player, _ in pairs(g.reservations) do drop_reservation(g, player) end
    g.ending_since, g.ending_reason = '', ''
  end
  for _, write in ipairs(g.reservation_writes) do
    local member = reservation_member(g.id, write[1])
    if write[2] then
      redis.call('ZADD', keys[5], ms(write[2]), member)
    else
      redis.call('ZREM', keys[5], member)
    end
  end
  g.reservation_writes = {}
  local changes = {}
  local function put(field, value, old)
    if value ~= old then
      changes[#changes + 1] = field
      changes[#changes + 1] = value
    end
  end
  put('state', state, before.state)
  if g.updated_at ~= before.updated_at then
    changes[#changes + 1] = 'updated_at'
    changes[#changes + 1] = ms(g.updated_at)
  end
  put('full_mark', g.full_mark, before.full_mark)
  put('last_leave', g.last_leave, before.last_leave)
  put('end_reason', g.end_reason, before.end_reason)
  put('ending_since', g.ending_since, before.ending_since)
  put('ending_reason', g.ending_reason, before.ending_reason)
  local roster_json, reservations_json
  if g.roster_dirty then
    roster_json = cjson.encode(g.roster)
    put('players', players_json(g))
    put('roster', roster_json)
  end
  if g.reservations_dirty then
    reservations_json = reservations_encoded(g)
    put('reservations', reservations_json)
  end
  if #changes > 0 then redis.call('HSET', key, unpack(changes)) end
  -- What was written stays at hand for the script's reply (`with_record`).
  if roster_json then g.roster_json = roster_json end
  if reservations_json then g.reservations_json = reservations_json end

  local sets = {created = keys[1], creator_joined = keys[2], all_players_joined = keys[2],
                in_progress = keys[3]}
  local old_set, new_set = sets[before.state], sets[state]
  if old_set ~= nil and old_set ~= new_set then redis.call('ZREM', old_set, g.id) end
  if new_set ~= nil then
    if state == 'created' then
      if old_set ~= new_set then redis.call('ZADD', new_set, ms(g.created_at), g.id) end
    elseif old_set ~= new_set or g.updated_at ~= before.updated_at then
      redis.call('ZADD', new_set, ms(g.updated_at), g.id)
    end
  end
  if is_open(g, state, now) then
    local added = redis.call('ZADD', keys[4], ms(g.created_at), g.id)
    if keys[7] then
      if added == 1 then
        g.feed_entry = feed_open(key, g, keys[7], keys[8], roster_json, reservations_json)
      elseif roster_json or reservations_json then
        g.feed_entry = feed_update(keys[7], keys[8], g, roster_json, reservations_json)
      end
    end
  elseif state == 'creator_joined' or before.state == 'creator_joined' then
    local removed = redis.call('ZREM', keys[4], g.id)
    if keys[7] and removed == 1 then g.feed_entry = feed_gone(keys[7], keys[8], g.id) end
  end
  if g.ending_since ~= before.ending_since then
    if g.ending_since == '' then
      redis.call('ZREM', keys[6], g.id)
    else
      redis.call('ZADD', keys[6], tonumber(g.ending_since), g.id)
    end
  end
  if ending then redis.call('EXPIRE', key, tombstone_ttl) end

  g.state = state
  g.saved = {state = state, updated_at = g.updated_at, full_mark = g.full_mark,
             last_leave = g.last_leave, end_reason = g.end_reason,
             ending_since = g.ending_since, ending_reason = g.ending_reason}
  g.roster_dirty, g.reservations_dirty = false, false
  return state
end
