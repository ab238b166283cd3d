-- Applies one stream entry to its game and acknowledges it, atomically.
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 stream, 8 dead letters
-- ARGV: 1 group, 2 entry id, 3 type, 4 player ('' = none), 5 server id, 6 ts (ms), 7 now (ms),
--       8 tombstone ttl (s), 9 game id, 10.. the entry's raw fields (name, value, ...)
-- Returns {outcome, detail}: outcome is applied | stale | duplicate | dead.
local group, entry, kind, player, server = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ts, now, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

-- Acknowledging first makes the step exactly-once: an entry that is no longer pending for the
-- group (already applied, by this consumer or another) changes nothing.
if redis.call('XACK', KEYS[7], group, entry) == 0 then return {'duplicate', ''} end

local function dead(reason)
  local fields = {}
  for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('XADD', KEYS[8], '*', 'reason', reason, 'source_id', entry, 'dead_at', now,
    unpack(fields))
  return {'dead', reason}
end

local g = load_game(KEYS[1])
if g == nil then return dead('unknown_game') end
if g.server_id ~= server then
  return dead('server_mismatch: event from server ' .. server .. ' for a game on server ' .. g.server_id)
end
if kind == 'creator_joined' and player ~= '' and player ~= g.creator_id then
  return dead('creator_mismatch: creator_joined names ' .. player .. ', the creator is ' .. g.creator_id)
end

local id = eid(entry)
local was_ended = g.phase == 3
if ts > now then ts = now end
if ts > g.updated_at then g.updated_at = ts end

local function advance(to)
  if to > g.phase then g.phase = to; return true end
  return false
end

-- Last-writer-wins roster entry; a player who joins gives up their reservation.
local function set_presence(who, present)
  if present and g.reservations[who] ~= nil then
    g.reservations[who] = nil
    redis.call('ZREM', KEYS[6], reservation_member(g.id, who))
  end
  local existing = g.roster[who]
  if existing ~= nil and not eid_lt(eid(existing[1]), id) then return false end
  g.roster[who] = {entry, present and 1 or 0}
  return true
end

local changed
if kind == 'creator_joined' then
  local joined = set_presence(g.creator_id, true)
  changed = advance(1) or joined
elseif kind == 'player_joined' then
  local joined = set_presence(player, true)
  local advanced = player == g.creator_id and advance(1)
  changed = joined or advanced
elseif kind == 'player_left' then
  if eid_lt(eid(g.last_leave), id) then g.last_leave = entry end
  changed = set_presence(player, false)
elseif kind == 'all_players_joined' then
  local newer = eid_lt(eid(g.full_mark), id)
  if newer then g.full_mark = entry end
  changed = advance(1) or newer
elseif kind == 'game_started' then
  changed = advance(2)
elseif kind == 'game_ended' then
  changed = advance(3)
  if changed then g.end_reason = 'game_ended' end
elseif kind == 'heartbeat' then
  changed = true
else
  return dead('unknown_type: ' .. kind)
end

local state = save_game(KEYS[1], g, {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]}, now, ttl)
if changed and not was_ended then return {'applied', state} end
return {'stale', state}
