-- Notes.add: append one operator note, announce it.
-- KEYS[3] notes, KEYS[4] notes:state, KEYS[5] notes:delivered, KEYS[6] the conversation's
-- counter '<prefix>conversation:n' (read only: the note is shown after the message written last).
-- ARGV[3] text as JSON, ARGV[4] kind ('note' or 'context'), ARGV[5] author as JSON,
-- ARGV[6] how many notes to keep (older delivered ones are dropped; pending ones never).
-- Returns {id, after}.
local seq, now = begin()
local id = redis.call('HINCRBY', KEYS[4], 'last', 1)
local after = tonumber(redis.call('GET', KEYS[6]) or '0') - 1
local head = '{"id":' .. id .. ',"kind":"' .. ARGV[4] .. '","author":' .. ARGV[5] .. ',"ts":' ..
  string.format('%d', now) .. ',"after":' .. after
redis.call('HSET', KEYS[3], id, head .. ',"text":' .. ARGV[3] .. '}')
local keep = tonumber(ARGV[6])
local old = id - keep
if old >= 1 and old <= tonumber(redis.call('HGET', KEYS[4], 'delivered') or '0') then
  redis.call('HDEL', KEYS[3], old)  -- one in, one out: the count stays at `keep`
  redis.call('HDEL', KEYS[5], old)
end
local payload = head
if #ARGV[3] <= 16384 then  -- a note is at most 8 KiB of text; escapes may double it
  payload = payload .. ',"text":' .. ARGV[3]
end
publish('notes.add', seq, now, payload .. '}')
return {id, after}
