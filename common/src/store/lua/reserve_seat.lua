-- Reserves a seat for a player through the join API, atomically (no over-filling), under the
-- player's join rate and reservation quota (contract section 7, `[limits]`).
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 ending, 8 feed,
--       9 the player's reservations (ZSET game id -> expiry, ms), 10 the player's join bucket
-- ARGV: 1 player, 2 now (ms), 3 ttl (ms), 4 max open reservations (0 = no quota), 5 rate
--       (joins/s, 0 = no rate limit), 6 burst, 7 game key prefix (`P:{product}:game:`),
--       8 feed cap
-- Returns {'reserved', expiry, record...} | {'held', ticket JSON or '', record...} |
-- {'refused', code} | {'not_found', ''} | {'rate_limited', retry ms} |
-- {'quota_exceeded', retry ms}; `record...` is the game's fields after the change
-- (`with_record`). A player who already holds a seat (creator, present, or a live
-- reservation) gets the ticket kept for them (`ticket:<player>`, see `keep_ticket.lua`) and
-- the reservation is not renewed.
local player, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_reserved, rate, burst, prefix = tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), ARGV[7]

local g = load_game(KEYS[1])
if g == nil then return {'not_found', ''} end

-- Every join of an existing game takes a token (re-joins included).
local wait, tokens = bucket_take(KEYS[10], rate, burst, now)
if wait > 0 then return {'rate_limited', tostring(wait)} end
commit_bucket(KEYS[10], rate, burst, now, tokens)

local keys = {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[8]}
return take_seat(KEYS[1], g, keys, player, now, ttl, max_reserved, prefix, KEYS[9])
