-- Taking a seat, shared by the scripts that reserve one (`reserve_seat.lua`: join,
-- `rejoin.lua`, `quick_join.lua`), so every way in follows the same rules (contract 5.4):
-- the same refusals, the same per-player reservation quota and the same reservation.
-- Needs `prelude.lua` (games) and `limits_prelude.lua` (token buckets) before it.

-- Every field of a game record but the kept tickets and `players` (which `roster` derives),
-- in the order the reply of a seat-taking script carries them (`RECORD_FIELDS` of
-- `store/seats.rs` is the same list).
local RECORD_FIELDS = {'id', 'product', 'server_id', 'region', 'capacity', 'creator_id',
                       'socket_url', 'settings', 'labels', 'created_at', 'updated_at', 'state',
                       'roster', 'full_mark', 'last_leave', 'reservations', 'end_reason',
                       'ending_since', 'ending_reason'}

-- The hash fields a seat script reads with the game (`load_game`'s `extra`), for the player
-- `player`: those of the record the reply carries that `load_game` does not read, then the
-- ticket kept for the player. Loaded so, a game answers a seat without another read.
local function seat_fields(player)
  return {'product', 'region', 'socket_url', 'settings', 'labels', 'ticket:' .. player}
end

-- The games this call has loaded to take seats in, by key. A seat script handles a group of
-- requests, and a popular lobby gets many of them: each game is read and decoded once per
-- call, its changes stay here, and it is written once (`finish_seat_replies`), with one feed
-- entry, however many seats the call took in it. The call is atomic, so nothing outside it
-- sees the difference: the group's joins get exactly the answers, and leave exactly the
-- record, that one call each would.
local seat_games = {}
-- Replies waiting for their game's record, written when the call's games are saved.
local seat_replies = {}

-- The game at `key`, loaded as a seat for `player` needs it (`seat_fields`); nil if absent.
-- A game this call already loaded is the one it holds, with the changes made so far.
local function load_seat_game(key, player)
  local g = seat_games[key]
  if g then return g end
  g = load_game(key, seat_fields(player))
  if g then
    g.seat_player = player
    seat_games[key] = g
  end
  return g
end

-- Appends the record at `key` to `reply` as one string: the values of `RECORD_FIELDS` in
-- order (an absent field empty), then the id of the change feed entry the script wrote, if
-- any (else empty), joined by the unit separator (\31; a value holding it fails the
-- daemon's decode, whose count of values is then wrong, and is never misread). A
-- script that seats a player answers with the game as it left it, so the daemon hands out
-- the seat without reading the game again, and its view of the open games knows how new it
-- is. `g`, when given, is the game as this script loaded (`load_game`) and saved it: the
-- values come from what the script holds, and only the fields it never loads are read
-- (one string instead of 19 pairs: the reply was a fifth of a join's cost in Redis).
local function with_record(reply, key, feed_entry, g)
  local values
  if g then
    local raw = g.raw
    local v
    if g.seat_player then
      v = {raw[15], raw[16], raw[17], raw[18], raw[19]}
    else
      v = redis.call('HMGET', key, 'product', 'region', 'socket_url', 'settings', 'labels')
    end
    local updated_at = raw[6]
    if g.updated_at ~= tonumber(updated_at) then updated_at = string.format('%d', g.updated_at) end
    values = {g.id, v[1] or '', g.server_id, v[2] or '', raw[4], g.creator_id, v[3] or '',
              v[4] or '', v[5] or '', raw[5], updated_at, g.state, g.roster_json or raw[8] or '',
              g.full_mark, g.last_leave, g.reservations_json or raw[9] or '', g.end_reason,
              g.ending_since, g.ending_reason}
  else
    values = redis.call('HMGET', key, unpack(RECORD_FIELDS))
    for i = 1, #RECORD_FIELDS do values[i] = values[i] or '' end
  end
  values[#RECORD_FIELDS + 1] = feed_entry or ''
  reply[#reply + 1] = table.concat(values, '\31')
  return reply
end

-- Marks the seat game `g` as changed at `now`, to be saved under the game script `keys`.
local function changed_seat_game(g, keys, now)
  g.seat_dirty, g.seat_keys = true, keys
  if g.seat_now == nil or now > g.seat_now then g.seat_now = now end
end

-- Has `reply` get the record of the game at `key` appended when the call's games are saved.
local function record_later(reply, key)
  seat_replies[#seat_replies + 1] = {reply, key}
end

-- Saves every seat game changed since the last save (`save_game`, at the latest `now` that
-- changed it), so what is stored is what the call holds: before a read that `seat_games`
-- does not answer (the open index), and when the call ends.
local function save_seat_games()
  for key, g in pairs(seat_games) do
    if g.seat_dirty then
      g.feed_entry = nil
      save_game(key, g, g.seat_keys, g.seat_now, 0)
      if g.feed_entry then g.seat_feed_entry = g.feed_entry end
      g.seat_dirty = false
    end
  end
end

-- Saves the call's seat games and appends to every reply waiting for one its game's record
-- (`with_record`) with the id of the latest feed entry written for it. Every seat script
-- calls it once, after its last request, before it returns. The replies of one game carry
-- the same record, built once (a lobby filling up gets most of a group: building the string
-- for each was an eighth of a join's cost in Redis).
local function finish_seat_replies()
  save_seat_games()
  local records = {}
  for _, waiting in ipairs(seat_replies) do
    local reply, key = waiting[1], waiting[2]
    local record = records[key]
    if record then
      reply[#reply + 1] = record
    else
      local g = seat_games[key]
      if g then
        with_record(reply, key, g.seat_feed_entry, g)
      else
        with_record(reply, key)
      end
      records[key] = reply[#reply]
    end
  end
  seat_replies = {}
end

-- How many seats of the seat game `g` are taken, counting every reservation it holds
-- (`taken`: present players, and reserved players who are not present), and the soonest
-- expiry among its reservations (`soonest`, math.huge when none). Counted once per call and
-- kept in step by `take_seat`, the only code of a seat script that changes a game's
-- reservations (a lobby filling up gets most of a group: counting it again for every join was
-- a twelfth of a join's cost in Redis). Only once every reservation that expired at `now` is
-- dropped is `taken` the seats `seats_taken` counts at `now`.
local function seat_count(g)
  local count = g.seat_count
  if count == nil then
    local taken, soonest = present_count(g), math.huge
    for who, expiry in pairs(g.reservations) do
      if not is_present(g, who) then taken = taken + 1 end
      if expiry < soonest then soonest = expiry end
    end
    count = {taken = taken, soonest = soonest}
    g.seat_count = count
  end
  return count
end

-- `is_open(g, g.state, now)` for the seat game `g`, its seats taken from `seat_count` while
-- none of its reservations has expired at `now`.
local function seat_game_open(g, now)
  if g.state ~= 'creator_joined' or g.ending_since ~= '' or not is_present(g, g.creator_id) then
    return false
  end
  local count = seat_count(g)
  local taken = count.soonest > now and count.taken or seats_taken(g, now)
  return taken < g.capacity
end

-- The join rules for `player` on the loaded game `g` (its expired reservations are released
-- first), under the reservation quota `max_reserved` (0: none) counted in the player's
-- reservations ZSET `player_key` (game id -> expiry); `prefix` is the product's game key
-- prefix, `keys` the game script keys (pending, lobby, active, open, reservations, ending).
-- Returns {'reserved', expiry, record} | {'held', ticket JSON or '', record} |
-- {'refused', code} | {'quota_exceeded', retry ms}, `record` the game as `with_record`
-- appends it. The player's reservations ZSET gets every new reservation,
-- quota or not (a quick join finds the seats a player already holds there). `mine`, when
-- given, is that ZSET as the caller read it for this request (`ZRANGE … WITHSCORES`), so it
-- is not read again.
local function take_seat(game_key, g, keys, player, now, ttl, max_reserved, prefix, player_key,
                         mine)
  if seat_count(g).soonest <= now then
    local expired = {}
    for who, expiry in pairs(g.reservations) do
      if expiry <= now then expired[#expired + 1] = who end
    end
    for _, who in ipairs(expired) do drop_reservation(g, who) end
    g.seat_count = nil
  end

  local function finish(outcome, detail)
    local reply = {outcome, detail}
    changed_seat_game(g, keys, now)
    if outcome == 'reserved' or outcome == 'held' then record_later(reply, game_key) end
    return reply
  end
  -- The ticket kept for the player, as loaded with the game when it was (`load_seat_game`).
  local function kept_ticket()
    if g.seat_player == player then return g.raw[20] or nil end
    return redis.call('HGET', game_key, 'ticket:' .. player) or nil
  end
  local function held()
    return finish('held', kept_ticket() or '')
  end

  -- A game being ended (its end step marked it) is refused like one that is over.
  local state = g.state
  if state == 'in_progress' or state == 'ended' or g.ending_since ~= '' then
    return {'refused', 'game_not_open'}
  end
  if player == g.creator_id or is_present(g, player) then return held() end
  if state == 'created' then return finish('refused', 'creator_not_joined') end
  if state == 'all_players_joined' then return finish('refused', 'game_full') end
  -- A lobby whose creator is not in it (left, or reached by events that never named them)
  -- takes nobody until the creator is back.
  if not is_present(g, g.creator_id) then return finish('refused', 'creator_not_joined') end
  if g.reservations[player] ~= nil then return held() end
  -- Every reservation left is live (the expired ones were dropped above).
  if seat_count(g).taken >= g.capacity then return finish('refused', 'game_full') end

  -- How many entries the player's ZSET holds, when known (nil: not read).
  local entries = mine and #mine / 2
  -- The player's other live reservations of the product, pruned of those that expired or that
  -- their game no longer holds (the player connected, was released, or the game ended).
  if max_reserved > 0 then
    mine = mine or redis.call('ZRANGE', player_key, 0, -1, 'WITHSCORES')
    local count, soonest = 0, nil
    for i = 1, #mine, 2 do
      local id, expiry = mine[i], tonumber(mine[i + 1])
      local live = false
      if expiry > now and id ~= g.id then
        local other = seat_games[prefix .. id]
        if other then
          live = other.reservations[player] == expiry
        else
          local raw = redis.call('HGET', prefix .. id, 'reservations')
          if raw then live = cjson.decode(raw)[player] == expiry end
        end
      end
      if live then
        count = count + 1
        if soonest == nil or expiry < soonest then soonest = expiry end
      else
        redis.call('ZREM', player_key, id)
      end
    end
    if count >= max_reserved then
      changed_seat_game(g, keys, now)
      return {'quota_exceeded', tostring(soonest - now)}
    end
    entries = count
  end

  -- The writes that can fail (a key of the wrong type) come before the seat is held in `g`:
  -- a request that fails leaves nothing in `seat_games` for the call to save.
  local expiry = now + ttl
  if kept_ticket() then
    redis.call('HDEL', game_key, 'ticket:' .. player)
    if g.seat_player == player then g.raw[20] = false end
  end
  redis.call('ZADD', player_key, ms(expiry), g.id)
  -- The key outlives its latest reservation; a shorter TTL never cuts an older, longer one. A
  -- key that held nothing before this reservation is new, without a TTL to compare.
  if entries == 0 or redis.call('PTTL', player_key) < ttl + 1000 then
    redis.call('PEXPIRE', player_key, ms(ttl + 1000))
  end
  hold_reservation(g, player, expiry)
  local count = g.seat_count
  count.taken = count.taken + 1
  if expiry < count.soonest then count.soonest = expiry end
  return finish('reserved', ms(expiry))
end
