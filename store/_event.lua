-- Shared prelude of every mutating script (store/scripts.py puts it in front of each one).
-- Contract: KEYS[1] = session meta hash, KEYS[2] = namespace session registry '<ns>:sessions';
--           ARGV[1] = session id, ARGV[2] = event header: '{"ns":<ns>,"session":<id>' as JSON.
-- The event channel is '<ns>:events', derived from KEYS[2] to keep the call short.
-- begin() takes the session's next seq and the server time; publish() announces the change.
-- Call begin() only after every check has passed, so a rejected call changes nothing
-- (a rejection that is itself an event calls begin() and publish() and writes nothing else).

local function begin()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  if seq == 1 then
    redis.call('HSET', KEYS[1], 'created', now)
  end
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  return seq, now
end

-- payload: a JSON object as text.
local function publish(kind, seq, now, payload)
  redis.call('PUBLISH', string.sub(KEYS[2], 1, -9) .. 'events', ARGV[2] .. ',"kind":"' .. kind ..
    '","seq":' .. seq .. ',"ts":' .. string.format('%d', now) .. ',"payload":' .. payload .. '}')
end

-- A second event from the same script (e.g. append, then trim): same time, next seq.
local function next_seq()
  return redis.call('HINCRBY', KEYS[1], 'seq', 1)
end

-- end of prelude
