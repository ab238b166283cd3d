-- Releases a player's reservation when it has expired (or unconditionally when forced, after
-- the game server refused the join).
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 ending, 8 feed
-- ARGV: 1 game id, 2 player, 3 now (ms), 4 force (1/0), 5 feed cap
-- Returns 1 when a reservation was released, 0 otherwise.
local game_id, player, now, force = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local member = reservation_member(game_id, player)
local g = load_game(KEYS[1])
if g == nil then
  redis.call('ZREM', KEYS[6], member)
  return 0
end
local expiry = g.reservations[player]
if expiry == nil then
  redis.call('ZREM', KEYS[6], member)
  return 0
end
if not force and expiry > now then return 0 end
drop_reservation(g, player)
save_game(KEYS[1], g, {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[5]}, now, 0)
return 1
