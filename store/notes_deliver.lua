-- Notes.deliver: hand every pending note to one reader (a hook, the agent's own tool), marked
-- delivered in this same step, so two readers racing cannot both get a note.
-- KEYS[3] notes, KEYS[4] notes:state, KEYS[5] notes:delivered (see _notes.lua).
-- ARGV[3] who delivered, as a JSON object body without braces ('"event":"…","tool":"…"').
-- Returns {first, last, delivery number, note JSON…}; nothing pending: {first, first - 1, 0}
-- and no event.
if not notes_pending(KEYS[4]) then
  local done = tonumber(redis.call('HGET', KEYS[4], 'delivered') or '0')
  return {done + 1, done, 0}
end
local seq, now = begin()
return deliver_notes(KEYS[3], KEYS[4], KEYS[5], ARGV[3], seq, now)
