-- Per-player limits shared by `admit_create.lua` and `reserve_seat.lua` (contract section 7,
-- `[limits]`). Every key they touch is a per-product key (`P:{product}:…`), so one script
-- stays in one Redis Cluster slot.

-- The tokens a bucket last left at `tokens` at time `at` (nil: never used, full) holds at
-- `now`, refilled at `rate` tokens a second up to `burst`.
local function bucket_level(tokens, at, rate, burst, now)
  if tokens == nil or at == nil then return burst end
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  return math.min(burst, tokens + elapsed * rate / 1000)
end

-- How long (ms) until a bucket at `level` has a token: 0 when it has one now.
local function bucket_wait(level, rate)
  if level >= 1 then return 0 end
  return math.ceil((1 - level) * 1000 / rate)
end

-- How long (ms) an untouched bucket takes to be full again: its key's TTL.
local function bucket_ttl(rate, burst)
  return math.ceil(burst * 1000 / rate) + 1000
end

-- Takes one token from the bucket at `key` (a hash {tokens, at}), unless `rate` is 0 (no
-- limit). Returns 0 when a token was taken (the write is left to `commit_bucket`), else the
-- milliseconds until one is there.
local function bucket_take(key, rate, burst, now)
  if rate <= 0 then return 0, nil end
  local v = redis.call('HMGET', key, 'tokens', 'at')
  local level = bucket_level(tonumber(v[1]), tonumber(v[2]), rate, burst, now)
  local wait = bucket_wait(level, rate)
  if wait > 0 then return wait, nil end
  return 0, level - 1
end

-- Stores the bucket after a token was taken; it expires once it would be full again.
local function commit_bucket(key, rate, burst, now, tokens)
  if rate <= 0 or tokens == nil then return end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', now)
  redis.call('PEXPIRE', key, bucket_ttl(rate, burst))
end
