-- Reserves a seat for a player through the join API, atomically (no over-filling).
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 ending
-- ARGV: 1 player, 2 now (ms), 3 ttl (ms)
-- Returns {'reserved', expiry} | {'held', ''} | {'refused', code} | {'not_found', ''}.
local player, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local g = load_game(KEYS[1])
if g == nil then return {'not_found', ''} end
local keys = {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]}

local expired = {}
for who, expiry in pairs(g.reservations) do
  if expiry <= now then expired[#expired + 1] = who end
end
for _, who in ipairs(expired) do drop_reservation(g, who) end

local function finish(outcome, detail)
  save_game(KEYS[1], g, keys, now, 0)
  return {outcome, detail}
end

-- A game being ended (its end step marked it) is refused like one that is over.
local state = g.state
if state == 'in_progress' or state == 'ended' or g.ending_since ~= '' then
  return {'refused', 'game_not_open'}
end
if player == g.creator_id or is_present(g, player) then return finish('held', '') end
if state == 'created' then return finish('refused', 'creator_not_joined') end
if state == 'all_players_joined' then return finish('refused', 'game_full') end
-- A lobby whose creator is not in it (left, or reached by events that never named them) takes
-- nobody until the creator is back.
if not is_present(g, g.creator_id) then return finish('refused', 'creator_not_joined') end
local expiry = now + ttl
if g.reservations[player] ~= nil then
  hold_reservation(g, player, expiry)
  return finish('held', '')
end
if seats_taken(g, now) >= g.capacity then return finish('refused', 'game_full') end
hold_reservation(g, player, expiry)
return finish('reserved', tostring(expiry))
