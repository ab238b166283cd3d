-- Admits a create of `player` under the per-player limits, before any game server is called:
-- takes a token from the player's create bucket and a slot in the player's live games of the
-- product, atomically, so concurrent creates cannot exceed the quota.
-- KEYS: 1 the player's live games (ZSET game id -> admitted at, ms), 2 the player's create
--       bucket
-- ARGV: 1 game id, 2 now (ms), 3 max live games (0 = no quota), 4 rate (creates/s, 0 = no
--       rate limit), 5 burst, 6 game key prefix (`P:{product}:game:`), 7 grace (ms) an
--       admitted game may go unrecorded (its create still running), 8 the set's TTL (ms)
-- Returns {'admitted', ''} | {'rate_limited', retry ms} | {'quota_exceeded', retry ms}.
-- The live games are pruned at check time: a game whose hash says `ended`, or that has no
-- hash once the grace is over (never recorded, or its tombstone expired), no longer counts.
local game_id, now = ARGV[1], tonumber(ARGV[2])
local max_live, rate, burst = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local prefix, grace, set_ttl = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])

local wait, tokens = bucket_take(KEYS[2], rate, burst, now)
if wait > 0 then return {'rate_limited', tostring(wait)} end

if max_live > 0 then
  local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  local count = 0
  for i = 1, #live, 2 do
    local id, admitted = live[i], tonumber(live[i + 1])
    local state = redis.call('HGET', prefix .. id, 'state')
    if state == 'ended' or (not state and admitted + grace <= now) then
      redis.call('ZREM', KEYS[1], id)
    else
      count = count + 1
    end
  end
  if count >= max_live then return {'quota_exceeded', '0'} end
  redis.call('ZADD', KEYS[1], now, game_id)
  redis.call('PEXPIRE', KEYS[1], set_ttl)
end
commit_bucket(KEYS[2], rate, burst, now, tokens)
return {'admitted', ''}
