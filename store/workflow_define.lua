-- StatefulMemory.define: store a workflow definition for the session (replacing another one).
-- Keys, entry format and history cap as in workflow_transition.lua.
-- ARGV[3] digest, ARGV[4] definition JSON {"transitions":…,"initial":…}, ARGV[5] initial state,
-- ARGV[6] actor as JSON, ARGV[7..] members of the graph set: state names and 'from\0to' moves.
-- Returns {changed (0/1), stored state}. Same digest: nothing written, no event.
local wf = WF
local graph = wf .. ':graph'
local stored = redis.call('HMGET', wf, 'digest', 'state')
if stored[1] == ARGV[3] then
  return {0, stored[2]}
end
local seq, now = begin()
local ms = string.format('%d', now)
redis.call('DEL', graph)
for i = 7, #ARGV, 1000 do
  redis.call('SADD', graph, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local payload = '{"digest":"' .. ARGV[3] .. '","initial":' .. cjson.encode(ARGV[5])
if stored[1] then
  payload = payload .. ',"replaced":true,"previous":"' .. stored[1] .. '"'
else
  payload = payload .. ',"replaced":false'
end
local state = stored[2]
if not state or redis.call('SISMEMBER', graph, state) == 0 then
  if state then  -- the new definition lacks the state: back to the start, on the record
    local entry = '[' .. cjson.encode(state) .. ',' .. cjson.encode(ARGV[5]) .. ',' .. ARGV[6] ..
      ',true,"definition replaced",null,' .. seq .. ',' .. ms .. ']'
    if redis.call('LPUSH', wf .. ':history', entry) > 1000 then
      redis.call('LTRIM', wf .. ':history', 0, 967)
    end
    payload = payload .. ',"reset":' .. cjson.encode(state)
  end
  state = ARGV[5]
  redis.call('HSET', wf, 'state', state, 'data', 'null', 'since', ms, 'seq', seq)
end
redis.call('HSET', wf, 'digest', ARGV[3], 'def', ARGV[4])
payload = payload .. ',"state":' .. cjson.encode(state)
if #ARGV[4] <= 2048 then
  payload = payload .. ',"definition":' .. ARGV[4]
end
publish(WFKIND .. '.define', seq, now, payload .. '}')
return {1, state}
