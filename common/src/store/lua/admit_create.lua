-- Admits a create of a player under the per-player limits, before any game server is called:
-- takes a token from the player's create bucket and a slot among the player's live games of
-- the product, atomically, so concurrent creates cannot exceed the quota. Both live in one
-- hash (one read, one write: the admission is on every create's path).
-- KEYS: 1 the player's creates (HASH: `tokens`, `at` = the create bucket; `game:<id>` = when
--       that live game's create was admitted, ms)
-- ARGV: 1 game id, 2 now (ms), 3 max live games (0 = no quota), 4 rate (creates/s, 0 = no
--       rate limit), 5 burst, 6 game key prefix (`P:{product}:game:`), 7 grace (ms) an
--       admitted game may go unrecorded (its create still running), 8 the hash's TTL (ms)
--       while the quota is on
-- Returns {'admitted', ''} | {'rate_limited', retry ms} | {'quota_exceeded', retry ms}.
-- The live games are pruned at check time: a game whose hash says `ended`, or that has no
-- hash once the grace is over (never recorded, or its tombstone expired), no longer counts.
-- Safe to run twice (the store resends it when its reply may have been lost): under the
-- live-game quota, a game id already admitted is admitted again without taking another token
-- or slot; with the quota off, a second run takes a second create token (lenient: at worst
-- one create fewer in the burst).
local key, game_id, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local max_live, rate, burst = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local prefix, grace, live_ttl = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])

local tokens, at, live = nil, nil, {}
local fields = redis.call('HGETALL', key)
for i = 1, #fields, 2 do
  local field, value = fields[i], fields[i + 1]
  if field == 'tokens' then
    tokens = tonumber(value)
  elseif field == 'at' then
    at = tonumber(value)
  elseif string.sub(field, 1, 5) == 'game:' then
    live[#live + 1] = {string.sub(field, 6), tonumber(value)}
  end
end

for _, entry in ipairs(live) do
  if entry[1] == game_id then return {'admitted', ''} end
end

local level = nil
if rate > 0 then
  level = bucket_level(tokens, at, rate, burst, now)
  local wait = bucket_wait(level, rate)
  if wait > 0 then return {'rate_limited', tostring(wait)} end
end

local ttl = 0
local write = {}
if max_live > 0 then
  local count = 0
  for _, entry in ipairs(live) do
    local id, admitted = entry[1], entry[2]
    local state = redis.call('HGET', prefix .. id, 'state')
    if state == 'ended' or (not state and admitted + grace <= now) then
      redis.call('HDEL', key, 'game:' .. id)
    else
      count = count + 1
    end
  end
  if count >= max_live then return {'quota_exceeded', '0'} end
  write[#write + 1] = 'game:' .. game_id
  write[#write + 1] = now
  ttl = live_ttl
end
if level ~= nil then
  write[#write + 1] = 'tokens'
  write[#write + 1] = tostring(level - 1)
  write[#write + 1] = 'at'
  write[#write + 1] = now
  ttl = math.max(ttl, bucket_ttl(rate, burst))
end
if #write > 0 then
  redis.call('HSET', key, unpack(write))
  redis.call('PEXPIRE', key, ttl)
end
return {'admitted', ''}
