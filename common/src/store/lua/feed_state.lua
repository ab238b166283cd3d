-- Where a product's change feed stands, read-only: {exists (1/0), last generated id, largest
-- id ever deleted by XDEL, entries ever added, entries it holds now}. The view compares these with what it has
-- read to tell a trim past its position, or a feed that went back or vanished (Redis lost
-- its data), from normal progress.
-- KEYS: 1 feed
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '0-0', '0-0', 0, 0} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local t = {}
for i = 1, #info, 2 do t[info[i]] = info[i + 1] end
return {1, t['last-generated-id'], t['max-deleted-entry-id'], t['entries-added'], t['length']}
