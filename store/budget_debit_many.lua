-- TokenBudgetTracker.record_usage_many: usage that already happened (enforce_limit=False) of
-- several requests of one session in one call, each exactly as budget_debit.lua records one
-- with 'record' '1': deduplicated by its id for 24 h, added to the totals, its minute and the
-- context window, announced with its own 'budget.usage' event, in the order given.
-- KEYS[3] the budget hash '<prefix>budget', KEYS[4] its per-minute buckets
-- '<prefix>budget:minutes', KEYS[5..] each request's remembered id '<prefix>budget:req:<id>',
-- in the order of the requests.
-- ARGV[3] the caller's limit (stored if none is yet), ARGV[4] seconds a request id is
-- remembered (budget.REQUEST_ID_TTL), ARGV[5] minutes of buckets kept (budget.WINDOW_MINUTES);
-- ARGV[6] the requests as one JSON array, flat: per request how many values follow for it, the
-- request id, tokens, and optional name/value pairs as budget_debit.lua takes them ('at' <ms>,
-- 'sidechain' 1, breakdown fields 'input_tokens' <n>, … , 'model' <name>); numbers as JSON
-- numbers (integers below 2^53).
-- Returns {counted, used, limit} per request, flattened: counted 1 (debited) or 0 (a request
-- id seen within the TTL: nothing changes, no event).
-- The budget hash is read once and written once (its fields as the calls one after the other
-- would leave them); each request still has its own id check, minute and event.
local budget, minutes = KEYS[3], KEYS[4]
local function push(list, ...)
  for _, value in ipairs({...}) do
    list[#list + 1] = value
  end
end
local default_limit, ttl, window_minutes = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local A = cjson.decode(ARGV[6])
local function int(n)
  return string.format('%d', n)
end

-- the requests: {id, tokens, first option, last option}, and which were counted (new ids)
local requests, counted, names, fields = {}, 0, {}, {'used', 'limit', 'requests', 'context_at'}
local i, r = 1, 5
while i <= #A do
  local last = i + A[i]
  local new = redis.call('SET', KEYS[r], int(A[i + 2]), 'NX', 'EX', ttl) and true or false
  requests[#requests + 1] = {A[i + 1], A[i + 2], i + 3, last, new}
  if new then
    counted = counted + 1
    for k = i + 3, last, 2 do
      local name = A[k]
      if name ~= 'at' and name ~= 'sidechain' and name ~= 'record' and name ~= 'model'
          and not names[name] then
        names[name] = true
        fields[#fields + 1] = name
      end
    end
  end
  i, r = last + 1, r + 1
end

local b = redis.call('HMGET', budget, unpack(fields))
local used, limit = tonumber(b[1] or '0'), tonumber(b[2] or default_limit)
local out = {}
if counted == 0 then
  for _ = 1, #requests do
    push(out, 0, used, limit)
  end
  return out
end
local totals = {}  -- breakdown field -> running total
for k = 5, #fields do
  totals[fields[k]] = tonumber(b[k] or '0')
end
local count_requests = tonumber(b[3]) or 0
local context_at, context = tonumber(b[4] or '0'), nil
local model = nil

-- begin() for `counted` events at once: the same seqs, time and registry entry.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('HINCRBY', KEYS[1], 'seq', counted)
if seq == counted then
  redis.call('HSET', KEYS[1], 'created', now)
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
seq = seq - counted

for _, request in ipairs(requests) do
  local id, tokens, first_option, last, new = request[1], request[2], request[3], request[4],
    request[5]
  if not new then
    push(out, 0, used, limit)
  else
    local n = tokens
    local at, sidechain, window = nil, false, nil
    used = used + n
    count_requests = count_requests + 1
    seq = seq + 1
    -- numbers go out through string.format('%d'): '..' would print 15+ digits as 1.2e+14.
    local quoted = string.find(id, '[\\"]') and cjson.encode(id) or '"' .. id .. '"'
    local payload = '{"request_id":' .. quoted .. ',"tokens":' .. int(n) .. ',"used":' ..
      string.format('%d', used) .. ',"limit":' .. string.format('%d', limit)
    for k = first_option, last, 2 do
      local name, value = A[k], A[k + 1]
      if name == 'at' then
        at = value
      elseif name == 'sidechain' then
        sidechain = true
      elseif name == 'model' then
        model = value
        payload = payload .. ',"model":' .. cjson.encode(value)
      elseif name ~= 'record' then
        if name == 'input_tokens' or name == 'cache_creation_input_tokens' or
            name == 'cache_read_input_tokens' then
          window = (window or 0) + value
        end
        totals[name] = totals[name] + value
        payload = payload .. ',"' .. name .. '":' .. int(value)
      end
    end
    if window and not sidechain then
      local when = at or now
      if when >= context_at then
        context, context_at = window, when
      end
    end
    if n > 0 then  -- tokens per minute, for burn rate; the last window_minutes only
      add_to_minute(minutes, now, at, n, window_minutes)
    end
    if at then
      payload = payload .. ',"at":' .. string.format('%d', at)
    end
    if sidechain then
      payload = payload .. ',"sidechain":true'
    end
    payload = payload .. ',"enforce_limit":false'
    if used > limit then
      payload = payload .. ',"over_limit":true'
    end
    publish('budget.usage', seq, now, payload .. '}')
    push(out, 1, used, limit)
  end
end

local set = {'used', string.format('%d', used), 'requests', count_requests}
if not b[2] then
  push(set, 'limit', default_limit)
end
for k = 5, #fields do
  push(set, fields[k], string.format('%d', totals[fields[k]]))
end
if model then
  push(set, 'model', model)
end
if context then
  push(set, 'context', string.format('%d', context))
  push(set, 'context_at', string.format('%d', context_at))
end
redis.call('HSET', budget, unpack(set))
return out
