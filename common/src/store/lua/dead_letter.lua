-- Moves an entry that cannot be applied to the dead-letter stream and acknowledges it,
-- atomically.
-- KEYS: 1 stream, 2 dead letters
-- ARGV: 1 group, 2 entry id, 3 reason, 4 now (ms), 5 dead-letter cap (MAXLEN ~), 6.. the
--       entry's raw fields (name, value, ...)
-- Returns 1 when dead-lettered, 0 when the entry was no longer pending (already handled).
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'reason', ARGV[3],
  'source_id', ARGV[2], 'dead_at', ARGV[4], unpack(fields))
return 1
