-- Per-player limits shared by `admit_create.lua` and `reserve_seat.lua` (contract section 7,
-- `[limits]`). Every key they touch is a per-product key (`P:{product}:…`), so one script
-- stays in one Redis Cluster slot.

-- Takes one token from the bucket at `key` (a hash {tokens, at}) refilled at `rate` tokens a
-- second up to `burst`, unless `rate` is 0 (no limit). Returns 0 when a token was taken (the
-- write is left to `commit_bucket`), else the milliseconds until one is there.
local function bucket_take(key, rate, burst, now)
  if rate <= 0 then return 0, nil end
  local v = redis.call('HMGET', key, 'tokens', 'at')
  local tokens, at = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or at == nil then
    tokens = burst
  else
    local elapsed = now - at
    if elapsed < 0 then elapsed = 0 end
    tokens = math.min(burst, tokens + elapsed * rate / 1000)
  end
  if tokens < 1 then return math.ceil((1 - tokens) * 1000 / rate), nil end
  return 0, tokens - 1
end

-- Stores the bucket after a token was taken; it expires once it would be full again.
local function commit_bucket(key, rate, burst, now, tokens)
  if rate <= 0 or tokens == nil then return end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', now)
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
end
