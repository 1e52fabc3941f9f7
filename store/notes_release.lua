-- Notes.release: a delivery that never reached its reader (the hook's answer could not be sent)
-- is undone, so the notes are delivered by the next reader instead. Only the newest delivery
-- can be undone, and only while nothing was delivered after it.
-- KEYS[3] notes, KEYS[4] notes:state, KEYS[5] notes:delivered; ARGV[3] first, ARGV[4] last id.
-- Returns 1 if released, 0 if not (a later delivery happened; those notes stay delivered).
local first, last = tonumber(ARGV[3]), tonumber(ARGV[4])
if tonumber(redis.call('HGET', KEYS[4], 'delivered') or '0') ~= last then
  return 0
end
local seq, now = begin()
redis.call('HSET', KEYS[4], 'delivered', first - 1)
for id = first, last do
  redis.call('HDEL', KEYS[5], id)
end
publish('notes.released', seq, now, '{"first":' .. first .. ',"last":' .. last .. '}')
return 1
