-- The stored values of one page of enrollments, in one call.
-- KEYS = the state buckets the page touches; ARGV = for each key in order, the number of its
-- fields followed by those fields. Returns the values (nil when absent) in the same order.
local out = {}
local n = 0
local p = 1
for i = 1, #KEYS do
  local count = tonumber(ARGV[p])
  local values = redis.call('HMGET', KEYS[i], unpack(ARGV, p + 1, p + count))
  for j = 1, count do
    n = n + 1
    out[n] = values[j]
  end
  p = p + count + 1
end
return out
