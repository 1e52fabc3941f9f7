-- ConversationMemory.append: number one message, store it, announce it; with a cap, trim the
-- oldest in the same call and announce and mark that too (no silent context loss).
-- KEYS[3] message list '<prefix>conversation' (LIST of message JSON, oldest first)
-- ARGV[3] message JSON '{"role":…}' without its index, ARGV[4] append event payload head
-- '{"role":…,"preview":…' as JSON, ARGV[5] how many messages to keep at most ('' = no cap),
-- ARGV[6] (optional) the message's own id: a second append with the same id writes nothing.
-- Derived from KEYS[3] (same hash tag): '<list>:n' STRING how many messages were ever appended
-- (the next message number), '<list>:trims' LIST of trim markers, newest last, at most 1000
-- (conversation.MAX_TRIM_MARKERS), '<list>:ids' HASH message id -> number, for ids given.
-- Returns {the message's number, first retained number, 1 if stored now / 0 if already there}.
local list, max, id = KEYS[3], ARGV[5], ARGV[6]
if id then
  local known = redis.call('HGET', list .. ':ids', id)
  if known then
    return {tonumber(known), 0, 0}
  end
end
local seq, now = begin()
local index = redis.call('INCR', list .. ':n') - 1
if id then
  redis.call('HSET', list .. ':ids', id, index)
end
local length = redis.call('RPUSH', list, '{"index":' .. index .. ',' .. string.sub(ARGV[3], 2))
publish('conversation.append', seq, now, ARGV[4] .. ',"index":' .. index .. '}')
local first = index + 1 - length
if max and max ~= '' and length > tonumber(max) then
  local count = length - tonumber(max)
  trim_oldest(list, count, first, 'auto', next_seq(), now)
  first = first + count
end
return {index, first, 1}
