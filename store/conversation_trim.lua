-- ConversationMemory.trim_old_messages: keep only the newest ARGV[3] messages; announce and mark
-- what went (nothing to remove: no write, no event).
-- KEYS[3] message list; '<list>:n' and '<list>:trims' as in conversation_append.lua.
-- ARGV[4] (optional) the marker's reason, 'manual' (default) or 'compact' (checked by the caller).
-- Returns {messages removed, first retained message number}.
local list, keep = KEYS[3], tonumber(ARGV[3])
local length = redis.call('LLEN', list)
local first = tonumber(redis.call('GET', list .. ':n') or '0') - length
if length <= keep then
  return {0, first}
end
local count = length - keep
local seq, now = begin()
trim_oldest(list, count, first, ARGV[4] or 'manual', seq, now)
return {count, first + count}
