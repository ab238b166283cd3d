-- Gives back the live-game slot `admit_create.lua` took for a create that did not record its
-- game (the game server refused or failed, or the record failed).
-- KEYS: 1 the player's creates
-- ARGV: 1 game id
return redis.call('HDEL', KEYS[1], 'game:' .. ARGV[1])
