-- Records a new game in `created`, in the pending set, unless the id is taken.
-- KEYS: 1 game, 2 pending
-- ARGV: 1 game id, 2 created_at (ms, the pending score), 3.. field, value, ...
-- Returns 1 when created, 0 when a game with this id exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
