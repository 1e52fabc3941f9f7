-- SessionControl.pause / resume: the operator holds the agent (every tool call is denied) or
-- lets it go on. KEYS[3] the control hash '<prefix>control' (paused, paused_at, paused_by,
-- pause_reason, waiting), KEYS[4] its log '<prefix>control:log' (LIST of {"ts","paused",
-- "actor","reason","after"}, oldest first, the last 100), KEYS[5] the conversation's counter
-- '<prefix>conversation:n' (read only: the log entry is shown after the newest message).
-- ARGV[3] '1' pause / '0' resume, ARGV[4] actor as JSON, ARGV[5] reason as JSON ('null': none).
-- Returns 1 if it changed something, 0 if the session already was so (no event).
local pause = ARGV[3] == '1'
local was = redis.call('HGET', KEYS[3], 'paused') == '1'
if was == pause then
  return 0
end
local seq, now = begin()
if pause then
  redis.call('HSET', KEYS[3], 'paused', '1', 'paused_at', string.format('%d', now),
    'paused_by', ARGV[4], 'pause_reason', ARGV[5])
else
  redis.call('HDEL', KEYS[3], 'paused', 'paused_at', 'paused_by', 'pause_reason')
end
local after = tonumber(redis.call('GET', KEYS[5]) or '0') - 1
local entry = '{"ts":' .. string.format('%d', now) .. ',"paused":' ..
  (pause and 'true' or 'false') .. ',"actor":' .. ARGV[4] .. ',"reason":' .. ARGV[5] ..
  ',"after":' .. after .. '}'
if redis.call('RPUSH', KEYS[4], entry) > 100 then
  redis.call('LTRIM', KEYS[4], -100, -1)
end
publish('control.pause', seq, now, entry)
return 1
