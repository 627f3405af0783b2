-- next_due: when the next future job or periodic task is due. Read-only.
--
-- One script rather than a MULTI/EXEC of two ZRANGEs: an idle arbiter asks before each
-- wait, and a script call costs the worker far less Python than a transaction.
--
-- KEYS[1] future    zset  job ids, scored by due time
-- KEYS[2] periodic  zset  periodic task names, scored by next due time
-- Returns the earliest score, as the string Redis stores, or false when both are empty.
local k = {future = KEYS[1], periodic = KEYS[2]}

local earliest = false
for _, key in ipairs({k.future, k.periodic}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] and (not earliest or tonumber(first[2]) < tonumber(earliest)) then
    earliest = first[2]
  end
end
return earliest
