-- StatefulMemory.record_transition: append one move, with the stored state's data, to the
-- history. Keys, entry format and history cap as in workflow_transition.lua.
-- ARGV[3] the move packed as in workflow_transition.lua, ARGV[4] from state as JSON,
-- ARGV[5] when it happened (ms since the epoch, the caller's clock).
local move = ARGV[3]
local a = string.find(move, '\0', 17, true)
local b = string.find(move, '\0', a + 1, true)
local wf = string.sub(KEYS[1], 1, -5) .. 'wf'
local stored = redis.call('HMGET', wf, 'digest', 'data')
if stored[1] ~= string.sub(move, 1, 16) then
  return redis.error_reply(stored[1] and ('REDEFINED ' .. stored[1]) or 'UNDEFINED')
end
local fromj, toj, actorj, data = ARGV[4], string.sub(move, a + 1, b - 1), string.sub(move, b + 1),
  stored[2] or 'null'
local seq, now = begin()
local entry = '[' .. fromj .. ',' .. toj .. ',' .. actorj .. ',false,null,' .. data .. ',' ..
  seq .. ',' .. ARGV[5] .. ']'
if redis.call('LPUSH', wf .. ':history', entry) > 1000 then
  redis.call('LTRIM', wf .. ':history', 0, 967)
end
local payload = '{"from":' .. fromj .. ',"to":' .. toj .. ',"actor":' .. actorj ..
  ',"forced":false,"at":' .. ARGV[5]
if #data <= 2048 then
  payload = payload .. ',"data":' .. data
end
publish('workflow.transition', seq, now, payload .. '}')
return seq
