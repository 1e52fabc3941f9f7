-- MemoryCache.flush_stats: add one cache instance's counts since its previous flush to the
-- session's totals, append a sample to the sparkline series, announce the new totals.
-- ARGV[3]: '<hits> <misses> <sets> <deletes> <evictions> <size> <max_size>': the five deltas
--          since this instance's previous flush, then its size and max_size ('' = unbounded);
--          one argument rather than seven, as each costs the client time.
-- Keys derived from KEYS[1] = '<prefix>meta' (same hash tag, fewer arguments):
--   '<prefix>cache' HASH: hits misses sets deletes evictions (sums over every instance of the
--                   session's cache), size max_size (last reported), updated (server ms)
--   '<prefix>cache:series' LIST: compact JSON samples {ts,hits,misses,evictions,size}, oldest
--                   first; 120 to 150 kept, readers take the last 120 (store.cache.SERIES_LENGTH)
-- Returns the five new totals.
local prefix = string.sub(KEYS[1], 1, -5)
local totals, series = prefix .. 'cache', prefix .. 'cache:series'
local h, m, s, d, e, size, max_size = string.match(ARGV[3],
  '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d*)$')
if not h then
  return redis.error_reply('ARGS malformed counts')
end
local seq, now = begin()
local old = redis.call('HMGET', totals, 'hits', 'misses', 'sets', 'deletes', 'evictions')
local new = {h, m, s, d, e}
local sum = {}
for i = 1, 5 do
  new[i] = (tonumber(old[i]) or 0) + tonumber(new[i])
  sum[i] = string.format('%d', new[i])
end
local ts = string.format('%d', now)
redis.call('HSET', totals, 'hits', sum[1], 'misses', sum[2], 'sets', sum[3], 'deletes', sum[4],
  'evictions', sum[5], 'size', size, 'max_size', max_size, 'updated', ts)
local length = redis.call('RPUSH', series, '{"ts":' .. ts .. ',"hits":' .. sum[1] .. ',"misses":' ..
  sum[2] .. ',"evictions":' .. sum[5] .. ',"size":' .. size .. '}')
if length > 150 then  -- trim now and then, not on every flush; readers take the last 120
  redis.call('LTRIM', series, -120, -1)
end
publish('cache.stats', seq, now, '{"hits":' .. sum[1] .. ',"misses":' .. sum[2] .. ',"sets":' ..
  sum[3] .. ',"deletes":' .. sum[4] .. ',"evictions":' .. sum[5] .. ',"size":' .. size ..
  ',"max_size":' .. (max_size == '' and 'null' or max_size) .. '}')
return new
