-- Gives back the live-game slot `admit_create.lua` took for a create that did not record its
-- game (the game server refused or failed, or the record failed).
-- KEYS: 1 the player's live games
-- ARGV: 1 game id
return redis.call('ZREM', KEYS[1], ARGV[1])
