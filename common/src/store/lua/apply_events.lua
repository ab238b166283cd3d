-- Applies a batch of stream entries to their games and acknowledges each one, atomically.
-- KEYS: 1 pending, 2 lobby, 3 active, 4 open, 5 reservations, 6 stream, 7 dead letters,
--       8 ending, 9 feed, 10.. the hashes of the batch's games (each game once)
-- ARGV: 1 group, 2 now (ms), 3 tombstone ttl (s), 4 dead-letter cap (MAXLEN ~), 5 feed cap,
--       then 6 per
--       entry: entry id, type, player ('' = none), server id, ts (ms), the index in KEYS of
--       its game's hash
-- Returns {outcome, detail} per entry, flattened: outcome is applied | stale | duplicate | dead;
-- detail is the game's state after the entry, or the dead-letter reason.
--
-- Each entry has exactly the effect it would have alone: a game is loaded once, the batch's
-- entries for it are applied in order to that copy, and it is written back once at the end.
--
-- Redis does not undo a script's writes when it fails part-way, so the script writes nothing
-- until every entry has been decided: the first pass only reads (is the entry still pending
-- for the group, the games) and computes; the second acknowledges, dead-letters and saves.
-- A failure in the first pass (a corrupt game hash, say) leaves the whole batch pending.
local group, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local dead_letter_cap = ARGV[4]
local set_keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[8], KEYS[9], ARGV[5]}
local stream, dead_letters = KEYS[6], KEYS[7]

local KNOWN = {creator_joined = true, player_joined = true, player_left = true,
               all_players_joined = true, game_started = true, game_ended = true,
               heartbeat = true}

local games = {}     -- KEYS index -> the loaded game, or false when its hash is missing
local to_save = {}   -- KEYS indexes of games an entry was applied to, in first-touch order
local handled = {}   -- entry id -> true once decided in this batch
local to_ack = {}    -- entry ids to acknowledge
local to_bury = {}   -- {entry id, reason} to copy to the dead letters

local function dead(entry, reason)
  to_bury[#to_bury + 1] = {entry, reason}
  return 'dead', reason
end

local function apply(entry, kind, player, server, ts, index)
  -- Exactly once: an entry no longer pending for the group (already applied, by this consumer
  -- or another, or earlier in this batch) changes nothing.
  if handled[entry] or #redis.call('XPENDING', stream, group, entry, entry, 1) == 0 then
    return 'duplicate', ''
  end
  handled[entry] = true
  to_ack[#to_ack + 1] = entry

  local g = games[index]
  if g == nil then
    g = load_game(KEYS[index]) or false
    games[index] = g
  end
  if not g then return dead(entry, 'unknown_game') end
  if g.server_id ~= server then
    return dead(entry, 'server_mismatch: event from server ' .. server ..
      ' for a game on server ' .. g.server_id)
  end
  if kind == 'creator_joined' and player ~= '' and player ~= g.creator_id then
    return dead(entry, 'creator_mismatch: creator_joined names ' .. player ..
      ', the creator is ' .. g.creator_id)
  end
  if not KNOWN[kind] then return dead(entry, 'unknown_type: ' .. kind) end
  if not g.to_save then
    g.to_save = true
    to_save[#to_save + 1] = index
  end

  local id = eid(entry)
  local was_ended = g.phase == 3
  if ts > now then ts = now end
  local newer_activity = ts > g.updated_at
  if newer_activity then g.updated_at = ts end

  local function advance(to)
    if to > g.phase then g.phase = to; return true end
    return false
  end

  -- Last-writer-wins roster entry; a player who joins gives up their reservation.
  local function set_presence(who, present)
    if present then drop_reservation(g, who) end
    local existing = g.roster[who]
    if existing ~= nil and not eid_lt(eid(existing[1]), id) then return false end
    g.roster[who] = {entry, present and 1 or 0}
    g.roster_dirty = true
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
    -- The player's kept ticket was used to connect: a re-join after leaving needs a new one.
    if changed then redis.call('HDEL', KEYS[index], 'ticket:' .. player) end
  elseif kind == 'all_players_joined' then
    local newer = eid_lt(eid(g.full_mark), id)
    if newer then g.full_mark = entry end
    changed = advance(1) or newer
  elseif kind == 'game_started' then
    changed = advance(2)
  elseif kind == 'game_ended' then
    changed = advance(3)
    if changed then g.end_reason = 'game_ended' end
  else -- heartbeat: news only if it is newer than the game's last activity (a replay after
       -- the group was recreated, or an older heartbeat, changes nothing: stale)
    changed = newer_activity
  end

  local state = derive_state(g)
  if changed and not was_ended then return 'applied', state end
  return 'stale', state
end

local results = {}
for i = 6, #ARGV, 6 do
  local outcome, detail = apply(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]))
  results[#results + 1] = outcome
  results[#results + 1] = detail
end

-- Second pass: every write.
for i = 1, #to_ack, 1000 do
  redis.call('XACK', stream, group, unpack(to_ack, i, math.min(i + 999, #to_ack)))
end
for _, burial in ipairs(to_bury) do
  local entry, fields = burial[1], {}
  local found = redis.call('XRANGE', stream, entry, entry)
  if found[1] ~= nil then fields = found[1][2] end
  redis.call('XADD', dead_letters, 'MAXLEN', '~', dead_letter_cap, '*', 'reason', burial[2], 'source_id', entry, 'dead_at', now,
    unpack(fields))
end
for _, index in ipairs(to_save) do
  save_game(KEYS[index], games[index], set_keys, now, ttl)
end
return results
