-- The event-application ceiling: Redis consuming its own stream with the store's apply
-- script and no client in the loop. mm-bench sends prelude.lua + this + apply_events.lua; this
-- part reads the next entries and builds the KEYS and ARGV that apply_events.lua expects, as
-- locals that shadow the call's own for the rest of the script.
-- KEYS: 1 pending, 2 lobby, 3 active, 4 open, 5 reservations, 6 stream, 7 dead letters,
--       8 ending, 9 feed
-- ARGV: 1 group, 2 consumer name, 3 entries per call, 4 now (ms), 5 tombstone ttl (s),
--       6 the game hash key without the game id, 7 dead-letter cap, 8 feed cap, 9 'off' to
--       apply without the change feed (the store's save writes no feed entry when its feed
--       key is absent), anything else to write it as the daemon does
local keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]}
if ARGV[9] == 'off' then keys[9] = false end
local argv = {ARGV[1], ARGV[4], ARGV[5], ARGV[7], ARGV[8]}
local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
  'STREAMS', KEYS[6], '>')
if read then
  local index_of = {}
  for _, item in ipairs(read[1][2]) do
    local id, raw = item[1], item[2]
    local fields = {}
    for i = 1, #raw, 2 do fields[raw[i]] = raw[i + 1] end
    local index = index_of[fields.game_id]
    if index == nil then
      keys[#keys + 1] = ARGV[6] .. fields.game_id
      index = #keys
      index_of[fields.game_id] = index
    end
    local ts = fields.ts or string.sub(id, 1, string.find(id, '-', 1, true) - 1)
    argv[#argv + 1] = id
    argv[#argv + 1] = fields.type
    argv[#argv + 1] = fields.player_id or ''
    argv[#argv + 1] = fields.server_id
    argv[#argv + 1] = ts
    argv[#argv + 1] = index
  end
end
local KEYS, ARGV = keys, argv
