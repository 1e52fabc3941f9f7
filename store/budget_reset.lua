-- TokenBudgetTracker.reset: forget usage, rejections, breakdown totals and per-minute buckets;
-- keep the limit (the stored one, else ARGV[3], the caller's) and the remembered request ids, so
-- a request recorded before the reset still counts once. Keys are derived from KEYS[1].
local budget = string.sub(KEYS[1], 1, -5) .. 'budget'
local b = redis.call('HMGET', budget, 'limit', 'used')
local limit = b[1] or ARGV[3]
local seq, now = begin()
redis.call('DEL', budget, budget .. ':minutes')
redis.call('HSET', budget, 'limit', limit)
publish('budget.reset', seq, now, '{"limit":' .. limit .. ',"previous_used":' .. (b[2] or '0') ..
  '}')
return seq
