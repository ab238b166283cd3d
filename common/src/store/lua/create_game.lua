-- Records a new game in `created`, in the pending set, unless the id is taken.
-- KEYS: 1 game, 2 pending
-- ARGV: 1 game id, 2 created_at (ms, the pending score), 3.. field, value, ...
-- Returns 1 when created, 0 when a game with this id exists.
-- Safe to run twice (the store resends it when its reply may have been lost): a hash that
-- already holds every field and value given is this very create, applied by the first run,
-- and is answered 1 again without a write. Ids are fresh (UUIDv7), and nothing else can
-- change a pending game before its create is answered (its creator has no ticket yet).
if redis.call('EXISTS', KEYS[1]) == 1 then
  for i = 3, #ARGV, 2 do
    if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then return 0 end
  end
  return 1
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
