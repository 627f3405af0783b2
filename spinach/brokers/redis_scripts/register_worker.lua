-- register_worker: announce a worker process; also counts as its heartbeat.
--
-- KEYS[1] workers     hash  worker id -> JSON of its WorkerInfo (without last_heartbeat)
-- KEYS[2] heartbeats  zset  worker ids, scored by last heartbeat
-- ARGV[1] worker id
-- ARGV[2] now, seconds since the epoch
-- ARGV[3] JSON of its WorkerInfo
local k = {workers = KEYS[1], heartbeats = KEYS[2]}

redis.call('HSET', k.workers, ARGV[1], ARGV[3])
redis.call('ZADD', k.heartbeats, ARGV[2], ARGV[1])
return 1
