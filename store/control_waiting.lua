-- SessionControl.set_waiting / clear_waiting: the agent waits for a person (a permission
-- prompt, an idle prompt) or goes on. KEYS[3] the control hash. ARGV[3] the waiting JSON
-- {"kind","message","tool"} or '' to clear. Returns 1 if it changed something (an event), 0 if
-- not (clearing what is not set).
local waiting = ARGV[3]
if waiting == '' then
  if redis.call('HDEL', KEYS[3], 'waiting') == 0 then
    return 0
  end
  local seq, now = begin()
  publish('control.waiting', seq, now, '{"waiting":null}')
  return 1
end
local seq, now = begin()
local stamped = '{"ts":' .. string.format('%d', now) .. ',' .. string.sub(waiting, 2)
redis.call('HSET', KEYS[3], 'waiting', stamped)
publish('control.waiting', seq, now, '{"waiting":' .. stamped .. '}')
return 1
