-- Keeps the ticket a game server issued to a player, so a re-join gets it back without
-- another game-server call (contract section 3, `ticket:<player>`). Kept only while the game
-- is live and the player still holds a seat in it (creator, present, or reserved); it goes
-- with the game hash.
-- KEYS: 1 game
-- ARGV: 1 player, 2 ticket JSON
-- Returns 1 when kept, 0 otherwise.
local player = ARGV[1]
local g = load_game(KEYS[1])
if g == nil or g.state == 'ended' then return 0 end
if player ~= g.creator_id and not is_present(g, player) and g.reservations[player] == nil then
  return 0
end
redis.call('HSET', KEYS[1], 'ticket:' .. player, ARGV[2])
return 1
