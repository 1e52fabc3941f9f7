-- StatefulMemory.record_transition: append one move, with the stored state's data, to the
-- history. Keys, entry format and history cap as in workflow_transition.lua.
-- ARGV[3] the move packed as in workflow_transition.lua, ARGV[4] from state as JSON,
-- ARGV[5] when it happened (ms since the epoch, the caller's clock).
local wf, data, _, toj, actorj = unpack_move('data')
if not wf then
  return data  -- the error reply
end
local fromj = ARGV[4]
data = data or 'null'
local seq, now = begin()
local entry = '[' .. fromj .. ',' .. toj .. ',' .. actorj .. ',false,null,' .. data .. ',' ..
  seq .. ',' .. ARGV[5] .. ']'
push_history(wf, entry)
local payload = '{"from":' .. fromj .. ',"to":' .. toj .. ',"actor":' .. actorj ..
  ',"forced":false,"at":' .. ARGV[5]
if #data <= 2048 then
  payload = payload .. ',"data":' .. data
end
publish(WFKIND .. '.transition', seq, now, payload .. '}')
return seq
