-- heartbeat: tell the others a worker process is alive. A worker declared dead meanwhile
-- (a long pause) registers again with the info it registered with.
--
-- KEYS[1] workers     hash  worker id -> JSON of its WorkerInfo (without last_heartbeat)
-- KEYS[2] heartbeats  zset  worker ids, scored by last heartbeat
-- ARGV[1] worker id
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] JSON of its WorkerInfo, or "" when it never registered
-- Returns 1 for a heartbeat, 2 when the worker registered again, 0 when it is unknown.
local k = {workers = KEYS[1], heartbeats = KEYS[2]}

local result = 1
if redis.call('HEXISTS', k.workers, ARGV[1]) == 0 then
  if ARGV[3] == '' then return 0 end
  redis.call('HSET', k.workers, ARGV[1], ARGV[3])
  result = 2
end
redis.call('ZADD', k.heartbeats, ARGV[2], ARGV[1])
return result
