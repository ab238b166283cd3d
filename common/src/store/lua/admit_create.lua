-- Admits creates under the per-player limits, before any game server is called: for each,
-- takes a token from the player's create bucket and a slot among the player's live games of
-- the product, atomically, so concurrent creates cannot exceed the quota. Both live in one
-- hash per player (one read, one write: the admission is on every create's path).
-- Several admissions of one product go in one call (the store groups the creates that
-- arrive while a call is in flight); they are decided one after the other, in order, exactly
-- as separate calls would decide them (two creates of one player in one call see each
-- other).
-- KEYS: i the creates hash of the i-th create's player (`tokens`, `at` = the create bucket;
--       `game:<id>` = when that live game's create was admitted, ms); all of one product
-- ARGV: 1 max live games (0 = no quota), 2 rate (creates/s, 0 = no rate limit), 3 burst,
--       4 game key prefix (`P:{product}:game:`), 5 grace (ms) an admitted game may go
--       unrecorded (its create still running), 6 the hash's TTL (ms) while the quota is on,
--       then per create i: 5 + 2i the game id, 6 + 2i now (ms)
-- Returns, per create, two items: 'admitted', '' | 'rate_limited', retry ms |
-- 'quota_exceeded', retry ms.
-- The live games are pruned at check time: a game whose hash says `ended`, or that has no
-- hash once the grace is over (never recorded, or its tombstone expired), no longer counts.
local max_live, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local prefix, grace, live_ttl = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])

local function admit(key, game_id, now)
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

  local level = nil
  if rate > 0 then
    level = bucket_level(tokens, at, rate, burst, now)
    local wait = bucket_wait(level, rate)
    if wait > 0 then return 'rate_limited', tostring(wait) end
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
    if count >= max_live then return 'quota_exceeded', '0' end
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
  return 'admitted', ''
end

local answers = {}
for i = 1, #KEYS do
  local kind, millis = admit(KEYS[i], ARGV[5 + 2 * i], tonumber(ARGV[6 + 2 * i]))
  answers[#answers + 1] = kind
  answers[#answers + 1] = millis
end
return answers
