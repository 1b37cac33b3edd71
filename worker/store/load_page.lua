-- The stored values of one page of enrollments, in one call.
-- KEYS = the state buckets the page touches; ARGV = for each key in order, the number of its
-- fields followed by those fields. Returns the values (nil when absent) in the same order.
local CHUNK = 4000 -- fields per HMGET: Lua's unpack() stops at about 8,000 values
local out = {}
local n = 0
local p = 1
for i = 1, #KEYS do
  local count = tonumber(ARGV[p])
  local first = p + 1
  local last = p + count
  while first <= last do
    local upto = math.min(last, first + CHUNK - 1)
    local values = redis.call('HMGET', KEYS[i], unpack(ARGV, first, upto))
    for j = 1, upto - first + 1 do
      n = n + 1
      out[n] = values[j]
    end
    first = upto + 1
  end
  p = last + 1
end
return out
