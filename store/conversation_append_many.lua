-- ConversationMemory.append_unique_many: several messages of one session in one call, each
-- stored exactly as conversation_append.lua stores a message with an id and no cap: skipped if
-- a message with its id was stored before (or earlier in this call), else numbered, stored and
-- announced with its own 'conversation.append' event, in the order given. One script, so the
-- whole call is atomic (each message's append a fortiori). No cap: a capped conversation
-- appends one message at a time (its trims interleave with the appends).
-- KEYS[3] message list '<prefix>conversation' (LIST of message JSON, oldest first),
-- KEYS[4] '<list>:n' (STRING how many messages were ever appended), KEYS[5] '<list>:ids'
-- (HASH message id -> number); all three under the session's hash tag.
-- ARGV[3] how many ids one HMGET / HSET / RPUSH takes at most (Lua's unpack is bounded), then
-- triples from ARGV[4] on: message JSON without its index and opening brace ('"role":…}'),
-- append event payload head '{"role":…,"preview":…' as JSON, the message's id.
-- Returns {first retained number (false when nothing was stored), then per message its number
-- if stored now, or -1 - the number of the message already stored with its id}.
local list, counter, ids = KEYS[3], KEYS[4], KEYS[5]
local chunk = tonumber(ARGV[3])
local out = {false}
local known = {}  -- id -> number, for the ids stored before or earlier in this call
local fresh = {}  -- ARGV positions of the messages stored now, in order
for from = 4, #ARGV, 3 * chunk do
  local names = {}
  for i = from, math.min(from + 3 * chunk - 1, #ARGV), 3 do
    names[#names + 1] = ARGV[i + 2]
  end
  local found = redis.call('HMGET', ids, unpack(names))
  for k, name in ipairs(names) do
    if found[k] then
      known[name] = tonumber(found[k])
    end
  end
end
local n = tonumber(redis.call('GET', counter) or '0')
local next_index = n
for i = 4, #ARGV, 3 do
  local id = ARGV[i + 2]
  local index = known[id]
  if index then
    out[#out + 1] = -1 - index
  else
    known[id] = next_index
    fresh[#fresh + 1] = i
    out[#out + 1] = next_index
    next_index = next_index + 1
  end
end
local count = #fresh
if count == 0 then
  return out
end

-- begin() for `count` events at once: the same seqs, time and registry entry as `count` calls.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last_seq = redis.call('HINCRBY', KEYS[1], 'seq', count)
if last_seq == count then
  redis.call('HSET', KEYS[1], 'created', now)
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('SET', counter, next_index)

local length
for from = 1, count, chunk do
  local items, fields = {}, {}
  for k = from, math.min(from + chunk - 1, count) do
    local i = fresh[k]
    local index = n + k - 1
    items[#items + 1] = '{"index":' .. index .. ',' .. ARGV[i]
    fields[#fields + 1] = ARGV[i + 2]
    fields[#fields + 1] = index
  end
  redis.call('HSET', ids, unpack(fields))
  length = redis.call('RPUSH', list, unpack(items))
end
-- publish('conversation.append', seq, now, payload) of each, its text put together once
local seq = last_seq - count
local channel = string.sub(KEYS[2], 1, -9) .. 'events'
local before = ARGV[2] .. ',"kind":"conversation.append","seq":'
local after = ',"ts":' .. string.format('%d', now) .. ',"payload":'
for k = 1, count do
  redis.call('PUBLISH', channel, before .. (seq + k) .. after .. ARGV[fresh[k] + 1] ..
    ',"index":' .. (n + k - 1) .. '}}')
end
out[1] = next_index - length
return out
