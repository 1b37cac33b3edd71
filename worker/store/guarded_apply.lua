-- Apply a batch of writes atomically, only while the caller still holds the source lease.
-- KEYS[1] = lease key; KEYS[2..] = keys the ops refer to by index.
-- ARGV[1] = fencing token ('' = unguarded write outside any poll, e.g. a health notice);
-- ARGV[2] = lease ttl in ms (renewed); ARGV[3..] = ops:
--   H idx field value   HSET        D idx field        HDEL
--   I idx field delta   HINCRBY     Z idx score member ZADD
--   R idx member        ZREM        U                  release the lease (guarded only)
--   C idx field value cidx group   HSET; a new field adds 1 to group `group` of hash KEYS[cidx]
--   X idx field cidx group         HDEL; a removed field takes 1 from that group count
--   G idx field         HGET, read back to the caller    K idx      DEL
-- Returns the result of the last HINCRBY (1 when there is none): a commit counter placed last
-- tells the caller which serial its commit got. With G ops: {that result, each value read}
-- ('' for a missing field).
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return redis.error_reply('LEASE_LOST lease not held')
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local i = 3
local n = #ARGV
local last = 1
local got = {}
while i <= n do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  if op == 'H' then
    redis.call('HSET', key, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'D' then
    redis.call('HDEL', key, ARGV[i + 2]); i = i + 3
  elseif op == 'I' then
    last = redis.call('HINCRBY', key, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'Z' then
    redis.call('ZADD', key, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'C' then
    if redis.call('HSET', key, ARGV[i + 2], ARGV[i + 3]) == 1 then
      redis.call('HINCRBY', KEYS[tonumber(ARGV[i + 4])], ARGV[i + 5], 1)
    end
    i = i + 6
  elseif op == 'X' then
    if redis.call('HDEL', key, ARGV[i + 2]) == 1 then
      redis.call('HINCRBY', KEYS[tonumber(ARGV[i + 3])], ARGV[i + 4], -1)
    end
    i = i + 5
  elseif op == 'R' then
    redis.call('ZREM', key, ARGV[i + 2]); i = i + 3
  elseif op == 'G' then
    got[#got + 1] = redis.call('HGET', key, ARGV[i + 2]) or ''; i = i + 3
  elseif op == 'K' then
    redis.call('DEL', key); i = i + 2
  elseif op == 'U' and ARGV[1] ~= '' then
    redis.call('DEL', KEYS[1]); i = i + 1
  else
    return redis.error_reply('BAD_OP ' .. tostring(op))
  end
end
if #got > 0 then
  table.insert(got, 1, last)
  return got
end
return last
