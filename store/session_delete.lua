-- Sessions.delete: every key of one session, its registry entry and one 'session.delete' event,
-- in one atomic step. Unlike the other scripts it does not call begin(): that would put the
-- session back into the registry. Its event takes the seq after the last one.
-- KEYS[3] the memory index, KEYS[4 .. 3+m] memory values, the other KEYS every other key of the
-- session (its components' keys, named workflows, request markers: see store/sessions.py).
-- ARGV[3] '' or the latest last activity (ms) at which the session may go (prune: a session
-- active since it was chosen stays); ARGV[4] m.
-- Returns 0 when there was no such session; {-2} when it was active since ARGV[3] (nothing
-- changed); {-1, member…} when the memory index names values not declared in KEYS (written
-- since the caller read the index; nothing changed: call again with them); else
-- {seq, keys removed, memory values removed, messages removed}.
local last = redis.call('ZSCORE', KEYS[2], ARGV[1])
if ARGV[3] ~= '' and last and tonumber(last) > tonumber(ARGV[3]) then
  return {-2}
end
local m = tonumber(ARGV[4])
local prefix = string.sub(KEYS[1], 1, -5)
local declared = {}
for i = 4, 3 + m do
  declared[KEYS[i]] = true
end
local missing = {-1}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if not declared[prefix .. member] then
    missing[#missing + 1] = member
  end
end
if #missing > 1 then
  return missing
end

local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') + 1
local messages = redis.call('LLEN', prefix .. 'conversation')

local function unlink(first, last_index)
  local removed = 0
  for i = first, last_index, 1000 do  -- unpack() has a limit; KEYS may be long
    removed = removed + redis.call('UNLINK', unpack(KEYS, i, math.min(i + 999, last_index)))
  end
  return removed
end
local memory = unlink(4, 3 + m)
local keys = memory + unlink(1, 1) + unlink(3, 3) + unlink(4 + m, #KEYS)
if keys == 0 and not last then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
publish('session.delete', seq, now, '{"keys":' .. keys .. ',"memory":' .. memory ..
  ',"messages":' .. messages .. '}')
return {seq, keys, memory, messages}
