-- TokenBudgetTracker.set_limit: an operator's new limit replaces the stored one, and says
-- whether it binds the agent (its hooks refuse tools and prompts once it is spent).
-- ARGV[3] the new limit ('' keeps the stored one), ARGV[4] binding '1' / '0' ('' keeps it).
-- The budget hash '<prefix>budget' is derived from KEYS[1] = '<prefix>meta'.
-- Lowering the limit below what is used already is allowed: nothing more fits until a reset.
-- Returns the event's seq; 0 when there is no limit to keep (nothing written).
local budget = string.sub(KEYS[1], 1, -5) .. 'budget'
local b = redis.call('HMGET', budget, 'limit', 'used', 'binding')
local limit = ARGV[3] ~= '' and ARGV[3] or b[1]
if not limit then
  return 0
end
local binding = ARGV[4] ~= '' and ARGV[4] or b[3] or '0'
local seq, now = begin()
redis.call('HSET', budget, 'limit', limit, 'binding', binding)
publish('budget.limit', seq, now, '{"limit":' .. limit .. ',"previous":' .. (b[1] or 'null') ..
  ',"used":' .. (b[2] or '0') .. ',"binding":' .. (binding == '1' and 'true' or 'false') .. '}')
return seq
