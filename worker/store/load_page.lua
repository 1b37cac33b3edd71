-- The stored values of one page of enrollments, in one call.
-- KEYS = the state buckets the page touches; ARGV[1] = for each enrollment in page order, the
-- position of its bucket in KEYS, two bytes little-endian each (one argument, not one per
-- enrollment: every argument costs the client to pack); ARGV[2..] = the fields, in page order.
-- Returns the values (nil when absent) in the same order.
local at = ARGV[1]
local out = {}
for n = 1, #ARGV - 1 do
  local low, high = string.byte(at, 2 * n - 1, 2 * n)
  out[n] = redis.call('HGET', KEYS[low + 256 * high], ARGV[n + 1])
end
return out
