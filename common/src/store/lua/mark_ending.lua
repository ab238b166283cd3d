-- The end step's commitment, taken before the game server is called: marks a live game as
-- ending if the guard holds. A marked game leaves the open index at once and joins are refused
-- (`game_not_open`); events keep being applied but never list it again; the ending index
-- `P:{product}:ending` holds it, scored by the mark's time, until the game ends or the mark is
-- cleared. A game already marked is marked again: the newer end step owns the mark.
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 ending, 8 feed
-- ARGV: 1 reason, 2 now (ms, the mark's time and token), 3 guard, 4 guard set,
--       5 guard cutoff (ms), 6 feed cap; the guards are those of remove_game.lua
-- Returns {'marked', state} | {'refused', state} | {'not_found', ''} | {'ended', ''}.
local reason, now, guard = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local g = load_game(KEYS[1])
if g == nil then return {'not_found', ''} end
if g.state == 'ended' then return {'ended', ''} end
local state = g.state
if guard == 'cancellable' and g.phase >= 2 then return {'refused', state} end
if guard == 'stale' then
  local set_key = ({pending = KEYS[2], lobby = KEYS[3], active = KEYS[4]})[ARGV[4]]
  if set_key == nil then return redis.error_reply('mark_ending: unknown guard set ' .. ARGV[4]) end
  local score = redis.call('ZSCORE', set_key, g.id)
  if not score or tonumber(score) > tonumber(ARGV[5]) then return {'refused', state} end
elseif guard ~= 'any' and guard ~= 'cancellable' then
  return redis.error_reply('mark_ending: unknown guard ' .. guard)
end
g.ending_since = ARGV[2]
g.ending_reason = reason
save_game(KEYS[1], g, {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[6]}, now, 0)
return {'marked', state}
