-- StatefulMemory.set_state: save a state and its data if the stored state still is the one the
-- caller checked from (its mirror); no history entry (workflow_record.lua adds that).
-- Keys as in workflow_transition.lua.
-- ARGV[3] the move packed as in workflow_transition.lua, ARGV[4] expected stored state,
-- ARGV[5] data JSON.
local move = ARGV[3]
local a = string.find(move, '\0', 17, true)
local b = string.find(move, '\0', a + 1, true)
local wf = string.sub(KEYS[1], 1, -5) .. 'wf'
local stored = redis.call('HMGET', wf, 'digest', 'state')
if stored[1] ~= string.sub(move, 1, 16) then
  return redis.error_reply(stored[1] and ('REDEFINED ' .. stored[1]) or 'UNDEFINED')
end
local payload = '{"from":' .. cjson.encode(stored[2]) .. ',"to":' ..
  string.sub(move, a + 1, b - 1) .. ',"actor":' .. string.sub(move, b + 1)
if stored[2] ~= ARGV[4] then
  local seq, now = begin()
  publish('workflow.rejected', seq, now, payload .. ',"expected":' .. cjson.encode(ARGV[4]) .. '}')
  return redis.error_reply('STALE ' .. stored[2])
end
local data = ARGV[5]
local seq, now = begin()
redis.call('HSET', wf, 'state', string.sub(move, 17, a - 1), 'data', data,
  'since', string.format('%d', now), 'seq', seq)
if #data <= 2048 then
  payload = payload .. ',"data":' .. data
end
publish('workflow.state', seq, now, payload .. '}')
return seq
