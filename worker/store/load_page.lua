-- The stored values of one page of enrollments, in one call.
-- KEYS[1] = the source's bucket 0. Bucket b is the hash ARGV[1] .. b; every bucket carries the
-- source's hash tag, so all of them live in KEYS[1]'s slot (worker/store/state.py, `_read`).
-- ARGV[2] = the bucket count; ARGV[3] = half the least power of two >= it;
-- ARGV[4] = for each enrollment in page order, its hash masked to that power of two
-- (buckets.bucket_for before the fold), four bytes little-endian each;
-- ARGV[5] = 'S': ARGV[6] holds every field, each after a 0xEE byte (no packed digits id holds
-- that byte), or 'L': ARGV[6..] are the fields, one each.
-- Returns the values (nil when absent) in page order.
local prefix, count, half, at = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local names = {}
local out = {}
local blob = ARGV[5] == 'S' and ARGV[6] or nil
local from = 2
for n = 1, #at / 4 do
  local b1, b2, b3, b4 = string.byte(at, 4 * n - 3, 4 * n)
  local bucket = b1 + 256 * b2 + 65536 * b3 + 16777216 * b4
  if bucket >= count then bucket = bucket - half end
  local key = names[bucket]
  if not key then
    key = prefix .. bucket
    names[bucket] = key
  end
  local field
  if blob then
    local stop = string.find(blob, '\238', from, true)
    if stop then
      field = string.sub(blob, from, stop - 1)
      from = stop + 1
    else
      field = string.sub(blob, from)
    end
  else
    field = ARGV[n + 5]
  end
  out[n] = redis.call('HGET', key, field)
end
return out
