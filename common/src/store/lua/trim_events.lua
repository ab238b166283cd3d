-- Trims stream KEYS[1] behind group ARGV[1]: `XTRIM MINID ~ <floor>`, floor = the older of the
-- oldest unacknowledged entry and ARGV[2] (the retention floor, ms). Never removes an entry the
-- group has not acknowledged (or not even received); without the group nothing is trimmed.
-- Reply: entries removed (`~` trims whole radix nodes only, so possibly fewer than allowed).
local oldest, has_group = oldest_unacked(KEYS[1], ARGV[1])
if not has_group then return 0 end
local floor = {tonumber(ARGV[2]), 0}
if oldest ~= nil then
  local unacked = eid(oldest)
  if eid_lt(unacked, floor) then floor = unacked end
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', floor[1] .. '-' .. floor[2])
