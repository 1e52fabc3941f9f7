-- Shared by the budget_*.lua scripts (store/scripts.py puts it after _event.lua).

-- Add n tokens (n > 0) to the per-minute bucket of `at` (ms, the caller's clock; nil: now, a
-- clock ahead of the server's counts as now) in the hash `minutes`, keeping the last `window`
-- minutes of server time `now` (ms): a new bucket (at most one a minute) drops those that left
-- the window and renews the hash's expiry.
local function add_to_minute(minutes, now, at, n, window)
  local minute = math.floor(now / 60000)
  local bucket = minute
  if at then
    bucket = math.min(math.floor(at / 60000), minute)
  end
  if bucket <= minute - window then
    return
  end
  if redis.call('HINCRBY', minutes, string.format('%d', bucket), string.format('%d', n)) == n then
    for _, field in ipairs(redis.call('HKEYS', minutes)) do
      if tonumber(field) <= minute - window then
        redis.call('HDEL', minutes, field)
      end
    end
    redis.call('EXPIRE', minutes, window * 60 + 60)
  end
end
