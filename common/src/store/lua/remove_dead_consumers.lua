-- Removes from the consumer group the consumers left by crashed instances, atomically: a
-- consumer goes only if it is not a live instance, holds no pending entries and has been idle
-- (no read, claim or acknowledgement attempted) for at least the bound. XGROUP DELCONSUMER
-- drops a consumer's pending entries, so the check and the removal must be one step: a
-- consumer that received entries or came back meanwhile is kept.
-- KEYS: 1 stream
-- ARGV: 1 group, 2 minimum idle (ms), 3.. the names of live instances (never removed)
-- Returns {number removed, removed names..., names kept only because they hold pending
-- entries...}; {0} when the stream or the group does not exist.
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return {0} end
local min_idle = tonumber(ARGV[2])
local live = {}
for i = 3, #ARGV do live[ARGV[i]] = true end
local removed, kept = {}, {}
for _, consumer in ipairs(consumers) do
  local f = {}
  for i = 1, #consumer, 2 do f[consumer[i]] = consumer[i + 1] end
  local name = f['name']
  if not live[name] and tonumber(f['idle']) >= min_idle then
    if tonumber(f['pending']) == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
      removed[#removed + 1] = name
    else
      kept[#kept + 1] = name
    end
  end
end
local result = {#removed}
for _, name in ipairs(removed) do result[#result + 1] = name end
for _, name in ipairs(kept) do result[#result + 1] = name end
return result
