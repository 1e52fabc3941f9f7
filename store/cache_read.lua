-- MemoryCache.read_stats: the session's totals, series and seq, read together (writes nothing).
-- Keys derived from KEYS[1] = '<prefix>meta' as in cache_flush.lua.
-- Returns {totals as a flat HGETALL list, the last 120 samples (SERIES_LENGTH), seq or false}.
local prefix = string.sub(KEYS[1], 1, -5)
return {redis.call('HGETALL', prefix .. 'cache'), redis.call('LRANGE', prefix .. 'cache:series',
  -120, -1), redis.call('HGET', KEYS[1], 'seq')}
