-- Trims stream KEYS[1] behind group ARGV[1]: `XTRIM MINID ~ <floor>`, floor = the older of the
-- oldest unacknowledged entry and ARGV[2] (the retention floor, ms). Never removes an entry the
-- group has not acknowledged (or not even received); without the group nothing is trimmed.
-- At most ARGV[3] entries go per call (`LIMIT`, which keeps each call short however large the
-- backlog; Redis's default limit, 100 nodes' worth, is less than a busy stream gains between
-- trims). Reply: entries removed (`~` trims whole radix nodes only, so possibly fewer than
-- allowed; fewer than the limit means nothing more can go yet).
local oldest, has_group = oldest_unacked(KEYS[1], ARGV[1])
if not has_group then return 0 end
-- The floor as an id string: the retention floor's digits as given (a Lua number would print
-- large values in exponent form), or the oldest unacknowledged entry's id when that is older.
local floor = ARGV[2] .. '-0'
if oldest ~= nil and eid_lt(eid(oldest), eid(floor)) then floor = oldest end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', floor, 'LIMIT', ARGV[3])
