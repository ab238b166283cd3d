-- The applied watermark of a product stream (contract section 11, `mm_event_watermark_age_seconds`):
-- the oldest entry of KEYS[1] not yet acknowledged by group ARGV[1]. Read-only, one snapshot.
-- Reply: {} when caught up (nothing unacknowledged), else {entry id}.
local oldest = oldest_unacked(KEYS[1], ARGV[1])
if oldest == nil then return {} end
return {oldest}
