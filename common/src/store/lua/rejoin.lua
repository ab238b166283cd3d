-- Lets a player back into a game they are in (contract 5.4, `POST /v1/games/{id}/rejoin`):
-- the creator, a player of its roster (present, or present once and left since), or a player
-- holding a live reservation. A game in progress takes them back as they are (the game
-- server issues a fresh ticket; nothing is written); before the start the join rules apply
-- (`take_seat`: a player who left a lobby needs a free seat again).
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 ending, 8 feed,
--       9 the player's reservations (ZSET game id -> expiry, ms), 10 the player's join bucket
-- ARGV: 1 player, 2 now (ms), 3 ttl (ms), 4 max open reservations (0 = no quota), 5 rate
--       (joins/s, 0 = no rate limit), 6 burst, 7 game key prefix (`P:{product}:game:`),
--       8 feed cap
-- Returns {'back', '', record} | {'reserved', expiry, record} |
-- {'held', ticket JSON or '', record} |
-- {'refused', code} | {'not_found', ''} | {'rate_limited', retry ms} |
-- {'quota_exceeded', retry ms}; refusal codes as `reserve_seat.lua` plus `not_in_game`;
-- `record` the game, as `with_record` appends it.
local player, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_reserved, rate, burst, prefix = tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), ARGV[7]

local g = load_seat_game(KEYS[1], player)
if g == nil then return {'not_found', ''} end

-- A rejoin takes a token from the join bucket, like every join.
local wait, tokens = bucket_take(KEYS[10], rate, burst, now)
if wait > 0 then return {'rate_limited', tostring(wait)} end
commit_bucket(KEYS[10], rate, burst, now, tokens)

if g.state == 'ended' or g.ending_since ~= '' then return {'refused', 'game_not_open'} end
local reserved = g.reservations[player]
local member = player == g.creator_id or g.roster[player] ~= nil
  or (reserved ~= nil and reserved > now)
if not member then return {'refused', 'not_in_game'} end
if g.state == 'in_progress' then return with_record({'back', ''}, KEYS[1], nil, g) end

local keys = {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[8]}
local reply = take_seat(KEYS[1], g, keys, player, now, ttl, max_reserved, prefix, KEYS[9])
finish_seat_replies()
return reply
