-- Reserves a seat for a player through the join API, atomically (no over-filling), under the
-- player's join rate and reservation quota (contract section 7, `[limits]`).
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 ending, 8 feed,
--       9 the player's reservations (ZSET game id -> expiry, ms), 10 the player's join bucket
-- ARGV: 1 player, 2 now (ms), 3 ttl (ms), 4 max open reservations (0 = no quota), 5 rate
--       (joins/s, 0 = no rate limit), 6 burst, 7 game key prefix (`P:{product}:game:`), 8 feed cap
-- Returns {'reserved', expiry} | {'held', ticket JSON or ''} | {'refused', code} |
-- {'not_found', ''} | {'rate_limited', retry ms} | {'quota_exceeded', retry ms}.
-- A player who already holds a seat (creator, present, or a live reservation) gets the ticket
-- kept for them (`ticket:<player>`, see `keep_ticket.lua`) and the reservation is not renewed.
local player, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_reserved, rate, burst, prefix = tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), ARGV[7]

local g = load_game(KEYS[1])
if g == nil then return {'not_found', ''} end

-- Every join of an existing game takes a token (re-joins included).
local wait, tokens = bucket_take(KEYS[10], rate, burst, now)
if wait > 0 then return {'rate_limited', tostring(wait)} end
commit_bucket(KEYS[10], rate, burst, now, tokens)
local keys = {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[8]}

local expired = {}
for who, expiry in pairs(g.reservations) do
  if expiry <= now then expired[#expired + 1] = who end
end
for _, who in ipairs(expired) do drop_reservation(g, who) end

local function finish(outcome, detail)
  save_game(KEYS[1], g, keys, now, 0)
  return {outcome, detail}
end

local function held()
  return finish('held', redis.call('HGET', KEYS[1], 'ticket:' .. player) or '')
end

-- A game being ended (its end step marked it) is refused like one that is over.
local state = g.state
if state == 'in_progress' or state == 'ended' or g.ending_since ~= '' then
  return {'refused', 'game_not_open'}
end
if player == g.creator_id or is_present(g, player) then return held() end
if state == 'created' then return finish('refused', 'creator_not_joined') end
if state == 'all_players_joined' then return finish('refused', 'game_full') end
-- A lobby whose creator is not in it (left, or reached by events that never named them) takes
-- nobody until the creator is back.
if not is_present(g, g.creator_id) then return finish('refused', 'creator_not_joined') end
if g.reservations[player] ~= nil then return held() end
if seats_taken(g, now) >= g.capacity then return finish('refused', 'game_full') end

-- The player's other live reservations of the product, pruned of those that expired or that
-- their game no longer holds (the player connected, was released, or the game ended).
if max_reserved > 0 then
  local mine = redis.call('ZRANGE', KEYS[9], 0, -1, 'WITHSCORES')
  local count, soonest = 0, nil
  for i = 1, #mine, 2 do
    local id, expiry = mine[i], tonumber(mine[i + 1])
    local live = false
    if expiry > now and id ~= g.id then
      local raw = redis.call('HGET', prefix .. id, 'reservations')
      if raw then live = cjson.decode(raw)[player] == expiry end
    end
    if live then
      count = count + 1
      if soonest == nil or expiry < soonest then soonest = expiry end
    else
      redis.call('ZREM', KEYS[9], id)
    end
  end
  if count >= max_reserved then
    save_game(KEYS[1], g, keys, now, 0)
    return {'quota_exceeded', tostring(soonest - now)}
  end
end

local expiry = now + ttl
hold_reservation(g, player, expiry)
redis.call('HDEL', KEYS[1], 'ticket:' .. player)
if max_reserved > 0 then
  redis.call('ZADD', KEYS[9], expiry, g.id)
  redis.call('PEXPIRE', KEYS[9], ttl + 1000)
end
return finish('reserved', tostring(expiry))
