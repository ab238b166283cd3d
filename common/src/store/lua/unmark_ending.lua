-- Clears a game's ending mark when the end step that set it could not have the game deleted
-- on its server: the game is listed and joinable again if it qualifies. Only the mark set at
-- `since` is cleared (a newer end step's mark stays).
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 ending, 8 feed
-- ARGV: 1 since (ms, the mark's time), 2 now (ms), 3 feed cap
-- Returns 1 when the mark was cleared, 0 otherwise.
local since, now = ARGV[1], tonumber(ARGV[2])
local g = load_game(KEYS[1])
if g == nil or g.ending_since ~= since then return 0 end
g.ending_since, g.ending_reason = '', ''
save_game(KEYS[1], g, {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[3]}, now, 0)
return 1
