-- TokenBudgetTracker.reset: forget usage, rejections, breakdown totals and per-minute buckets;
-- keep the limit (the stored one, else ARGV[3], the caller's), whether it binds, and the
-- remembered request ids, so a request recorded before the reset still counts once.
-- Keys are derived from KEYS[1].
local budget = string.sub(KEYS[1], 1, -5) .. 'budget'
local b = redis.call('HMGET', budget, 'limit', 'used', 'binding')
local limit = b[1] or ARGV[3]
local seq, now = begin()
redis.call('DEL', budget, budget .. ':minutes')
redis.call('HSET', budget, 'limit', limit)
local binding = ''
if b[3] then
  redis.call('HSET', budget, 'binding', b[3])
  binding = ',"binding":' .. (b[3] == '1' and 'true' or 'false')
end
publish('budget.reset', seq, now, '{"limit":' .. limit .. ',"previous_used":' .. (b[2] or '0') ..
  binding .. '}')
return seq
