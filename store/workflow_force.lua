-- StatefulMemory.force_state: an operator's move to any known state, recorded as forced.
-- Keys, entry format and history cap as in workflow_transition.lua.
-- ARGV[3] the move packed as in workflow_transition.lua (the target is known: checked
-- client-side against the same definition, which the digest proves), ARGV[4] reason as JSON.
local move = ARGV[3]
local a = string.find(move, '\0', 17, true)
local b = string.find(move, '\0', a + 1, true)
local wf = string.sub(KEYS[1], 1, -5) .. 'wf'
local stored = redis.call('HMGET', wf, 'digest', 'state')
if stored[1] ~= string.sub(move, 1, 16) then
  return redis.error_reply(stored[1] and ('REDEFINED ' .. stored[1]) or 'UNDEFINED')
end
local fromj, toj, actorj = cjson.encode(stored[2]), string.sub(move, a + 1, b - 1), string.sub(move, b + 1)
local seq, now = begin()
local ms = string.format('%d', now)
redis.call('HSET', wf, 'state', string.sub(move, 17, a - 1), 'data', 'null', 'since', ms, 'seq', seq)
local entry = '[' .. fromj .. ',' .. toj .. ',' .. actorj .. ',true,' .. ARGV[4] .. ',null,' ..
  seq .. ',' .. ms .. ']'
if redis.call('LPUSH', wf .. ':history', entry) > 1000 then
  redis.call('LTRIM', wf .. ':history', 0, 967)
end
publish('workflow.transition', seq, now, '{"from":' .. fromj .. ',"to":' .. toj .. ',"actor":' ..
  actorj .. ',"forced":true,"reason":' .. ARGV[4] .. '}')
return seq
