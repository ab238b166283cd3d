-- Ends a game outside the event stream (curated, cancelled, force-deleted): removes it from
-- every set and keeps the hash as a tombstone with a TTL, atomically, if the guard holds.
-- KEYS: 1 game, 2 pending, 3 lobby, 4 active, 5 open, 6 reservations, 7 ending, 8 feed
-- ARGV: 1 reason, 2 now (ms), 3 tombstone ttl (s), 4 guard, 5 guard set, 6 guard cutoff (ms),
--       7 game id, 8 feed cap
--   guard any:         always
--   guard cancellable: only before the game started (created, creator_joined, all_players_joined)
--   guard stale:       only while the game is still in the set named by `guard set`
--                      (pending, lobby or active) with a score <= cutoff: the curator's check,
--                      so a game that came alive since it was picked is left alone
-- Returns {'removed', previous state} | {'refused', state} | {'not_found', ''} | {'ended', ''}.
-- A game that is not live (no hash, or a tombstone) also leaves the ending index: the curator's
-- finishing of an interrupted end step calls this to clean up after a game that went meanwhile.
local reason, now, ttl, guard = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local g = load_game(KEYS[1])
if g == nil or g.state == 'ended' then
  local id = ARGV[7]
  redis.call('ZREM', KEYS[7], id)
  if g == nil then return {'not_found', ''} end
  return {'ended', ''}
end
local previous = g.state
if guard == 'cancellable' and g.phase >= 2 then return {'refused', previous} end
if guard == 'stale' then
  local set_key = ({pending = KEYS[2], lobby = KEYS[3], active = KEYS[4]})[ARGV[5]]
  if set_key == nil then return redis.error_reply('remove_game: unknown guard set ' .. ARGV[5]) end
  local score = redis.call('ZSCORE', set_key, g.id)
  if not score or tonumber(score) > tonumber(ARGV[6]) then return {'refused', previous} end
end
g.phase = 3
g.end_reason = reason
if now > g.updated_at then g.updated_at = now end
save_game(KEYS[1], g, {KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], ARGV[8]}, now, ttl)
return {'removed', previous}
