-- Keeps the tickets game servers issued to players, so a re-join gets its ticket back without
-- another game-server call (contract section 3, `ticket:<player>`). A ticket is kept only
-- while its game is live and its player still holds a seat in it (creator, present, or
-- reserved); it goes with the game hash. The usual case, a player who just reserved, is
-- answered by the reservation index alone: a member there means a live game holds that
-- reservation, since every script that drops a reservation removes its member in the same
-- call, and ending a game drops them all. Only a player without one has the game read
-- (creator, roster).
-- Keeps a group of tickets of one product, each exactly as a call of its own would (the
-- daemon sends the tickets waiting at the same moment together).
-- KEYS: 1 the product's reservation index, 2.. the games
-- ARGV: player, ticket JSON, game id — three per game, in the order of KEYS 2..
-- Returns, per ticket: 'kept', 'not_kept', or why its game could not be read.
local function keep(game_key, player, ticket, game_id)
  if redis.call('ZSCORE', KEYS[1], reservation_member(game_id, player)) == false then
    local v = redis.call('HMGET', game_key, 'state', 'creator_id')
    if not v[1] or v[1] == 'ended' then return 'not_kept' end
    if player ~= v[2] and not is_present(load_game(game_key), player) then
      return 'not_kept'
    end
  end
  redis.call('HSET', game_key, 'ticket:' .. player, ticket)
  return 'kept'
end

local answers = {}
for i = 2, #KEYS do
  local at = (i - 2) * 3
  local ok, answer = pcall(keep, KEYS[i], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3])
  if ok then
    answers[#answers + 1] = answer
  else
    answers[#answers + 1] = 'unreadable: ' .. tostring(answer.err or answer)
  end
end
return answers
