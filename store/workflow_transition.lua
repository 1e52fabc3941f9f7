-- StatefulMemory.transition: move from the STORED state to the target, if the definition allows.
-- Keys derived from KEYS[1] = '<prefix>meta' (same hash tag): '<prefix>wf' (hash: state, data,
-- since, seq, digest, def), '<prefix>wf:graph' (set: states and 'from\0to' moves),
-- '<prefix>wf:history' (list of entries, newest first: at most 1000 = HISTORY_LIMIT, trimmed to
-- the newest 968 when it goes over, so a trim runs once per 32 moves).
-- An entry is the JSON array [from, to, actor, forced, reason, data, seq, ts] (store.Transition).
-- ARGV[3] the move, packed in one argument: digest (16 chars) .. target .. '\0' .. target as
-- JSON .. '\0' .. actor as JSON (names hold no control characters and JSON escapes them, so
-- '\0' separates), ARGV[4] data JSON.
local move = ARGV[3]
local a = string.find(move, '\0', 17, true)
local b = string.find(move, '\0', a + 1, true)
local wf = string.sub(KEYS[1], 1, -5) .. 'wf'
local stored = redis.call('HMGET', wf, 'digest', 'state')
if stored[1] ~= string.sub(move, 1, 16) then
  return redis.error_reply(stored[1] and ('REDEFINED ' .. stored[1]) or 'UNDEFINED')
end
local from, to, data = stored[2], string.sub(move, 17, a - 1), ARGV[4]
local fromj, toj, actorj = cjson.encode(from), string.sub(move, a + 1, b - 1), string.sub(move, b + 1)
local payload = '{"from":' .. fromj .. ',"to":' .. toj .. ',"actor":' .. actorj
if redis.call('SISMEMBER', wf .. ':graph', from .. '\0' .. to) == 0 then
  -- the attempt is an event (for the dashboard), not a write
  local seq, now = begin()
  publish('workflow.rejected', seq, now, payload .. '}')
  return redis.error_reply('INVALID ' .. from)
end
local seq, now = begin()
local ms = string.format('%d', now)
redis.call('HSET', wf, 'state', to, 'data', data, 'since', ms, 'seq', seq)
local entry = '[' .. fromj .. ',' .. toj .. ',' .. actorj .. ',false,null,' .. data .. ',' ..
  seq .. ',' .. ms .. ']'
if redis.call('LPUSH', wf .. ':history', entry) > 1000 then
  redis.call('LTRIM', wf .. ':history', 0, 967)
end
payload = payload .. ',"forced":false'
if #data <= 2048 then  -- small data rides in the event
  payload = payload .. ',"data":' .. data
end
publish('workflow.transition', seq, now, payload .. '}')
return seq
