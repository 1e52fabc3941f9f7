-- StatefulMemory.force_state: an operator's move to any known state, recorded as forced.
-- Keys, entry format and history cap as in workflow_transition.lua.
-- ARGV[3] the move packed as in workflow_transition.lua (the target is known: checked
-- client-side against the same definition, which the digest proves), ARGV[4] reason as JSON.
local wf, from, to, toj, actorj = unpack_move('state')
if not wf then
  return from  -- the error reply
end
local fromj = cjson.encode(from)
local seq, now = begin()
local ms = string.format('%d', now)
redis.call('HSET', wf, 'state', to, 'data', 'null', 'since', ms, 'seq', seq)
local entry = '[' .. fromj .. ',' .. toj .. ',' .. actorj .. ',true,' .. ARGV[4] .. ',null,' ..
  seq .. ',' .. ms .. ']'
push_history(wf, entry)
publish(WFKIND .. '.transition', seq, now, '{"from":' .. fromj .. ',"to":' .. toj .. ',"actor":' ..
  actorj .. ',"forced":true,"reason":' .. ARGV[4] .. '}')
return seq
