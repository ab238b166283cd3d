-- Acquires the lease KEYS[1] for owner ARGV[1] if it is free, or renews it (ARGV[2] ms) if the
-- owner already holds it. 1: held by the owner now; 0: someone else holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
