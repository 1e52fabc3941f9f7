-- ConversationMemory.trim_old_messages: keep only the newest ARGV[3] messages; announce and mark
-- what went (nothing to remove: no write, no event).
-- KEYS[3] message list; '<list>:n' and '<list>:trims' as in conversation_append.lua.
-- Returns {messages removed, first retained message number}.
local list, keep = KEYS[3], tonumber(ARGV[3])
local length = redis.call('LLEN', list)
local first = tonumber(redis.call('GET', list .. ':n') or '0') - length
if length <= keep then
  return {0, first}
end
local count = length - keep
local seq, now = begin()
redis.call('LTRIM', list, count, -1)
local range = '{"count":' .. count .. ',"first":' .. first .. ',"last":' .. (first + count - 1)
  .. ',"reason":"manual"'
if redis.call('RPUSH', list .. ':trims', range .. ',"seq":' .. seq .. ',"ts":'
    .. string.format('%d', now) .. '}') > 1000 then
  redis.call('LTRIM', list .. ':trims', -1000, -1)
end
publish('conversation.trim', seq, now, range .. '}')
return {count, first + count}
