-- Shared by the conversation_*.lua scripts (store/scripts.py puts it after _event.lua).

-- Drop the oldest `count` messages of `list` (whose oldest retained is number `first`), leave a
-- trim marker in '<list>:trims' (newest last, at most 1000 = conversation.MAX_TRIM_MARKERS) and
-- announce it as event `seq`: no context disappears silently.
local function trim_oldest(list, count, first, reason, seq, now)
  redis.call('LTRIM', list, count, -1)
  local range = '{"count":' .. count .. ',"first":' .. first .. ',"last":' .. (first + count - 1)
    .. ',"reason":"' .. reason .. '"'
  if redis.call('RPUSH', list .. ':trims', range .. ',"seq":' .. seq .. ',"ts":'
      .. string.format('%d', now) .. '}') > 1000 then
    redis.call('LTRIM', list .. ':trims', -1000, -1)
  end
  publish('conversation.trim', seq, now, range .. '}')
end
