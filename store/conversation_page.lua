-- ConversationMemory.page (when its cached numbering is stale) and count: one consistent read.
-- KEYS[3] message list; '<list>:n' as in conversation_append.lua. Writes nothing.
-- ARGV[3] first message number wanted, ARGV[4] how many (0: only the numbering).
-- Returns {first retained number, messages ever appended, the window's items}.
local list, start = KEYS[3], tonumber(ARGV[3])
local total = tonumber(redis.call('GET', list .. ':n') or '0')
local length = redis.call('LLEN', list)
local first = total - length
local from = math.max(start - first, 0)
local to = math.min(start + tonumber(ARGV[4]) - 1 - first, length - 1)
if to < from then
  return {first, total, {}}
end
return {first, total, redis.call('LRANGE', list, from, to)}
