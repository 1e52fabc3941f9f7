-- ConversationMemory.append: number one message, store it, announce it; with a cap, trim the
-- oldest in the same call and announce and mark that too (no silent context loss).
-- KEYS[3] message list '<prefix>conversation' (LIST of message JSON, oldest first)
-- ARGV[3] message JSON '{"role":…}' without its index, ARGV[4] append event payload head
-- '{"role":…,"preview":…' as JSON, ARGV[5] (optional) how many messages to keep at most.
-- Derived from KEYS[3] (same hash tag): '<list>:n' STRING how many messages were ever appended
-- (the next message number), '<list>:trims' LIST of trim markers, newest last, at most 1000
-- (conversation.MAX_TRIM_MARKERS).
-- Returns {the message's number, first retained number}.
local list, max = KEYS[3], ARGV[5]
local seq, now = begin()
local index = redis.call('INCR', list .. ':n') - 1
local length = redis.call('RPUSH', list, '{"index":' .. index .. ',' .. string.sub(ARGV[3], 2))
publish('conversation.append', seq, now, ARGV[4] .. ',"index":' .. index .. '}')
local first = index + 1 - length
if max and length > tonumber(max) then
  local count = length - tonumber(max)
  trim_oldest(list, count, first, 'auto', next_seq(), now)
  first = first + count
end
return {index, first}
