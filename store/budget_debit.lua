-- TokenBudgetTracker.track_request / record_usage: check and debit one request, atomically.
-- No KEYS of its own: the budget hash '<prefix>budget', its per-minute buckets
-- '<prefix>budget:minutes' and the remembered request ids '<prefix>budget:req:<id>' are derived
-- from KEYS[1] = '<prefix>meta' (same hash tag), which keeps the call short.
-- ARGV[3] request id, ARGV[4] tokens, ARGV[5] the caller's limit (stored if none is yet),
-- ARGV[6..] optional name/value pairs: 'record' '1' (do not enforce the limit), 'at' <ms> (when
-- the usage happened), 'sidechain' '1' (a subagent's request: it does not say how full the
-- session's own context window is), and breakdown fields ('input_tokens' <n>, … , 'model').
-- A request with input/cache breakdown (not a sidechain's) also stores 'context' (input + cache
-- creation + cache read tokens: how full the context window was) and 'context_at' (its ms),
-- unless a later request's is stored already.
-- Returns {1, used, limit} (debited) or {0, used, limit} (a request id seen in the last 24 h:
-- nothing changes, no event); over the limit: error 'EXCEEDED <remaining> <limit>', after
-- counting the rejection and announcing it (budget.rejected).
-- The 24 h (86400) and the 60-minute window match store/budget.py's constants.
local budget = string.sub(KEYS[1], 1, -5) .. 'budget'
local id, tokens = ARGV[3], ARGV[4]
local seen = budget .. ':req:' .. id
if not redis.call('SET', seen, tokens, 'NX', 'EX', 86400) then
  local b = redis.call('HMGET', budget, 'used', 'limit')
  return {0, tonumber(b[1] or '0'), tonumber(b[2] or ARGV[5])}
end

local enforce, at, extra, b, sidechain, window = true, nil, nil, nil, false, nil
if #ARGV == 5 then  -- the common call: no options, no breakdown
  b = redis.call('HMGET', budget, 'used', 'limit', 'requests')
else
  local fields = {'used', 'limit', 'requests'}
  extra = {}
  for i = 6, #ARGV, 2 do
    local name = ARGV[i]
    if name == 'record' then
      enforce = false
    elseif name == 'at' then
      at = tonumber(ARGV[i + 1])
    elseif name == 'sidechain' then
      sidechain = true
    else
      if name == 'input_tokens' or name == 'cache_creation_input_tokens' or
          name == 'cache_read_input_tokens' then
        window = (window or 0) + tonumber(ARGV[i + 1])
      end
      extra[#extra + 1] = i
      if name ~= 'model' then
        fields[#fields + 1] = name
      end
    end
  end
  b = redis.call('HMGET', budget, unpack(fields))
end
local used, limit = tonumber(b[1] or '0'), tonumber(b[2] or ARGV[5])
local n = tonumber(tokens)
local after = used + n
-- numbers go out through string.format('%d'): '..' would print 15+ digits as 1.2e+14.
-- The id as JSON: as is unless it has quotes or backslashes (control characters never get here).
local quoted = string.find(id, '[\\"]') and cjson.encode(id) or '"' .. id .. '"'

-- the usage examples' rule (tests/test_seed_example2.py): refuse tokens > remaining, where remaining never drops below 0 (so 0 tokens
-- always fit, even when usage recorded without enforcement went past the limit)
if enforce and n > math.max(limit - used, 0) then
  redis.call('DEL', seen)  -- a retry after the limit is raised must not count as a duplicate
  local seq, now = begin()
  local rejected = redis.call('HINCRBY', budget, 'rejected', 1)
  if not b[2] then
    redis.call('HSET', budget, 'limit', ARGV[5])
  end
  local remaining = string.format('%d', math.max(limit - used, 0))
  local total = string.format('%d', limit)
  publish('budget.rejected', seq, now, '{"request_id":' .. quoted .. ',"tokens":' .. tokens ..
    ',"remaining":' .. remaining .. ',"used":' .. string.format('%d', used) .. ',"limit":' ..
    total .. ',"rejected":' .. rejected .. '}')
  return redis.error_reply('EXCEEDED ' .. remaining .. ' ' .. total)
end

local seq, now = begin()
local new_used = string.format('%d', after)
local payload = '{"request_id":' .. quoted .. ',"tokens":' .. tokens .. ',"used":' .. new_used ..
  ',"limit":' .. string.format('%d', limit)
if b[2] and not extra then
  redis.call('HSET', budget, 'used', new_used, 'requests', (tonumber(b[3]) or 0) + 1)
else
  local set = {'used', new_used, 'requests', (tonumber(b[3]) or 0) + 1}
  if not b[2] then
    set[5], set[6] = 'limit', ARGV[5]
  end
  local k = 3
  for _, i in ipairs(extra or {}) do
    local name, value = ARGV[i], ARGV[i + 1]
    set[#set + 1] = name
    if name == 'model' then
      set[#set + 1] = value
      payload = payload .. ',"model":' .. cjson.encode(value)
    else
      k = k + 1
      set[#set + 1] = string.format('%d', tonumber(b[k] or '0') + tonumber(value))
      payload = payload .. ',"' .. name .. '":' .. value
    end
  end
  redis.call('HSET', budget, unpack(set))
end
if window and not sidechain then
  local when = at or now
  local last = tonumber(redis.call('HGET', budget, 'context_at') or '0')
  if when >= last then
    redis.call('HSET', budget, 'context', string.format('%d', window), 'context_at',
      string.format('%d', when))
  end
end

if n > 0 then  -- tokens per minute, for burn rate; the last 60 minutes only
  add_to_minute(budget .. ':minutes', now, at, n, 60)
end

if at then
  payload = payload .. ',"at":' .. string.format('%d', at)
end
if sidechain then
  payload = payload .. ',"sidechain":true'
end
if not enforce then
  payload = payload .. ',"enforce_limit":false'
  if after > limit then
    payload = payload .. ',"over_limit":true'
  end
end
publish('budget.usage', seq, now, payload .. '}')
return {1, after, limit}
