-- Keeps the ticket a game server issued to a player, so a re-join gets it back without
-- another game-server call (contract section 3, `ticket:<player>`). Kept only while the game
-- is live and the player still holds a seat in it (creator, present, or reserved); it goes
-- with the game hash. The usual case, a player who just reserved, is answered by the
-- reservation index without decoding the game; only a player without a reservation there
-- (the creator aside) has the roster read.
-- KEYS: 1 game, 2 the product's reservation index
-- ARGV: 1 player, 2 ticket JSON, 3 game id
-- Returns 1 when kept, 0 otherwise.
local player = ARGV[1]
local v = redis.call('HMGET', KEYS[1], 'state', 'creator_id')
if not v[1] or v[1] == 'ended' then return 0 end
local holds = player == v[2]
  or redis.call('ZSCORE', KEYS[2], reservation_member(ARGV[3], player)) ~= false
if not holds then
  local g = load_game(KEYS[1])
  holds = is_present(g, player)
end
if not holds then return 0 end
redis.call('HSET', KEYS[1], 'ticket:' .. player, ARGV[2])
return 1
