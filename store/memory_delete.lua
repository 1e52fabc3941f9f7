-- MemoryStore.delete: remove one value; announce it only if there was one.
-- KEYS[3] value key; ARGV[3] event payload '{"scope":…,"component":…}' as JSON.
-- The memory index '<prefix>mem' is derived from KEYS[1] = '<prefix>meta' (see memory_set.lua).
local prefix = string.sub(KEYS[1], 1, -5)
redis.call('SREM', prefix .. 'mem', string.sub(KEYS[3], #prefix + 1))
if redis.call('DEL', KEYS[3]) == 0 then
  return 0
end
local seq, now = begin()
publish('memory.delete', seq, now, ARGV[3])
return seq
