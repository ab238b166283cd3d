-- The applied watermark of a product stream: the oldest entry of KEYS[1] not yet acknowledged
-- by group ARGV[1]. Read-only, one snapshot. Reply: {} when caught up (nothing
-- unacknowledged), else {entry id, Redis's clock in ms}: the entry id's time was taken from
-- the same clock, so the caller can measure the age without trusting its own clock to agree.
local oldest = oldest_unacked(KEYS[1], ARGV[1])
if oldest == nil then return {} end
local time = redis.call('TIME')
return {oldest, tostring(tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))}
