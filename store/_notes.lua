-- Shared by the notes_*.lua scripts and steer.lua: operator notes of one session.
-- Keys (all of the session's hash tag, passed in KEYS by the caller, see store/notes.py):
--   notes      HASH id -> note JSON {"id","kind","author","ts","after","text"} (never rewritten)
--   notes:state HASH 'last' (the newest id), 'delivered' (every id up to it was delivered)
--   notes:delivered HASH id -> delivery JSON {"ts","event","tool"}
-- Notes are delivered in order and all at once, so one cursor says which are pending.

-- Deliver every pending note: mark them delivered (at `now`, by `by_json`, a JSON object body
-- without braces, e.g. '"event":"PostToolUse","tool":"Bash"'), announce it, return
-- {first, last, delivery number, note JSON…} (first > last: nothing was pending). Each
-- delivery gets the next number ('deliveries' in notes:state), so only the newest one can be
-- released. `seq` is the event's seq.
local function deliver_notes(notes, state, delivered, by_json, seq, now)
  local s = redis.call('HMGET', state, 'last', 'delivered')
  local last, done = tonumber(s[1] or '0'), tonumber(s[2] or '0')
  if last <= done then
    return {done + 1, done, 0}
  end
  local n = redis.call('HINCRBY', state, 'deliveries', 1)
  local ts = string.format('%d', now)
  local info = '{"ts":' .. ts .. ',"n":' .. n .. ',' .. by_json .. '}'
  local out = {done + 1, last, n}
  local marks = {}
  for id = done + 1, last do
    local raw = redis.call('HGET', notes, id)
    if raw then
      out[#out + 1] = raw
      marks[#marks + 1] = id
      marks[#marks + 1] = info
    end
  end
  if #marks > 0 then
    redis.call('HSET', delivered, unpack(marks))
  end
  redis.call('HSET', state, 'delivered', last)
  publish('notes.delivered', seq, now, '{"first":' .. (done + 1) .. ',"last":' .. last .. ',' ..
    by_json .. '}')
  return out
end

-- Whether any note waits (for a caller that must first decide whether to deliver).
local function notes_pending(state)
  local s = redis.call('HMGET', state, 'last', 'delivered')
  return tonumber(s[1] or '0') > tonumber(s[2] or '0')
end
