-- StatefulMemory.set_state: save a state and its data if the stored state still is the one the
-- caller checked from (its mirror); no history entry (workflow_record.lua adds that).
-- Keys as in workflow_transition.lua.
-- ARGV[3] the move packed as in workflow_transition.lua, ARGV[4] expected stored state,
-- ARGV[5] data JSON.
local wf, from, to, toj, actorj = unpack_move('state')
if not wf then
  return from  -- the error reply
end
local payload = '{"from":' .. cjson.encode(from) .. ',"to":' .. toj .. ',"actor":' .. actorj
if from ~= ARGV[4] then
  local seq, now = begin()
  publish(WFKIND .. '.rejected', seq, now, payload .. ',"expected":' .. cjson.encode(ARGV[4]) .. '}')
  return redis.error_reply('STALE ' .. from)
end
local data = ARGV[5]
local seq, now = begin()
redis.call('HSET', wf, 'state', to, 'data', data,
  'since', string.format('%d', now), 'seq', seq)
if #data <= 2048 then
  payload = payload .. ',"data":' .. data
end
publish(WFKIND .. '.state', seq, now, payload .. '}')
return seq
