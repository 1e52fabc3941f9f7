-- Shared by the workflow_*.lua scripts (store/scripts.py puts it after _event.lua).
-- ARGV[3] is a move packed in one argument: digest (16 chars) .. target .. '\0' .. target as
-- JSON .. '\0' .. actor as JSON (names hold no control characters and JSON escapes them, so
-- '\0' separates). The workflow's hash is KEYS[3] when given (a named workflow,
-- '<prefix>wf.<name>', whose events are '<name>.*'), else '<prefix>wf' derived from
-- KEYS[1] = '<prefix>meta' (same hash tag), whose events are 'workflow.*'.
local WF = KEYS[3] or (string.sub(KEYS[1], 1, -5) .. 'wf')
local WFKIND = KEYS[3] and string.match(KEYS[3], 'wf%.([%w_]+)$') or 'workflow'

-- The move, once the stored definition's digest matches the caller's:
-- wf key, the stored hash's `field`, target, target as JSON, actor as JSON;
-- or nil and the error reply to return (REDEFINED <digest> / UNDEFINED).
local function unpack_move(field)
  local move = ARGV[3]
  local a = string.find(move, '\0', 17, true)
  local b = string.find(move, '\0', a + 1, true)
  local wf = WF
  local stored = redis.call('HMGET', wf, 'digest', field)
  if stored[1] ~= string.sub(move, 1, 16) then
    return nil, redis.error_reply(stored[1] and ('REDEFINED ' .. stored[1]) or 'UNDEFINED')
  end
  return wf, stored[2], string.sub(move, 17, a - 1), string.sub(move, a + 1, b - 1),
    string.sub(move, b + 1)
end

-- Newest first, at most 1000 entries (HISTORY_LIMIT), trimmed to the newest 968 when over,
-- so a trim runs once per 32 moves.
local function push_history(wf, entry)
  if redis.call('LPUSH', wf .. ':history', entry) > 1000 then
    redis.call('LTRIM', wf .. ':history', 0, 967)
  end
end
