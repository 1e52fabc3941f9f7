-- TokenBudgetTracker.set_limit: an operator's new limit replaces the stored one.
-- ARGV[3] the new limit. The budget hash '<prefix>budget' is derived from KEYS[1] = '<prefix>meta'.
-- Lowering the limit below what is used already is allowed: nothing more fits until a reset.
local budget = string.sub(KEYS[1], 1, -5) .. 'budget'
local b = redis.call('HMGET', budget, 'limit', 'used')
local seq, now = begin()
redis.call('HSET', budget, 'limit', ARGV[3])
publish('budget.limit', seq, now, '{"limit":' .. ARGV[3] .. ',"previous":' .. (b[1] or 'null') ..
  ',"used":' .. (b[2] or '0') .. '}')
return seq
