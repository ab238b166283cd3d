-- Shared helper of the stream scripts (watermark.lua, trim_events.lua), after prelude.lua (for
-- `eid` and `eid_lt`): where the consumer group stands on a product stream. Read-only.

-- The id of the oldest entry of stream `key` not yet acknowledged by group `group`: the older
-- of its oldest pending entry (XPENDING summary) and the first entry after its last-delivered
-- id (undelivered). Returns (id, has_group): id is nil when every entry is acknowledged (or
-- the stream does not exist); without the group, every entry counts as unacknowledged, so id
-- is the stream's first entry.
local function oldest_unacked(key, group)
  if redis.call('EXISTS', key) == 0 then return nil, false end
  local last_delivered = nil
  local groups = redis.call('XINFO', 'GROUPS', key)
  for _, description in ipairs(groups) do
    local fields = {}
    for i = 1, #description, 2 do fields[description[i]] = description[i + 1] end
    if fields['name'] == group then last_delivered = fields['last-delivered-id'] end
  end
  if last_delivered == nil then
    local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1]
    return first and first[1], false
  end
  local oldest = nil
  local summary = redis.call('XPENDING', key, group)
  if summary[1] > 0 then oldest = summary[2] end
  local undelivered = redis.call('XRANGE', key, '(' .. last_delivered, '+', 'COUNT', 1)[1]
  if undelivered and (oldest == nil or eid_lt(eid(undelivered[1]), eid(oldest))) then
    oldest = undelivered[1]
  end
  return oldest, true
end
