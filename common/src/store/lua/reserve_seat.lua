-- Reserves seats for players through the join API, atomically (no over-filling), under each
-- player's join rate and reservation quota (contract section 7, `[limits]`). Takes a group of
-- joins of one product, under the same reservation TTL and limits, and handles each exactly
-- as a call of its own would, one after the other in their order (the daemon sends the joins
-- waiting at the same moment together, `store/joins.rs`).
-- KEYS: 1 pending, 2 lobby, 3 active, 4 open, 5 reservations, 6 ending, 7 feed, then three per
--       join: the game, the player's reservations (ZSET game id -> expiry, ms), the player's
--       join bucket
-- ARGV: 1 ttl (ms), 2 max open reservations (0 = no quota), 3 rate (joins/s, 0 = no rate
--       limit), 4 burst, 5 game key prefix (`P:{product}:game:`), 6 feed cap, then two per
--       join: the player, now (ms)
-- Returns, per join, one of {'reserved', expiry, record} | {'held', ticket JSON or '',
-- record} | {'refused', code} | {'not_found', ''} | {'rate_limited', retry ms} |
-- {'quota_exceeded', retry ms} | {'failed', why} (its game could not be read; the other joins
-- of the group are not affected); `record` is the game as the call left it (after the whole
-- group: each game is written once, see `seat_games`), as `with_record` appends it. A player
-- who already holds a seat (creator, present, or a live reservation) gets the ticket kept
-- for them (`ticket:<player>`, see `keep_ticket.lua`) and the reservation is not renewed.
local ttl, max_reserved, rate, burst, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local keys = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[6]}

local function reserve(game_key, player_key, bucket_key, player, now)
  local g = load_seat_game(game_key, player)
  if g == nil then return {'not_found', ''} end

  -- Every join of an existing game takes a token (re-joins included).
  local wait, tokens = bucket_take(bucket_key, rate, burst, now)
  if wait > 0 then return {'rate_limited', tostring(wait)} end
  commit_bucket(bucket_key, rate, burst, now, tokens)

  return take_seat(game_key, g, keys, player, now, ttl, max_reserved, prefix, player_key)
end

local answers = {}
for first = 8, #KEYS, 3 do
  local at = 6 + (first - 8) / 3 * 2
  local ok, answer = pcall(reserve, KEYS[first], KEYS[first + 1], KEYS[first + 2],
    ARGV[at + 1], tonumber(ARGV[at + 2]))
  if ok then
    answers[#answers + 1] = answer
  else
    answers[#answers + 1] = {'failed', tostring(answer.err or answer)}
  end
end
finish_seat_replies()
return answers
