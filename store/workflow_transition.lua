-- StatefulMemory.transition: move from the STORED state to the target, if the definition allows.
-- Keys derived from KEYS[1] = '<prefix>meta' (same hash tag): '<prefix>wf' (hash: state, data,
-- since, seq, digest, def), '<prefix>wf:graph' (set: states and 'from\0to' moves),
-- '<prefix>wf:history' (list of entries, newest first, capped: see _workflow.lua).
-- An entry is the JSON array [from, to, actor, forced, reason, data, seq, ts] (store.Transition).
-- ARGV[3] the move, packed as _workflow.lua describes, ARGV[4] data JSON.
local wf, from, to, toj, actorj = unpack_move('state')
if not wf then
  return from  -- the error reply
end
local data, fromj = ARGV[4], cjson.encode(from)
local payload = '{"from":' .. fromj .. ',"to":' .. toj .. ',"actor":' .. actorj
if redis.call('SISMEMBER', wf .. ':graph', from .. '\0' .. to) == 0 then
  -- the attempt is an event (for the dashboard), not a write
  local seq, now = begin()
  publish(WFKIND .. '.rejected', seq, now, payload .. '}')
  return redis.error_reply('INVALID ' .. from)
end
local seq, now = begin()
local ms = string.format('%d', now)
redis.call('HSET', wf, 'state', to, 'data', data, 'since', ms, 'seq', seq)
local entry = '[' .. fromj .. ',' .. toj .. ',' .. actorj .. ',false,null,' .. data .. ',' ..
  seq .. ',' .. ms .. ']'
push_history(wf, entry)
payload = payload .. ',"forced":false'
if #data <= 2048 then  -- small data rides in the event
  payload = payload .. ',"data":' .. data
end
publish(WFKIND .. '.transition', seq, now, payload .. '}')
return seq
