-- MemoryStore.set: write one value, index it, announce it.
-- KEYS[3] value key: a string '<version> <updated ms> <ttl s or -> <value JSON>'
-- ARGV[3] value JSON, ARGV[4] event payload head '{"scope":…,"component":…' as JSON,
-- ARGV[5] ttl seconds or '' (none), ARGV[6] expected version (absent: no check; 0: must not exist)
-- The session's memory index (a set of value keys without the session prefix, so the dashboard
-- can list them) is '<prefix>mem', derived from KEYS[1] = '<prefix>meta': same hash tag.
local key, value, ttl, expected = KEYS[3], ARGV[3], ARGV[5], ARGV[6]
local prefix = string.sub(KEYS[1], 1, -5)
if expected then
  local current = string.match(redis.call('GET', key) or '0', '^%d+')
  if current ~= expected then
    return redis.error_reply('CONFLICT ' .. current)
  end
end
local seq, now = begin()
local stored = seq .. ' ' .. string.format('%d', now) .. ' ' .. (ttl == '' and '-' or ttl) ..
  ' ' .. value
local previous
if ttl == '' then
  previous = redis.call('SET', key, stored, 'GET')
else
  previous = redis.call('SET', key, stored, 'EX', ttl, 'GET')
end
if not previous then  -- a new key (or one that had expired): list it
  redis.call('SADD', prefix .. 'mem', string.sub(key, #prefix + 1))
end
if seq % 32 == 0 then  -- now and then, forget a few listed keys that expired (like Redis does)
  for _, member in ipairs(redis.call('SRANDMEMBER', prefix .. 'mem', 8)) do
    if redis.call('EXISTS', prefix .. member) == 0 then
      redis.call('SREM', prefix .. 'mem', member)
    end
  end
end
local payload = ARGV[4] .. ',"version":' .. seq .. ',"ttl":' .. (ttl == '' and 'null' or ttl)
if #value <= 2048 then  -- small values ride in the event, so watchers need not read them
  payload = payload .. ',"value":' .. value
end
publish('memory.set', seq, now, payload .. '}')
return seq
