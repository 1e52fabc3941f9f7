-- Notes.release: a delivery that never reached its reader (the hook's answer could not be sent)
-- is undone, so the notes are delivered by the next reader instead. Only the newest delivery
-- can be undone, and only while nothing was delivered after it.
-- KEYS[3] notes, KEYS[4] notes:state, KEYS[5] notes:delivered; ARGV[3] first, ARGV[4] last id,
-- ARGV[5] the delivery's number.
-- Returns 1 if released, 0 if not (a later delivery happened; those notes stay delivered).
local first, last = tonumber(ARGV[3]), tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[4], 'delivered', 'deliveries')
if tonumber(s[1] or '0') ~= last or s[2] ~= ARGV[5] then
  return 0
end
local seq, now = begin()
redis.call('HSET', KEYS[4], 'delivered', first - 1)
for id = first, last do
  redis.call('HDEL', KEYS[5], id)
end
publish('notes.released', seq, now, '{"first":' .. first .. ',"last":' .. last .. '}')
return 1
