-- memdash export: every MemoryStore entry of one session, read with its index at one instant.
-- KEYS[1] the session's memory index (SET of '<scope>:<component>' members); ARGV[1] the
-- session's key prefix (same hash tag as KEYS[1]). Returns {member, value-or-nil, ...}.
local out = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = member
  out[#out + 1] = redis.call('GET', ARGV[1] .. member)
end
return out
