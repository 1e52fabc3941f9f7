--! include _notes.lua
-- Steering.check: everything a hook needs to steer the agent, read in one step, and the
-- operator's pending notes handed over (marked delivered) in that same step.
-- KEYS[3] budget hash, KEYS[4] control hash, KEYS[5] the task workflow hash '<prefix>wf.task',
-- KEYS[6] notes, KEYS[7] notes:state, KEYS[8] notes:delivered (see _notes.lua).
-- ARGV[3] deliver notes: 'always', 'unless_held' (not when the agent is held: a blocked
-- prompt carries nothing) or '' (no); ARGV[4] '1': the agent goes on, so it no longer waits for
-- a person (clear 'waiting'); ARGV[5] who delivers, a JSON object body ('"event":…,"tool":…').
-- Returns {used, limit ('' none), binding '1'/'0', paused '1'/'', pause reason JSON ('' none),
-- task state ('' none), task definition JSON ('' none), first, last, delivery number,
-- note JSON…}: the notes handed over are ids first..last (first > last: none).
local b = redis.call('HMGET', KEYS[3], 'used', 'limit', 'binding')
local c = redis.call('HMGET', KEYS[4], 'paused', 'pause_reason', 'waiting')
local w = redis.call('HMGET', KEYS[5], 'state', 'def')
local used, limit = tonumber(b[1] or '0'), tonumber(b[2] or '-1')
local paused = c[1] == '1'
local held = paused or (b[3] == '1' and limit >= 0 and used >= limit)
local seq, now = nil, nil
if ARGV[4] == '1' and c[3] then
  seq, now = begin()
  redis.call('HDEL', KEYS[4], 'waiting')
  publish('control.waiting', seq, now, '{"waiting":null}')
end
local handed = nil
local mode = ARGV[3]
if (mode == 'always' or (mode == 'unless_held' and not held)) and notes_pending(KEYS[7]) then
  if seq then
    seq = next_seq()
  else
    seq, now = begin()
  end
  handed = deliver_notes(KEYS[6], KEYS[7], KEYS[8], ARGV[5], seq, now)
end
local out = {string.format('%d', used), b[2] or '', b[3] or '0', paused and '1' or '',
  c[2] or '', w[1] or '', w[2] or ''}
if handed then
  for _, v in ipairs(handed) do
    out[#out + 1] = v
  end
else
  out[#out + 1] = 1
  out[#out + 1] = 0
  out[#out + 1] = 0
end
return out
