-- The stored values of one page of enrollments, in one call.
-- KEYS = the state buckets the page touches; ARGV = for each enrollment in page order, the
-- position of its bucket in KEYS and its field. Returns the values (nil when absent) in the
-- same order.
local out = {}
local n = 0
for p = 1, #ARGV, 2 do
  n = n + 1
  out[n] = redis.call('HGET', KEYS[tonumber(ARGV[p])], ARGV[p + 1])
end
return out
